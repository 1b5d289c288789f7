package projections_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/cpuclock"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/projections"
)

var (
	replayEvents  = flag.Int("replay.events", 1_000_000, "events BenchmarkReplay publishes and replays")
	replayProfile = flag.String("replay.cpuprofile", "", "write a CPU profile of BenchmarkReplay's timed replays only (not the publishing) to this file")
)

var benchLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// The shape of the replayed history, per account: the account, its keys,
// and some of them revoked again.
const (
	replayKeysPerAccount    = 4
	replayRevokedPerAccount = 1
	replayEventsPerAccount  = 1 + replayKeysPerAccount + replayRevokedPerAccount
)

// BenchmarkReplay measures how fast the projector rebuilds the accounts and
// tokens projections from the stream, as `tollgate rebuild` and a node with
// empty projections do. The stream is filled once; every iteration replays
// it into a fresh on-disk Pebble. The consumer-only sub-benchmark delivers
// the same stream without applying it: the ceiling any projection work
// lowers. Both run with the garbage collector set as `tollgate rebuild`
// sets it ([projections.RebuildGCPercent]). Run it with
//
//	go test ./projections/ -run '^$' -bench Replay -benchtime 1x [-replay.events N]
//
// The replay is CPU-bound: pinned to one core (taskset -c 0) it runs at
// half the rate of two.
func BenchmarkReplay(b *testing.B) {
	n := *replayEvents
	if n < 1 {
		b.Fatal("-replay.events must be positive")
	}
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
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	last, size := publishHistory(b, ctx, js, n)
	b.Logf("published %d events (%.0f MB) in %s", last, float64(size)/1e6, time.Since(start).Round(time.Millisecond))

	defer debug.SetGCPercent(debug.SetGCPercent(projections.RebuildGCPercent))
	// A sub-benchmark, so the stream above is filled once however many
	// times the harness calls the timed part.
	b.Run(fmt.Sprintf("events=%d", last), func(b *testing.B) {
		if *replayProfile != "" {
			stop := startProfile(b, *replayProfile)
			defer stop()
		}
		var replayed, cpu time.Duration
		for i := 0; i < b.N; i++ {
			took, used := replayOnce(b, ctx, js, last)
			replayed, cpu = replayed+took, cpu+used
		}
		b.ReportMetric(float64(last)*float64(b.N)/replayed.Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(last)/float64(b.N), "cpu-µs/event")
	})
	// The ceiling on this machine: the same ordered consumer delivering the
	// stream to a callback that only reads each message's sequence.
	b.Run("consumer-only", func(b *testing.B) {
		var delivered, cpu time.Duration
		for i := 0; i < b.N; i++ {
			took, used := consumeOnce(b, ctx, js, last)
			delivered, cpu = delivered+took, cpu+used
		}
		b.ReportMetric(float64(last)*float64(b.N)/delivered.Seconds(), "events/s")
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(last)/float64(b.N), "cpu-µs/event")
	})
}

// consumeOnce reads the stream up to sequence last with an ordered consumer
// configured as the projector's, applying nothing. It returns the wall
// time and the process CPU time (the embedded server's included).
func consumeOnce(b *testing.B, ctx context.Context, js jetstream.JetStream, last uint64) (time.Duration, time.Duration) {
	cpu0 := cpuclock.Of(b)
	start := time.Now()
	cons, err := js.OrderedConsumer(ctx, events.DefaultStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err == nil && meta.Sequence.Stream == last {
			close(done)
		}
	}, jetstream.PullMaxMessages(2000))
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("consumer did not reach the end of the stream")
	}
	took, used := time.Since(start), cpuclock.Of(b)-cpu0
	cc.Stop()
	return took, used
}

// replayOnce catches a fresh Pebble up to sequence last and returns how long
// CatchUp took and the process CPU time it used (the embedded server's and
// Pebble's background work included); opening and closing Pebble are not
// timed.
func replayOnce(b *testing.B, ctx context.Context, js jetstream.JetStream, last uint64) (time.Duration, time.Duration) {
	b.StopTimer()
	dir := filepath.Join(b.TempDir(), "projections")
	db, err := projections.Open(dir, false)
	if err != nil {
		b.Fatal(err)
	}
	accounts, tokens := projections.NewAccounts(db), projections.NewTokens(db)
	p, err := projections.NewProjector(db, projections.Config{Logger: benchLogger}, accounts, tokens)
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	cpu0 := cpuclock.Of(b)
	start := time.Now()
	if err := p.CatchUp(ctx, js, nil); err != nil {
		b.Fatal(err)
	}
	took, used := time.Since(start), cpuclock.Of(b)-cpu0
	b.StopTimer()
	if p.Applied() != last || p.Skipped() != 0 {
		b.Fatalf("applied %d of %d events, skipped %d", p.Applied(), last, p.Skipped())
	}
	if _, ok, err := accounts.Get(replayAccountID(0)); err != nil || !ok {
		b.Fatalf("first account missing after replay: %v", err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	return took, used
}

// startProfile profiles the CPU until the returned function is called. It
// cannot run together with go test's -cpuprofile.
func startProfile(b *testing.B, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("%v (-replay.cpuprofile and -cpuprofile exclude each other)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

func replayAccountID(i int) string { return fmt.Sprintf("acc_%016d", i) }

// publishHistory publishes n events with asynchronous publishes, the way
// the store would have written them, and returns the stream's last sequence
// and the bytes published.
func publishHistory(b *testing.B, ctx context.Context, js jetstream.JetStream, n int) (uint64, int) {
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	pub, err := jetstream.New(js.Conn(),
		jetstream.WithPublishAsyncMaxPending(8192),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			once.Do(func() { firstErr = err })
		}))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var seq, size int
	publish := func(aggType, aggID, account, env string, p events.Payload) {
		seq++
		ev, err := events.New(events.Meta{
			ID: fmt.Sprintf("evt_%022d", seq), AggregateType: aggType, AggregateID: aggID,
			AccountID: account, Environment: env, Time: t0.Add(time.Duration(seq) * time.Millisecond),
			Actor: "tok_root", CorrelationID: fmt.Sprintf("req_%020d", seq),
		}, p)
		if err != nil {
			b.Fatal(err)
		}
		data, err := events.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		size += len(data)
		msg := nats.NewMsg(events.Subject(ev))
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
		if _, err := pub.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	scopes := []string{"accounts:read", "keys:read", "keys:write", "tokens:read", "tokens:write"}
	for a := 0; a < n/replayEventsPerAccount; a++ {
		acc := replayAccountID(a)
		at := t0.Add(time.Duration(a) * time.Second)
		publish(events.AggregateAccount, acc, acc, "", events.AccountCreated{ID: acc, Name: "Account " + acc, CreatedAt: at})
		for k := 0; k < replayKeysPerAccount; k++ {
			tok := fmt.Sprintf("tok_%016d_%d", a, k)
			env := "live"
			if k%2 == 1 {
				env = "test"
			}
			expires := at.Add(90 * 24 * time.Hour)
			publish(events.AggregateToken, tok, acc, env, events.TokenCreated{
				ID: tok, AccountID: acc, Name: fmt.Sprintf("key %d", k), Scopes: scopes, Environment: env,
				Hash: fmt.Sprintf("%064x", a*replayKeysPerAccount+k), CreatedAt: at, ExpiresAt: &expires,
			})
		}
		for k := 0; k < replayRevokedPerAccount; k++ {
			tok := fmt.Sprintf("tok_%016d_%d", a, k)
			publish(events.AggregateToken, tok, acc, "live", events.TokenRevoked{
				ID: tok, AccountID: acc, Reason: "rotated", RevokedAt: at.Add(time.Hour),
			})
		}
	}
	// Fill up to exactly n with accounts that have no keys yet.
	for a := n / replayEventsPerAccount; seq < n; a++ {
		acc := replayAccountID(a)
		publish(events.AggregateAccount, acc, acc, "", events.AccountCreated{ID: acc, Name: "Account " + acc, CreatedAt: t0})
	}
	select {
	case <-pub.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatalf("publishing: %d acknowledgements outstanding", pub.PublishAsyncPending())
	}
	if failed.Load() > 0 {
		b.Fatalf("%d of %d publishes failed, first: %v", failed.Load(), seq, firstErr)
	}
	str, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if info.State.LastSeq != uint64(seq) {
		b.Fatalf("stream holds %d events, published %d", info.State.LastSeq, seq)
	}
	return info.State.LastSeq, size
}
