package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

type tokenOut struct {
	ID           string `json:"id"`
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
	AccountID    string `json:"account_id"`
	Environment  string `json:"environment"`
	Status       string `json:"status"`
	Remaining    struct {
		TotalRequests *int64 `json:"total_requests"`
		PaidRequests  *int64 `json:"paid_requests"`
		WalletAmount  *int64 `json:"wallet_amount"`
	} `json:"remaining"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

type verdict struct {
	Valid     bool    `json:"valid"`
	Code      string  `json:"code"`
	TokenID   *string `json:"token_id"`
	AccountID *string `json:"account_id"`
	Remaining struct {
		TotalRequests *int64 `json:"total_requests"`
		PaidRequests  *int64 `json:"paid_requests"`
		WalletAmount  *int64 `json:"wallet_amount"`
	} `json:"remaining"`
	RateLimit *struct {
		Limit, Remaining, Reset int64
	} `json:"ratelimit"`
}

// tenant is an account with its owner key, on one node.
type tenant struct {
	acc   accountOut
	owner *tollgatetest.Client
	base  string
}

func newTenant(t *testing.T, base string) tenant {
	t.Helper()
	root := tollgatetest.NewClient(base, tollgatetest.RootKey)
	acc := newAccount(t, root, "tenant")
	// Credit comes from the operator: enough for every paid call of a test.
	if r := root.Do(t, "POST", "/wallet/credits?account_id="+acc.ID, map[string]any{"amount": 1_000_000, "reason": "test"}); r.Status != 201 {
		t.Fatalf("credit: %d %s", r.Status, r.Body)
	}
	return tenant{acc: acc, owner: tollgatetest.NewClient(base, acc.APIKey.Token), base: base}
}

func (tn tenant) token(t *testing.T, body map[string]any) tokenOut {
	t.Helper()
	if body["name"] == nil {
		body["name"] = "customer"
	}
	if body["scopes"] == nil {
		body["scopes"] = []string{"domains:read", "domains:write"}
	}
	r := tn.owner.Do(t, "POST", "/tokens", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /tokens %v: %d %s", body, r.Status, r.Body)
	}
	var out tokenOut
	r.JSON(t, &out)
	return out
}

func (tn tenant) verify(t testing.TB, body map[string]any) verdict {
	t.Helper()
	r := tn.owner.Do(t, "POST", "/verify", body)
	if r.Status != 200 {
		t.Fatalf("POST /verify: %d %s", r.Status, r.Body)
	}
	var v verdict
	r.JSON(t, &v)
	return v
}

func TestVerifyLimitsHoldExactly(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())

	t.Run("total_requests", func(t *testing.T) {
		tok := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 5}})
		for i := 0; i < 5; i++ {
			if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:read"}}); v.Code != "VALID" || *v.Remaining.TotalRequests != int64(4-i) {
				t.Fatalf("request %d: %+v", i+1, v)
			}
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:read"}}); v.Code != "USAGE_EXCEEDED" || v.Valid {
			t.Fatalf("request 6: %+v", v)
		}
	})
	t.Run("paid_requests", func(t *testing.T) {
		tok := tn.token(t, map[string]any{"limits": map[string]any{"paid_requests": 2}})
		for i := 0; i < 3; i++ { // free calls do not count
			if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:read"}}); v.Code != "VALID" {
				t.Fatalf("free call: %+v", v)
			}
		}
		for i := 0; i < 2; i++ { // domains:write costs its catalog price
			if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:write"}}); v.Code != "VALID" {
				t.Fatalf("paid call %d: %+v", i+1, v)
			}
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:write"}}); v.Code != "USAGE_EXCEEDED" {
			t.Fatalf("paid call 3: %+v", v)
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:write"}, "cost": 0}); v.Code != "VALID" {
			t.Fatalf("explicitly free call: %+v", v)
		}
	})
	t.Run("wallet_amount", func(t *testing.T) {
		tok := tn.token(t, map[string]any{"limits": map[string]any{"wallet_amount": 10}})
		if v := tn.verify(t, map[string]any{"token": tok.Token, "cost": 7}); v.Code != "VALID" || *v.Remaining.WalletAmount != 3 {
			t.Fatalf("spend 7 of 10: %+v", v)
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "cost": 4}); v.Code != "INSUFFICIENT_FUNDS" {
			t.Fatalf("spend 4 of 3: %+v", v)
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "cost": 3}); v.Code != "VALID" || *v.Remaining.WalletAmount != 0 {
			t.Fatalf("spend the last 3: %+v", v)
		}
	})
	t.Run("ip_whitelist", func(t *testing.T) {
		tok := tn.token(t, map[string]any{"limits": map[string]any{"ip_whitelist": []string{"203.0.113.7", "198.51.100.0/24", "2001:db8:1:2::/64"}}})
		for ip, want := range map[string]string{
			"203.0.113.7": "VALID", "203.0.113.8": "FORBIDDEN_IP", "198.51.100.200": "VALID", "198.51.101.1": "FORBIDDEN_IP",
			"2001:db8:1:2::1": "VALID", "2001:db8:1:2:ffff:ffff:ffff:ffff": "VALID", "2001:db8:1:3::1": "FORBIDDEN_IP",
			"::ffff:203.0.113.7": "VALID", "": "FORBIDDEN_IP",
		} {
			if v := tn.verify(t, map[string]any{"token": tok.Token, "ip": ip}); v.Code != want {
				t.Errorf("ip %q: %s, want %s", ip, v.Code, want)
			}
		}
		r := tn.owner.Do(t, "POST", "/tokens", map[string]any{"name": "x", "scopes": []string{"domains:read"},
			"limits": map[string]any{"ip_whitelist": []string{"not-an-ip"}}})
		if r.Status != 400 || !strings.Contains(string(r.Body), "ip_whitelist") {
			t.Fatalf("bad whitelist entry: %d %s", r.Status, r.Body)
		}
	})
	t.Run("expired and revoked", func(t *testing.T) {
		expiring := tn.token(t, map[string]any{"ttl": 1})
		revoked := tn.token(t, map[string]any{})
		if r := tn.owner.Do(t, "DELETE", "/tokens/"+revoked.ID, nil); r.Status != 204 {
			t.Fatalf("revoke: %d", r.Status)
		}
		if v := tn.verify(t, map[string]any{"token": revoked.Token}); v.Code != "REVOKED" {
			t.Fatalf("revoked: %+v", v)
		}
		tollgatetest.Eventually(t, 3*time.Second, func() bool {
			return tn.verify(t, map[string]any{"token": expiring.Token}).Code == "EXPIRED"
		}, "token with ttl 1 expires")
		if v := tn.verify(t, map[string]any{"token": "tg_live_nonsense"}); v.Code != "NOT_FOUND" || v.TokenID != nil {
			t.Fatalf("malformed: %+v", v)
		}
	})
	t.Run("verdict order", func(t *testing.T) {
		// Revoked beats forbidden IP, forbidden IP beats scope, scope beats usage.
		tok := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 0, "ip_whitelist": []string{"10.0.0.1"}}})
		if v := tn.verify(t, map[string]any{"token": tok.Token, "ip": "10.0.0.2", "scopes": []string{"vps:write"}}); v.Code != "FORBIDDEN_IP" {
			t.Fatalf("%+v", v)
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "ip": "10.0.0.1", "scopes": []string{"vps:write"}}); v.Code != "INSUFFICIENT_SCOPE" {
			t.Fatalf("%+v", v)
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token, "ip": "10.0.0.1"}); v.Code != "USAGE_EXCEEDED" {
			t.Fatalf("%+v", v)
		}
		tn.owner.Do(t, "DELETE", "/tokens/"+tok.ID, nil)
		if v := tn.verify(t, map[string]any{"token": tok.Token, "ip": "10.0.0.2", "scopes": []string{"vps:write"}}); v.Code != "REVOKED" {
			t.Fatalf("%+v", v)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		tok := tn.token(t, map[string]any{"rate_limit": map[string]any{"limit": 3, "window": 60}, "limits": map[string]any{"total_requests": 100}})
		for i := 0; i < 3; i++ {
			if v := tn.verify(t, map[string]any{"token": tok.Token}); v.Code != "VALID" || v.RateLimit.Remaining != int64(2-i) {
				t.Fatalf("call %d: %+v", i+1, v)
			}
		}
		if v := tn.verify(t, map[string]any{"token": tok.Token}); v.Code != "RATE_LIMITED" || *v.Remaining.TotalRequests != 97 {
			t.Fatalf("call 4: %+v (a rate-limited call must not consume quota)", v)
		}
	})
}

func TestConcurrentVerifiesNeverExceedTheLimit(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	tok := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 300}})
	var valid, exceeded atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			switch v := tn.verify(t, map[string]any{"token": tok.Token}); v.Code {
			case "VALID":
				valid.Add(1)
			case "USAGE_EXCEEDED":
				exceeded.Add(1)
			default:
				t.Errorf("verdict %s", v.Code)
			}
		}()
	}
	wg.Wait()
	if valid.Load() != 300 || exceeded.Load() != 700 {
		t.Fatalf("%d valid, %d exceeded; want 300 and 700", valid.Load(), exceeded.Load())
	}
}

// Once a node knows a token and holds a lease, verifying it sends nothing to NATS.
func TestVerifyHotPathMakesNoNATSRoundTrip(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	limited := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 100000, "paid_requests": 100000}})
	unlimited := tn.token(t, map[string]any{})
	for _, tok := range []tokenOut{limited, unlimited} {
		tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:write"}}) // warm: lease
	}
	before := n.NATS().Stats()
	for i := 0; i < 200; i++ {
		for _, tok := range []tokenOut{limited, unlimited} {
			if v := tn.verify(t, map[string]any{"token": tok.Token, "scopes": []string{"domains:write"}}); v.Code != "VALID" {
				t.Fatalf("%+v", v)
			}
		}
	}
	after := n.NATS().Stats()
	// A wallet settlement per second may run meanwhile: a handful of
	// messages, never one per request.
	if sent := after.OutMsgs - before.OutMsgs; sent > 10 {
		t.Fatalf("400 verifies sent %d NATS messages", sent)
	}
}

func TestRotationGraceAndReuse(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	tok := tn.token(t, map[string]any{})
	if !strings.HasPrefix(tok.RefreshToken, "tg_rt_") {
		t.Fatalf("refresh token %q", tok.RefreshToken)
	}
	rotate := func(refresh string, grace int) (int, tokenOut, string) {
		body := map[string]any{"refresh_token": refresh}
		if grace > 0 {
			body["grace_period"] = grace
		}
		r := tn.owner.Do(t, "PATCH", "/tokens/"+tok.ID, body)
		var out tokenOut
		_ = jsonUnmarshal(r.Body, &out)
		return r.Status, out, string(r.Body)
	}
	// Without grace the old value dies at once.
	status, second, body := rotate(tok.RefreshToken, 0)
	if status != 200 || second.ID != tok.ID || second.Token == tok.Token || second.RefreshToken == tok.RefreshToken {
		t.Fatalf("rotate: %d %s", status, body)
	}
	if v := tn.verify(t, map[string]any{"token": tok.Token}); v.Code != "NOT_FOUND" {
		t.Fatalf("old value after rotation: %s", v.Code)
	}
	if v := tn.verify(t, map[string]any{"token": second.Token}); v.Code != "VALID" {
		t.Fatalf("new value: %s", v.Code)
	}
	// With grace both work until it ends.
	status, third, body := rotate(second.RefreshToken, 1)
	if status != 200 {
		t.Fatalf("rotate with grace: %d %s", status, body)
	}
	if v := tn.verify(t, map[string]any{"token": second.Token}); v.Code != "VALID" {
		t.Fatalf("previous value within grace: %s", v.Code)
	}
	tollgatetest.Eventually(t, 3*time.Second, func() bool {
		return tn.verify(t, map[string]any{"token": second.Token}).Code == "NOT_FOUND"
	}, "grace period ends")
	if status, _, body := rotate(third.RefreshToken, 301); status != 400 {
		t.Fatalf("grace over 5 minutes: %d %s", status, body)
	}
	// Reuse of a spent refresh token revokes the whole chain.
	status, _, body = rotate(tok.RefreshToken, 0)
	if status != 409 || !strings.Contains(body, "revoked") {
		t.Fatalf("reuse: %d %s", status, body)
	}
	if v := tn.verify(t, map[string]any{"token": third.Token}); v.Code != "REVOKED" {
		t.Fatalf("current value after reuse: %s", v.Code)
	}
	if status, _, _ := rotate(third.RefreshToken, 0); status != 409 {
		t.Fatalf("rotating a revoked token: %d", status)
	}
}

// On every /tokens endpoint another account's key gets 404, never 403.
func TestTokensTenantIsolation(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	a, b := newTenant(t, n.URL()), newTenant(t, n.URL())
	tok := a.token(t, map[string]any{})
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/tokens/" + tok.ID, nil},
		{"PATCH", "/tokens/" + tok.ID, map[string]any{"name": "mine now"}},
		{"PATCH", "/tokens/" + tok.ID, map[string]any{"refresh_token": tok.RefreshToken}},
		{"DELETE", "/tokens/" + tok.ID, nil},
		{"GET", "/tokens?account_id=" + a.acc.ID, nil},
		{"POST", "/tokens?account_id=" + a.acc.ID, map[string]any{"name": "x", "scopes": []string{"domains:read"}}},
		{"GET", "/keys/" + tok.ID, nil},
		{"DELETE", "/keys/" + tok.ID, nil},
	} {
		if r := b.owner.Do(t, tc.method, tc.path, tc.body); r.Status != 404 {
			t.Errorf("%s %s by another account: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
	}
	if v := b.verify(t, map[string]any{"token": tok.Token}); v.Code != "NOT_FOUND" || v.TokenID != nil {
		t.Errorf("verify of another account's token: %+v", v)
	}
	// B's listing does not show A's token; A's token still works.
	if r := b.owner.Do(t, "GET", "/tokens", nil); strings.Contains(string(r.Body), tok.ID) {
		t.Error("another account's token listed")
	}
	if v := a.verify(t, map[string]any{"token": tok.Token}); v.Code != "VALID" {
		t.Errorf("owner's verify after the attempts: %+v", v)
	}
}

func TestTokensManagement(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	// Unknown scopes are refused, naming them.
	r := tn.owner.Do(t, "POST", "/tokens", map[string]any{"name": "x", "scopes": []string{"domains:read", "rockets:launch"}})
	if r.Status != 400 || !strings.Contains(string(r.Body), "rockets:launch") {
		t.Fatalf("unknown scope: %d %s", r.Status, r.Body)
	}
	tok := tn.token(t, map[string]any{"name": "billing-bot", "limits": map[string]any{"total_requests": 10}})
	tn.token(t, map[string]any{"name": "other"})
	sandbox := tn.token(t, map[string]any{"name": "billing-sandbox", "environment": "test"})
	if !strings.HasPrefix(sandbox.Token, "tg_test_") {
		t.Fatalf("sandbox token %q", sandbox.Token)
	}
	// Filters.
	r = tn.owner.Do(t, "GET", "/tokens?name=billing", nil)
	if strings.Count(string(r.Body), `"id"`) != 1 || !strings.Contains(string(r.Body), tok.ID) {
		t.Fatalf("name filter: %s", r.Body)
	}
	r = tn.owner.Do(t, "GET", "/tokens?environment=test", nil)
	if !strings.Contains(string(r.Body), sandbox.ID) || strings.Contains(string(r.Body), tok.ID) {
		t.Fatalf("environment filter: %s", r.Body)
	}
	// Update, and the read shows usage.
	tn.verify(t, map[string]any{"token": tok.Token})
	r = tn.owner.Do(t, "PATCH", "/tokens/"+tok.ID, map[string]any{"name": "renamed", "limits": map[string]any{"total_requests": 20}})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"name":"renamed"`) {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	var got tokenOut
	tn.owner.Do(t, "GET", "/tokens/"+tok.ID, nil).JSON(t, &got)
	if got.Token != "" || got.RefreshToken != "" || *got.Remaining.TotalRequests != 19 || got.LastUsedAt == nil {
		t.Fatalf("read after one use of 20: %+v", got)
	}
	// Sandbox keys see sandbox tokens only.
	sbKey := tn.token(t, map[string]any{"name": "sb-admin", "environment": "test", "scopes": []string{"tokens:read", "tokens:write"}})
	sb := tollgatetest.NewClient(n.URL(), sbKey.Token)
	if r := sb.Do(t, "GET", "/tokens/"+tok.ID, nil); r.Status != 404 {
		t.Fatalf("sandbox key reading a live token: %d", r.Status)
	}
	if r := sb.Do(t, "GET", "/tokens?environment=live", nil); r.Status != 403 {
		t.Fatalf("sandbox key listing live tokens: %d", r.Status)
	}
	if r := sb.Do(t, "GET", "/tokens/"+sandbox.ID, nil); r.Status != 200 {
		t.Fatalf("sandbox key reading a sandbox token: %d", r.Status)
	}
	// Tollgate's own API applies the key's limits: rate limit gives 429
	// with Retry-After and the RateLimit fields.
	limited := tn.token(t, map[string]any{"name": "slow", "scopes": []string{"tokens:read"}, "rate_limit": map[string]any{"limit": 2, "window": 60}})
	lc := tollgatetest.NewClient(n.URL(), limited.Token)
	for i := 0; i < 2; i++ {
		if r := lc.Do(t, "GET", "/tokens", nil); r.Status != 200 || r.Header.Get("RateLimit") == "" || r.Header.Get("RateLimit-Policy") != `"token";q=2;w=60` {
			t.Fatalf("call %d: %d %v", i, r.Status, r.Header)
		}
	}
	r = lc.Do(t, "GET", "/tokens", nil)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), `"error":"rate_limited"`) {
		t.Fatalf("over the rate limit: %d %s %v", r.Status, r.Body, r.Header)
	}
	_ = fmt.Sprint
}

func TestScopeRequirementsOnTokens(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	r := tn.owner.Do(t, "POST", "/tokens", map[string]any{"name": "x", "scopes": []string{"vps:write"}})
	if r.Status != 400 || !strings.Contains(string(r.Body), "vps:write requires vps:read") {
		t.Fatalf("scope without its requirement: %d %s", r.Status, r.Body)
	}
	tok := tn.token(t, map[string]any{"scopes": []string{"vps:read"}})
	r = tn.owner.Do(t, "PATCH", "/tokens/"+tok.ID, map[string]any{"scopes": []string{"vps:write"}})
	if r.Status != 400 {
		t.Fatalf("patch to a scope without its requirement: %d %s", r.Status, r.Body)
	}
}

// Leases are given back on a clean shutdown: after a restart on the same
// data, what remains of a limit is exact.
func TestQuotaSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := tollgatetest.Start(t, tollgatetest.WithDataDir(dir))
	tn := newTenant(t, n.URL())
	tok := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 1000, "wallet_amount": 500}})
	for i := 0; i < 7; i++ {
		if v := tn.verify(t, map[string]any{"token": tok.Token, "cost": 10}); v.Code != "VALID" {
			t.Fatalf("%+v", v)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = tollgatetest.Start(t, tollgatetest.WithDataDir(dir))
	owner := tollgatetest.NewClient(n.URL(), tn.acc.APIKey.Token)
	var got tokenOut
	owner.Do(t, "GET", "/tokens/"+tok.ID, nil).JSON(t, &got)
	if *got.Remaining.TotalRequests != 993 || *got.Remaining.WalletAmount != 430 || got.LastUsedAt == nil {
		t.Fatalf("after restart: requests %d credits %d last used %v; want 993, 430, set",
			*got.Remaining.TotalRequests, *got.Remaining.WalletAmount, got.LastUsedAt)
	}
}

// Downstream services follow revocations on one documented wildcard subject.
func TestRevocationReachesSubscribers(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	n := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	tn := newTenant(t, n.URL())
	tok := tn.token(t, map[string]any{})

	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan *nats.Msg, 4)
	if _, err := sub.ChanSubscribe(events.RevocationSubjects, ch); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if r := tn.owner.Do(t, "DELETE", "/tokens/"+tok.ID+"?reason=leaked", nil); r.Status != 204 {
		t.Fatalf("revoke: %d", r.Status)
	}
	select {
	case m := <-ch:
		var ev struct {
			Type string `json:"type"`
			Data struct {
				ID, AccountID, Reason string
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if m.Subject != "tollgate.events.token."+tok.ID+".token.revoked" || ev.Type != "token.revoked" || ev.Data.ID != tok.ID || ev.Data.Reason != "leaked" {
			t.Fatalf("got %s %s", m.Subject, m.Data)
		}
		if strings.Contains(string(m.Data), tok.Token) || strings.Contains(string(m.Data), "hash") {
			t.Fatalf("revocation event carries secret material: %s", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no revocation event on " + events.RevocationSubjects)
	}
}

// last_used_at follows every token: from the usage stream for tokens
// without limits, from lease settlements for the others.
func TestLastUsedAt(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	used, unused := tn.token(t, map[string]any{}), tn.token(t, map[string]any{})
	before := time.Now().Add(-time.Second)
	if v := tn.verify(t, map[string]any{"token": used.Token}); v.Code != "VALID" {
		t.Fatalf("%+v", v)
	}
	var got tokenOut
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		tn.owner.Do(t, "GET", "/tokens/"+used.ID, nil).JSON(t, &got)
		return got.LastUsedAt != nil
	}, "last_used_at of a used token")
	if got.LastUsedAt.Before(before) {
		t.Fatalf("last_used_at %v before the call", got.LastUsedAt)
	}
	tn.owner.Do(t, "GET", "/tokens/"+unused.ID, nil).JSON(t, &got)
	if got.LastUsedAt != nil {
		t.Fatalf("unused token has last_used_at %v", got.LastUsedAt)
	}
}
