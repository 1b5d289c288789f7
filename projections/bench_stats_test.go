package projections_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/projections"
)

var ingestRecords = flag.Int("ingest.records", 500_000, "usage records BenchmarkStatsIngest publishes and projects")

// BenchmarkStatsIngest measures the usage ingest rate into the statistics
// projection: records/s from the usage stream into Pebble, on a fresh
// database each iteration. The records spread over 10 accounts, 1000 tokens,
// 500 IPs and 20 domains over two hours.
func BenchmarkStatsIngest(b *testing.B) {
	ctx := context.Background()
	srv, err := embedded.Start(embedded.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Stop)
	nc, err := srv.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if _, err := events.EnsureUsageStream(ctx, js, 1, time.Hour); err != nil {
		b.Fatal(err)
	}
	const perBatch = 2000
	start := time.Now().Add(-2 * time.Hour).UTC()
	var last uint64
	for i := 0; i < *ingestRecords; i += perBatch {
		batch := events.UsageBatch{Version: 1, ID: fmt.Sprintf("b%d", i), Node: "bench"}
		for j := i; j < i+perBatch && j < *ingestRecords; j++ {
			verdict, cost := "VALID", int64(j%3)
			if j%17 == 0 {
				verdict, cost = "RATE_LIMITED", 0
			}
			batch.Records = append(batch.Records, events.UsageRecord{ID: fmt.Sprintf("r%d", j), Kind: events.UsageKindVerify,
				Time:      start.Add(time.Duration(j) * 7200 * time.Second / time.Duration(*ingestRecords)),
				AccountID: fmt.Sprintf("acc_%d", j%10), Environment: "live", TokenID: fmt.Sprintf("tok_%d", j%1000),
				Domain: fmt.Sprintf("d%d.example", j%20), IP: fmt.Sprintf("203.0.113.%d", j%250), Verdict: verdict, Cost: cost})
		}
		data, _ := json.Marshal(batch)
		ack, err := js.Publish(ctx, events.UsageSubject("bench"), data)
		if err != nil {
			b.Fatal(err)
		}
		last = ack.Sequence
	}
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		db, err := projections.Open(b.TempDir(), false)
		if err != nil {
			b.Fatal(err)
		}
		p, err := projections.NewProjector(db, projections.Config{Name: "usage", Stream: events.UsageStream,
			Decode: projections.DecodeUsageBatch, Logger: benchLogger}, projections.NewStats(db))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := p.CatchUp(ctx, js, nil); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		if p.Applied() != last {
			b.Fatalf("applied %d of %d", p.Applied(), last)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(*ingestRecords)*float64(b.N)/elapsed.Seconds(), "records/s")
}
