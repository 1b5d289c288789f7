package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

// baselineAnswer has the shape of a VALID /verify answer (about 300 bytes).
type baselineAnswer struct {
	Valid       bool      `json:"valid"`
	Code        string    `json:"code"`
	TokenID     string    `json:"token_id"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	Scopes      []string  `json:"scopes"`
	ExpiresAt   time.Time `json:"expires_at"`
	Remaining   struct {
		TotalRequests *int64 `json:"total_requests"`
		PaidRequests  *int64 `json:"paid_requests"`
		WalletAmount  *int64 `json:"wallet_amount"`
	} `json:"remaining"`
	RateLimit struct {
		Limit     int64 `json:"limit"`
		Remaining int64 `json:"remaining"`
		Reset     int64 `json:"reset"`
	} `json:"ratelimit"`
}

// fiberConfig is the real app's fiber.Config when a node runs in this
// process, and otherwise the same settings as api.New's.
func (s *Session) fiberConfig() fiber.Config {
	if s.node != nil {
		cfg := s.node.API.App.Config()
		cfg.AppName = "bench-baseline"
		return cfg
	}
	return BaselineConfig()
}

// BaselineConfig mirrors the fiber.Config of api.New, for a baseline next
// to a server this process did not start. A test keeps the two in step.
func BaselineConfig() fiber.Config {
	return fiber.Config{
		AppName:               "bench-baseline",
		BodyLimit:             4 << 20,
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		JSONEncoder:           gojson.Marshal,
		Immutable:             true,
	}
}

// prepareBaseline serves one JSON handler on its own loopback listener with
// the real app's Fiber configuration and no middleware: the ceiling for a
// JSON endpoint on this machine, loaded by the same client as the others.
func (s *Session) prepareBaseline(ctx context.Context) (func(context.Context, int) (Result, error), error) {
	app := fiber.New(s.fiberConfig())
	answer := baselineAnswer{Valid: true, Code: "VALID", TokenID: "tok_0123456789abcdef", AccountID: "acc_0123456789abcdefghij",
		Environment: "live", Scopes: []string{"domains:read", "domains:write"}, ExpiresAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	answer.RateLimit.Limit, answer.RateLimit.Remaining, answer.RateLimit.Reset = 1_000_000_000, 999_999_999, 60
	app.Post("/baseline", func(c *fiber.Ctx) error { return c.JSON(answer) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = app.Listener(ln) }()
	s.closers = append(s.closers, func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	req := &Request{Method: "POST", URL: "http://" + ln.Addr().String() + "/baseline",
		Header: [][2]string{{"Content-Type", "application/json"}},
		Body:   []byte(`{"token":"tg_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH012345","scopes":["domains:read"],"ip":"203.0.113.9","cost":0}`),
		Expect: []byte(`"valid":true`)}
	return func(ctx context.Context, n int) (Result, error) {
		res := s.runHTTP(ctx, Baseline, req, n, nil)
		res.Notes = append(res.Notes, "bare Fiber app, same fiber.Config as Tollgate's, one JSON handler, no middleware")
		if s.opts.URL != "" {
			res.Notes = append(res.Notes, "served on this machine: ratios compare with --url only when that node runs here too")
		}
		return res, nil
	}, nil
}

// oauthClient is a confidential client_credentials client of the tenant.
type oauthClient struct {
	id, secret string
}

func (c oauthClient) basic() string {
	// RFC 6749 §2.3.1: form-URL-encoded before Base64.
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.id)+":"+url.QueryEscape(c.secret)))
}

func (s *Session) newOAuthClient() (oauthClient, error) {
	t, err := s.mainTenant()
	if err != nil {
		return oauthClient{}, err
	}
	var cl struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	err = s.api(s.base, t.owner, "POST", "/clients", map[string]any{"name": "bench", "grant_types": []string{"client_credentials"},
		"scopes": []string{"vps:read"}, "default_scopes": []string{"vps:read"}, "token_endpoint_auth_method": "client_secret_basic"}, 201, &cl)
	return oauthClient{id: cl.ClientID, secret: cl.ClientSecret}, err
}

func (s *Session) issueRequest(c oauthClient) *Request {
	return &Request{Method: "POST", URL: s.base + "/oauth2/token",
		Header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", c.basic()}},
		Body:   []byte("grant_type=client_credentials"), Expect: []byte(`"access_token"`)}
}

// prepareIssue: client_credentials issuance with client_secret_basic,
// opaque tokens. In-process, the event stream is counted before and after
// to show every token was appended before its answer.
func (s *Session) prepareIssue(ctx context.Context) (func(context.Context, int) (Result, error), error) {
	c, err := s.newOAuthClient()
	if err != nil {
		return nil, err
	}
	req := s.issueRequest(c)
	return func(ctx context.Context, n int) (Result, error) {
		var before, after uint64
		var counted bool
		res := s.runHTTP(ctx, Issue, req, n, func(measure func()) {
			// After the warm-up: only the measured requests are counted.
			before, counted = s.streamMsgs(ctx)
			measure()
			var ok bool
			after, ok = s.streamMsgs(ctx)
			counted = counted && ok
		})
		res.Notes = append(res.Notes, "POST /oauth2/token, grant_type=client_credentials, client_secret_basic, opaque tokens")
		if counted && res.Count > 0 {
			ok := res.Count - res.Errors
			res.Metrics = map[string]float64{"appended_per_token": float64(after-before) / float64(max(ok, 1))}
			res.Notes = append(res.Notes, fmt.Sprintf("events appended per issued token: %.3f", res.Metrics["appended_per_token"]))
		} else {
			res.Notes = append(res.Notes, "appends per token not counted (needs the in-process node)")
		}
		return res, nil
	}, nil
}

// streamMsgs counts the event stream's messages (in-process only).
func (s *Session) streamMsgs(ctx context.Context) (uint64, bool) {
	if s.node == nil {
		return 0, false
	}
	js, err := jetstream.New(s.node.NATS())
	if err != nil {
		return 0, false
	}
	str, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		return 0, false
	}
	info, err := str.Info(ctx)
	if err != nil {
		return 0, false
	}
	return info.State.Msgs, true
}

// prepareIntrospect: RFC 7662 introspection of one live token; the caller
// authenticates as the confidential client that got the token
// (client_secret_basic).
func (s *Session) prepareIntrospect(ctx context.Context) (func(context.Context, int) (Result, error), error) {
	c, err := s.newOAuthClient()
	if err != nil {
		return nil, err
	}
	issue := s.issueRequest(c)
	status, body, err := s.client.do(issue.Method, issue.URL, issue.Body, issue.Header...)
	if err != nil {
		return nil, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("issue a token to introspect: status %d: %.300s", status, body)
	}
	req := &Request{Method: "POST", URL: s.base + "/oauth2/introspect",
		Header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}, {"Authorization", c.basic()}},
		Body:   []byte("token=" + url.QueryEscape(tok.AccessToken)), Expect: []byte(`"active":true`)}
	return func(ctx context.Context, n int) (Result, error) {
		res := s.runHTTP(ctx, Introspect, req, n, nil)
		res.Notes = append(res.Notes, "POST /oauth2/introspect of one live token; caller: the client, client_secret_basic")
		return res, nil
	}, nil
}

// verifyIP is inside the tokens' IP whitelist.
const verifyIP = "203.0.113.9"

// prepareVerify: POST /verify with a scope and the caller IP checked
// against the token's whitelist; unpaid with cost 0, paid with cost 1
// spending wallet credit.
func (s *Session) prepareVerify(ctx context.Context, paid bool) (func(context.Context, int) (Result, error), error) {
	t, err := s.mainTenant()
	if err != nil {
		return nil, err
	}
	scope, cost, name := "domains:read", 0, Verify
	held := []string{scope}
	limits := map[string]any{"ip_whitelist": []string{"203.0.113.0/24", "2001:db8::/32"}}
	if paid {
		scope, cost, name = "domains:write", 1, VerifyPaid
		held = append(held, scope) // domains:write requires domains:read
		limits["wallet_amount"] = int64(1) << 50
		if err := s.api(s.base, s.rootKey, "POST", "/wallet/credits?account_id="+t.accountID,
			map[string]any{"amount": int64(1) << 39, "reason": "bench"}, 201, nil); err != nil {
			return nil, fmt.Errorf("credit the wallet (needs an admin key): %w", err)
		}
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := s.api(s.base, t.owner, "POST", "/tokens", map[string]any{"name": "bench-" + name, "scopes": held,
		"limits": limits, "rate_limit": unlimited}, 201, &tok); err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"token": tok.Token, "scopes": []string{scope}, "ip": verifyIP, "cost": cost,
		"domain": "example.com", "endpoint": "GET /domains"})
	req := &Request{Method: "POST", URL: s.base + "/verify",
		Header: [][2]string{{"Content-Type", "application/json"}, {"X-API-Key", t.verifier}}, Body: body, Expect: []byte(`"valid":true`)}
	if status, answer, err := s.client.do(req.Method, req.URL, req.Body, req.Header...); err != nil || status != 200 {
		return nil, errors.Join(err, fmt.Errorf("first verify: status %d: %.300s", status, answer))
	}
	return func(ctx context.Context, n int) (Result, error) {
		res := s.runHTTP(ctx, name, req, n, nil)
		res.Notes = append(res.Notes, fmt.Sprintf("POST /verify, scope %s, IP whitelist checked, cost %d", scope, cost))
		return res, nil
	}, nil
}
