// Package tollgatetest starts real Tollgate nodes for tests: embedded NATS
// with JetStream on t.TempDir(), Pebble on disk, HTTP on a loopback port.
package tollgatetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/workers"
)

// RootKey is the root API key of every test node (verbatim, not tg_ form).
const RootKey = "test-root-key-0123456789-abcdefghijklmnop"

// KeyEncryptionKey is the key-encryption key of every test node: nodes of
// one cluster must share theirs.
var KeyEncryptionKey = []byte("tollgate-test-key-encryption-key")

// Option adjusts a test node's configuration.
type Option func(*node.Config)

// WithNATS joins an existing NATS server or cluster instead of embedding one.
func WithNATS(url string, replicas int) Option {
	return func(c *node.Config) { c.NATSURL, c.StreamReplicas = url, replicas }
}

// WithClock gives the node a time source tests control.
func WithClock(now func() time.Time) Option { return func(c *node.Config) { c.Clock = now } }

// WithIssuer sets the OAuth issuer, which the nodes of one cluster share.
func WithIssuer(issuer string) Option { return func(c *node.Config) { c.Issuer = issuer } }

// WithAuthFailureLimit sets how many failed client authentications per
// minute a client_id or IP may have (default 10).
func WithAuthFailureLimit(n int) Option { return func(c *node.Config) { c.AuthFailureLimit = n } }

// WithRefreshTokenTTL sets the absolute lifetime of authorization-code
// grants' refresh tokens (default 720h).
func WithRefreshTokenTTL(d time.Duration) Option {
	return func(c *node.Config) { c.RefreshTokenTTL = d }
}

// WithDataDir stores under dir (to restart a node on the same data).
func WithDataDir(dir string) Option { return func(c *node.Config) { c.DataDir = dir } }

// WithCallbacks adjusts the callback workers: tests turn loopback on and
// shorten delays.
func WithCallbacks(adjust func(*workers.Config)) Option {
	return func(c *node.Config) { adjust(&c.Callbacks) }
}

// Config returns the configuration a test node starts with.
func Config(t testing.TB, opts ...Option) node.Config {
	cfg := node.Config{
		DataDir:    filepath.Join(t.TempDir(), "data"),
		Listen:     "127.0.0.1:0",
		NATSListen: "",
		RootKey:    RootKey,
		// A copy: a test may change its node's key without touching others'.
		KeyEncryptionKey: append([]byte(nil), KeyEncryptionKey...),
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if os.Getenv("TOLLGATE_TEST_LOG") != "" { // debugging: the node's log on stderr
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// Start runs a node that stops with the test.
func Start(t testing.TB, opts ...Option) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := node.Start(ctx, Config(t, opts...))
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// Client calls a node's HTTP API with an API key.
type Client struct {
	Base string
	Key  string
	HTTP *http.Client
}

// NewClient returns a client for base authenticating with key.
func NewClient(base, key string) *Client {
	return &Client{Base: base, Key: key, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request; body, if not nil and not []byte, is sent as JSON.
func (c *Client) Do(t testing.TB, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("X-API-Key", c.Key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
