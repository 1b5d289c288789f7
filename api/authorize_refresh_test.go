package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// refresh posts a refresh_token grant for client id and secret.
func refresh(t *testing.T, base, id, secret, token string, extra ...string) oauthReply {
	t.Helper()
	return oauthPost(t, base, "/oauth/token", form(append([]string{"grant_type", "refresh_token", "refresh_token", token,
		"client_id", id, "client_secret", secret}, extra...)...))
}

func refreshOK(t *testing.T, r oauthReply) (access, refreshToken, scope string) {
	t.Helper()
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
	}
	wantToken(t, r)
	if err := jsonUnmarshal(r.Body, &tok); err != nil || tok.RefreshToken == "" {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	return tok.AccessToken, tok.RefreshToken, tok.Scope
}

// authorizeAndExchange runs the flow and returns the x/oauth2 token.
func authorizeAndExchange(t *testing.T, f authzFixture, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := f.oauthConfig(scopes...)
	verifier := oauth2.GenerateVerifier()
	code := codeFrom(t, newBrowser(t, f.base).authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))), "s")
	tok, err := exchange(t, cfg, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Refresh tokens rotate; presenting a spent one revokes the whole family:
// every access token and the current refresh token.
func TestRefreshTokenReuseRevokesFamily(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	id, secret := f.client.ClientID, f.client.ClientSecret
	tok := authorizeAndExchange(t, f, "domains:read", "domains:write")
	a1, r1 := tok.AccessToken, tok.RefreshToken
	a2, r2, scope := refreshOK(t, refresh(t, n.URL(), id, secret, r1, "scope", "domains:read"))
	if scope != "domains:read" {
		t.Fatalf("narrowed scope %q", scope)
	}
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r2, "scope", "vps:read"), 400, "invalid_scope")
	a3, r3, scope := refreshOK(t, refresh(t, n.URL(), id, secret, r2))
	if scope != "domains:read domains:write" {
		t.Fatalf("a refresh without scope keeps the granted ones: %q", scope)
	}
	for _, a := range []string{a1, a2, a3} {
		if !active(f.introspect(t, a)) {
			t.Fatal("access token inactive before reuse")
		}
	}
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r1), 400, "invalid_grant") // reuse
	for _, a := range []string{a1, a2, a3} {
		if active(f.introspect(t, a)) {
			t.Fatal("an access token of the family survived reuse")
		}
	}
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r3), 400, "invalid_grant")
}

// With a grace period the token spent last may be presented once more;
// the token its first use issued is then spent.
func TestRefreshTokenGracePeriod(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	n := tollgatetest.Start(t, tollgatetest.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	f := newAuthzFixture(t, n.URL(), map[string]any{"refresh_token_grace_period": 30})
	id, secret := f.client.ClientID, f.client.ClientSecret
	r1 := authorizeAndExchange(t, f, "domains:read").RefreshToken
	_, r2, _ := refreshOK(t, refresh(t, n.URL(), id, secret, r1))
	_, r3, _ := refreshOK(t, refresh(t, n.URL(), id, secret, r1)) // the lost answer, retried
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r1), 400, "invalid_grant")
	// r1's third use was reuse: the family is gone, r3 included.
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r3), 400, "invalid_grant")
	_ = r2

	// After the grace period the spent token is reuse at once.
	r1 = authorizeAndExchange(t, f, "domains:read").RefreshToken
	_, r2, _ = refreshOK(t, refresh(t, n.URL(), id, secret, r1))
	offset.Store(int64(31 * time.Second))
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r1), 400, "invalid_grant")
	wantOAuthError(t, refresh(t, n.URL(), id, secret, r2), 400, "invalid_grant")
}

// A grant's refresh tokens have an absolute lifetime from the code's
// redemption (--refresh-token-ttl, default 720h): rotation does not extend
// it. Just before its end a refresh works; just after, the current and
// the spent tokens are invalid_grant "expired" and nothing is revoked.
func TestRefreshTokenAbsoluteLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ttl  time.Duration // 0: the default
		want time.Duration
	}{{"default", 0, 720 * time.Hour}, {"configured", 2 * time.Hour, 2 * time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var offset atomic.Int64
			opts := []tollgatetest.Option{tollgatetest.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })}
			if tc.ttl != 0 {
				opts = append(opts, tollgatetest.WithRefreshTokenTTL(tc.ttl))
			}
			n := tollgatetest.Start(t, opts...)
			f := newAuthzFixture(t, n.URL(), nil)
			id, secret := f.client.ClientID, f.client.ClientSecret
			r1 := authorizeAndExchange(t, f, "domains:read").RefreshToken
			_, r2, _ := refreshOK(t, refresh(t, n.URL(), id, secret, r1))

			offset.Store(int64(tc.want - 10*time.Second))
			a3, r3, _ := refreshOK(t, refresh(t, n.URL(), id, secret, r2))

			offset.Store(int64(tc.want + time.Second))
			for _, rt := range []string{r3, r1} { // current, then spent: expiry is not reuse
				e := wantOAuthError(t, refresh(t, n.URL(), id, secret, rt), 400, "invalid_grant")
				if !strings.Contains(e.Description, "refresh token expired") {
					t.Fatalf("after the lifetime: %q", e.Description)
				}
			}
			if !active(f.introspect(t, a3)) {
				t.Fatal("an expired refresh token revoked the grant's access token")
			}
		})
	}
}

// A refresh token works only for its client, and stops with its user.
func TestRefreshTokenBoundToClientAndUser(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	other := createClient(t, f.tn.owner, map[string]any{"grant_types": []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "client_secret_post", "redirect_uris": []string{appRedirect}, "scopes": []string{"domains:read"}})
	tok := authorizeAndExchange(t, f, "domains:read")
	wantOAuthError(t, refresh(t, n.URL(), other.ClientID, other.ClientSecret, tok.RefreshToken), 400, "invalid_grant")
	_, rt, _ := refreshOK(t, refresh(t, n.URL(), f.client.ClientID, f.client.ClientSecret, tok.RefreshToken))

	if r := f.tn.owner.Do(t, "POST", "/users/"+f.user.ID+"/disable", nil); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Body)
	}
	wantOAuthError(t, refresh(t, n.URL(), f.client.ClientID, f.client.ClientSecret, rt), 400, "invalid_grant")
	if active(f.introspect(t, tok.AccessToken)) {
		t.Fatal("an access token of a disabled user is active")
	}
	// And the disabled user cannot log in.
	b := newBrowser(t, n.URL())
	p := b.login(t, b.get(t, f.oauthConfig("domains:read").AuthCodeURL("s")), "alice", userPassword)
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "Wrong username or password") {
		t.Fatalf("disabled user login: %d %s", p.status, p.body)
	}
}

// Consent is remembered per user, client and scopes: more scopes ask
// again; withdrawing it asks again and ends the grants.
func TestConsentRememberedAndRevocable(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	b := newBrowser(t, n.URL())
	cfg := f.oauthConfig("domains:read")
	p := b.login(t, b.get(t, cfg.AuthCodeURL("s")), "alice", userPassword)
	for _, want := range []string{"domains:read", "Acme Dashboard", `id="allow"`} {
		if !strings.Contains(p.body, want) {
			t.Fatalf("consent page lacks %q: %s", want, p.body)
		}
	}
	code := codeFrom(t, b.decide(t, p, "allow").location(t), "s")
	tok, err := exchange(t, cfg, code)
	if err != nil {
		t.Fatal(err)
	}
	codeFrom(t, b.get(t, cfg.AuthCodeURL("s")).location(t), "s") // remembered
	if p := b.get(t, f.oauthConfig("domains:read", "domains:write").AuthCodeURL("s")); !strings.Contains(p.body, `id="consent"`) {
		t.Fatalf("more scopes must ask again: %d %s", p.status, p.body)
	}
	var consents struct {
		Data []struct {
			ClientID string   `json:"client_id"`
			Scopes   []string `json:"scopes"`
		} `json:"data"`
	}
	f.tn.owner.Do(t, "GET", "/users/"+f.user.ID+"/consents", nil).JSON(t, &consents)
	if len(consents.Data) != 1 || consents.Data[0].ClientID != f.client.ClientID {
		t.Fatalf("consents %+v", consents)
	}
	if r := f.tn.owner.Do(t, "DELETE", "/users/"+f.user.ID+"/consents/"+url.PathEscape(f.client.ClientID), nil); r.Status != 204 {
		t.Fatalf("revoke consent: %d %s", r.Status, r.Body)
	}
	if p := b.get(t, cfg.AuthCodeURL("s")); !strings.Contains(p.body, `id="consent"`) {
		t.Fatalf("after withdrawal the consent page comes back: %d", p.status)
	}
	if active(f.introspect(t, tok.AccessToken)) {
		t.Fatal("tokens of a withdrawn consent are active")
	}
	// Deny goes back to the client with access_denied.
	u := b.decide(t, b.get(t, cfg.AuthCodeURL("s")), "deny").location(t)
	if u.Query().Get("error") != "access_denied" || u.Query().Get("state") != "s" {
		t.Fatalf("deny: %s", u)
	}
	// Another account's user does not exist for this client.
	other := newTenant(t, n.URL())
	createUser(t, other.owner, "mallory")
	if p := newBrowser(t, n.URL()); p.login(t, p.get(t, cfg.AuthCodeURL("s")), "mallory", userPassword).status != http.StatusUnauthorized {
		t.Fatal("a user of another account logged in")
	}
}

// Users: CRUD, password policy, username uniqueness, tenant isolation.
func TestUsersManagement(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	u := createUser(t, tn.owner, "dave")
	if u.Status != "active" || !strings.HasPrefix(u.ID, "usr_") {
		t.Fatalf("user %+v", u)
	}
	for body, status := range map[string]int{
		`{"username":"DAVE","password":"correct horse battery"}`:  409,
		`{"username":"erin","password":"short"}`:                  400,
		`{"username":"erin","password":"long enough","extra":1}`:  400,
		`{"username":" erin","password":"correct horse battery"}`: 400,
	} {
		if r := tn.owner.Do(t, "POST", "/users", []byte(body), "Content-Type", "application/json"); r.Status != status {
			t.Errorf("%s: %d %s", body, r.Status, r.Body)
		}
	}
	stranger := newTenant(t, n.URL())
	for _, p := range []string{"/users/" + u.ID, "/users/" + u.ID + "/consents"} {
		if r := stranger.owner.Do(t, "GET", p, nil); r.Status != 404 {
			t.Errorf("stranger GET %s: %d", p, r.Status)
		}
	}
	if r := tn.owner.Do(t, "PUT", "/users/"+u.ID+"/password", map[string]any{"password": "tiny"}); r.Status != 400 || !strings.Contains(string(r.Body), "at least 10") {
		t.Fatalf("policy: %d %s", r.Status, r.Body)
	}
	if r := tn.owner.Do(t, "DELETE", "/users/"+u.ID, nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	createUser(t, tn.owner, "Dave") // the username is free again
	var list struct {
		Data []userOut `json:"data"`
	}
	tn.owner.Do(t, "GET", "/users", nil).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].Username != "Dave" {
		t.Fatalf("list %+v", list)
	}
}
