package bench

import (
	"context"
	"flag"
	"fmt"
	"testing"
)

// Go benchmarks of every hot path, on the same scenario code as
// `tollgate bench`, for benchstat comparisons between commits:
//
//	go test ./internal/bench/ -run '^$' -bench 'Baseline|Issue|Introspect|Verify' -benchtime 20000x -count 6 > new.txt
//	go test ./internal/bench/ -run '^$' -bench 'Revoke' -benchtime 200x -count 6 >> new.txt
//	go test ./internal/bench/ -run '^$' -bench 'Replay|Memory' -benchtime 1x -count 3 >> new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
//
// HTTP benchmarks send b.N requests from -bench.conns workers through one
// in-process node (ns/op is wall time per request at that concurrency;
// B/op and allocs/op hold server and load generator together).
var (
	benchConns        = flag.Int("bench.conns", 64, "concurrent requests of the HTTP benchmarks")
	benchReplayEvents = flag.Int("bench.replay-events", 1_000_000, "events BenchmarkReplay appends and rebuilds")
	benchMemoryTokens = flag.Int("bench.memory-tokens", 1_000_000, "tokens BenchmarkMemoryPerToken loads and activates")
)

func benchSession(b *testing.B, scenario string) *Session {
	b.Helper()
	s, err := Start(context.Background(), Options{Scenarios: []string{scenario}, Quiet: true, Concurrency: *benchConns,
		ReplayEvents: *benchReplayEvents, MemoryTokens: *benchMemoryTokens})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// benchHTTP prepares scenario once, warms its connections, then measures
// b.N requests in a sub-benchmark (so the node starts once).
func benchHTTP(b *testing.B, scenario string) {
	s := benchSession(b, scenario)
	ctx := context.Background()
	p, err := s.Prepare(ctx, scenario)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := p.Run(ctx, 20**benchConns); err != nil { // warm-up: connections, caches
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("conns=%d", *benchConns), func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		res, err := p.Run(ctx, b.N)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors > 0 {
			b.Fatalf("%d errors, first: %s", res.Errors, res.FirstError)
		}
		b.ReportMetric(res.Throughput, "req/s")
		b.ReportMetric(res.P50Ms, "p50-ms")
		b.ReportMetric(res.P99Ms, "p99-ms")
		if v, ok := res.Metrics["appended_per_token"]; ok {
			b.ReportMetric(v, "appends/token")
		}
	})
}

// BenchmarkBaseline: a bare Fiber JSON handler with Tollgate's fiber.Config.
func BenchmarkBaseline(b *testing.B) { benchHTTP(b, Baseline) }

// BenchmarkIssue: client_credentials issuance, client_secret_basic.
func BenchmarkIssue(b *testing.B) { benchHTTP(b, Issue) }

// BenchmarkIntrospect: RFC 7662 introspection of a live token.
func BenchmarkIntrospect(b *testing.B) { benchHTTP(b, Introspect) }

// BenchmarkVerify: POST /verify, scope and IP checks, cost 0.
func BenchmarkVerify(b *testing.B) { benchHTTP(b, Verify) }

// BenchmarkVerifyPaid: POST /verify spending one credit per call.
func BenchmarkVerifyPaid(b *testing.B) { benchHTTP(b, VerifyPaid) }

// BenchmarkRevokePropagation: b.N revocations on node A, each timed until
// node B rejects the token.
func BenchmarkRevokePropagation(b *testing.B) {
	s := benchSession(b, RevokePropagation)
	ctx := context.Background()
	p, err := s.Prepare(ctx, RevokePropagation)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("nodes=2", func(b *testing.B) {
		b.ReportAllocs()
		res, err := p.Run(ctx, b.N)
		if err != nil {
			b.Fatal(err)
		}
		if res.Errors > 0 {
			b.Fatalf("%d errors, first: %s", res.Errors, res.FirstError)
		}
		b.ReportMetric(res.P50Ms, "p50-ms")
		b.ReportMetric(res.P90Ms, "p90-ms")
		b.ReportMetric(res.P99Ms, "p99-ms")
	})
}

// BenchmarkReplay: b.N full rebuilds of every event projection from
// -bench.replay-events events (ns/op is per rebuild). Run it with a small
// -benchtime (1x to 3x): each rebuild leaves an ordered consumer on the
// stream until it times out, and the stream limits their number.
func BenchmarkReplay(b *testing.B) {
	s := benchSession(b, Replay)
	ctx := context.Background()
	p, err := s.Prepare(ctx, Replay)
	if err != nil {
		b.Fatal(err)
	}
	b.Run(fmt.Sprintf("events=%d", *benchReplayEvents), func(b *testing.B) {
		b.ReportAllocs()
		res, err := p.Run(ctx, b.N)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Throughput, "events/s")
	})
}

// BenchmarkMemoryPerToken: resident memory per active token with
// -bench.memory-tokens tokens loaded (run with -benchtime 1x).
func BenchmarkMemoryPerToken(b *testing.B) {
	s := benchSession(b, Memory)
	ctx := context.Background()
	b.Run(fmt.Sprintf("tokens=%d", *benchMemoryTokens), func(b *testing.B) {
		var res Result
		for i := 0; i < b.N; i++ {
			var err error
			if res, err = s.Measure(ctx, Memory, 0); err != nil {
				b.Fatal(err)
			}
			if res.Errors > 0 {
				b.Fatalf("%d errors, first: %s", res.Errors, res.FirstError)
			}
		}
		b.ReportMetric(res.Metrics["rss_active_bytes_per_token"], "rss-B/token")
		b.ReportMetric(res.Metrics["heap_active_bytes_per_token"], "heap-B/token")
		b.ReportMetric(res.Metrics["rss_total_bytes_per_token"], "rss-total-B/token")
	})
}
