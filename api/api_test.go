package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

const (
	bodyUnauthorized = `{"error":"unauthorized","message":"Invalid or missing API key"}`
	bodyForbidden    = `{"error":"forbidden","message":"Insufficient permissions for this action"}`
)

type keyOut struct {
	ID          string   `json:"id"`
	Token       string   `json:"token"`
	AccountID   string   `json:"account_id"`
	Scopes      []string `json:"scopes"`
	Environment string   `json:"environment"`
	Status      string   `json:"status"`
}

type accountOut struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	APIKey *keyOut `json:"api_key"`
}

func newAccount(t *testing.T, root *tollgatetest.Client, name string) accountOut {
	t.Helper()
	r := root.Do(t, "POST", "/accounts", map[string]string{"name": name})
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /accounts: %d %s", r.Status, r.Body)
	}
	var acc accountOut
	r.JSON(t, &acc)
	if acc.APIKey == nil || !strings.HasPrefix(acc.APIKey.Token, "tg_live_") {
		t.Fatalf("account without a live key: %s", r.Body)
	}
	return acc
}

func TestAuthContract(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	acc := newAccount(t, root, "acme")
	user := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)

	t.Run("both headers authenticate", func(t *testing.T) {
		anon := tollgatetest.NewClient(n.URL(), "")
		for _, h := range []string{"X-API-Key", "Authorization"} {
			v := acc.APIKey.Token
			if h == "Authorization" {
				v = "Bearer " + v
			}
			r := anon.Do(t, "GET", "/accounts/me", nil, h, v)
			if r.Status != 200 || !strings.Contains(string(r.Body), acc.ID) {
				t.Fatalf("%s: %d %s", h, r.Status, r.Body)
			}
		}
	})

	t.Run("missing or bad key is 401 with the exact body", func(t *testing.T) {
		last := "x"
		if strings.HasSuffix(acc.APIKey.Token, "x") {
			last = "y"
		}
		bad := acc.APIKey.Token[:len(acc.APIKey.Token)-1] + last // checksum breaks
		forged := "tg_live_" + strings.Repeat("A", 54)
		for name, key := range map[string]string{"none": "", "garbage": "hello", "checksum": bad, "forged": forged,
			"root prefix": tollgatetest.RootKey[:20]} {
			r := tollgatetest.NewClient(n.URL(), key).Do(t, "GET", "/accounts/me", nil)
			if r.Status != 401 || string(r.Body) != bodyUnauthorized {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		r := tollgatetest.NewClient(n.URL(), "").Do(t, "GET", "/accounts/me", nil, "Authorization", "Basic "+acc.APIKey.Token)
		if r.Status != 401 {
			t.Errorf("Basic scheme accepted: %d", r.Status)
		}
	})

	t.Run("non-admin on POST /accounts is 403 with the exact body", func(t *testing.T) {
		r := user.Do(t, "POST", "/accounts", map[string]string{"name": "sneaky"})
		if r.Status != 403 || string(r.Body) != bodyForbidden {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})

	t.Run("strangers get 404 for other accounts", func(t *testing.T) {
		other := newAccount(t, root, "other")
		r := user.Do(t, "GET", "/accounts/"+other.ID, nil)
		if r.Status != 404 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		r = root.Do(t, "GET", "/accounts/"+other.ID, nil)
		if r.Status != 200 {
			t.Fatalf("admin: %d %s", r.Status, r.Body)
		}
	})

	t.Run("responses carry a request id", func(t *testing.T) {
		r := user.Do(t, "GET", "/accounts/me", nil, "X-Request-Id", "trace-123")
		if r.Header.Get("X-Request-Id") != "trace-123" {
			t.Fatalf("X-Request-Id = %q", r.Header.Get("X-Request-Id"))
		}
		r = user.Do(t, "GET", "/accounts/me", nil)
		if !strings.HasPrefix(r.Header.Get("X-Request-Id"), "req_") {
			t.Fatalf("generated X-Request-Id = %q", r.Header.Get("X-Request-Id"))
		}
	})
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	cases := []struct {
		name    string
		body    any
		headers []string
		want    string
	}{
		{"malformed JSON", `{"name": "x"`, nil, "malformed JSON"},
		{"syntax error", `{"name" "x"}`, nil, "malformed JSON"},
		{"unknown field", `{"name":"x","plan":"gold"}`, nil, `unknown field "plan"`},
		{"wrong type", `{"name":42}`, nil, `field "name" must be string`},
		{"two objects", `{"name":"x"}{"name":"y"}`, nil, "single JSON object"},
		{"empty body", ``, nil, "body is required"},
		{"wrong content type", `{"name":"x"}`, []string{"Content-Type", "text/plain"}, "Content-Type must be application/json"},
		{"oversized body", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, nil, "too large"},
		{"empty name", `{"name":"  "}`, nil, "name: is required"},
		// Encoded bodies are refused, not decoded: a valid one, and one
		// that would unpack to 300 MB.
		{"gzip body", string(gzipped(t, []byte(`{"name":"x"}`), 1)), []string{"Content-Encoding", "gzip"}, "Content-Encoding is not supported"},
		{"gzip bomb", string(gzipped(t, make([]byte, 1<<20), 300)), []string{"Content-Encoding", "gzip"}, "Content-Encoding is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := root.Do(t, "POST", "/accounts", []byte(tc.body.(string)), append([]string{"Content-Type", "application/json"}, tc.headers...)...)
			var e struct {
				Error   string `json:"error"`
				Message string `json:"message"`
			}
			r.JSON(t, &e)
			if r.Status != 400 || e.Error != "invalid_request" || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("%d %s; want 400 invalid_request mentioning %q", r.Status, r.Body, tc.want)
			}
		})
	}
	// Nothing was created by any of them.
	r := root.Do(t, "GET", "/keys?limit=500", nil)
	if !strings.Contains(string(r.Body), `"next_cursor":null`) || strings.Count(string(r.Body), `"id"`) != 1 {
		t.Fatalf("keys after bad input: %s", r.Body)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	acc := newAccount(t, root, "acme")
	owner := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)

	// A key may hold only scopes its creator holds.
	r := owner.Do(t, "POST", "/keys", map[string]any{"name": "ci", "scopes": []string{"admin"}})
	if r.Status != 403 || string(r.Body) != bodyForbidden {
		t.Fatalf("granting admin: %d %s", r.Status, r.Body)
	}
	r = owner.Do(t, "POST", "/keys", map[string]any{"name": "ci", "scopes": []string{"wallet:write"}})
	if r.Status != 403 {
		t.Fatalf("granting a scope the creator lacks: %d %s", r.Status, r.Body)
	}
	r = owner.Do(t, "POST", "/keys", map[string]any{"name": "reader", "scopes": []string{"accounts:read", "keys:read"}, "ttl": 3600})
	if r.Status != 201 {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	var reader keyOut
	r.JSON(t, &reader)
	readerC := tollgatetest.NewClient(n.URL(), reader.Token)
	if r := readerC.Do(t, "GET", "/accounts/me", nil); r.Status != 200 {
		t.Fatalf("new key on /accounts/me: %d %s", r.Status, r.Body)
	}
	if r := readerC.Do(t, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}}); r.Status != 403 {
		t.Fatalf("reader creating keys: %d", r.Status)
	}

	// Sandbox keys.
	r = owner.Do(t, "POST", "/keys", map[string]any{"name": "sandbox", "scopes": []string{"keys:read", "keys:write"}, "environment": "test"})
	var sandbox keyOut
	r.JSON(t, &sandbox)
	if r.Status != 201 || !strings.HasPrefix(sandbox.Token, "tg_test_") || sandbox.Environment != "test" {
		t.Fatalf("sandbox key: %d %s", r.Status, r.Body)
	}
	sandboxC := tollgatetest.NewClient(n.URL(), sandbox.Token)
	if r := sandboxC.Do(t, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}, "environment": "live"}); r.Status != 403 {
		t.Fatalf("sandbox key minting a live key: %d %s", r.Status, r.Body)
	}
	if r := sandboxC.Do(t, "GET", "/keys/"+reader.ID, nil); r.Status != 404 {
		t.Fatalf("sandbox key reading a live key: %d", r.Status)
	}

	// Pagination over live keys: default + reader + 5 more = 7, pages of 3.
	for i := 0; i < 5; i++ {
		if r := owner.Do(t, "POST", "/keys", map[string]any{"name": fmt.Sprintf("k%d", i), "scopes": []string{"keys:read"}}); r.Status != 201 {
			t.Fatal(r.Status)
		}
	}
	var seen []string
	cursor := ""
	for page := 0; page < 5; page++ {
		r := owner.Do(t, "GET", "/keys?limit=3&cursor="+cursor, nil)
		var list struct {
			Data       []keyOut `json:"data"`
			NextCursor *string  `json:"next_cursor"`
		}
		r.JSON(t, &list)
		for _, k := range list.Data {
			if k.Token != "" {
				t.Fatal("a listing shows a secret")
			}
			seen = append(seen, k.ID)
		}
		if list.NextCursor == nil {
			break
		}
		cursor = *list.NextCursor
	}
	if len(seen) != 7 {
		t.Fatalf("listed %d live keys, want 7: %v", len(seen), seen)
	}
	if r := owner.Do(t, "GET", "/keys?cursor=%%%", nil); r.Status != 400 {
		t.Fatalf("bad cursor: %d", r.Status)
	}

	// Another account sees none of it: 404, not 403.
	other := tollgatetest.NewClient(n.URL(), newAccount(t, root, "other").APIKey.Token)
	if r := other.Do(t, "GET", "/keys/"+reader.ID, nil); r.Status != 404 {
		t.Fatalf("stranger GET: %d", r.Status)
	}
	if r := other.Do(t, "DELETE", "/keys/"+reader.ID, nil); r.Status != 404 {
		t.Fatalf("stranger DELETE: %d", r.Status)
	}
	if r := other.Do(t, "GET", "/keys?account_id="+acc.ID, nil); r.Status != 404 {
		t.Fatalf("stranger listing by account_id: %d", r.Status)
	}

	// Revocation: the key stops working at once; revoking again is harmless.
	if r := owner.Do(t, "DELETE", "/keys/"+reader.ID, nil); r.Status != 204 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := readerC.Do(t, "GET", "/accounts/me", nil); r.Status != 401 {
		t.Fatalf("revoked key still works: %d", r.Status)
	}
	if r := owner.Do(t, "DELETE", "/keys/"+reader.ID, nil); r.Status != 204 {
		t.Fatalf("second revoke: %d", r.Status)
	}
	r = owner.Do(t, "GET", "/keys/"+reader.ID, nil)
	var got keyOut
	r.JSON(t, &got)
	if got.Status != "revoked" {
		t.Fatalf("status after revoke: %s", r.Body)
	}
	// Admin acts on other accounts with account_id.
	if r := root.Do(t, "GET", "/keys/"+reader.ID+"?account_id="+acc.ID, nil); r.Status != 200 {
		t.Fatalf("admin with account_id: %d %s", r.Status, r.Body)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// gzipped compresses times copies of b.
func gzipped(t *testing.T, b []byte, times int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < times; i++ {
		if _, err := zw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
