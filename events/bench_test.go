package events_test

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
)

// Benchmarks of the JetStream event store on an embedded single-node server
// with its file store in b.TempDir(). Run them with
//
//	go test ./events/ -run '^$' -bench . -benchtime 3s

// benchEventSeq makes event ids unique across every benchmark round of the
// process; each round starts its own server, but ids must never repeat
// within the stream's duplicate window.
var benchEventSeq atomic.Uint64

var benchRunID = fmt.Sprintf("b%d", time.Now().UnixNano()%1_000_000_000)

// benchStore starts an embedded server with the event stream and returns a
// store on it. Everything stops when b ends.
func benchStore(b *testing.B) *events.JetStreamStore {
	b.Helper()
	srv, err := embedded.Start(embedded.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	nc, err := srv.Connect(b.Name())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := events.EnsureStream(context.Background(), js, events.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	store, err := events.NewJetStreamStore(nc, events.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	return store
}

var benchTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// newBenchEvent builds an event of realistic size: a token.created payload
// as the API appends it (~600 bytes encoded).
func newBenchEvent(aggType, aggID string) (events.Event, error) {
	id := fmt.Sprintf("evt_%s_%d", benchRunID, benchEventSeq.Add(1))
	expires := benchTime.Add(90 * 24 * time.Hour)
	return events.New(events.Meta{
		ID: id, AggregateType: aggType, AggregateID: aggID, AccountID: "acc_0123456789abcdefghij",
		Environment: "live", Time: benchTime, Actor: "tok_rootrootrootroot", CorrelationID: "req_0123456789abcdefghij",
	}, events.TokenCreated{
		ID: aggID, AccountID: "acc_0123456789abcdefghij", Name: "default",
		Scopes:      []string{"accounts:read", "keys:read", "keys:write", "tokens:read", "tokens:write"},
		Environment: "live", Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		CreatedAt: benchTime, ExpiresAt: &expires,
	})
}

func benchEvent(b *testing.B, aggType, aggID string) events.Event {
	b.Helper()
	ev, err := newBenchEvent(aggType, aggID)
	if err != nil {
		b.Fatal(err)
	}
	return ev
}

// reportLatency adds p50 and p99 of the recorded durations, in µs.
func reportLatency(b *testing.B, durations []time.Duration) {
	if len(durations) == 0 {
		return
	}
	slices.Sort(durations)
	at := func(q float64) float64 {
		i := int(q * float64(len(durations)-1))
		return float64(durations[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50_µs")
	b.ReportMetric(at(0.99), "p99_µs")
}

func reportEventsPerSecond(b *testing.B, n int, elapsed time.Duration) {
	if elapsed > 0 {
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	}
}

// BenchmarkAppend appends one event at a time to the same aggregate, each
// with the expected last sequence of the previous append: the optimistic
// concurrency path every command takes.
func BenchmarkAppend(b *testing.B) {
	store := benchStore(b)
	ctx := context.Background()
	aggID := fmt.Sprintf("tok_%s_seq", benchRunID)
	evs := make([]events.Event, b.N)
	for i := range evs {
		evs[i] = benchEvent(b, events.AggregateToken, aggID)
	}
	durations := make([]time.Duration, b.N)
	var last uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := store.Append(ctx, events.Change{Event: evs[i], Expect: events.ExpectVersion(last)})
		durations[i] = time.Since(start)
		if err != nil {
			b.Fatalf("append %d: %v", i, err)
		}
		last = res.Last()
	}
	b.StopTimer()
	reportLatency(b, durations)
	reportEventsPerSecond(b, b.N, b.Elapsed())
}

// BenchmarkAppendParallel appends from many goroutines at once, each on its
// own aggregate without an expectation, as independent requests do.
func BenchmarkAppendParallel(b *testing.B) {
	for _, perProc := range []int{1, 16} {
		b.Run(fmt.Sprintf("goroutines=%dxGOMAXPROCS", perProc), func(b *testing.B) {
			store := benchStore(b)
			ctx := context.Background()
			var worker atomic.Int64
			b.SetParallelism(perProc)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				aggID := fmt.Sprintf("tok_%s_par%d", benchRunID, worker.Add(1))
				for pb.Next() {
					ev, err := newBenchEvent(events.AggregateToken, aggID)
					if err == nil {
						_, err = store.Append(ctx, events.Change{Event: ev, Expect: events.ExpectAny})
					}
					if err != nil {
						b.Error(err) // Fatal may not be called from RunParallel's goroutines
						return
					}
				}
			})
			b.StopTimer()
			reportEventsPerSecond(b, b.N, b.Elapsed())
		})
	}
}

// BenchmarkAppendBatch appends 2-event atomic batches, as opening an account
// does: account.created (expecting a new aggregate) with its first key.
func BenchmarkAppendBatch(b *testing.B) {
	store := benchStore(b)
	ctx := context.Background()
	type pair struct{ account, key events.Event }
	pairs := make([]pair, b.N)
	for i := range pairs {
		n := benchEventSeq.Add(1)
		accID := fmt.Sprintf("acc_%s_%d", benchRunID, n)
		acc, err := events.New(events.Meta{
			ID: fmt.Sprintf("evt_%s_%d_a", benchRunID, n), AggregateType: events.AggregateAccount,
			AggregateID: accID, AccountID: accID, Time: benchTime,
		}, events.AccountCreated{ID: accID, Name: "Benchmark account", CreatedAt: benchTime})
		if err != nil {
			b.Fatal(err)
		}
		pairs[i] = pair{account: acc, key: benchEvent(b, events.AggregateToken, fmt.Sprintf("tok_%s_%d", benchRunID, n))}
	}
	durations := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i, p := range pairs {
		start := time.Now()
		res, err := store.Append(ctx,
			events.Change{Event: p.account, Expect: events.ExpectNew},
			events.Change{Event: p.key, Expect: events.ExpectNew})
		durations[i] = time.Since(start)
		if err != nil {
			b.Fatalf("batch %d: %v", i, err)
		}
		if len(res.Sequences) != 2 || res.Duplicate {
			b.Fatalf("batch %d: got %+v", i, res)
		}
	}
	b.StopTimer()
	reportLatency(b, durations)
	reportEventsPerSecond(b, 2*b.N, b.Elapsed())
}
