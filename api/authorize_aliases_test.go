package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// The login and consent forms are served under every OAuth prefix
// (/oauth2/ canonical, /oauth/ and /v1/oauth/ aliases), and a page posts
// its form under the prefix it was served from: a proxy that forwards
// only one alias still carries the whole flow.
func TestAuthorizationFormsUnderEveryPrefix(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), nil)
	for _, prefix := range []string{"/oauth2", "/oauth", "/v1/oauth"} {
		t.Run(strings.TrimPrefix(prefix, "/"), func(t *testing.T) {
			user := "user-" + strings.ReplaceAll(strings.Trim(prefix, "/"), "/", "-")
			createUser(t, f.tn.owner, user)
			cfg := f.oauthConfig("domains:read")
			cfg.Endpoint.AuthURL = n.URL() + prefix + "/authorize"
			b := newBrowser(t, n.URL())
			p := b.get(t, cfg.AuthCodeURL("s"))
			if got := p.field(t, formAction); got != prefix+"/login" {
				t.Fatalf("login form posts to %q, want %q", got, prefix+"/login")
			}
			p = b.login(t, p, user, "wrong password")
			if got := p.field(t, formAction); p.status != http.StatusUnauthorized || got != prefix+"/login" {
				t.Fatalf("after a wrong password: %d, form posts to %q", p.status, got)
			}
			p = b.login(t, p, user, userPassword)
			if got := p.field(t, formAction); p.status != http.StatusOK || got != prefix+"/consent" {
				t.Fatalf("consent page: %d, form posts to %q", p.status, got)
			}
			code := codeFrom(t, b.decide(t, p, "allow").location(t), "s")
			if _, err := exchange(t, cfg, code); err != nil {
				t.Fatal(err)
			}
		})
	}
}
