package api_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// OAuth benchmarks: client_credentials issuance and introspection, each
// beside a bare Fiber handler in the same run, at oauthBenchConns
// concurrent connections. Run with
//
//	go test ./api/ -run '^$' -bench OAuthRatio -benchtime 60000x [-oauth.loadgen fasthttp]
//
// Every issuance is one access.issued event appended to JetStream before
// the answer; the benchmark counts the stream's messages to show it.

// oauthBenchConns is the concurrency the issue asks for.
const oauthBenchConns = 100

// startBareForm serves a bare Fiber handler that reads a form body and
// answers a constant JSON object: the framework's floor for the endpoint.
func startBareForm(b *testing.B, answer []byte) benchTarget {
	b.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/oauth2/token", func(c *fiber.Ctx) error {
		if c.FormValue("grant_type") == "" && c.FormValue("token") == "" {
			return c.SendStatus(fiber.StatusBadRequest)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(answer)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return benchTarget{url: "http://" + ln.Addr().String() + "/oauth2/token", header: http.Header{}, client: newBenchClient(b),
		method: http.MethodPost}
}

// oauthBench is a node with a client and a token to introspect.
type oauthBench struct {
	node             *node.Node
	issue, introspec benchTarget
	token            []byte // a token answer, for the bare handler's size
	in               []byte // an introspection answer
}

func startOAuthBench(b *testing.B) oauthBench {
	b.Helper()
	n := tollgatetest.Start(b)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	r := root.Do(b, "POST", "/accounts", map[string]string{"name": "bench"})
	var acc struct {
		APIKey struct{ Token string } `json:"api_key"`
	}
	r.JSON(b, &acc)
	owner := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)
	r = owner.Do(b, "POST", "/clients", map[string]any{"name": "bench", "scopes": []string{"vps:read", "vps:write"},
		"default_scopes": []string{"vps:read", "vps:write"}})
	var cl struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	r.JSON(b, &cl)
	if r.Status != http.StatusCreated {
		b.Fatalf("POST /clients: %d %s", r.Status, r.Body)
	}
	h := http.Header{"Content-Type": []string{"application/x-www-form-urlencoded"}, "Authorization": []string{basic(cl.ClientID, cl.ClientSecret)}}
	issue := benchTarget{url: n.URL() + "/oauth2/token", header: h, client: newBenchClient(b), method: http.MethodPost,
		body: []byte("grant_type=client_credentials")}
	tok := oauthPost(b, n.URL(), "/oauth2/token", issue.body, "Authorization", h.Get("Authorization"))
	var t tokenOK
	if tok.Status != http.StatusOK || json.Unmarshal(tok.Body, &t) != nil {
		b.Fatalf("token: %d %s", tok.Status, tok.Body)
	}
	in := benchTarget{url: n.URL() + "/oauth2/introspect", header: h, client: newBenchClient(b), method: http.MethodPost,
		body: []byte("token=" + t.AccessToken)}
	answer := oauthPost(b, n.URL(), "/oauth2/introspect", in.body, "Authorization", h.Get("Authorization"))
	return oauthBench{node: n, issue: issue, introspec: in, token: tok.Body, in: answer.Body}
}

// warmN opens conns keep-alive connections so connection setup is not timed.
func warmN(b *testing.B, send func() error, conns int) {
	b.Helper()
	if _, err := loadPhase(send, 10*conns, conns, &latencies{}); err != nil {
		b.Fatal(err)
	}
}

// streamMsgs is how many events the event stream holds.
func streamMsgs(b *testing.B, n *node.Node) uint64 {
	b.Helper()
	js, err := jetstream.New(n.NATS())
	if err != nil {
		b.Fatal(err)
	}
	str, err := js.Stream(b.Context(), events.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := str.Info(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}

// oauthLoadgen picks the HTTP client that generates the load. It shares the
// two cores with the servers, so a cheaper client leaves more CPU to them:
// net/http costs about a quarter of all CPU in the issuance run.
var oauthLoadgen = flag.String("oauth.loadgen", "nethttp", "load generator of BenchmarkOAuthRatio: nethttp or fasthttp")

// sender returns a function that sends one request to t and checks for 200.
func sender(b *testing.B, t benchTarget) func() error {
	switch *oauthLoadgen {
	case "nethttp":
		return t.get
	case "fasthttp":
	default:
		b.Fatalf("-oauth.loadgen %q: want nethttp or fasthttp", *oauthLoadgen)
	}
	client := &fasthttp.Client{MaxConnsPerHost: 2 * oauthBenchConns, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	b.Cleanup(client.CloseIdleConnections)
	return func() error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(t.url)
		req.Header.SetMethod(t.method)
		for k, v := range t.header {
			req.Header.Set(k, v[0])
		}
		req.SetBody(t.body)
		if err := client.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != fasthttp.StatusOK {
			return fmt.Errorf("%s %s: status %d", t.method, t.url, resp.StatusCode())
		}
		return nil
	}
}

// BenchmarkOAuthRatio measures client_credentials issuance (client_secret_basic,
// opaque tokens) and introspection (client_secret_basic caller), each beside
// a bare Fiber form handler answering a body of the same size, in
// alternating phases at 100 connections. It reports req/s, p99 and
// ratio = endpoint ÷ bare; for issuance also appended = events appended ÷
// tokens issued (1 when every issuance is in the log).
func BenchmarkOAuthRatio(b *testing.B) {
	ob := startOAuthBench(b)
	bareIssue, bareIn := startBareForm(b, ob.token), startBareForm(b, ob.in)
	bareIssue.body, bareIn.body = ob.issue.body, ob.introspec.body
	bareIssue.header = http.Header{"Content-Type": []string{"application/x-www-form-urlencoded"}}
	bareIn.header = bareIssue.header
	send := map[string]func() error{}
	for name, t := range map[string]benchTarget{"bare issue": bareIssue, "bare introspect": bareIn, "issue": ob.issue, "introspect": ob.introspec} {
		send[name] = sender(b, t)
		warmN(b, send[name], oauthBenchConns)
	}
	b.Logf("load generator %s; answers: token %d bytes, introspection %d bytes", *oauthLoadgen, len(ob.token), len(ob.in))
	b.Run(fmt.Sprintf("issue/conns=%d", oauthBenchConns), func(b *testing.B) {
		before := streamMsgs(b, ob.node)
		issued := alternate(b, send["bare issue"], send["issue"], oauthBenchConns, "issue", time.Millisecond)
		b.ReportMetric(float64(streamMsgs(b, ob.node)-before)/float64(issued), "appended")
	})
	b.Run(fmt.Sprintf("introspect/conns=%d", oauthBenchConns), func(b *testing.B) {
		alternate(b, send["bare introspect"], send["introspect"], oauthBenchConns, "introspect", time.Millisecond)
	})
}
