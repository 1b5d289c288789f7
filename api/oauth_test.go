package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// oauthReply is an answer of an OAuth endpoint.
type oauthReply struct {
	Status int
	Header http.Header
	Body   []byte
}

type oauthErr struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Message     *string
}

type tokenOK struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// oauthPost sends a raw form body (nil: none) to base+path with headers.
func oauthPost(t testing.TB, base, path string, body []byte, headers ...string) oauthReply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequest(http.MethodPost, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return oauthReply{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// form encodes key, value pairs in order (repeats allowed).
func form(kv ...string) []byte {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1]))
	}
	return []byte(b.String())
}

// basic is the RFC 6749 §2.3.1 Authorization header.
func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// wantOAuthError checks an RFC 6749 §5.2 error: status, code, a
// description, no management-API message, and no caching.
func wantOAuthError(t *testing.T, r oauthReply, status int, code string) oauthErr {
	t.Helper()
	var e oauthErr
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("%d %s: %v", r.Status, r.Body, err)
	}
	if r.Status != status || e.Error != code || e.Description == "" || e.Message != nil {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("error without Cache-Control: no-store: %v", r.Header)
	}
	return e
}

func wantToken(t *testing.T, r oauthReply) tokenOK {
	t.Helper()
	var tok tokenOK
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tok) != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token answer without Cache-Control: no-store: %v", r.Header)
	}
	return tok
}

// The real golang.org/x/oauth2 client gets tokens with either way of
// sending credentials, including for a client whose client_id and secret
// need the form-URL-encoding of RFC 6749 §2.3.1.
func TestClientCredentialsWithXOAuth2(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	const trickyID, trickySecret = "ops:billing@example.com 100% sure", "p@ss:word 100% with spaces+plus&amp=="
	for _, tc := range []struct {
		name, clientID, secret, method string
		style                          oauth2.AuthStyle
	}{
		{"header, generated id and secret", "", "", "client_secret_basic", oauth2.AuthStyleInHeader},
		{"header, id and secret with : @ % and a space", trickyID, trickySecret, "client_secret_basic", oauth2.AuthStyleInHeader},
		{"params, generated id and secret", "", "", "client_secret_post", oauth2.AuthStyleInParams},
		{"params, id and secret with : @ % and a space", trickyID + " post", trickySecret, "client_secret_post", oauth2.AuthStyleInParams},
		{"autodetect on a post client", "plus+and&equals=", "", "client_secret_post", oauth2.AuthStyleAutoDetect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"token_endpoint_auth_method": tc.method,
				"scopes": []string{"vps:read", "vps:write"}, "default_scopes": []string{"vps:read"}}
			if tc.clientID != "" {
				body["client_id"] = tc.clientID
			}
			var clientID, secret string
			if tc.secret == "" {
				cl := createClient(t, tn.owner, body)
				clientID, secret = cl.ClientID, cl.ClientSecret
			} else {
				clientID, secret = tc.clientID, tc.secret
				importClient(t, n, tn.acc.ID, clientID, secret, tc.method)
			}
			for _, path := range []string{"/oauth2/token", "/oauth/token", "/v1/oauth/token"} {
				for _, scopes := range [][]string{nil, {"vps:write", "vps:read"}} {
					cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret,
						TokenURL: n.URL() + path, AuthStyle: tc.style, Scopes: scopes}
					tok, err := cfg.Token(context.Background())
					if err != nil {
						t.Fatalf("%s %v: %v", path, scopes, err)
					}
					want := "vps:read"
					if scopes != nil {
						want = "vps:read vps:write"
					}
					if !strings.HasPrefix(tok.AccessToken, "tg_at_") || tok.TokenType != "Bearer" || tok.Expiry.IsZero() || tok.Extra("scope") != want {
						t.Fatalf("%s: token %+v scope %v", path, tok, tok.Extra("scope"))
					}
				}
			}
		})
	}
	// Every issued token is in the event log.
	if got := countSubjects(t, n.NATS(), events.SubjectPrefix+".access.*."+events.TypeAccessIssued); got != 5*3*2 {
		t.Fatalf("%d access.issued events, want 30", got)
	}
}

// importClient registers a client with a secret of its own choosing by
// appending its events directly, as an import from another authorization
// server would: the API generates every secret it hands out, but the token
// endpoint must take any secret.
func importClient(t *testing.T, n *node.Node, account, clientID, secret, method string) {
	t.Helper()
	id := "cli_import" + strconv.Itoa(int(importSeq.Add(1)))
	created, claimed, err := domain.NewClient(domain.CreateClient{ID: id, ClientID: clientID, AccountID: account, Environment: "live",
		Spec: domain.ClientSpec{Name: "imported", Scopes: []string{"vps:read", "vps:write"}, DefaultScopes: []string{"vps:read"},
			TokenEndpointAuthMethod: method}, SecretHash: domain.HashSecret(secret)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var changes []events.Change
	for i, p := range []events.Payload{created, claimed} {
		aggType, aggID := events.AggregateClient, id
		if i == 1 {
			aggType, aggID = events.AggregateClientID, events.ClientIDKey(clientID)
		}
		ev, err := events.New(events.Meta{ID: id + "-" + strconv.Itoa(i), AggregateType: aggType, AggregateID: aggID,
			AccountID: account, Environment: "live", Time: time.Now()}, p)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, events.Change{Event: ev, Expect: events.ExpectNew})
	}
	res, err := n.Store.Append(t.Context(), changes...)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Projector.WaitFor(t.Context(), res.Last()); err != nil {
		t.Fatal(err)
	}
}

var importSeq atomic.Int64

// POST /v1/oauth/token?grant_type=client_credentials with a Basic header
// and no body at all.
func TestTokenGrantTypeInQueryWithoutBody(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	cl := createClient(t, tn.owner, map[string]any{"client_id": "query:only@x 1%", "default_scopes": []string{"vps:read"}})
	r := oauthPost(t, n.URL(), "/v1/oauth/token?grant_type=client_credentials", nil, "Authorization", basic(cl.ClientID, cl.ClientSecret))
	if tok := wantToken(t, r); tok.Scope != "vps:read" || tok.ExpiresIn != 3600 {
		t.Fatalf("token %+v", tok)
	}
	// The same request with grant_type in both places repeats the parameter.
	r = oauthPost(t, n.URL(), "/v1/oauth/token?grant_type=client_credentials", form("grant_type", "client_credentials"),
		"Authorization", basic(cl.ClientID, cl.ClientSecret))
	wantOAuthError(t, r, 400, "invalid_request")
}

// A %-encoded client_id in Basic decodes (a%3Ab is a:b); a raw one that is
// not valid form encoding is refused.
func TestBasicEncoding(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	cl := createClient(t, tn.owner, map[string]any{"client_id": "a:b", "default_scopes": []string{"vps:read"}})
	raw := "Basic " + base64.StdEncoding.EncodeToString([]byte("a%3Ab:"+cl.ClientSecret))
	wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials"), "Authorization", raw))

	pct := createClient(t, tn.owner, map[string]any{"client_id": "100% off", "default_scopes": []string{"vps:read"}})
	// Unencoded, "100% off" is not valid form encoding: 401 invalid_client.
	raw = "Basic " + base64.StdEncoding.EncodeToString([]byte("100% off:"+pct.ClientSecret))
	r := oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials"), "Authorization", raw)
	wantOAuthError(t, r, 401, "invalid_client")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("401 after Basic without WWW-Authenticate: %v", r.Header)
	}
	wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials"),
		"Authorization", basic(pct.ClientID, pct.ClientSecret), "Content-Type", "application/x-www-form-urlencoded; charset=UTF-8"))
	// The scheme is case-insensitive.
	lower := "basic " + strings.TrimPrefix(basic(pct.ClientID, pct.ClientSecret), "Basic ")
	wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials"), "Authorization", lower))
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, tollgatetest.WithAuthFailureLimit(100))
	tn := newTenant(t, n.URL())
	cl := createClient(t, tn.owner, map[string]any{"scopes": []string{"vps:read", "vps:write"}, "default_scopes": []string{"vps:read"}})
	post := createClient(t, tn.owner, map[string]any{"token_endpoint_auth_method": "client_secret_post"})
	code := createClient(t, tn.owner, map[string]any{"grant_types": []string{"authorization_code"}, "redirect_uris": []string{"https://app.example/cb"}})
	public := createClient(t, tn.owner, map[string]any{"token_endpoint_auth_method": "none", "redirect_uris": []string{"https://app.example/cb"}})
	auth := basic(cl.ClientID, cl.ClientSecret)
	cc := "client_credentials"
	for _, tc := range []struct {
		name    string
		path    string
		body    []byte
		headers []string
		status  int
		code    string
	}{
		{"wrong secret over Basic", "/oauth2/token", form("grant_type", cc), []string{"Authorization", basic(cl.ClientID, "tg_cs_nope")}, 401, "invalid_client"},
		{"unknown client over Basic", "/oauth2/token", form("grant_type", cc), []string{"Authorization", basic("nobody", "x")}, 401, "invalid_client"},
		{"wrong secret in the body", "/oauth2/token", form("grant_type", cc, "client_id", post.ClientID, "client_secret", "x"), nil, 401, "invalid_client"},
		{"no credentials", "/oauth2/token", form("grant_type", cc), nil, 401, "invalid_client"},
		{"client_id alone", "/oauth2/token", form("grant_type", cc, "client_id", cl.ClientID), nil, 401, "invalid_client"},
		{"method the client did not register", "/oauth2/token", form("grant_type", cc, "client_id", cl.ClientID, "client_secret", cl.ClientSecret), nil, 401, "invalid_client"},
		{"two methods at once", "/oauth2/token", form("grant_type", cc, "client_id", cl.ClientID, "client_secret", cl.ClientSecret), []string{"Authorization", auth}, 400, "invalid_request"},
		{"scope the client lacks", "/oauth2/token", form("grant_type", cc, "scope", "vps:read domains:read"), []string{"Authorization", auth}, 400, "invalid_scope"},
		{"malformed scope", "/oauth2/token", form("grant_type", cc, "scope", "vps:read  vps:write"), []string{"Authorization", auth}, 400, "invalid_scope"},
		{"no scope and no default scopes", "/oauth2/token", form("grant_type", cc), []string{"Authorization", basic(post.ClientID, post.ClientSecret)}, 401, "invalid_client"},
		{"public client", "/oauth2/token", form("grant_type", cc, "client_id", public.ClientID), nil, 400, "invalid_grant"},
		{"public client introspecting", "/oauth2/introspect", form("token", "tg_at_x", "client_id", public.ClientID), nil, 401, "invalid_client"},
		{"grant the client may not use", "/oauth2/token", form("grant_type", cc), []string{"Authorization", basic(code.ClientID, code.ClientSecret)}, 400, "unauthorized_client"},
		{"unsupported grant", "/oauth2/token", form("grant_type", "password", "username", "u"), []string{"Authorization", auth}, 400, "unsupported_grant_type"},
		{"authorization_code for a client without it", "/oauth2/token", form("grant_type", "authorization_code", "code", "x"), []string{"Authorization", auth}, 400, "unauthorized_client"},
		{"unknown authorization code", "/oauth2/token", form("grant_type", "authorization_code", "code", "x"), []string{"Authorization", basic(code.ClientID, code.ClientSecret)}, 400, "invalid_grant"},
		{"authorization_code without code", "/oauth2/token", form("grant_type", "authorization_code"), []string{"Authorization", basic(code.ClientID, code.ClientSecret)}, 400, "invalid_request"},
		{"refresh_token for a client without it", "/oauth2/token", form("grant_type", "refresh_token", "refresh_token", "x"), []string{"Authorization", auth}, 400, "unauthorized_client"},
		{"missing grant_type", "/oauth2/token", form("scope", "vps:read"), []string{"Authorization", auth}, 400, "invalid_request"},
		{"repeated parameter", "/oauth2/token", form("grant_type", cc, "scope", "vps:read", "scope", "vps:write"), []string{"Authorization", auth}, 400, "invalid_request"},
		{"repeated grant_type", "/oauth2/token", form("grant_type", cc, "grant_type", cc), []string{"Authorization", auth}, 400, "invalid_request"},
		{"JSON body", "/oauth2/token", []byte(`{"grant_type":"client_credentials"}`), []string{"Authorization", auth, "Content-Type", "application/json"}, 400, "invalid_request"},
		{"malformed form", "/oauth2/token", []byte("grant_type=%zz"), []string{"Authorization", auth}, 400, "invalid_request"},
		{"gzip form", "/oauth2/token", gzipped(t, form("grant_type", cc), 1), []string{"Authorization", auth, "Content-Encoding", "gzip"}, 400, "invalid_request"},
		{"introspect without token", "/oauth2/introspect", form(), []string{"Authorization", auth}, 400, "invalid_request"},
		{"revoke without credentials", "/oauth2/revoke", form("token", "tg_at_x"), nil, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := oauthPost(t, n.URL(), tc.path, tc.body, tc.headers...)
			wantOAuthError(t, r, tc.status, tc.code)
			usedBasic := slices.Contains(tc.headers, "Authorization") && strings.HasPrefix(tc.headers[slices.Index(tc.headers, "Authorization")+1], "Basic")
			if tc.status == 401 && usedBasic && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 after Basic without WWW-Authenticate: %v", r.Header)
			}
			if tc.status == 401 && !usedBasic && r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("401 without Basic names a scheme: %v", r.Header)
			}
		})
	}
	// "no scope and no default scopes" above failed authentication: a
	// client_secret_post client over Basic. Over its own method it is
	// invalid_scope.
	r := oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", cc, "client_id", post.ClientID, "client_secret", post.ClientSecret))
	if e := wantOAuthError(t, r, 400, "invalid_scope"); !strings.Contains(e.Description, "default_scopes") {
		t.Fatalf("description %q", e.Description)
	}
	// The x/oauth2 client surfaces the RFC error.
	cfg := clientcredentials.Config{ClientID: cl.ClientID, ClientSecret: "wrong", TokenURL: n.URL() + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	_, err := cfg.Token(context.Background())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
		t.Fatalf("x/oauth2 error: %v", err)
	}
	// Plain HTTP off loopback (the app's in-memory transport) is refused
	// with an RFC error, not the management shape.
	req, _ := http.NewRequest(http.MethodPost, "http://tollgate.example/oauth2/token", strings.NewReader(string(form("grant_type", cc))))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	req.Header.Set("Authorization", auth)
	resp, err := n.API.App.Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if e := wantOAuthError(t, oauthReply{Status: resp.StatusCode, Header: resp.Header, Body: raw}, 400, "invalid_request"); !strings.Contains(e.Description, "HTTPS") {
		t.Fatalf("plain HTTP: %s", raw)
	}
	// OAuth paths answer RFC errors for routing problems too.
	req, _ = http.NewRequest(http.MethodGet, n.URL()+"/oauth2/token", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || strings.Contains(string(raw), `"message"`) || !strings.Contains(string(raw), `"error_description"`) {
		t.Fatalf("GET /oauth2/token: %d %s", resp.StatusCode, raw)
	}
}

func TestDiscovery(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	r := tollgatetest.NewClient(n.URL(), "").Do(t, "GET", "/.well-known/oauth-authorization-server", nil)
	var md map[string]any
	r.JSON(t, &md)
	iss := n.URL()
	want := map[string]any{
		"issuer": iss, "token_endpoint": iss + "/oauth2/token", "jwks_uri": iss + "/.well-known/jwks.json",
		"authorization_endpoint": iss + "/oauth2/authorize",
		"introspection_endpoint": iss + "/oauth2/introspect", "revocation_endpoint": iss + "/oauth2/revoke",
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("%s = %v, want %v", k, md[k], v)
		}
	}
	list := func(k string) []string {
		var out []string
		for _, v := range md[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	methods := []string{"client_secret_basic", "client_secret_post", "private_key_jwt"}
	withPublic := append(slices.Clone(methods), "none")
	for k, v := range map[string][]string{
		"grant_types_supported":                            {"authorization_code", "client_credentials", "refresh_token"},
		"response_types_supported":                         {"code"},
		"code_challenge_methods_supported":                 {"S256"},
		"token_endpoint_auth_methods_supported":            withPublic,
		"introspection_endpoint_auth_methods_supported":    methods,
		"revocation_endpoint_auth_methods_supported":       withPublic,
		"token_endpoint_auth_signing_alg_values_supported": {"RS256", "ES256", "EdDSA"},
	} {
		if got := list(k); !slices.Equal(got, v) {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if md["authorization_response_iss_parameter_supported"] != true {
		t.Errorf("authorization_response_iss_parameter_supported = %v, want true (RFC 9207)", md["authorization_response_iss_parameter_supported"])
	}
	if scopes := list("scopes_supported"); !slices.Contains(scopes, "vps:read") {
		t.Errorf("scopes_supported = %v", scopes)
	}
	// Every listed grant works: TestAuthorizationCodeFlowWithXOAuth2 (code,
	// refresh_token, PKCE S256, a public client below) and the client
	// credentials tests.
}

// A public client (token_endpoint_auth_method none) must use PKCE S256:
// without a code_challenge the authorization request goes back with
// invalid_request; with one, the code exchange needs only client_id and
// the verifier.
func TestPublicClientRequiresPKCE(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	f := newAuthzFixture(t, n.URL(), map[string]any{"token_endpoint_auth_method": "none"})
	cfg := f.oauthConfig("domains:read")
	cfg.ClientSecret = ""
	b := newBrowser(t, n.URL())
	u := b.get(t, cfg.AuthCodeURL("s")).location(t)
	if u.Query().Get("error") != "invalid_request" || u.Query().Get("state") != "s" {
		t.Fatalf("without PKCE: %s", u)
	}
	u = b.get(t, cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", "abc"), oauth2.SetAuthURLParam("code_challenge_method", "plain"))).location(t)
	if u.Query().Get("error") != "invalid_request" {
		t.Fatalf("plain PKCE: %s", u)
	}
	verifier := oauth2.GenerateVerifier()
	code := codeFrom(t, b.authorize(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))), "s")
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil || !strings.HasPrefix(tok.RefreshToken, "tg_rt_") {
		t.Fatalf("public exchange: %v %+v", err, tok)
	}
}
