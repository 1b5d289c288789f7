package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
	"github.com/tollgate/tollgate/workers"
)

// hook is one request a receiver got.
type hook struct {
	ID        string
	Timestamp string
	Signature string
	Body      []byte
	At        time.Time
	// Answer is the status the receiver answered with.
	Answer int
	// Verified is the official Standard Webhooks library's verdict on the
	// signature (nil: valid).
	Verified error
	Payload  struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
}

// receiver is a webhook endpoint on loopback. answer decides the status of
// the n-th request (from 1) carrying a webhook-id; it may block, and 0
// means the request is dropped unanswered (and not counted).
type receiver struct {
	*httptest.Server
	answer func(n int, h hook, r *http.Request) int

	mu      sync.Mutex
	secret  string
	hooks   []hook
	perID   map[string]int
	arrived chan struct{}
}

func newReceiver(t *testing.T, answer func(n int, h hook, r *http.Request) int) *receiver {
	t.Helper()
	rc := &receiver{answer: answer, perID: map[string]int{}, arrived: make(chan struct{}, 1<<16)}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

// verifyWith makes the receiver check signatures against secret.
func (rc *receiver) verifyWith(secret string) {
	rc.mu.Lock()
	rc.secret = secret
	rc.mu.Unlock()
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := hook{ID: r.Header.Get("webhook-id"), Timestamp: r.Header.Get("webhook-timestamp"),
		Signature: r.Header.Get("webhook-signature"), Body: body, At: time.Now()}
	_ = json.Unmarshal(body, &h.Payload)
	rc.mu.Lock()
	rc.perID[h.ID]++
	n := rc.perID[h.ID]
	secret := rc.secret
	rc.mu.Unlock()
	if secret != "" {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		h.Verified = err
	}
	h.Answer = http.StatusOK
	if rc.answer != nil {
		h.Answer = rc.answer(n, h, r)
	}
	if h.Answer == 0 { // the answer gave up: the client went away
		return
	}
	w.WriteHeader(h.Answer)
	rc.mu.Lock()
	rc.hooks = append(rc.hooks, h)
	rc.mu.Unlock()
	rc.arrived <- struct{}{}
}

// got returns the requests answered so far.
func (rc *receiver) got() []hook {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hook(nil), rc.hooks...)
}

// acked counts, per webhook-id, the requests answered with a 2xx.
func (rc *receiver) acked() map[string]int {
	out := map[string]int{}
	for _, h := range rc.got() {
		if h.Answer >= 200 && h.Answer < 300 {
			out[h.ID]++
		}
	}
	return out
}

// fastCallbacks starts nodes whose workers may call loopback and retry
// after a second.
func fastCallbacks(backoff ...time.Duration) tollgatetest.Option {
	return tollgatetest.WithCallbacks(func(c *workers.Config) {
		c.AllowLoopback = true
		c.Backoff = backoff
		c.Jitter = -1
		c.AckWait = 4 * time.Second
		c.RequestTimeout = time.Second
	})
}

func shutdownTimeout(d time.Duration) tollgatetest.Option {
	return func(c *node.Config) { c.ShutdownTimeout = d }
}

type subscriptionOut struct {
	ID                       string     `json:"id"`
	Secret                   string     `json:"secret"`
	URL                      string     `json:"url"`
	EventTypes               []string   `json:"event_types"`
	Description              string     `json:"description"`
	Status                   string     `json:"status"`
	DisabledReason           *string    `json:"disabled_reason"`
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until"`
}

type deliveryOut struct {
	ID             string     `json:"id"`
	SubscriptionID string     `json:"subscription_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Attempt        int        `json:"attempt"`
	Status         string     `json:"status"`
	StatusCode     *int       `json:"status_code"`
	LatencyMS      *int64     `json:"latency_ms"`
	Error          *string    `json:"error"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
}

type integrationErrorOut struct {
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	Message        string `json:"message"`
	Reason         string `json:"reason"`
	StatusCode     int    `json:"status_code"`
	DeliveryID     string `json:"delivery_id"`
	SubscriptionID string `json:"subscription_id"`
	TokenID        string `json:"token_id"`
}

func subscribe(t *testing.T, c *tollgatetest.Client, url string, types ...string) subscriptionOut {
	t.Helper()
	r := c.Do(t, "POST", "/subscriptions", map[string]any{"url": url, "event_types": types, "description": "test"})
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /subscriptions: %d %s", r.Status, r.Body)
	}
	var s subscriptionOut
	r.JSON(t, &s)
	return s
}

func callbacks(t *testing.T, c *tollgatetest.Client, query string) []deliveryOut {
	t.Helper()
	var page struct {
		Data []deliveryOut `json:"data"`
	}
	r := c.Do(t, "GET", "/callbacks"+query, nil)
	if r.Status != 200 {
		t.Fatalf("GET /callbacks%s: %d %s", query, r.Status, r.Body)
	}
	r.JSON(t, &page)
	return page.Data
}

func integrationErrors(t *testing.T, c *tollgatetest.Client, query string) []integrationErrorOut {
	t.Helper()
	var page struct {
		Data []integrationErrorOut `json:"data"`
	}
	r := c.Do(t, "GET", "/errors"+query, nil)
	if r.Status != 200 {
		t.Fatalf("GET /errors%s: %d %s", query, r.Status, r.Body)
	}
	r.JSON(t, &page)
	return page.Data
}
