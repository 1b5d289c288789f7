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
	doc    *openapi3.T
	router routers.Router
	base   string
	http   *http.Client
	// seen records "METHOD /path STATUS" of every validated exchange.
	seen map[string]bool
}

// reply is a validated answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// opt adjusts a request.
type opt func(*http.Request)

func apiKey(k string) opt { return func(r *http.Request) { r.Header.Set("X-API-Key", k) } }
func bearer(k string) opt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k) }
}
func header(k, v string) opt { return func(r *http.Request) { r.Header.Set(k, v) } }

// send performs method path with body (nil, raw []byte or a value sent as
// JSON), checks the status, validates the response against the document and,
// when conforming is true, the request as well.
func (s *oaSuite) send(t *testing.T, want int, conforming bool, method, path string, body any, opts ...opt) reply {
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
	resp, err := s.http.Do(req)
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
	return reply{status: resp.StatusCode, header: resp.Header, body: got}
}

var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

