package sdkcheck_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
	tollgate "github.com/tollgate/tollgate/sdk"
)

// env is a node listening for NATS subscribers, and an account's key.
type env struct {
	n     *node.Node
	owner *tollgatetest.Client
}

func start(t testing.TB) env {
	t.Helper()
	n := tollgatetest.Start(t, func(c *node.Config) { c.NATSListen = "127.0.0.1:0" })
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	var acc struct {
		APIKey struct {
			Token string `json:"token"`
		} `json:"api_key"`
	}
	if r := root.Do(t, "POST", "/accounts", map[string]string{"name": "downstream"}); r.Status != http.StatusCreated {
		t.Fatalf("account: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &acc)
	}
	return env{n: n, owner: tollgatetest.NewClient(n.URL(), acc.APIKey.Token)}
}

type token struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

func (e env) token(t testing.TB) token {
	t.Helper()
	var tok token
	r := e.owner.Do(t, "POST", "/tokens", map[string]any{"name": "customer", "scopes": []string{"domains:read"}})
	if r.Status != http.StatusCreated {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &tok)
	return tok
}

func (e env) revoke(t testing.TB, id string) {
	t.Helper()
	if r := e.owner.Do(t, "DELETE", "/tokens/"+id, nil); r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// The follower keeps its set and position in a file: after a restart it
// knows what it knew, reads only what it missed, and misses nothing.
func TestFollowerResumesAfterRestart(t *testing.T) {
	t.Parallel()
	e := start(t)
	state := filepath.Join(t.TempDir(), "revocations.json")
	first, second := e.token(t), e.token(t)

	f, err := tollgate.NewRevocationFollower(connect(t, e.n.NATSURL()), tollgate.FollowerConfig{StatePath: state})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	e.revoke(t, first.ID)
	tollgatetest.Eventually(t, 5*time.Second, func() bool { return f.IsRevoked(first.ID) }, "first revocation followed")
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.revoke(t, second.ID) // while no follower runs

	again, err := tollgate.NewRevocationFollower(connect(t, e.n.NATSURL()), tollgate.FollowerConfig{StatePath: state})
	if err != nil {
		t.Fatal(err)
	}
	if !again.IsRevoked(first.ID) || again.Position() != f.Position() || again.IsRevoked(second.ID) {
		t.Fatalf("restored state: first %v, second %v, position %d (saved %d)", again.IsRevoked(first.ID),
			again.IsRevoked(second.ID), again.Position(), f.Position())
	}
	var mu sync.Mutex
	var seen []string
	again.OnRevoke(func(id string) { mu.Lock(); seen = append(seen, id); mu.Unlock() })
	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	go func() { _ = again.Run(ctx) }()
	<-again.CaughtUp()
	mu.Lock()
	defer mu.Unlock()
	if !again.IsRevoked(second.ID) || !slices.Equal(seen, []string{second.ID}) {
		t.Fatalf("after restart: revocations read %v, want only %s", seen, second.ID)
	}
}

// With the SDK middleware in another process, a token revoked through the
// API is refused without waiting for its cached verdict (one minute) to
// expire.
func TestMiddlewareInOtherProcessRefusesRevokedToken(t *testing.T) {
	t.Parallel()
	e := start(t)
	svc := startChild(t, e.n.URL(), e.n.NATSURL(), e.owner.Key)
	tok := e.token(t)
	client := tollgatetest.NewClient(svc, tok.Token)
	if r := client.Do(t, "GET", "/hello", nil); r.Status != 200 {
		t.Fatalf("valid token: %d %s", r.Status, r.Body)
	}
	e.revoke(t, tok.ID)
	tollgatetest.Eventually(t, 5*time.Second, func() bool { return client.Do(t, "GET", "/hello", nil).Status == 401 }, "revoked token refused")
	if r := tollgatetest.NewClient(svc, "tg_live_bogus").Do(t, "GET", "/hello", nil); r.Status != 401 {
		t.Fatalf("bogus token: %d", r.Status)
	}
}

// BenchmarkRevocationToRejection measures, with the SDK middleware in a
// process of its own, the time from sending DELETE /tokens/{id} to the first
// request the middleware refuses. Each token is first admitted once, so its
// VALID verdict is cached (for a minute): only the revocation follower can
// end it in time.
//
//	go test ./internal/sdkcheck -run '^$' -bench RevocationToRejection -benchtime 200x
func BenchmarkRevocationToRejection(b *testing.B) {
	e := start(b)
	svc := startChild(b, e.n.URL(), e.n.NATSURL(), e.owner.Key)
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		tok := e.token(b)
		client := tollgatetest.NewClient(svc, tok.Token)
		if r := client.Do(b, "GET", "/hello", nil); r.Status != 200 {
			b.Fatalf("valid token: %d", r.Status)
		}
		b.StartTimer()
		start := time.Now()
		e.revoke(b, tok.ID)
		for client.Do(b, "GET", "/hello", nil).Status != 401 {
			if time.Since(start) > 10*time.Second {
				b.Fatal("a revoked token still admitted after 10s")
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)-1)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
}
