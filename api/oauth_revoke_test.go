package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

type introspectionOut struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope"`
	ClientID  string `json:"client_id"`
	Sub       string `json:"sub"`
	Exp       int64  `json:"exp"`
	Iat       int64  `json:"iat"`
	TokenType string `json:"token_type"`
	Aud       string `json:"aud"`
	Iss       string `json:"iss"`
	JTI       string `json:"jti"`
}

// introspect asks base about token, authenticating with headers; it wants 200.
func introspect(t *testing.T, base, token string, headers ...string) introspectionOut {
	t.Helper()
	r := oauthPost(t, base, "/oauth2/introspect", form("token", token), headers...)
	var out introspectionOut
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &out) != nil || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("introspect: %d %s %v", r.Status, r.Body, r.Header)
	}
	if !out.Active && strings.TrimSpace(string(r.Body)) != `{"active":false}` {
		t.Fatalf("inactive answer says more than active:false: %s", r.Body)
	}
	return out
}

// Two nodes on one NATS: a token issued on A is active on B at once; a
// revocation answered by either node makes introspection on both say
// inactive right away, and a subscriber of the one revocation wildcard
// sees it.
func TestRevocationOnEveryNode(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	nodes := []string{a.URL(), b.URL()}
	tn := newTenant(t, a.URL())
	opaque := createClient(t, tn.owner, map[string]any{"default_scopes": []string{"vps:read"}})
	jwtClient := createClient(t, tn.owner, map[string]any{"access_token_format": "jwt", "default_scopes": []string{"vps:read"},
		"token_endpoint_auth_method": "client_secret_post"})
	// A downstream service's key that may introspect.
	introspector := tn.token(t, map[string]any{"scopes": []string{"tokens:introspect"}})

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	revocations := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(events.RevocationSubjects, revocations)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	for round := 0; round < 10; round++ {
		issuer, revoker := nodes[round%2], nodes[(round/2)%2]
		cl, auth := opaque, []string{"Authorization", basic(opaque.ClientID, opaque.ClientSecret)}
		if round >= 5 {
			cl, auth = jwtClient, nil
		}
		body := form("grant_type", "client_credentials")
		if auth == nil {
			body = form("grant_type", "client_credentials", "client_id", cl.ClientID, "client_secret", cl.ClientSecret)
		}
		tok := wantToken(t, oauthPost(t, issuer, "/oauth2/token", body, auth...))
		for _, base := range nodes {
			in := introspect(t, base, tok.AccessToken, "X-API-Key", introspector.Token)
			if !in.Active || in.ClientID != cl.ClientID || in.Sub != cl.ClientID || in.Scope != "vps:read" || in.TokenType != "Bearer" ||
				in.Iss != a.URL() && in.Iss != b.URL() || in.Aud == "" || in.Exp-in.Iat != 3600 {
				t.Fatalf("round %d: issued on %s, introspected on %s: %+v", round, issuer, base, in)
			}
		}
		revokeBody := form("token", tok.AccessToken, "token_type_hint", "access_token")
		if auth == nil {
			revokeBody = form("token", tok.AccessToken, "client_id", cl.ClientID, "client_secret", cl.ClientSecret)
		}
		if r := oauthPost(t, revoker, "/oauth2/revoke", revokeBody, auth...); r.Status != 200 || len(r.Body) != 0 {
			t.Fatalf("round %d: revoke: %d %s", round, r.Status, r.Body)
		}
		// No polling: both nodes answer inactive as soon as the revocation is.
		for _, base := range nodes {
			if in := introspect(t, base, tok.AccessToken, "X-API-Key", introspector.Token); in.Active {
				t.Fatalf("round %d: revoked on %s, still active on %s", round, revoker, base)
			}
		}
		// Revoking again, or revoking the unknown, is 200 and appends nothing.
		if r := oauthPost(t, revoker, "/oauth2/revoke", revokeBody, auth...); r.Status != 200 {
			t.Fatalf("round %d: second revoke: %d %s", round, r.Status, r.Body)
		}
		select {
		case m := <-revocations:
			ev, err := events.Unmarshal(m.Data, 0)
			if err != nil || ev.AggregateType != events.AggregateAccess || ev.Type != events.TypeTokenRevoked {
				t.Fatalf("round %d: revocation event %s: %v", round, m.Data, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no revocation on %s", round, events.RevocationSubjects)
		}
	}
	select {
	case m := <-revocations:
		t.Fatalf("a repeated revocation appended again: %s %s", m.Subject, m.Data)
	case <-time.After(100 * time.Millisecond):
	}
	for _, unknown := range []string{"tg_at_unknown", "not a token", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"} {
		if r := oauthPost(t, a.URL(), "/oauth2/revoke", form("token", unknown), "Authorization", basic(opaque.ClientID, opaque.ClientSecret)); r.Status != 200 {
			t.Fatalf("revoke %q: %d %s", unknown, r.Status, r.Body)
		}
	}
}

// Introspection: callers authenticate as a client (of the token's
// account) or with an API key holding tokens:introspect; tokens of other
// accounts, other clients' revocations and forgeries are handled.
func TestIntrospectionCallers(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	alice, mallory := newTenant(t, n.URL()), newTenant(t, n.URL())
	cl := createClient(t, alice.owner, map[string]any{"default_scopes": []string{"vps:read"}})
	sibling := createClient(t, alice.owner, map[string]any{"default_scopes": []string{"vps:read"}})
	other := createClient(t, mallory.owner, map[string]any{"default_scopes": []string{"vps:read"}})
	tok := wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials"), "Authorization", basic(cl.ClientID, cl.ClientSecret)))

	active := func(headers ...string) bool { return introspect(t, n.URL(), tok.AccessToken, headers...).Active }
	if !active("Authorization", basic(cl.ClientID, cl.ClientSecret)) || !active("Authorization", basic(sibling.ClientID, sibling.ClientSecret)) ||
		!active("Authorization", "Bearer "+tollgatetest.RootKey) || !active("X-API-Key", alice.acc.APIKey.Token) {
		t.Fatal("the token's account, its clients and admin see it active")
	}
	if active("Authorization", basic(other.ClientID, other.ClientSecret)) || active("X-API-Key", mallory.acc.APIKey.Token) {
		t.Fatal("another account sees the token")
	}
	// A tampered token (same id, other secret) is inactive.
	forged := tok.AccessToken[:len("tg_at_")+16] + strings.Repeat("A", 32)
	if introspect(t, n.URL(), forged, "X-API-Key", alice.acc.APIKey.Token).Active {
		t.Fatal("forged token active")
	}
	// API keys without tokens:introspect, and bad keys.
	reader := alice.token(t, map[string]any{"scopes": []string{"vps:read"}})
	wantOAuthError(t, oauthPost(t, n.URL(), "/oauth2/introspect", form("token", tok.AccessToken), "X-API-Key", reader.Token), 403, "insufficient_scope")
	r := oauthPost(t, n.URL(), "/oauth2/introspect", form("token", tok.AccessToken), "Authorization", "Bearer tg_live_nope")
	wantOAuthError(t, r, 401, "invalid_token")
	wantOAuthError(t, oauthPost(t, n.URL(), "/oauth2/introspect", form("token", tok.AccessToken)), 401, "invalid_client")

	// Another client of the same account cannot revoke it: 200, nothing done.
	if r := oauthPost(t, n.URL(), "/oauth2/revoke", form("token", tok.AccessToken), "Authorization", basic(sibling.ClientID, sibling.ClientSecret)); r.Status != 200 {
		t.Fatalf("sibling revoke: %d %s", r.Status, r.Body)
	}
	if !active("Authorization", basic(cl.ClientID, cl.ClientSecret)) {
		t.Fatal("a sibling client revoked the token")
	}
	// Aliases work alike.
	if r := oauthPost(t, n.URL(), "/v1/oauth/revoke", form("token", tok.AccessToken), "Authorization", basic(cl.ClientID, cl.ClientSecret)); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	r = oauthPost(t, n.URL(), "/oauth/introspect", form("token", tok.AccessToken), "Authorization", basic(cl.ClientID, cl.ClientSecret))
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"active":false}` {
		t.Fatalf("after revoke: %d %s", r.Status, r.Body)
	}
}
