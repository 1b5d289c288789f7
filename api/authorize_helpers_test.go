package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// appRedirect is the redirect URI of the test application. Nothing listens
// there: the browser stand-in stops at the redirect and reads it.
const appRedirect = "http://127.0.0.1:1/callback"

const userPassword = "correct horse battery staple"

type userOut struct {
	ID          string     `json:"id"`
	AccountID   string     `json:"account_id"`
	Environment string     `json:"environment"`
	Username    string     `json:"username"`
	Status      string     `json:"status"`
	DisabledAt  *time.Time `json:"disabled_at"`
}

// authzFixture is an account with a user and a confidential client
// (client_secret_post, authorization_code + refresh_token) whose
// redirect URI is appRedirect.
type authzFixture struct {
	tn     tenant
	user   userOut
	client clientOut
	base   string
}

func createUser(t *testing.T, c *tollgatetest.Client, username string) userOut {
	t.Helper()
	r := c.Do(t, "POST", "/users", map[string]any{"username": username, "password": userPassword})
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /users: %d %s", r.Status, r.Body)
	}
	var u userOut
	r.JSON(t, &u)
	return u
}

func newAuthzFixture(t *testing.T, base string, client map[string]any) authzFixture {
	t.Helper()
	tn := newTenant(t, base)
	body := map[string]any{"name": "Acme Dashboard", "grant_types": []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "client_secret_post", "redirect_uris": []string{appRedirect},
		"scopes": []string{"domains:read", "domains:write", "vps:read"}, "default_scopes": []string{"domains:read"}}
	for k, v := range client {
		body[k] = v
	}
	return authzFixture{tn: tn, user: createUser(t, tn.owner, "alice"), client: createClient(t, tn.owner, body), base: base}
}

// oauthConfig is the x/oauth2 configuration of the fixture's client.
func (f authzFixture) oauthConfig(scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: f.client.ClientID, ClientSecret: f.client.ClientSecret, RedirectURL: appRedirect, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: f.base + "/oauth/authorize", TokenURL: f.base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// browser is a stand-in for a user's browser: a cookie jar, no redirects
// followed.
type browser struct {
	http *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location(t *testing.T) *url.URL {
	t.Helper()
	if p.status != http.StatusFound && p.status != http.StatusSeeOther {
		t.Fatalf("want a redirect, got %d: %s", p.status, p.body)
	}
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var (
	csrfField    = regexp.MustCompile(`name="csrf_token" value="([^"]*)"`)
	requestField = regexp.MustCompile(`name="request" value="([^"]*)"`)
	// formAction is where the page's form posts, as a browser reads it.
	formAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// field reads a hidden field of the page's form.
func (p page) field(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	m := re.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no %s in the page (%d): %s", re, p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

func (b *browser) do(t *testing.T, req *http.Request) page {
	t.Helper()
	resp, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
}

func (b *browser) get(t *testing.T, rawURL string) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b.do(t, req)
}

func (b *browser) post(t *testing.T, path string, form url.Values) page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(t, req)
}

// login submits the login form of p, to the page's form action.
func (b *browser) login(t *testing.T, p page, username, password string) page {
	t.Helper()
	return b.post(t, p.field(t, formAction), url.Values{"csrf_token": {p.field(t, csrfField)}, "request": {p.field(t, requestField)},
		"username": {username}, "password": {password}})
}

// decide submits the consent form of p, to the page's form action.
func (b *browser) decide(t *testing.T, p page, decision string) page {
	t.Helper()
	return b.post(t, p.field(t, formAction), url.Values{"csrf_token": {p.field(t, csrfField)}, "request": {p.field(t, requestField)},
		"decision": {decision}})
}

// authorize runs the flow from authURL as alice: login, consent (allow),
// and returns the redirect to the application.
func (b *browser) authorize(t *testing.T, authURL string) *url.URL {
	t.Helper()
	p := b.get(t, authURL)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="login"`) {
		t.Fatalf("authorize: want the login page, got %d %s", p.status, p.body)
	}
	p = b.login(t, p, "alice", userPassword)
	if p.status == http.StatusOK && strings.Contains(p.body, `id="consent"`) {
		p = b.decide(t, p, "allow")
	}
	return p.location(t)
}

// codeFrom checks the redirect to the application and returns its code.
func codeFrom(t *testing.T, u *url.URL, state string) string {
	t.Helper()
	if got := u.Scheme + "://" + u.Host + u.Path; got != appRedirect {
		t.Fatalf("redirected to %s, want %s", u, appRedirect)
	}
	q := u.Query()
	if q.Get("state") != state {
		t.Fatalf("state %q, want %q (%s)", q.Get("state"), state, u)
	}
	if q.Get("code") == "" {
		t.Fatalf("no code in %s", u)
	}
	return q.Get("code")
}

func randomState(t *testing.T) string {
	t.Helper()
	return rand.Text()
}

// introspect asks with the tenant's key whether token is active.
func (f authzFixture) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	r := oauthPost(t, f.base, "/oauth2/introspect", form("token", token), "X-API-Key", f.tn.acc.APIKey.Token)
	var out map[string]any
	if r.Status != 200 || json.Unmarshal(r.Body, &out) != nil {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return out
}

func active(m map[string]any) bool { return m["active"] == true }

// exchange redeems code with x/oauth2.
func exchange(t *testing.T, cfg *oauth2.Config, code string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cfg.Exchange(ctx, code, opts...)
}

func urlParseQuery(q string) (url.Values, error) { return url.ParseQuery(q) }
