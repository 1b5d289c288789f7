package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// loadOpenAPI parses and validates api.OpenAPIDocument.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPIDocument)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	return doc
}

// validationOptions make undocumented statuses fail and skip the security
// check (the server decides who gets in; the test checks what it answers).
func validationOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
}

func TestOpenAPIDocumentIsFormatted(t *testing.T) {
	var compact, indented bytes.Buffer
	if err := json.Compact(&compact, api.OpenAPIDocument); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	indented.WriteByte('\n')
	if !bytes.Equal(indented.Bytes(), api.OpenAPIDocument) {
		t.Error("openapi.json is not formatted with a 2-space indent and a final newline")
	}
}

// TestOpenAPIValidatorRejectsDrift makes sure the checks below have teeth: an
// undocumented field or status must fail validation.
func TestOpenAPIValidatorRejectsDrift(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	validate := func(method, path string, status int, body string) error {
		req, _ := http.NewRequest(method, "http://tollgate.test"+path, nil)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("X-Request-Id", "req_1")
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 status, Header: h, Options: validationOptions(),
		}
		in.SetBodyBytes([]byte(body))
		return openapi3filter.ValidateResponse(ctx, in)
	}
	const account = `{"id":"acc_AAAAAAAAAAAAAAAAAAAA","name":"a","created_at":"2024-01-02T03:04:05.123456789Z"%s}`
	const key = `{"id":"tok_AAAAAAAAAAAAAAAA","account_id":"acc_AAAAAAAAAAAAAAAAAAAA","name":"k","scopes":["keys:read"],` +
		`"environment":"live","status":"active","created_at":"2024-01-02T03:04:05Z"%s}`
	for _, tc := range []struct {
		name, method, path string
		status             int
		body               string
		ok                 bool
	}{
		{"account", "GET", "/accounts/acc_x", 200, fmt.Sprintf(account, ""), true},
		{"account with an undocumented field", "GET", "/accounts/acc_x", 200, fmt.Sprintf(account, `,"secret":"x"`), false},
		{"account without a required field", "GET", "/accounts/acc_x", 200, `{"id":"acc_AAAAAAAAAAAAAAAAAAAA","name":"a"}`, false},
		{"root account", "GET", "/accounts/acc_x", 200, fmt.Sprintf(account, `,"root":true`), true},
		{"account with a bad time", "GET", "/accounts/acc_x", 200, `{"id":"acc_AAAAAAAAAAAAAAAAAAAA","name":"a","created_at":"yesterday"}`, false},
		{"undocumented status", "GET", "/accounts/acc_x", 418, `{"error":"teapot","message":"x"}`, false},
		{"key", "GET", "/keys/tok_x", 200, fmt.Sprintf(key, ""), true},
		{"key leaking its token", "GET", "/keys/tok_x", 200, fmt.Sprintf(key, `,"token":"tg_live_x"`), false},
		{"key list", "GET", "/keys", 200, `{"data":[` + fmt.Sprintf(key, "") + `],"next_cursor":null}`, true},
		{"key list with an undocumented field in an item", "GET", "/keys", 200, `{"data":[` + fmt.Sprintf(key, `,"x":1`) + `],"next_cursor":null}`, false},
		{"error", "GET", "/keys/tok_x", 404, `{"error":"not_found","message":"key not found"}`, true},
		{"error with an undocumented field", "GET", "/keys/tok_x", 404, `{"error":"not_found","message":"key not found","hint":"x"}`, false},
		{"error with another code", "GET", "/keys/tok_x", 404, `{"error":"gone","message":"key not found"}`, false},
		{"401 with another message", "GET", "/keys/tok_x", 401, `{"error":"unauthorized","message":"bad key"}`, false},
	} {
		err := validate(tc.method, tc.path, tc.status, tc.body)
		if tc.ok && err != nil {
			t.Errorf("%s: unexpected error: %v", tc.name, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: validation passed, want a failure", tc.name)
		}
	}
}

// oaSuite sends real requests to a node and checks each answer against the
// document.
type oaSuite struct {
	router routers.Router
	base   string
	http   *http.Client
	// seen records "METHOD /path STATUS" of every validated exchange.
	seen map[string]bool
}

// oaReply is a validated answer.
type oaReply struct {
	status int
	header http.Header
	body   []byte
}

func (r oaReply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// oaOpt adjusts a request.
type oaOpt func(*http.Request)

func oaAPIKey(k string) oaOpt { return func(r *http.Request) { r.Header.Set("X-API-Key", k) } }
func oaBearer(k string) oaOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k) }
}
func oaHeader(k, v string) oaOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// send performs method path with body (nil, raw []byte or a value sent as
// JSON), checks the status, validates the response against the document and,
// when conforming is true, the request as well.
func (s *oaSuite) send(t *testing.T, want int, conforming bool, method, path string, body any, opts ...oaOpt) oaReply {
	t.Helper()
	return s.sendVia(t, s.http.Do, want, conforming, method, path, body, opts...)
}

// sendVia is send over another transport, such as the app's in-memory one.
func (s *oaSuite) sendVia(t *testing.T, do func(*http.Request) (*http.Response, error), want int, conforming bool,
	method, path string, body any, opts ...oaOpt) oaReply {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, want, got)
	}

	ctx := context.Background()
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(raw))
	route, params, err := s.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s %s: no such operation in openapi.json: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: validationOptions()}
	if conforming {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s %s: request does not match openapi.json: %v", method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: validationOptions(),
	}
	out.SetBodyBytes(got)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s %s: %d response does not match openapi.json: %v\nbody: %s", method, path, resp.StatusCode, err, got)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	s.seen[fmt.Sprintf("%s %s %d", route.Method, route.Path, resp.StatusCode)] = true
	return oaReply{status: resp.StatusCode, header: resp.Header, body: got}
}

var oaFiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// oaNotExercised lists documented responses that no request from a loopback
// test client provokes, with the reason. Every other documented response must
// be seen live, so a newly documented status gets a test.
var oaNotExercised = map[string]string{
	"GET /accounts/me 404":   "the caller's own account always exists",
	"POST /accounts 500":     "internal errors are not provoked",
	"GET /accounts/me 500":   "internal errors are not provoked",
	"GET /accounts/{id} 500": "internal errors are not provoked",
	"POST /keys 500":         "internal errors are not provoked",
	"GET /keys 500":          "internal errors are not provoked",
	"GET /keys/{id} 500":     "internal errors are not provoked",
	"DELETE /keys/{id} 500":  "internal errors are not provoked",
}

// oaKey is the part of a 201 from POST /keys the test uses.
type oaKey struct {
	ID          string   `json:"id"`
	Token       string   `json:"token"`
	AccountID   string   `json:"account_id"`
	Scopes      []string `json:"scopes"`
	Environment string   `json:"environment"`
	Status      string   `json:"status"`
	ExpiresAt   string   `json:"expires_at"`
	RevokedAt   string   `json:"revoked_at"`
}

type oaError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Details []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"details"`
}

func TestOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	n := tollgatetest.Start(t)
	s := &oaSuite{router: router, base: n.URL(), http: &http.Client{Timeout: 30 * time.Second}, seen: map[string]bool{}}
	root := tollgatetest.RootKey

	t.Run("routes", func(t *testing.T) {
		served := map[string]bool{}
		for _, r := range n.API.App.GetRoutes(true) {
			if r.Method == http.MethodHead {
				continue
			}
			path := oaFiberParam.ReplaceAllString(r.Path, "{$1}")
			served[r.Method+" "+path] = true
			item := doc.Paths.Value(path)
			if item == nil || item.GetOperation(r.Method) == nil {
				t.Errorf("route %s %s is not documented in openapi.json", r.Method, r.Path)
			}
		}
		if len(served) == 0 {
			t.Fatal("the app lists no routes")
		}
		for path, item := range doc.Paths.Map() {
			for method := range item.Operations() {
				if !served[method+" "+path] {
					t.Errorf("openapi.json documents %s %s, which the app does not serve", method, path)
				}
			}
		}
	})

	// State shared by the steps below.
	var (
		rootAccount, rootKeyID string
		acmeID, acmeKey        string
		reader, noKeys         oaKey // keys:read only; accounts:read only
		ci, sandbox            oaKey // live and test keys with keys:read and keys:write
	)

	t.Run("probes", func(t *testing.T) {
		s.send(t, 200, true, "GET", "/healthz", nil)
		s.send(t, 200, true, "GET", "/readyz", nil)
		m := s.send(t, 200, true, "GET", "/metrics", nil)
		if !bytes.Contains(m.body, []byte("tollgate_http_requests_total")) {
			t.Error("/metrics lacks tollgate_http_requests_total")
		}
		o := s.send(t, 200, true, "GET", "/openapi.json", nil)
		if !bytes.Equal(o.body, api.OpenAPIDocument) {
			t.Error("/openapi.json does not serve api.OpenAPIDocument")
		}
		r := s.send(t, 200, true, "GET", "/healthz", nil, oaHeader("X-Request-Id", "trace-123"))
		if got := r.header.Get("X-Request-Id"); got != "trace-123" {
			t.Errorf("X-Request-Id = %q, want the caller's trace-123", got)
		}
	})

	t.Run("me and 401", func(t *testing.T) {
		var me struct {
			ID   string `json:"id"`
			Root bool   `json:"root"`
			Key  oaKey  `json:"key"`
		}
		s.send(t, 200, true, "GET", "/accounts/me", nil, oaAPIKey(root)).json(t, &me)
		s.send(t, 200, true, "GET", "/accounts/me", nil, oaBearer(root))
		if !me.Root || me.ID == "" || me.Key.ID == "" || !slices.Contains(me.Key.Scopes, "admin") {
			t.Fatalf("root /accounts/me = %+v", me)
		}
		rootAccount, rootKeyID = me.ID, me.Key.ID

		want := oaError{Error: "unauthorized", Message: "Invalid or missing API key"}
		for _, o := range []oaOpt{
			func(*http.Request) {}, // no credentials
			oaAPIKey("not-the-root-key-but-long-enough-0123456789"),
			oaBearer("tg_live_0000000000000000000000000000000000000000000000000000"),
			oaHeader("Authorization", "Basic "+root),
		} {
			var got oaError
			s.send(t, 401, false, "GET", "/accounts/me", nil, o).json(t, &got)
			if got.Error != want.Error || got.Message != want.Message {
				t.Errorf("401 body = %+v, want %+v", got, want)
			}
		}
		s.send(t, 401, false, "GET", "/accounts/"+rootAccount, nil)
		s.send(t, 401, false, "POST", "/accounts", map[string]any{"name": "x"})
		s.send(t, 401, false, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}})
		s.send(t, 401, false, "GET", "/keys", nil)
		s.send(t, 401, false, "GET", "/keys/"+rootKeyID, nil)
		s.send(t, 401, false, "DELETE", "/keys/"+rootKeyID, nil)
	})

	t.Run("create account", func(t *testing.T) {
		var acme struct {
			ID     string `json:"id"`
			APIKey oaKey  `json:"api_key"`
		}
		r := s.send(t, 201, true, "POST", "/accounts", map[string]any{"name": "Acme"}, oaAPIKey(root))
		r.json(t, &acme)
		if r.header.Get("Location") != "/accounts/"+acme.ID || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("201 headers: Location %q, Cache-Control %q", r.header.Get("Location"), r.header.Get("Cache-Control"))
		}
		if acme.APIKey.AccountID != acme.ID || acme.APIKey.Token == "" || slices.Contains(acme.APIKey.Scopes, "admin") {
			t.Fatalf("first key = %+v", acme.APIKey)
		}
		acmeID, acmeKey = acme.ID, acme.APIKey.Token

		// Idempotency-Key: the same request answers the same; another request is 409.
		idem := oaHeader("Idempotency-Key", "open-globex-1")
		first := s.send(t, 201, true, "POST", "/accounts", map[string]any{"name": "Globex"}, oaAPIKey(root), idem)
		again := s.send(t, 201, true, "POST", "/accounts", map[string]any{"name": "Globex"}, oaAPIKey(root), idem)
		if !bytes.Equal(first.body, again.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay: body %s, Idempotent-Replayed %q; first body %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
		}
		s.send(t, 409, true, "POST", "/accounts", map[string]any{"name": "Initech"}, oaAPIKey(root), idem)
		s.send(t, 400, false, "POST", "/accounts", map[string]any{"name": "Initech"}, oaAPIKey(root), oaHeader("Idempotency-Key", "has space"))

		// 400s.
		s.send(t, 400, false, "POST", "/accounts", map[string]any{"name": "x", "plan": "pro"}, oaAPIKey(root))
		s.send(t, 400, false, "POST", "/accounts", []byte(`{"name":`), oaAPIKey(root))
		s.send(t, 400, false, "POST", "/accounts", []byte(`{"name":"x"} {}`), oaAPIKey(root))
		s.send(t, 400, false, "POST", "/accounts", []byte(`{"name":"x"}`), oaAPIKey(root), oaHeader("Content-Type", "text/plain"))
		s.send(t, 400, false, "POST", "/accounts", nil, oaAPIKey(root), oaHeader("Content-Type", "application/json"))
		// Not exercised: a body over the limit gets 400 from fasthttp's error
		// path, which skips the middleware and so lacks X-Request-Id.
		var bad oaError
		s.send(t, 400, false, "POST", "/accounts", map[string]any{"name": " "}, oaAPIKey(root)).json(t, &bad)
		if bad.Error != "invalid_request" || len(bad.Details) == 0 || bad.Details[0].Field != "name" {
			t.Errorf("blank name: %+v, want invalid_request with details on name", bad)
		}

		// 403: not an admin.
		var forbidden oaError
		s.send(t, 403, true, "POST", "/accounts", map[string]any{"name": "Evil"}, oaAPIKey(acmeKey)).json(t, &forbidden)
		if forbidden.Error != "forbidden" || forbidden.Message != "Insufficient permissions for this action" {
			t.Errorf("403 body = %+v", forbidden)
		}
	})

	t.Run("create keys", func(t *testing.T) {
		create := func(key string, body map[string]any, opts ...oaOpt) oaKey {
			t.Helper()
			var k oaKey
			r := s.send(t, 201, true, "POST", "/keys", body, append([]oaOpt{oaAPIKey(key)}, opts...)...)
			r.json(t, &k)
			if r.header.Get("Location") != "/keys/"+k.ID || r.header.Get("Cache-Control") != "no-store" {
				t.Errorf("201 headers: Location %q, Cache-Control %q", r.header.Get("Location"), r.header.Get("Cache-Control"))
			}
			return k
		}
		ci = create(acmeKey, map[string]any{"name": "ci", "scopes": []string{"keys:read", "keys:write"}, "ttl": 3600})
		if ci.ExpiresAt == "" || ci.Environment != "live" || ci.Status != "active" {
			t.Errorf("ci key = %+v", ci)
		}
		reader = create(acmeKey, map[string]any{"name": "reader", "scopes": []string{"keys:read"}})
		noKeys = create(acmeKey, map[string]any{"name": "accounts only", "scopes": []string{"accounts:read"}})
		sandbox = create(acmeKey, map[string]any{"name": "sandbox", "scopes": []string{"keys:read", "keys:write"}, "environment": "test"})
		if sandbox.Environment != "test" || !strings.HasPrefix(sandbox.Token, "tg_test_") {
			t.Errorf("sandbox key = %+v", sandbox)
		}
		create(sandbox.Token, map[string]any{"name": "sandbox child", "scopes": []string{"keys:read"}})
		create(acmeKey, map[string]any{"name": "dated", "scopes": []string{"keys:read"},
			"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		byAdmin := create(root, map[string]any{"name": "ops", "scopes": []string{"keys:read"}}, func(r *http.Request) {
			r.URL.RawQuery = "account_id=" + acmeID
		})
		if byAdmin.AccountID != acmeID {
			t.Errorf("admin-created key belongs to %s, want %s", byAdmin.AccountID, acmeID)
		}

		idem := oaHeader("Idempotency-Key", "key-deploy-1")
		body := map[string]any{"name": "deploy", "scopes": []string{"keys:read"}}
		first := s.send(t, 201, true, "POST", "/keys", body, oaAPIKey(acmeKey), idem)
		again := s.send(t, 201, true, "POST", "/keys", body, oaAPIKey(acmeKey), idem)
		if !bytes.Equal(first.body, again.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay: body %s, Idempotent-Replayed %q; first body %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
		}
		s.send(t, 409, true, "POST", "/keys", map[string]any{"name": "other", "scopes": []string{"keys:read"}}, oaAPIKey(acmeKey), idem)

		// 400s, with details where a field is at fault.
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"name": "x", "scopes": []string{"keys:read"}, "ttl": 0}, "ttl"},
			{map[string]any{"name": "x", "scopes": []string{}}, "scopes"},
			{map[string]any{"name": "", "scopes": []string{"keys:read"}}, "name"},
			{map[string]any{"name": "x", "scopes": []string{"Keys:Read"}}, "scopes"},
			{map[string]any{"name": "x", "scopes": []string{"keys:read"}, "environment": "prod"}, "environment"},
			{map[string]any{"name": "x", "scopes": []string{"keys:read"}, "ttl": 60, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, "ttl"},
			{map[string]any{"name": "x", "scopes": []string{"keys:read"}, "owner": "me"}, ""},
			{map[string]any{"name": "x", "scopes": "keys:read"}, ""},
		} {
			var e oaError
			s.send(t, 400, false, "POST", "/keys", tc.body, oaAPIKey(acmeKey)).json(t, &e)
			if e.Error != "invalid_request" || (tc.field != "" && (len(e.Details) == 0 || e.Details[0].Field != tc.field)) {
				t.Errorf("POST /keys %v: %+v, want invalid_request on %q", tc.body, e, tc.field)
			}
		}

		// 403: no keys:write; a scope the caller lacks; a sandbox key asking for live.
		s.send(t, 403, true, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}}, oaAPIKey(reader.Token))
		s.send(t, 403, true, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"admin"}}, oaAPIKey(acmeKey))
		s.send(t, 403, true, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"wallet:write"}}, oaAPIKey(acmeKey))
		s.send(t, 403, true, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "environment": "live"}, oaAPIKey(sandbox.Token))

		// 404: another account, for a non-admin; an unknown account, for an admin.
		s.send(t, 404, true, "POST", "/keys?account_id="+rootAccount, map[string]any{"name": "x", "scopes": []string{"keys:read"}}, oaAPIKey(acmeKey))
		s.send(t, 404, true, "POST", "/keys?account_id=acc_00000000000000000000", map[string]any{"name": "x", "scopes": []string{"keys:read"}}, oaAPIKey(root))
	})

	t.Run("read accounts", func(t *testing.T) {
		s.send(t, 200, true, "GET", "/accounts/"+acmeID, nil, oaAPIKey(acmeKey))
		s.send(t, 200, true, "GET", "/accounts/"+acmeID, nil, oaBearer(root))
		s.send(t, 200, true, "GET", "/accounts/"+rootAccount, nil, oaAPIKey(root))
		s.send(t, 200, true, "GET", "/accounts/me", nil, oaAPIKey(sandbox.Token))
		s.send(t, 404, true, "GET", "/accounts/"+rootAccount, nil, oaAPIKey(acmeKey))
		s.send(t, 404, true, "GET", "/accounts/acc_00000000000000000000", nil, oaAPIKey(root))
		s.send(t, 404, true, "GET", "/accounts/not%20an%20id", nil, oaAPIKey(root))
		s.send(t, 403, true, "GET", "/accounts/"+acmeID, nil, oaAPIKey(reader.Token))
	})

	t.Run("list and read keys", func(t *testing.T) {
		var list struct {
			Data       []oaKey `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		s.send(t, 200, true, "GET", "/keys", nil, oaAPIKey(acmeKey)).json(t, &list)
		if len(list.Data) < 5 || list.NextCursor != nil {
			t.Errorf("GET /keys: %d keys, next_cursor %v", len(list.Data), list.NextCursor)
		}
		s.send(t, 200, true, "GET", "/keys?limit=2", nil, oaBearer(acmeKey)).json(t, &list)
		if len(list.Data) != 2 || list.NextCursor == nil {
			t.Fatalf("GET /keys?limit=2: %d keys, next_cursor %v", len(list.Data), list.NextCursor)
		}
		s.send(t, 200, true, "GET", "/keys?limit=2&cursor="+*list.NextCursor, nil, oaAPIKey(acmeKey))
		s.send(t, 200, true, "GET", "/keys?environment=test&status=active", nil, oaAPIKey(acmeKey)).json(t, &list)
		if len(list.Data) != 2 {
			t.Errorf("test keys of acme: %d, want 2", len(list.Data))
		}
		s.send(t, 200, true, "GET", "/keys", nil, oaAPIKey(sandbox.Token))
		s.send(t, 200, true, "GET", "/keys?account_id="+acmeID, nil, oaAPIKey(root))

		s.send(t, 400, false, "GET", "/keys?limit=0", nil, oaAPIKey(acmeKey))
		s.send(t, 400, false, "GET", "/keys?limit=many", nil, oaAPIKey(acmeKey))
		s.send(t, 400, false, "GET", "/keys?environment=prod", nil, oaAPIKey(acmeKey))
		s.send(t, 400, true, "GET", "/keys?cursor=not-a-cursor", nil, oaAPIKey(acmeKey))
		s.send(t, 403, true, "GET", "/keys", nil, oaAPIKey(noKeys.Token))
		s.send(t, 403, true, "GET", "/keys?environment=live", nil, oaAPIKey(sandbox.Token))
		s.send(t, 404, true, "GET", "/keys?account_id="+rootAccount, nil, oaAPIKey(acmeKey))

		s.send(t, 200, true, "GET", "/keys/"+ci.ID, nil, oaAPIKey(acmeKey))
		s.send(t, 200, true, "GET", "/keys/"+sandbox.ID, nil, oaAPIKey(sandbox.Token))
		s.send(t, 200, true, "GET", "/keys/"+ci.ID+"?account_id="+acmeID, nil, oaAPIKey(root))
		s.send(t, 200, true, "GET", "/keys/"+rootKeyID, nil, oaAPIKey(root))
		s.send(t, 404, true, "GET", "/keys/"+rootKeyID, nil, oaAPIKey(acmeKey))
		s.send(t, 404, true, "GET", "/keys/"+ci.ID, nil, oaAPIKey(sandbox.Token))
		s.send(t, 404, true, "GET", "/keys/tok_0000000000000000", nil, oaAPIKey(acmeKey))
		s.send(t, 403, true, "GET", "/keys/"+ci.ID, nil, oaAPIKey(noKeys.Token))
	})

	t.Run("revoke keys", func(t *testing.T) {
		doomed := make([]oaKey, 3)
		for i := range doomed {
			var k oaKey
			s.send(t, 201, true, "POST", "/keys", map[string]any{"name": fmt.Sprintf("doomed %d", i), "scopes": []string{"keys:read"}}, oaAPIKey(acmeKey)).json(t, &k)
			doomed[i] = k
		}
		s.send(t, 204, true, "DELETE", "/keys/"+doomed[0].ID+"?reason=rotated", nil, oaAPIKey(acmeKey))
		s.send(t, 204, true, "DELETE", "/keys/"+doomed[0].ID, nil, oaAPIKey(acmeKey)) // already revoked: same outcome
		var k oaKey
		s.send(t, 200, true, "GET", "/keys/"+doomed[0].ID, nil, oaAPIKey(acmeKey)).json(t, &k)
		if k.Status != "revoked" || k.RevokedAt == "" {
			t.Errorf("revoked key = %+v", k)
		}
		s.send(t, 401, true, "GET", "/accounts/me", nil, oaAPIKey(doomed[0].Token))
		var revoked struct {
			Data []oaKey `json:"data"`
		}
		s.send(t, 200, true, "GET", "/keys?status=revoked", nil, oaAPIKey(acmeKey)).json(t, &revoked)
		if len(revoked.Data) != 1 || revoked.Data[0].ID != doomed[0].ID {
			t.Errorf("revoked keys = %+v", revoked.Data)
		}

		idem := oaHeader("Idempotency-Key", "revoke-doomed-1")
		s.send(t, 204, true, "DELETE", "/keys/"+doomed[1].ID, nil, oaAPIKey(acmeKey), idem)
		again := s.send(t, 204, true, "DELETE", "/keys/"+doomed[1].ID, nil, oaAPIKey(acmeKey), idem)
		if again.header.Get("Idempotent-Replayed") != "true" || len(again.body) != 0 {
			t.Errorf("replayed 204: Idempotent-Replayed %q, body %q", again.header.Get("Idempotent-Replayed"), again.body)
		}
		s.send(t, 409, true, "DELETE", "/keys/"+doomed[2].ID, nil, oaAPIKey(acmeKey), idem)
		s.send(t, 400, false, "DELETE", "/keys/"+doomed[2].ID, nil, oaAPIKey(acmeKey), oaHeader("Idempotency-Key", "has space"))

		s.send(t, 409, true, "DELETE", "/keys/"+rootKeyID, nil, oaAPIKey(root))
		s.send(t, 403, true, "DELETE", "/keys/"+doomed[2].ID, nil, oaAPIKey(reader.Token))
		s.send(t, 404, true, "DELETE", "/keys/"+rootKeyID, nil, oaAPIKey(acmeKey))
		s.send(t, 404, true, "DELETE", "/keys/tok_0000000000000000", nil, oaAPIKey(acmeKey))
		s.send(t, 404, true, "DELETE", "/keys/"+doomed[2].ID, nil, oaAPIKey(sandbox.Token))
	})

	// The app's in-memory transport has a non-loopback peer: plain HTTP is
	// refused everywhere but on the probes.
	t.Run("https required", func(t *testing.T) {
		inMemory := func(r *http.Request) (*http.Response, error) { return n.API.App.Test(r, 10_000) }
		s.sendVia(t, inMemory, 200, true, "GET", "/healthz", nil)
		s.sendVia(t, inMemory, 200, true, "GET", "/readyz", nil)
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/metrics", nil},
			{"GET", "/openapi.json", nil},
			{"POST", "/accounts", map[string]any{"name": "x"}},
			{"GET", "/accounts/me", nil},
			{"GET", "/accounts/" + acmeID, nil},
			{"POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}}},
			{"GET", "/keys", nil},
			{"GET", "/keys/" + ci.ID, nil},
			{"DELETE", "/keys/" + ci.ID, nil},
		} {
			var e oaError
			s.sendVia(t, inMemory, 400, true, tc.method, tc.path, tc.body, oaAPIKey(root)).json(t, &e)
			if e.Error != "https_required" {
				t.Errorf("%s %s over plain HTTP off loopback: %+v", tc.method, tc.path, e)
			}
		}
	})

	// Last: the node loses its NATS connection for good.
	t.Run("event log unavailable", func(t *testing.T) {
		n.NATS().Close()
		s.send(t, 503, true, "GET", "/readyz", nil)
		for _, tc := range []struct {
			method, path string
			key          string
			body         any
		}{
			{"POST", "/keys", acmeKey, map[string]any{"name": "late", "scopes": []string{"keys:read"}}},
			{"POST", "/accounts", root, map[string]any{"name": "Late"}},
			{"DELETE", "/keys/" + ci.ID, acmeKey, nil},
		} {
			r := s.send(t, 503, true, tc.method, tc.path, tc.body, oaAPIKey(tc.key))
			if r.header.Get("Retry-After") == "" {
				t.Errorf("%s %s: 503 without Retry-After", tc.method, tc.path)
			}
		}
	})

	t.Run("every documented response was exercised", func(t *testing.T) {
		var missing []string
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				for status := range op.Responses.Map() {
					k := method + " " + path + " " + status
					if !s.seen[k] && oaNotExercised[k] == "" {
						missing = append(missing, k)
					}
					if s.seen[k] && oaNotExercised[k] != "" {
						t.Errorf("%s is listed in oaNotExercised but was exercised", k)
					}
				}
			}
		}
		for k := range oaNotExercised {
			f := strings.Fields(k)
			item := doc.Paths.Value(f[1])
			if item == nil || item.GetOperation(f[0]) == nil || item.GetOperation(f[0]).Responses.Value(f[2]) == nil {
				t.Errorf("notExercised lists %s, which openapi.json does not document", k)
			}
		}
		sort.Strings(missing)
		for _, k := range missing {
			t.Errorf("documented response %s was never exercised", k)
		}
	})
}
