package api_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// startVerifyBench starts a node with an account whose wallet holds
// plenty, a customer token (scopes domains:read and domains:write, limits
// and an IP whitelist to check) and the downstream service's own key with
// scopes, both with room for the load. It returns the owner's client and
// the two token strings.
func startVerifyBench(b *testing.B, verifierScopes ...string) (n *node.Node, owner *tollgatetest.Client, customer, verifier struct{ Token string }) {
	b.Helper()
	n = tollgatetest.Start(b)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	r := root.Do(b, "POST", "/accounts", map[string]string{"name": "bench"})
	var acc struct {
		ID     string                 `json:"id"`
		APIKey struct{ Token string } `json:"api_key"`
	}
	r.JSON(b, &acc)
	owner = tollgatetest.NewClient(n.URL(), acc.APIKey.Token)
	if r := root.Do(b, "POST", "/wallet/credits?account_id="+acc.ID, map[string]any{"amount": int64(1) << 39}); r.Status != 201 {
		b.Fatalf("credit: %d %s", r.Status, r.Body)
	}
	r = owner.Do(b, "POST", "/tokens", map[string]any{"name": "customer", "scopes": []string{"domains:read", "domains:write"},
		"rate_limit": map[string]any{"limit": 1_000_000_000, "window": 60},
		"limits":     map[string]any{"total_requests": 1 << 40, "paid_requests": 1 << 40, "wallet_amount": 1 << 50, "ip_whitelist": []string{"203.0.113.0/24"}}})
	r.JSON(b, &customer)
	r = owner.Do(b, "POST", "/tokens", map[string]any{"name": "verifier", "scopes": verifierScopes,
		"rate_limit": map[string]any{"limit": 1_000_000_000, "window": 60}})
	r.JSON(b, &verifier)
	return n, owner, customer, verifier
}

// startBareVerify serves a bare Fiber JSON handler: it decodes the same
// request body /verify gets and encodes an answer of the same shape. That
// is the ceiling for a JSON endpoint on this machine.
func startBareVerify(b *testing.B, answer []byte) benchTarget {
	b.Helper()
	var shape struct {
		Valid       bool       `json:"valid"`
		Code        string     `json:"code"`
		TokenID     *string    `json:"token_id"`
		AccountID   *string    `json:"account_id"`
		Environment *string    `json:"environment"`
		Scopes      []string   `json:"scopes"`
		ExpiresAt   *time.Time `json:"expires_at"`
		Remaining   struct {
			TotalRequests *int64 `json:"total_requests"`
			PaidRequests  *int64 `json:"paid_requests"`
			WalletAmount  *int64 `json:"wallet_amount"`
		} `json:"remaining"`
		RateLimit *struct {
			Limit     int64 `json:"limit"`
			Remaining int64 `json:"remaining"`
			Reset     int64 `json:"reset"`
		} `json:"ratelimit"`
	}
	if err := json.Unmarshal(answer, &shape); err != nil {
		b.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/verify", func(c *fiber.Ctx) error {
		var req struct {
			Token    string   `json:"token"`
			Scopes   []string `json:"scopes"`
			IP       string   `json:"ip"`
			Domain   string   `json:"domain"`
			Endpoint string   `json:"endpoint"`
		}
		if err := json.Unmarshal(c.Body(), &req); err != nil {
			return err
		}
		return c.JSON(shape)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	h := http.Header{"Content-Type": []string{"application/json"}}
	return benchTarget{url: "http://" + ln.Addr().String() + "/verify", header: h, client: newBenchClient(b),
		method: http.MethodPost, body: []byte(`{"token":"x"}`)}
}

// BenchmarkVerifyRatio measures POST /verify (scope and IP checks, unpaid
// and paid) beside a bare Fiber JSON handler in the same run, in
// alternating phases, and reports ratio = verify req/s ÷ bare req/s.
func BenchmarkVerifyRatio(b *testing.B) {
	n, _, tok, verifier := startVerifyBench(b, "tokens:verify")
	h := http.Header{"Content-Type": []string{"application/json"}, "X-Api-Key": []string{verifier.Token}}
	target := func(scope string) benchTarget {
		body, _ := json.Marshal(map[string]any{"token": tok.Token, "scopes": []string{scope}, "ip": "203.0.113.9", "domain": "example.com"})
		return benchTarget{url: n.URL() + "/verify", header: h, client: newBenchClient(b), method: http.MethodPost, body: body}
	}
	unpaid, paid := target("domains:read"), target("domains:write")
	answer := tollgatetest.NewClient(n.URL(), verifier.Token).Do(b, "POST", "/verify", unpaid.body).Body
	bare := startBareVerify(b, answer)
	bare.body = unpaid.body
	for _, t := range []benchTarget{bare, unpaid, paid} {
		t.warm(b)
	}
	for _, tc := range []struct {
		name string
		t    benchTarget
	}{{"unpaid", unpaid}, {"paid", paid}} {
		b.Run(fmt.Sprintf("%s/clients=%d", tc.name, benchClients), func(b *testing.B) { sideBySide(b, bare, tc.t, "verify") })
	}
}
