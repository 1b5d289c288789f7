package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/tollgatetest"
	"github.com/tollgate/tollgate/workers"
)

// benchReceiver answers 204 at once and keeps, per webhook-id, how long
// after the event its first attempt arrived.
type benchReceiver struct {
	mu      sync.Mutex
	latency map[string]time.Duration
	last    time.Time
	done    chan struct{}
	want    int
}

func (r *benchReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	now := time.Now()
	var p struct {
		Timestamp time.Time `json:"timestamp"`
	}
	_ = json.Unmarshal(body, &p)
	w.WriteHeader(http.StatusNoContent)
	r.mu.Lock()
	defer r.mu.Unlock()
	id := req.Header.Get("webhook-id")
	if _, seen := r.latency[id]; !seen {
		r.latency[id] = now.Sub(p.Timestamp)
		r.last = now
		if len(r.latency) == r.want {
			close(r.done)
		}
	}
}

func (r *benchReceiver) expect(n int) {
	r.mu.Lock()
	r.latency, r.want, r.done = map[string]time.Duration{}, n, make(chan struct{})
	r.mu.Unlock()
}

// BenchmarkCallbackDelivery measures webhook deliveries per second to a
// local receiver and the latency from an event's append to the first
// attempt's arrival. Each event fans out to four subscriptions (four
// endpoints, each bounded to four attempts in flight). "saturated" appends
// events as fast as eight writers can (throughput; its latency is mostly
// queueing); the paced runs append 50 or 200 events a second (200, 800
// deliveries a second) and show the latency below saturation.
//
//	go test ./workers -run '^$' -bench CallbackDelivery -benchtime 2000x
func BenchmarkCallbackDelivery(b *testing.B) {
	for _, tc := range []struct {
		name string
		rate int // events per second; 0: as fast as possible
	}{{"saturated", 0}, {"paced_50_per_s", 50}, {"paced_200_per_s", 200}} {
		b.Run(tc.name, func(b *testing.B) { benchDelivery(b, tc.rate) })
	}
}

func benchDelivery(b *testing.B, rate int) {
	const fanOut = 4
	n := tollgatetest.Start(b, tollgatetest.WithCallbacks(func(c *workers.Config) { c.AllowLoopback = true }))
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	var acc struct {
		ID     string `json:"id"`
		APIKey struct {
			Token string `json:"token"`
		} `json:"api_key"`
	}
	root.Do(b, "POST", "/accounts", map[string]string{"name": "bench"}).JSON(b, &acc)
	owner := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)
	rc := &benchReceiver{}
	srv := httptest.NewServer(rc)
	b.Cleanup(srv.Close)
	for i := range fanOut {
		r := owner.Do(b, "POST", "/subscriptions", map[string]any{"url": fmt.Sprintf("%s/%d", srv.URL, i), "event_types": []string{"wallet.credited"}})
		if r.Status != http.StatusCreated {
			b.Fatalf("subscribe: %d %s", r.Status, r.Body)
		}
	}
	ctx := context.Background()
	appendEvent := func(i int) {
		now := time.Now()
		ev, err := events.New(events.Meta{ID: fmt.Sprintf("evt_bench_%d_%d", now.UnixNano(), i), AggregateType: events.AggregateWallet,
			AggregateID: events.WalletID(acc.ID, "live"), AccountID: acc.ID, Environment: "live", Time: now},
			events.WalletCredited{AccountID: acc.ID, Environment: "live", TransactionID: fmt.Sprintf("txn_%d", i), Amount: 1, Reason: "bench", CreditedAt: now})
		if err != nil {
			b.Error(err)
			return
		}
		if _, err := n.Store.Append(ctx, events.Change{Event: ev}); err != nil {
			b.Error(err)
		}
	}

	rc.expect(b.N * fanOut)
	b.ResetTimer()
	start := time.Now()
	if rate == 0 {
		var wg sync.WaitGroup
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					appendEvent(i)
				}
			})
		}
		for i := range b.N {
			next <- i
		}
		close(next)
		wg.Wait()
	} else {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		for i := range b.N {
			<-tick.C
			go appendEvent(i)
		}
		tick.Stop()
	}
	select {
	case <-rc.done:
	case <-time.After(5*time.Minute + time.Duration(b.N)*time.Millisecond):
		b.Fatalf("only %d of %d deliveries arrived", len(rc.latency), b.N*fanOut)
	}
	b.StopTimer()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	lat := make([]time.Duration, 0, len(rc.latency))
	for _, d := range rc.latency {
		lat = append(lat, d)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/rc.last.Sub(start).Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
