package api_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

func wantRetrieveError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

// A code exchanged with the wrong code_verifier (or none) is refused; the
// right one still works afterwards.
func TestAuthorizationCodeWrongVerifier(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	verifier := oauth2.GenerateVerifier()
	code := codeFrom(t, newBrowser(t, n.URL()).authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))), "s")
	_, err := exchange(t, cfg, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantRetrieveError(t, err, "invalid_grant")
	_, err = exchange(t, cfg, code)
	wantRetrieveError(t, err, "invalid_grant")
	if _, err := exchange(t, cfg, code, oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
}

// A redirect_uri the client did not register is an error page at the
// authorization endpoint, never a redirect; at the token endpoint a
// redirect_uri other than the authorization request's is invalid_grant.
func TestAuthorizationRedirectURIMismatch(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), map[string]any{"redirect_uris": []string{appRedirect, "http://127.0.0.1:1/other"}})
	cfg := f.oauthConfig("domains:read")
	b := newBrowser(t, n.URL())
	for _, tc := range []struct{ name, redirect string }{
		{"not registered", "https://evil.example/callback"},
		{"registered one with a suffix", appRedirect + "/x"},
		{"registered one with a query", appRedirect + "?a=1"},
		{"absent while several are registered", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *cfg
			c.RedirectURL = tc.redirect
			p := b.get(t, c.AuthCodeURL("s"))
			if p.status != http.StatusBadRequest || p.header.Get("Location") != "" || !strings.Contains(p.body, "not valid") ||
				p.header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("got %d %v %s", p.status, p.header, p.body)
			}
		})
	}
	code := codeFrom(t, b.authorize(t, cfg.AuthCodeURL("s")), "s")
	other := *cfg
	other.RedirectURL = "http://127.0.0.1:1/other"
	_, err := exchange(t, &other, code)
	wantRetrieveError(t, err, "invalid_grant")
	if _, err := exchange(t, cfg, code); err != nil {
		t.Fatal(err)
	}
}

// An unknown client_id is an error page, never a redirect, whatever the
// redirect_uri says.
func TestAuthorizationUnknownClientShowsErrorPage(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	b := newBrowser(t, n.URL())
	for _, q := range []string{
		"response_type=code&client_id=nobody&redirect_uri=" + url.QueryEscape(appRedirect),
		"response_type=code&redirect_uri=" + url.QueryEscape(appRedirect),
		"response_type=code&client_id=a&client_id=b",
	} {
		p := b.get(t, n.URL()+"/oauth/authorize?"+q)
		if p.status != http.StatusBadRequest || p.header.Get("Location") != "" || p.header.Get("X-Frame-Options") != "DENY" ||
			!strings.Contains(p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || p.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %v", q, p.status, p.header)
		}
	}
}

// state comes back exactly as sent; without it, none comes back. The
// client detects a missing or altered state (the server has nothing to
// compare it with). On the server side the pending request, state
// included, is sealed in the forms: an altered form is refused.
func TestAuthorizationState(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	b := newBrowser(t, n.URL())
	// checkState is what the client does with the redirect.
	checkState := func(u *url.URL, sent string) error {
		if got := u.Query().Get("state"); got == "" || got != sent {
			return errors.New("state mismatch: possible CSRF")
		}
		return nil
	}
	tricky := "a b&c=d/é+%" // echoed byte for byte
	u := b.authorize(t, cfg.AuthCodeURL(tricky))
	if err := checkState(u, tricky); err != nil {
		t.Fatalf("exact state refused: %v (%s)", err, u)
	}

	// Missing: the redirect carries no state, which the client refuses.
	noState := strings.Replace(cfg.AuthCodeURL("x"), "state=x", "", 1)
	u = b.get(t, noState).location(t)
	if _, ok := u.Query()["state"]; ok || u.Query().Get("code") == "" {
		t.Fatalf("without state: %s", u)
	}
	if checkState(u, "expected") == nil {
		t.Fatal("the client accepted a missing state")
	}

	// Altered: an attacker's redirect with another state is refused.
	u = b.get(t, cfg.AuthCodeURL("mine")).location(t)
	forged := *u
	q := forged.Query()
	q.Set("state", "attacker")
	forged.RawQuery = q.Encode()
	if checkState(&forged, "mine") == nil || checkState(u, "mine") != nil {
		t.Fatal("state check")
	}

	// Altered in the login form on the way: the sealed request no longer opens.
	fresh := newBrowser(t, n.URL())
	p := fresh.get(t, cfg.AuthCodeURL("mine"))
	sealed := p.field(t, requestField)
	altered := sealed[:len(sealed)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(sealed, "AA")]
	r := fresh.post(t, "/oauth2/login", url.Values{"csrf_token": {p.field(t, csrfField)}, "request": {altered},
		"username": {"alice"}, "password": {userPassword}})
	if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
		t.Fatalf("altered form: %d %v", r.status, r.header)
	}
}

// A form without the session's CSRF token, or from another browser's
// session, is refused.
func TestAuthorizationCSRF(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	victim, attacker := newBrowser(t, n.URL()), newBrowser(t, n.URL())
	p := attacker.get(t, cfg.AuthCodeURL("s"))
	victim.get(t, cfg.AuthCodeURL("s")) // the victim has a session of its own
	for name, form := range map[string]url.Values{
		"another session's form": {"csrf_token": {p.field(t, csrfField)}, "request": {p.field(t, requestField)}, "username": {"alice"}, "password": {userPassword}},
		"no token":               {"request": {p.field(t, requestField)}, "username": {"alice"}, "password": {userPassword}},
	} {
		if r := victim.post(t, "/oauth2/login", form); r.status != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// The consent form of a logged-in session, posted with a stale token.
	p = victim.login(t, victim.get(t, cfg.AuthCodeURL("s")), "alice", userPassword)
	if r := victim.post(t, "/oauth2/consent", url.Values{"csrf_token": {"forged"}, "request": {p.field(t, requestField)}, "decision": {"allow"}}); r.status != http.StatusForbidden {
		t.Fatalf("forged consent: %d", r.status)
	}
}

// A code lives 60 seconds.
func TestAuthorizationCodeExpires(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	n := tollgatetest.Start(t, tollgatetest.WithClock(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }))
	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	b := newBrowser(t, n.URL())
	code := codeFrom(t, b.authorize(t, cfg.AuthCodeURL("s")), "s")
	offset.Store(int64(61 * time.Second))
	_, err := exchange(t, cfg, code)
	wantRetrieveError(t, err, "invalid_grant")
	offset.Store(0)
	code = codeFrom(t, b.get(t, cfg.AuthCodeURL("s")).location(t), "s")
	offset.Store(int64(59 * time.Second))
	if _, err := exchange(t, cfg, code); err != nil {
		t.Fatal(err)
	}
}

// Two nodes redeeming one code at once: one wins, the other's attempt is
// a replay that revokes what the winner issued.
func TestAuthorizationCodeSingleUseAcrossNodes(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithIssuer("http://tollgate.test"))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithIssuer("http://tollgate.test"))
	f := newAuthzFixture(t, a.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	code := codeFrom(t, newBrowser(t, a.URL()).authorize(t, cfg.AuthCodeURL("s")), "s")
	var wg sync.WaitGroup
	replies := make([]oauthReply, 2)
	for i, base := range []string{a.URL(), b.URL()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = oauthPost(t, base, "/oauth/token", form("grant_type", "authorization_code", "code", code, "redirect_uri", appRedirect,
				"client_id", f.client.ClientID, "client_secret", f.client.ClientSecret))
		}()
	}
	wg.Wait()
	var won []tokenOK
	for _, r := range replies {
		if r.Status == http.StatusOK {
			won = append(won, wantToken(t, r))
		} else {
			wantOAuthError(t, r, http.StatusBadRequest, "invalid_grant")
		}
	}
	if len(won) > 1 {
		t.Fatalf("both nodes redeemed the code: %+v", won)
	}
	if len(won) == 1 {
		for _, base := range []string{a.URL(), b.URL()} {
			g := f
			g.base = base
			if active(g.introspect(t, won[0].AccessToken)) {
				t.Fatalf("the token of a code redeemed twice is active on %s", base)
			}
		}
	}
}
