package workers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// outcome is what one HTTP attempt came to.
type outcome struct {
	ok      bool
	status  int
	latency time.Duration
	err     string
}

// userAgent identifies Tollgate to endpoints.
const userAgent = "Tollgate-Webhooks/1"

// attempt makes one signed POST of the job's payload to the subscription.
func (w *Workers) attempt(ctx context.Context, sub projections.SubscriptionRecord, job work) outcome {
	keys, err := w.keys(sub)
	if err != nil {
		w.cfg.Logger.Error("callbacks: signing secret unavailable", "subscription", sub.ID, "err", err)
		return outcome{err: "the signing secret cannot be opened on this node: " + err.Error()}
	}
	ts := w.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(job.Body))
	if err != nil {
		return outcome{err: "invalid request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderWebhookID, job.DeliveryID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderWebhookSignature, signatureHeader(keys, job.DeliveryID, ts, job.Body))
	start := time.Now()
	resp, err := w.client.Do(req)
	out := outcome{latency: time.Since(start)}
	if err != nil {
		out.err = describeHTTPError(err, w.cfg.RequestTimeout)
		return out
	}
	// Read a little of the answer so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	out.status = resp.StatusCode
	out.ok = resp.StatusCode >= 200 && resp.StatusCode < 300
	return out
}

func describeHTTPError(err error, timeout time.Duration) string {
	var aerr *AddressError
	var nerr net.Error
	switch {
	case errors.As(err, &aerr):
		return "refused: " + aerr.Error()
	case errors.As(err, &nerr) && nerr.Timeout():
		return "no answer within " + timeout.String()
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return err.Error()
}

// keys opens the subscription's signing secrets: the current one, and the
// previous one during a rotation's grace period. Opened secrets are kept in
// memory by subscription version.
func (w *Workers) keys(sub projections.SubscriptionRecord) ([][]byte, error) {
	now := w.cfg.Now()
	w.secretsMu.Lock()
	c, ok := w.secrets[sub.ID]
	w.secretsMu.Unlock()
	if !ok || c.version != sub.Version {
		c = openedSecrets{version: sub.Version}
		cur, err := w.open(sub.ID, sub.Secret)
		if err != nil {
			return nil, err
		}
		c.current = cur
		if sub.PreviousSecret != nil && sub.PreviousValidUntil != nil {
			if prev, err := w.open(sub.ID, *sub.PreviousSecret); err == nil {
				c.previous, c.previousUntil = prev, *sub.PreviousValidUntil
			}
		}
		w.secretsMu.Lock()
		w.secrets[sub.ID] = c
		w.secretsMu.Unlock()
	}
	keys := [][]byte{c.current}
	if c.previous != nil && now.Before(c.previousUntil) {
		keys = append(keys, c.previous)
	}
	return keys, nil
}

func (w *Workers) open(subscriptionID string, sealed events.SealedSecret) ([]byte, error) {
	secret, err := domain.OpenSecret(w.deps.KEK, subscriptionID, sealed)
	if err != nil {
		return nil, err
	}
	return domain.WebhookKey(secret)
}

type openedSecrets struct {
	version       uint64
	current       []byte
	previous      []byte
	previousUntil time.Time
}

// limiter bounds attempts in flight per endpoint without blocking: a
// worker that finds an endpoint at its limit hands the message back rather
// than wait, so one slow endpoint cannot hold every worker.
type limiter struct {
	mu       sync.Mutex
	limit    int
	inflight map[string]int
}

func newLimiter(limit int) *limiter { return &limiter{limit: limit, inflight: map[string]int{}} }

func (l *limiter) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight[key] >= l.limit {
		return false
	}
	l.inflight[key]++
	return true
}

func (l *limiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight[key]--; l.inflight[key] <= 0 {
		delete(l.inflight, key)
	}
}
