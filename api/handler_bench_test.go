package api_test

import (
	"bytes"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/internal/cpuclock"
)

// handlerBench runs Fiber's request handler directly on a reused
// RequestCtx: no sockets, no client. It isolates the server's own cost per
// request (ns/op, B/op, allocs/op) so that hot-path regressions show in
// review without the noise of a load generator.
func handlerBench(b *testing.B, h fasthttp.RequestHandler, method, path string, body []byte, want string, headers ...string) {
	b.Helper()
	var ctx fasthttp.RequestCtx
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	prepare := func() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetHost("127.0.0.1")
		for i := 0; i+1 < len(headers); i += 2 {
			ctx.Request.Header.Set(headers[i], headers[i+1])
		}
		if body != nil {
			if len(body) > 0 && body[0] == '{' {
				ctx.Request.Header.SetContentType("application/json")
			} else {
				ctx.Request.Header.SetContentType("application/x-www-form-urlencoded")
			}
			ctx.Request.SetBody(body)
		}
	}
	ctx.Init(&ctx.Request, remote, nil)
	prepare()
	h(&ctx)
	if code := ctx.Response.StatusCode(); code != 200 {
		b.Fatalf("%s %s: %d %s", method, path, code, ctx.Response.Body())
	}
	if !bytes.Contains(ctx.Response.Body(), []byte(want)) {
		b.Fatalf("first answer lacks %s: %s", want, ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuclock.Of(b)
	for i := 0; i < b.N; i++ {
		prepare()
		h(&ctx)
	}
	b.StopTimer()
	// Background work the requests caused (usage batches, their
	// projection) finishes within a flush interval; it counts too. Process
	// CPU time, unlike ns/op, hardly moves when other processes compete
	// for the cores.
	time.Sleep(600 * time.Millisecond)
	b.ReportMetric(float64(cpuclock.Of(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if ctx.Response.StatusCode() != 200 || !bytes.Contains(ctx.Response.Body(), []byte(want)) {
		b.Fatalf("last answer %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// BenchmarkHandler measures the server side of each hot path beside a bare
// Fiber JSON handler that decodes the same body and answers a small object.
func BenchmarkHandler(b *testing.B) {
	n, owner, tok, verifier := startVerifyBench(b, "tokens:verify", "accounts:read")
	unpaid, _ := json.Marshal(map[string]any{"token": tok.Token, "scopes": []string{"domains:read"}, "ip": "203.0.113.9", "domain": "example.com"})
	paid, _ := json.Marshal(map[string]any{"token": tok.Token, "scopes": []string{"domains:write"}, "ip": "203.0.113.9", "domain": "example.com"})

	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bare.Post("/verify", func(c *fiber.Ctx) error {
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
		return c.JSON(fiber.Map{"valid": true, "code": "VALID", "scopes": req.Scopes})
	})
	app := n.API.App.Handler()
	r := owner.Do(b, "POST", "/clients", map[string]any{"name": "bench", "scopes": []string{"vps:read", "vps:write"},
		"default_scopes": []string{"vps:read", "vps:write"}})
	var cl struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	r.JSON(b, &cl)
	auth := basic(cl.ClientID, cl.ClientSecret)
	issued := oauthPost(b, n.URL(), "/oauth2/token", []byte("grant_type=client_credentials"), "Authorization", auth)
	var at tokenOK
	if issued.Status != 200 || json.Unmarshal(issued.Body, &at) != nil {
		b.Fatalf("token: %d %s", issued.Status, issued.Body)
	}

	b.Run("bare", func(b *testing.B) { handlerBench(b, bare.Handler(), "POST", "/verify", unpaid, `"valid":true`) })
	b.Run("verify", func(b *testing.B) {
		handlerBench(b, app, "POST", "/verify", unpaid, `"valid":true`, "X-API-Key", verifier.Token)
	})
	b.Run("verify-paid", func(b *testing.B) {
		handlerBench(b, app, "POST", "/verify", paid, `"valid":true`, "X-API-Key", verifier.Token)
	})
	b.Run("accounts-me", func(b *testing.B) {
		handlerBench(b, app, "GET", "/accounts/me", nil, `"id":`, "X-API-Key", verifier.Token)
	})
	b.Run("introspect", func(b *testing.B) {
		handlerBench(b, app, "POST", "/oauth2/introspect", []byte("token="+at.AccessToken), `"active":true`, "Authorization", auth)
	})
	b.Run("issue", func(b *testing.B) {
		handlerBench(b, app, "POST", "/oauth2/token", []byte("grant_type=client_credentials"), `"access_token"`, "Authorization", auth)
	})
}
