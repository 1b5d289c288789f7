package api_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgatetest"
	"github.com/tollgate/tollgate/workers"
)

// Restarting Tollgate mid-delivery loses no pending delivery and does not
// redeliver one the endpoint acknowledged. At the stop, one attempt is
// blocked at the endpoint until Tollgate gives up on it (it must be made
// again after the restart), and another is answered during the shutdown
// window, after the workers stopped consuming: its outcome is recorded but
// its message is never acknowledged, so JetStream hands it out again after
// the restart, and it must be found done rather than sent twice.
func TestCallbacksSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	opts := []tollgatetest.Option{
		tollgatetest.WithDataDir(dir), shutdownTimeout(time.Second),
		tollgatetest.WithCallbacks(func(c *workers.Config) {
			c.AllowLoopback, c.Backoff, c.Jitter = true, []time.Duration{time.Second}, -1
			c.AckWait, c.RequestTimeout = 5*time.Second, 3*time.Second
		}),
	}
	release := make(chan struct{})
	blocked, slow := make(chan struct{}, 1), make(chan struct{}, 1)
	rc := newReceiver(t, func(n int, h hook, r *http.Request) int {
		switch {
		case n == 1 && strings.Contains(string(h.Body), `"name":"blocked"`):
			blocked <- struct{}{}
			<-r.Context().Done() // until Tollgate gives up at its shutdown deadline
			return 0
		case n == 1 && strings.Contains(string(h.Body), `"name":"slow"`):
			slow <- struct{}{}
			<-release
		}
		return http.StatusOK
	})

	n := tollgatetest.Start(t, opts...)
	tn := newTenant(t, n.URL())
	sub := subscribe(t, tn.owner, rc.URL, "token.created")
	rc.verifyWith(sub.Secret)
	for _, name := range []string{"a", "b", "c", "blocked", "slow"} {
		tn.token(t, map[string]any{"name": name})
	}
	<-blocked
	<-slow
	tollgatetest.Eventually(t, 10*time.Second, func() bool { return len(rc.acked()) == 3 }, "a, b and c acknowledged")

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = n.Close()
	}()
	time.Sleep(300 * time.Millisecond) // the workers have stopped consuming
	close(release)
	<-stopped

	n = tollgatetest.Start(t, opts...)
	tn.owner = tollgatetest.NewClient(n.URL(), tn.owner.Key)
	for _, name := range []string{"d", "e"} {
		tn.token(t, map[string]any{"name": name})
	}
	tollgatetest.Eventually(t, 30*time.Second, func() bool { return len(rc.acked()) == 7 }, "all seven acknowledged")
	// Long enough for an unacknowledged message to come back (ack wait).
	time.Sleep(6 * time.Second)
	for id, count := range rc.acked() {
		if count != 1 {
			t.Errorf("%s acknowledged %d times", id, count)
		}
	}
	for _, h := range rc.got() {
		if h.Verified != nil {
			t.Errorf("%s: signature: %v", h.ID, h.Verified)
		}
	}
	ds := callbacks(t, tn.owner, "")
	if len(ds) != 7 {
		t.Fatalf("%d deliveries, want 7", len(ds))
	}
	for _, d := range ds {
		if d.Status != "succeeded" || d.Attempt != 1 {
			t.Errorf("delivery %+v", d)
		}
	}
}
