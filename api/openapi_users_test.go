package api_test

import (
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// Users and authorization-page operations of openapi.json: TestOpenAPIUsers
// exercises them, so TestOpenAPI leaves them out of its completeness check.
var oaUserPaths = []string{
	"/users", "/users/{id}", "/users/{id}/password", "/users/{id}/disable", "/users/{id}/consents",
	"/users/{id}/consents/{client_id}", "/oauth2/authorize", "/oauth/authorize", "/v1/oauth/authorize",
	"/oauth2/login", "/oauth2/consent", "/oauth/login", "/oauth/consent", "/v1/oauth/login", "/v1/oauth/consent",
}

// oaUsersNotExercised lists responses TestOpenAPIUsers does not provoke.
var oaUsersNotExercised = map[string]string{}

func init() {
	openapi3filter.RegisterBodyDecoder("text/html", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		raw, err := io.ReadAll(body)
		return string(raw), err
	})
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument)
	if err != nil {
		panic(err)
	}
	for _, p := range oaUserPaths {
		item := doc.Paths.Value(p)
		if item == nil {
			continue
		}
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				k := method + " " + p + " " + status
				oaNotExercised[k] = "exercised by TestOpenAPIUsers"
				switch {
				case status == "500":
					oaUsersNotExercised[k] = "internal errors are not provoked"
				case strings.HasSuffix(p, "/authorize") && !strings.HasPrefix(p, "/oauth2/") && status != "302":
					oaUsersNotExercised[k] = "the same handler as under /oauth2/"
				case strings.HasSuffix(p, "/login") && !strings.HasPrefix(p, "/oauth2/") && status != "200",
					strings.HasSuffix(p, "/consent") && !strings.HasPrefix(p, "/oauth2/") && status != "303":
					oaUsersNotExercised[k] = "the same handler as under /oauth2/ (an alias flow: login 200, consent 303)"
				case status == "409" && (p == "/users/{id}/password" || p == "/users/{id}/disable" || p == "/users/{id}/consents/{client_id}"):
					oaUsersNotExercised[k] = "needs two writes racing, or the Idempotency-Key conflict exercised on the other user writes"
				case status == "503" && (p == "/oauth2/login" || p == "/oauth2/consent"):
					oaUsersNotExercised[k] = "a form needs a page served before NATS goes away; GET /oauth2/authorize shows the 503 page"
				}
			}
		}
	}
}

// Every users and authorization-page operation answers as openapi.json says.
func TestOpenAPIUsers(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	n := tollgatetest.Start(t, tollgatetest.WithAuthFailureLimit(3))
	noRedirect := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s := &oaSuite{router: router, base: n.URL(), http: noRedirect, seen: map[string]bool{}}
	f := newAuthzFixture(t, n.URL(), nil)
	key := oaAPIKey(f.tn.acc.APIKey.Token)
	reader := oaAPIKey(f.tn.token(t, map[string]any{"scopes": []string{"domains:read"}}).Token)
	other := newTenant(t, n.URL()).acc.ID
	idem := func(k string) oaOpt { return oaHeader("Idempotency-Key", k) }
	formCT := oaHeader("Content-Type", "application/x-www-form-urlencoded")
	root := tollgatetest.RootKey

	var bob userOut
	t.Run("users", func(t *testing.T) {
		s.send(t, 201, true, "POST", "/users", map[string]any{"username": "bob", "password": userPassword}, key, idem("u1")).json(t, &bob)
		s.send(t, 409, true, "POST", "/users", map[string]any{"username": "BOB", "password": userPassword}, key)
		s.send(t, 400, false, "POST", "/users", map[string]any{"username": "carol", "password": "short"}, key)
		s.send(t, 403, true, "POST", "/users", map[string]any{"username": "carol", "password": userPassword}, reader)
		s.send(t, 404, true, "POST", "/users?account_id="+other, map[string]any{"username": "carol", "password": userPassword}, key)
		s.send(t, 401, true, "POST", "/users", map[string]any{"username": "carol", "password": userPassword})
		s.send(t, 201, true, "POST", "/users?account_id="+f.tn.acc.ID, map[string]any{"username": "carol", "password": userPassword}, oaAPIKey(root))

		s.send(t, 200, true, "GET", "/users?limit=1", nil, key)
		s.send(t, 400, false, "GET", "/users?limit=0", nil, key)
		s.send(t, 401, true, "GET", "/users", nil)
		s.send(t, 403, true, "GET", "/users", nil, reader)
		s.send(t, 404, true, "GET", "/users?account_id="+other, nil, key)

		s.send(t, 200, true, "GET", "/users/"+bob.ID, nil, key)
		s.send(t, 401, true, "GET", "/users/"+bob.ID, nil)
		s.send(t, 403, true, "GET", "/users/"+bob.ID, nil, reader)
		s.send(t, 404, true, "GET", "/users/usr_00000000000000000000", nil, key)

		s.send(t, 200, true, "PUT", "/users/"+bob.ID+"/password", map[string]any{"password": userPassword + "!"}, key)
		s.send(t, 400, false, "PUT", "/users/"+bob.ID+"/password", map[string]any{"password": "short"}, key)
		s.send(t, 401, true, "PUT", "/users/"+bob.ID+"/password", map[string]any{"password": userPassword})
		s.send(t, 403, true, "PUT", "/users/"+bob.ID+"/password", map[string]any{"password": userPassword}, reader)
		s.send(t, 404, true, "PUT", "/users/usr_00000000000000000000/password", map[string]any{"password": userPassword}, key)

		s.send(t, 200, true, "POST", "/users/"+bob.ID+"/disable", nil, key, idem("d1"))
		s.send(t, 200, true, "POST", "/users/"+bob.ID+"/disable", nil, key) // disabled already
		s.send(t, 409, true, "POST", "/users/"+bob.ID+"/disable", nil, key, idem("u1"))
		s.send(t, 401, true, "POST", "/users/"+bob.ID+"/disable", nil)
		s.send(t, 403, true, "POST", "/users/"+bob.ID+"/disable", nil, reader)
		s.send(t, 404, true, "POST", "/users/usr_00000000000000000000/disable", nil, key)

		s.send(t, 409, true, "DELETE", "/users/"+bob.ID, nil, key, idem("u1"))
		s.send(t, 204, true, "DELETE", "/users/"+bob.ID, nil, key)
		s.send(t, 401, true, "DELETE", "/users/"+bob.ID, nil)
		s.send(t, 403, true, "DELETE", "/users/"+bob.ID, nil, reader)
		s.send(t, 404, true, "DELETE", "/users/"+bob.ID, nil, key)
	})

	cfg := f.oauthConfig("domains:read")
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, n.URL())
	authURL := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
	path := strings.TrimPrefix(authURL, n.URL())
	t.Run("authorize, login, consent", func(t *testing.T) {
		s.send(t, 200, true, "GET", path, nil)
		s.send(t, 200, true, "GET", strings.Replace(path, "/oauth/", "/oauth2/", 1), nil)
		implicit := strings.Replace(path, "response_type=code", "response_type=token", 1)
		for _, alias := range []string{"/oauth2/", "/oauth/", "/v1/oauth/"} {
			s.send(t, 302, true, "GET", strings.Replace(implicit, "/oauth/", alias, 1), nil)
		}
		s.send(t, 400, true, "GET", "/oauth2/authorize?response_type=code&client_id=nobody", nil)
		s.send(t, 400, true, "GET", strings.Replace(path, "/oauth/", "/oauth2/", 1)+"&redirect_uri=https://evil.example/", nil)
		// The forms, with the session cookie of the page that showed them.
		p := b.get(t, authURL)
		cookie := oaHeader("Cookie", sessionCookieOf(t, b, n.URL()))
		fields := url.Values{"csrf_token": {p.field(t, csrfField)}, "request": {p.field(t, requestField)}}
		withLogin := func(user, pw string) []byte {
			v := url.Values{"username": {user}, "password": {pw}}
			for k, vs := range fields {
				v[k] = vs
			}
			return []byte(v.Encode())
		}
		s.send(t, 401, true, "POST", "/oauth2/login", withLogin("alice", "wrong password"), formCT, cookie)
		s.send(t, 403, true, "POST", "/oauth2/login", withLogin("alice", userPassword), formCT)
		s.send(t, 400, false, "POST", "/oauth2/login", []byte("csrf_token=x&csrf_token=y"), formCT, cookie)
		consentPage := s.send(t, 200, true, "POST", "/oauth2/login", withLogin("alice", userPassword), formCT, cookie)
		loggedIn := oaHeader("Cookie", setCookie(t, consentPage.header))
		cp := page{status: consentPage.status, body: string(consentPage.body)}
		decision := func(d string) []byte {
			return []byte(url.Values{"csrf_token": {cp.field(t, csrfField)}, "request": {cp.field(t, requestField)}, "decision": {d}}.Encode())
		}
		s.send(t, 403, true, "POST", "/oauth2/consent", decision("allow"), formCT, cookie) // the pre-login session
		s.send(t, 400, false, "POST", "/oauth2/consent", decision("maybe"), formCT, loggedIn)
		s.send(t, 303, true, "POST", "/oauth2/consent", decision("deny"), formCT, loggedIn)
		s.send(t, 303, true, "POST", "/oauth2/consent", decision("allow"), formCT, loggedIn)
		// Consent remembered: the login form redirects at once.
		s.send(t, 303, true, "POST", "/oauth2/login", withLogin("alice", userPassword), formCT, cookie)
		// A session whose user is gone shows the login page at consent.
		s.send(t, 204, true, "DELETE", "/users/"+f.user.ID+"/consents/"+url.PathEscape(f.client.ClientID), nil, key)
		s.send(t, 404, true, "DELETE", "/users/"+f.user.ID+"/consents/"+url.PathEscape(f.client.ClientID), nil, key)
		s.send(t, 409, true, "DELETE", "/users/"+f.user.ID+"/consents/x", nil, key, idem("u1"))
		s.send(t, 401, true, "DELETE", "/users/"+f.user.ID+"/consents/x", nil)
		s.send(t, 403, true, "DELETE", "/users/"+f.user.ID+"/consents/x", nil, reader)
		s.send(t, 200, true, "GET", "/users/"+f.user.ID+"/consents", nil, key)
		s.send(t, 400, true, "GET", "/users/"+f.user.ID+"/consents?cursor=nope", nil, key)
		s.send(t, 401, true, "GET", "/users/"+f.user.ID+"/consents", nil)
		s.send(t, 403, true, "GET", "/users/"+f.user.ID+"/consents", nil, reader)
		s.send(t, 404, true, "GET", "/users/usr_00000000000000000000/consents", nil, key)
		// The forms under the aliases, as pages served there post them.
		for _, prefix := range []string{"/oauth", "/v1/oauth"} {
			user := createUser(t, f.tn.owner, "alias"+strings.ReplaceAll(prefix, "/", "-"))
			ab := newBrowser(t, n.URL())
			ap := ab.get(t, n.URL()+strings.Replace(path, "/oauth/", prefix+"/", 1))
			acookie := oaHeader("Cookie", sessionCookieOf(t, ab, n.URL()))
			login := url.Values{"csrf_token": {ap.field(t, csrfField)}, "request": {ap.field(t, requestField)},
				"username": {user.Username}, "password": {userPassword}}
			r := s.send(t, 200, true, "POST", ap.field(t, formAction), []byte(login.Encode()), formCT, acookie)
			cp := page{status: r.status, body: string(r.body)}
			allow := url.Values{"csrf_token": {cp.field(t, csrfField)}, "request": {cp.field(t, requestField)}, "decision": {"allow"}}
			s.send(t, 303, true, "POST", cp.field(t, formAction), []byte(allow.Encode()), formCT, oaHeader("Cookie", setCookie(t, r.header)))
		}
		s.send(t, 200, true, "POST", "/users/"+f.user.ID+"/disable", nil, key)
		s.send(t, 200, true, "POST", "/oauth2/consent", decision("allow"), formCT, loggedIn)
		// Three failures from one IP (the limit of this node) throttle it.
		for i := 0; i < 2; i++ {
			s.send(t, 401, true, "POST", "/oauth2/login", withLogin("mallory", "wrong password"), formCT, cookie)
		}
		r := s.send(t, 429, true, "POST", "/oauth2/login", withLogin("mallory", "wrong password"), formCT, cookie)
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	})

	t.Run("key limits", func(t *testing.T) {
		throttled := oaAPIKey(f.tn.token(t, map[string]any{"scopes": []string{"users:read", "users:write"},
			"rate_limit": map[string]any{"limit": 1, "window": 60}}).Token)
		s.send(t, 200, true, "GET", "/users", nil, throttled)
		for _, op := range oaUserOps() {
			s.send(t, 429, true, op.method, op.path, op.body, throttled)
		}
		inMemory := func(r *http.Request) (*http.Response, error) { return n.API.App.Test(r, 10_000) }
		for _, op := range oaUserOps() {
			s.sendVia(t, inMemory, 400, true, op.method, op.path, op.body, key)
		}
		s.sendVia(t, inMemory, 400, true, "GET", path, nil)
	})

	t.Run("event log unavailable", func(t *testing.T) {
		leaseless := f.tn.token(t, map[string]any{"scopes": []string{"users:read", "users:write"}, "limits": map[string]any{"total_requests": 1000}})
		n.NATS().Close()
		for _, op := range oaUserOps() {
			s.send(t, 503, true, op.method, op.path, op.body, oaAPIKey(leaseless.Token))
		}
		other, _ := url.Parse(authURL)
		q := other.Query()
		q.Set("client_id", "made-up-client")
		other.RawQuery = q.Encode()
		s.send(t, 503, true, "GET", strings.Replace(strings.TrimPrefix(other.String(), n.URL()), "/oauth/", "/oauth2/", 1), nil)
	})

	t.Run("every documented response was exercised", func(t *testing.T) {
		var missing []string
		for _, p := range oaUserPaths {
			for method, op := range doc.Paths.Value(p).Operations() {
				for status := range op.Responses.Map() {
					k := method + " " + p + " " + status
					if !s.seen[k] && oaUsersNotExercised[k] == "" {
						missing = append(missing, k)
					}
				}
			}
		}
		sort.Strings(missing)
		for _, k := range missing {
			t.Errorf("documented response %s was never exercised", k)
		}
	})
}

// oaUserOps is a conforming request to every users operation.
func oaUserOps() []oaOp {
	const user = "usr_00000000000000000000"
	return []oaOp{
		{"POST", "/users", map[string]any{"username": "x", "password": userPassword}},
		{"GET", "/users", nil},
		{"GET", "/users/" + user, nil},
		{"DELETE", "/users/" + user, nil},
		{"PUT", "/users/" + user + "/password", map[string]any{"password": userPassword}},
		{"POST", "/users/" + user + "/disable", nil},
		{"GET", "/users/" + user + "/consents", nil},
		{"DELETE", "/users/" + user + "/consents/x", nil},
	}
}

// sessionCookieOf is the browser's session cookie as a Cookie header.
func sessionCookieOf(t *testing.T, b *browser, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == "tollgate_session" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// setCookie is the session cookie an answer set, as a Cookie header.
func setCookie(t *testing.T, h http.Header) string {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "tollgate_session" {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatalf("no session cookie set: %v", h)
	return ""
}
