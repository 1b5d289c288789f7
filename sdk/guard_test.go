package tollgate_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	tollgate "github.com/tollgate/tollgate/sdk"
	"github.com/tollgate/tollgate/sdk/fibermw"
)

// fakeTollgate answers POST /verify: "good" is VALID (token tok_good),
// "scoped" lacks a scope, anything else is NOT_FOUND.
func fakeTollgate(t *testing.T, calls *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req tollgate.VerifyRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if r.URL.Path != "/verify" || r.Header.Get("X-API-Key") != "verifier" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		out := map[string]any{"valid": false, "code": "NOT_FOUND", "token_id": nil, "account_id": nil, "environment": nil, "scopes": []string{}}
		switch req.Token {
		case "good":
			out = map[string]any{"valid": true, "code": "VALID", "token_id": "tok_good", "account_id": "acc_1", "environment": "live", "scopes": req.Scopes}
		case "scoped":
			out = map[string]any{"valid": false, "code": "INSUFFICIENT_SCOPE", "token_id": "tok_s", "account_id": "acc_1", "environment": "live"}
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGuardHandler(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	tg := fakeTollgate(t, &calls)
	g := tollgate.NewGuard(tollgate.GuardConfig{Client: tollgate.NewClient(tg.URL, "verifier"), Scopes: []string{"vps:read"}, CacheTTL: time.Minute})
	app := httptest.NewServer(g.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := tollgate.VerdictFrom(r.Context())
		_, _ = io.WriteString(w, v.TokenID)
	})))
	defer app.Close()
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", app.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for range 3 {
		if code, body := get("good"); code != 200 || body != "tok_good" {
			t.Fatalf("good: %d %s", code, body)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("%d verify calls for three requests within the cache TTL", calls.Load())
	}
	for auth, want := range map[string]int{"": 401, "nope": 401, "scoped": 403} {
		if code, _ := get(auth); code != want {
			t.Errorf("%q: %d, want %d", auth, code, want)
		}
	}
	tg.Close()
	if code, _ := get("unknown-now"); code != 503 {
		t.Errorf("Tollgate down: %d, want 503", code)
	}
}

func TestFiberMiddleware(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	tg := fakeTollgate(t, &calls)
	g := tollgate.NewGuard(tollgate.GuardConfig{Client: tollgate.NewClient(tg.URL, "verifier"), CacheTTL: -1})
	app := fiber.New()
	app.Get("/", fibermw.New(g), func(c *fiber.Ctx) error {
		return c.SendString(c.Locals(fibermw.LocalsKey).(tollgate.Verdict).AccountID)
	})
	for _, tc := range []struct {
		header, value string
		want          int
	}{{"X-API-Key", "good", 200}, {"Authorization", "Bearer good", 200}, {"X-API-Key", "bad", 401}, {"Authorization", "Basic good", 401}, {"X-API-Key", "scoped", 403}} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(tc.header, tc.value)
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.header, tc.value, resp.StatusCode, tc.want)
		}
	}
	if calls.Load() != 4 {
		t.Errorf("%d verify calls with the cache off, want 4", calls.Load())
	}
}
