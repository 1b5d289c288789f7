package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// RFC 9207: every authorization response, with a code or an error, carries
// iss, the issuer exactly as discovery gives it, and discovery says so.
func TestAuthorizationResponseIssuer(t *testing.T) {
	t.Parallel()
	const issuer = "http://auth.example.test:8443/tollgate"
	n := tollgatetest.Start(t, tollgatetest.WithIssuer(issuer))
	r := tollgatetest.NewClient(n.URL(), "").Do(t, "GET", "/.well-known/oauth-authorization-server", nil)
	var md map[string]any
	r.JSON(t, &md)
	if md["issuer"] != issuer || md["authorization_response_iss_parameter_supported"] != true {
		t.Fatalf("discovery: issuer %v, authorization_response_iss_parameter_supported %v", md["issuer"],
			md["authorization_response_iss_parameter_supported"])
	}
	wantIss := func(what string, u *url.URL, param, value string) {
		t.Helper()
		q := u.Query()
		if q.Get(param) != value || q.Get("state") != "s" || len(q["iss"]) != 1 || q.Get("iss") != issuer {
			t.Fatalf("%s: %s, want %s=%s, state and iss=%s", what, u, param, value, issuer)
		}
	}

	f := newAuthzFixture(t, n.URL(), nil)
	cfg := f.oauthConfig("domains:read")
	b := newBrowser(t, n.URL())

	// A code after login and consent, and at once once consent is given.
	u := b.authorize(t, cfg.AuthCodeURL("s"))
	wantIss("code after consent", u, "code", codeFrom(t, u, "s"))
	u = b.get(t, cfg.AuthCodeURL("s")).location(t)
	wantIss("code with remembered consent", u, "code", codeFrom(t, u, "s"))

	// Denied at the consent page (a scope not consented yet): access_denied.
	p := b.get(t, f.oauthConfig("domains:write").AuthCodeURL("s"))
	wantIss("denied", b.decide(t, p, "deny").location(t), "error", "access_denied")

	// An error from the request itself, before any page.
	bad := cfg.AuthCodeURL("s") + "&code_challenge_method=plain"
	p = b.get(t, bad)
	if p.status != http.StatusFound {
		t.Fatalf("bad request: %d %s", p.status, p.body)
	}
	wantIss("request error", p.location(t), "error", "invalid_request")
}
