package api_test

import (
	"crypto/rand"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// OAuth operations of openapi.json: TestOpenAPIOAuth exercises them, so
// TestOpenAPI leaves them out of its own completeness check.
var oaOAuthPaths = []string{
	"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/oauth/token", "/oauth/introspect", "/oauth/revoke",
	"/v1/oauth/token", "/v1/oauth/introspect", "/v1/oauth/revoke",
	"/.well-known/oauth-authorization-server", "/.well-known/jwks.json", "/signing-keys", "/signing-keys/rotate",
}

// oaOAuthNotExercised lists OAuth responses TestOpenAPIOAuth does not provoke.
var oaOAuthNotExercised = map[string]string{
	"POST /oauth2/token 500":                          "internal errors are not provoked",
	"POST /oauth2/introspect 500":                     "internal errors are not provoked",
	"POST /oauth2/revoke 500":                         "internal errors are not provoked",
	"GET /.well-known/oauth-authorization-server 500": "internal errors are not provoked",
	"GET /.well-known/jwks.json 500":                  "internal errors are not provoked",
	"GET /signing-keys 500":                           "internal errors are not provoked",
	"POST /signing-keys/rotate 500":                   "internal errors are not provoked",
	"GET /signing-keys 429":                           "API-key rate limits are exercised on other endpoints",
	"POST /signing-keys/rotate 429":                   "API-key rate limits are exercised on other endpoints",
	"POST /signing-keys/rotate 409":                   "needs two rotations racing",
}

func init() {
	doc := oauthDocumentedResponses()
	for path, statuses := range doc {
		for _, k := range statuses {
			oaNotExercised[k] = "exercised by TestOpenAPIOAuth"
			if strings.HasPrefix(path, "/oauth/") || strings.HasPrefix(path, "/v1/oauth/") {
				if !strings.HasSuffix(k, " 200") {
					oaOAuthNotExercised[k] = "the same handler as under /oauth2/"
				}
			}
		}
	}
}

// oauthDocumentedResponses lists "METHOD path status" of every documented
// OAuth response, by path.
func oauthDocumentedResponses() map[string][]string {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument)
	if err != nil {
		panic(err) // TestOpenAPIDocumentIsFormatted and loadOpenAPI say more
	}
	out := map[string][]string{}
	for _, p := range oaOAuthPaths {
		item := doc.Paths.Value(p)
		if item == nil {
			continue
		}
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				out[p] = append(out[p], method+" "+p+" "+status)
			}
		}
	}
	return out
}

// Every OAuth endpoint answers as openapi.json says, RFC error bodies
// included.
func TestOpenAPIOAuth(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	// Callers' addresses come from X-Forwarded-For, so the throttle and the
	// other steps do not share one.
	n := tollgatetest.Start(t, func(c *node.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	s := &oaSuite{router: router, base: n.URL(), http: &http.Client{Timeout: 30 * time.Second}, seen: map[string]bool{}}
	tn := newTenant(t, n.URL())
	cl := createClient(t, tn.owner, map[string]any{"default_scopes": []string{"vps:read"}})
	jwtCl := createClient(t, tn.owner, map[string]any{"access_token_format": "jwt", "default_scopes": []string{"vps:read"}})
	introspector := tn.token(t, map[string]any{"scopes": []string{"tokens:introspect"}})
	reader := tn.token(t, map[string]any{"scopes": []string{"vps:read"}})
	formCT := oaHeader("Content-Type", "application/x-www-form-urlencoded")
	from := func(ip string) oaOpt { return oaHeader("X-Forwarded-For", ip) }
	auth := func(id, secret string) oaOpt { return oaHeader("Authorization", basic(id, secret)) }
	clAuth := auth(cl.ClientID, cl.ClientSecret)
	grant := form("grant_type", "client_credentials")
	root := tollgatetest.RootKey

	var tok, jwtTok tokenOK
	t.Run("token", func(t *testing.T) {
		s.send(t, 200, true, "POST", "/oauth2/token", grant, formCT, clAuth).json(t, &tok)
		s.send(t, 200, true, "POST", "/oauth2/token", grant, formCT, auth(jwtCl.ClientID, jwtCl.ClientSecret)).json(t, &jwtTok)
		s.send(t, 200, true, "POST", "/oauth/token", grant, formCT, clAuth)
		s.send(t, 200, true, "POST", "/v1/oauth/token?grant_type=client_credentials", nil, clAuth)
		s.send(t, 400, true, "POST", "/oauth2/token", form("grant_type", "password"), formCT, clAuth)
		s.send(t, 400, false, "POST", "/oauth2/token", []byte(`{"grant_type":"client_credentials"}`), clAuth)
		r := s.send(t, 401, true, "POST", "/oauth2/token", grant, formCT, auth(cl.ClientID, "wrong"), from("192.0.2.1"))
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 after Basic: %v", r.header)
		}
	})
	t.Run("introspect", func(t *testing.T) {
		for _, token := range []string{tok.AccessToken, jwtTok.AccessToken, "tg_at_unknown"} {
			s.send(t, 200, true, "POST", "/oauth2/introspect", form("token", token), formCT, clAuth)
		}
		s.send(t, 200, true, "POST", "/oauth/introspect", form("token", tok.AccessToken), formCT, oaAPIKey(introspector.Token))
		s.send(t, 200, true, "POST", "/v1/oauth/introspect", form("token", tok.AccessToken), formCT, oaBearer(root))
		s.send(t, 400, false, "POST", "/oauth2/introspect", form("token_type_hint", "access_token"), formCT, clAuth)
		s.send(t, 401, true, "POST", "/oauth2/introspect", form("token", tok.AccessToken), formCT, oaBearer("tg_live_nope"))
		s.send(t, 403, true, "POST", "/oauth2/introspect", form("token", tok.AccessToken), formCT, oaAPIKey(reader.Token))
	})
	t.Run("revoke", func(t *testing.T) {
		s.send(t, 200, true, "POST", "/oauth2/revoke", form("token", jwtTok.AccessToken), formCT, auth(jwtCl.ClientID, jwtCl.ClientSecret))
		s.send(t, 200, true, "POST", "/oauth/revoke", form("token", "tg_at_unknown"), formCT, clAuth)
		s.send(t, 200, true, "POST", "/v1/oauth/revoke", form("token", "x"), formCT, clAuth)
		s.send(t, 400, false, "POST", "/oauth2/revoke", form("token_type_hint", "access_token"), formCT, clAuth)
		s.send(t, 401, true, "POST", "/oauth2/revoke", form("token", "x"), formCT, from("192.0.2.2"))
	})
	t.Run("metadata and keys", func(t *testing.T) {
		s.send(t, 200, true, "GET", "/.well-known/oauth-authorization-server", nil)
		s.send(t, 200, true, "GET", "/.well-known/jwks.json", nil)
		s.send(t, 201, true, "POST", "/signing-keys/rotate", nil, oaAPIKey(root))
		s.send(t, 200, true, "GET", "/signing-keys", nil, oaAPIKey(root))
		for _, op := range []struct{ method, path string }{{"GET", "/signing-keys"}, {"POST", "/signing-keys/rotate"}} {
			s.send(t, 401, true, op.method, op.path, nil)
			s.send(t, 403, true, op.method, op.path, nil, oaAPIKey(tn.acc.APIKey.Token))
		}
	})
	t.Run("throttled", func(t *testing.T) {
		attacker := from("198.51.100.66")
		for i := 0; i < 10; i++ {
			s.send(t, 401, true, "POST", "/oauth2/token", grant, formCT, auth("guess-"+strconv.Itoa(i), "guess"), attacker)
		}
		for _, p := range []string{"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"} {
			r := s.send(t, 429, true, "POST", p, form("grant_type", "client_credentials", "token", "x"), formCT, clAuth, attacker)
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%s: 429 without Retry-After", p)
			}
		}
	})
	// Last: the node loses its NATS connection for good.
	t.Run("event log unavailable", func(t *testing.T) {
		n.NATS().Close()
		clean := from("203.0.113.77")
		s.send(t, 503, true, "POST", "/oauth2/token", grant, formCT, clAuth, clean)
		s.send(t, 503, true, "POST", "/oauth2/revoke", form("token", tok.AccessToken), formCT, clAuth, clean)
		unknown, _, err := domain.NewCredential(rand.Reader, domain.PrefixAccessToken) // well-formed: looked up in the log
		if err != nil {
			t.Fatal(err)
		}
		s.send(t, 503, true, "POST", "/oauth2/introspect", form("token", unknown), formCT, clAuth, clean)
		s.send(t, 503, true, "POST", "/signing-keys/rotate", nil, oaAPIKey(root))
	})

	t.Run("every documented OAuth response was exercised", func(t *testing.T) {
		var missing []string
		for _, statuses := range oauthDocumentedResponses() {
			for _, k := range statuses {
				if !s.seen[k] && oaOAuthNotExercised[k] == "" {
					missing = append(missing, k)
				}
			}
		}
		sort.Strings(missing)
		for _, k := range missing {
			t.Errorf("documented response %s was never exercised", k)
		}
	})
}
