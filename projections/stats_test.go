package projections_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/projections"
)

// startUsageStream is an embedded NATS server with the usage stream.
func startUsageStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.EnsureUsageStream(testContext(t), js, 1, 0); err != nil {
		t.Fatal(err)
	}
	return js
}

// publishUsage appends one usage batch, with its summary as nodes write
// it, and returns its stream sequence.
func publishUsage(t *testing.T, js jetstream.JetStream, id string, records ...events.UsageRecord) uint64 {
	t.Helper()
	sum := events.Summarize(records)
	return publishBatch(t, js, events.UsageBatch{Version: events.UsageSchemaVersion1, ID: id, Node: "n1", Summary: &sum, Records: records})
}

// publishUsageNoSummary appends a batch as nodes wrote them before batches
// had summaries.
func publishUsageNoSummary(t *testing.T, js jetstream.JetStream, id string, records ...events.UsageRecord) uint64 {
	t.Helper()
	return publishBatch(t, js, events.UsageBatch{Version: events.UsageSchemaVersion1, ID: id, Node: "n1", Records: records})
}

func publishBatch(t *testing.T, js jetstream.JetStream, batch events.UsageBatch) uint64 {
	t.Helper()
	data, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(testContext(t), events.UsageSubject("n1"), data)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func newUsageProjector(t *testing.T, db *pebble.DB) (*projections.Projector, *projections.Stats) {
	t.Helper()
	stats := projections.NewStats(db)
	cfg := projections.Config{Name: "usage", Stream: events.UsageStream, Decode: projections.DecodeUsageBatch}
	return newProjector(t, db, cfg, stats), stats
}

// verifyRecord is a verify record of account acc_1 in live; movedTo
// changes its account and environment.
func verifyRecord(at time.Time, token, verdict string, cost int64, ip, domain string) events.UsageRecord {
	return events.UsageRecord{
		ID: fmt.Sprintf("use_%s_%d", token, at.UnixNano()), Kind: events.UsageKindVerify, Time: at,
		AccountID: "acc_1", Environment: "live", TokenID: token, Domain: domain, IP: ip,
		Status: 200, Verdict: verdict, Cost: cost,
	}
}

func movedTo(r events.UsageRecord, account, env string) events.UsageRecord {
	r.AccountID, r.Environment = account, env
	return r
}

func jan(day, hour, minute, second int) time.Time {
	return time.Date(2025, 1, day, hour, minute, second, 0, time.UTC)
}

func bucket(t time.Time, requests, paid, errs int64) projections.StatsPoint {
	return projections.StatsPoint{T: t, Requests: requests, PaidRequests: paid, Errors: errs}
}

// statsWorkload crosses minute, hour and day boundaries, mixes tokens,
// environments and accounts, and holds records that must not count.
func statsWorkload(t *testing.T, js jetstream.JetStream) (last uint64) {
	return statsWorkloadWith(t, js, publishUsage)
}

func statsWorkloadWith(t *testing.T, js jetstream.JetStream,
	publishUsage func(*testing.T, jetstream.JetStream, string, ...events.UsageRecord) uint64) (last uint64) {
	publishUsage(t, js, "b1",
		verifyRecord(jan(1, 23, 59, 10), "tok_a", "VALID", 0, "1.1.1.1", "dns"),
		verifyRecord(jan(1, 23, 59, 50), "tok_a", "VALID", 5, "1.1.1.1", "dns"),
		// Tollgate's own API requests are not verify usage.
		events.UsageRecord{ID: "use_api", Kind: events.UsageKindAPI, Time: jan(1, 23, 59, 55), AccountID: "acc_1",
			Environment: "live", TokenID: "tok_a", IP: "8.8.8.8", Domain: "dns", Status: 200, Cost: 100},
		movedTo(verifyRecord(jan(1, 23, 59, 20), "tok_t", "VALID", 7, "9.9.9.9", "dns"), "acc_1", "test"),
	)
	publishUsage(t, js, "b2",
		verifyRecord(jan(2, 0, 0, 5), "tok_b", "INSUFFICIENT_SCOPE", 4, "2.2.2.2", "vps"),
		verifyRecord(jan(2, 0, 30, 0), "tok_b", "VALID", 3, "1.1.1.1", "vps"),
		// A verdict without a token counts for the account only.
		verifyRecord(jan(2, 0, 0, 40), "", "NOT_FOUND", 0, "4.4.4.4", "dns"),
		movedTo(verifyRecord(jan(2, 0, 0, 7), "tok_z", "VALID", 1, "1.1.1.1", "dns"), "acc_2", "live"),
	)
	return publishUsage(t, js, "b3",
		verifyRecord(jan(2, 1, 0, 0), "tok_a", "FORBIDDEN_IP", 0, "3.3.3.3", ""),
		verifyRecord(jan(2, 1, 0, 0), "tok_a", "VALID", 2, "", "dns"),
	)
}

type statsCase struct {
	name string
	q    projections.StatsQuery
	want projections.StatsResult
}

func statsCases() []statsCase {
	all := func(account, env, token, granularity string) projections.StatsQuery {
		return projections.StatsQuery{AccountID: account, Environment: env, TokenID: token,
			From: jan(1, 0, 0, 0), To: jan(3, 0, 0, 0), Granularity: granularity}
	}
	ip := func(ip string, n int64) projections.StatsIP { return projections.StatsIP{IP: ip, Requests: n} }
	dom := func(d string, n, paid, errs int64) projections.StatsDomain {
		return projections.StatsDomain{Domain: d, Requests: n, PaidRequests: paid, Errors: errs}
	}
	account := projections.StatsResult{
		Totals:  projections.StatsTotals{Requests: 7, PaidRequests: 3, Errors: 3, CreditsSpent: 10},
		IPs:     []projections.StatsIP{ip("1.1.1.1", 3), ip("2.2.2.2", 1), ip("3.3.3.3", 1), ip("4.4.4.4", 1)},
		Domains: []projections.StatsDomain{dom("dns", 4, 2, 1), dom("vps", 2, 1, 1)},
	}
	tokA := projections.StatsResult{
		Totals:  projections.StatsTotals{Requests: 4, PaidRequests: 2, Errors: 1, CreditsSpent: 7},
		IPs:     []projections.StatsIP{ip("1.1.1.1", 2), ip("3.3.3.3", 1)},
		Domains: []projections.StatsDomain{dom("dns", 3, 2, 0)},
	}
	tokB := projections.StatsResult{
		Totals:  projections.StatsTotals{Requests: 2, PaidRequests: 1, Errors: 1, CreditsSpent: 3},
		IPs:     []projections.StatsIP{ip("1.1.1.1", 1), ip("2.2.2.2", 1)},
		Domains: []projections.StatsDomain{dom("vps", 2, 1, 1)},
	}
	sandbox := projections.StatsResult{
		Totals:  projections.StatsTotals{Requests: 1, PaidRequests: 1, CreditsSpent: 7},
		IPs:     []projections.StatsIP{ip("9.9.9.9", 1)},
		Domains: []projections.StatsDomain{dom("dns", 1, 1, 0)},
		Series:  []projections.StatsPoint{bucket(jan(1, 0, 0, 0), 1, 1, 0)},
	}
	empty := projections.StatsResult{IPs: []projections.StatsIP{}, Domains: []projections.StatsDomain{}, Series: []projections.StatsPoint{}}
	with := func(r projections.StatsResult, series ...projections.StatsPoint) projections.StatsResult {
		r.Series = append([]projections.StatsPoint{}, series...)
		return r
	}
	ranged := func(q projections.StatsQuery, from, to time.Time) projections.StatsQuery {
		q.From, q.To = from, to
		return q
	}
	return []statsCase{
		{"account by minute", all("acc_1", "live", "", "minute"), with(account,
			bucket(jan(1, 23, 59, 0), 2, 1, 0), bucket(jan(2, 0, 0, 0), 2, 0, 2),
			bucket(jan(2, 0, 30, 0), 1, 1, 0), bucket(jan(2, 1, 0, 0), 2, 1, 1))},
		{"account by hour", all("acc_1", "live", "", "hour"), with(account,
			bucket(jan(1, 23, 0, 0), 2, 1, 0), bucket(jan(2, 0, 0, 0), 3, 1, 2), bucket(jan(2, 1, 0, 0), 2, 1, 1))},
		{"account by day", all("acc_1", "live", "", "day"), with(account,
			bucket(jan(1, 0, 0, 0), 2, 1, 0), bucket(jan(2, 0, 0, 0), 5, 2, 3))},
		{"token a by minute", all("acc_1", "live", "tok_a", "minute"), with(tokA,
			bucket(jan(1, 23, 59, 0), 2, 1, 0), bucket(jan(2, 1, 0, 0), 2, 1, 1))},
		{"token a by hour", all("acc_1", "live", "tok_a", "hour"), with(tokA,
			bucket(jan(1, 23, 0, 0), 2, 1, 0), bucket(jan(2, 1, 0, 0), 2, 1, 1))},
		{"token a by day", all("acc_1", "live", "tok_a", "day"), with(tokA,
			bucket(jan(1, 0, 0, 0), 2, 1, 0), bucket(jan(2, 0, 0, 0), 2, 1, 1))},
		{"token b by minute", all("acc_1", "live", "tok_b", "minute"), with(tokB,
			bucket(jan(2, 0, 0, 0), 1, 0, 1), bucket(jan(2, 0, 30, 0), 1, 1, 0))},
		{"token b by hour", all("acc_1", "live", "tok_b", "hour"), with(tokB, bucket(jan(2, 0, 0, 0), 2, 1, 1))},
		{"token b by day", all("acc_1", "live", "tok_b", "day"), with(tokB, bucket(jan(2, 0, 0, 0), 2, 1, 1))},
		{"sandbox is separate", all("acc_1", "test", "", "day"), sandbox},
		{"sandbox token", all("acc_1", "test", "tok_t", "day"), sandbox},
		{"live token not in sandbox", all("acc_1", "test", "tok_a", "day"), empty},
		{"other account", all("acc_2", "live", "", "hour"), projections.StatsResult{
			Totals:  projections.StatsTotals{Requests: 1, PaidRequests: 1, CreditsSpent: 1},
			IPs:     []projections.StatsIP{ip("1.1.1.1", 1)},
			Domains: []projections.StatsDomain{dom("dns", 1, 1, 0)},
			Series:  []projections.StatsPoint{bucket(jan(2, 0, 0, 0), 1, 1, 0)},
		}},
		{"other account's token", all("acc_2", "live", "tok_a", "day"), empty},
		{"unknown account", all("acc_9", "live", "", "minute"), empty},
		// The bucket holding from counts; one starting at to does not.
		{"range by minute", ranged(all("acc_1", "live", "", "minute"), jan(2, 0, 0, 30), jan(2, 1, 0, 0)), with(account,
			bucket(jan(2, 0, 0, 0), 2, 0, 2), bucket(jan(2, 0, 30, 0), 1, 1, 0))},
		{"range ending just after a bucket starts", ranged(all("acc_1", "live", "", "hour"), jan(2, 0, 10, 0),
			jan(2, 1, 0, 0).Add(time.Millisecond)), with(account,
			bucket(jan(2, 0, 0, 0), 3, 1, 2), bucket(jan(2, 1, 0, 0), 2, 1, 1))},
		{"range without usage", ranged(all("acc_1", "live", "", "minute"), jan(2, 0, 1, 0), jan(2, 0, 30, 0)), with(account)},
	}
}

func checkStats(t *testing.T, stats *projections.Stats, cases []statsCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := stats.Query(tc.q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, statsJSON(got), statsJSON(tc.want))
		}
	}
}

func statsJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

func TestStatsProjection(t *testing.T) {
	t.Parallel()
	js := startUsageStream(t)
	db := openMem(t)
	p, stats := newUsageProjector(t, db)
	run(t, p, js)

	waitFor(t, p, statsWorkload(t, js))
	if p.Skipped() != 0 {
		t.Fatalf("Skipped = %d", p.Skipped())
	}
	checkStats(t, stats, statsCases())
}

// Batches written before they carried a summary give the same statistics.
func TestStatsFromBatchesWithoutSummary(t *testing.T) {
	t.Parallel()
	js := startUsageStream(t)
	db := openMem(t)
	p, stats := newUsageProjector(t, db)
	run(t, p, js)
	waitFor(t, p, statsWorkloadWith(t, js, publishUsageNoSummary))
	if p.Skipped() != 0 {
		t.Fatalf("Skipped = %d", p.Skipped())
	}
	checkStats(t, stats, statsCases())
}

// The summary is read without decoding the records that follow it.
func TestStatsReadSummaryOnly(t *testing.T) {
	t.Parallel()
	js := startUsageStream(t)
	db := openMem(t)
	p, stats := newUsageProjector(t, db)
	run(t, p, js)
	rec := verifyRecord(jan(1, 12, 0, 0), "tok_a", "VALID", 2, "5.5.5.5", "dns")
	sum := events.Summarize([]events.UsageRecord{rec})
	raw, err := json.Marshal(events.UsageBatch{Version: events.UsageSchemaVersion1, ID: "s1", Node: "n1", Summary: &sum})
	if err != nil {
		t.Fatal(err)
	}
	// Records that could not be decoded: only the summary may be read.
	raw = append(raw[:len(raw)-len(`,"records":null}`)], `,"records":[{"kind":garbage}]}`...)
	ack, err := js.Publish(testContext(t), events.UsageSubject("n1"), raw)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, ack.Sequence)
	res, err := stats.Query(projections.StatsQuery{AccountID: "acc_1", Environment: "live", From: jan(1, 0, 0, 0), To: jan(2, 0, 0, 0), Granularity: projections.GranularityHour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Totals.Requests != 1 || res.Totals.CreditsSpent != 2 || p.Skipped() != 0 {
		t.Fatalf("totals %+v, skipped %d (%s)", res.Totals, p.Skipped(), raw)
	}
}

func TestStatsRebuildIsIdentical(t *testing.T) {
	t.Parallel()
	js := startUsageStream(t)
	db := openMem(t)
	p, stats := newUsageProjector(t, db)
	stop := run(t, p, js)
	// One batch at a time, then the rest while replaying together: the
	// result must not depend on how batches are grouped.
	waitFor(t, p, publishUsage(t, js, "b0", verifyRecord(jan(1, 12, 0, 0), "tok_a", "VALID", 1, "5.5.5.5", "dns")))
	last := statsWorkload(t, js)
	waitFor(t, p, last)
	stop()

	cases := statsCases()
	before := make([]projections.StatsResult, len(cases))
	for i, tc := range cases {
		var err error
		if before[i], err = stats.Query(tc.q); err != nil {
			t.Fatal(err)
		}
	}
	keys := contents(t, db, "st/", false)

	if err := p.Reset(); err != nil {
		t.Fatal(err)
	}
	if left := contents(t, db, "st/", false); len(left) != 0 {
		t.Fatalf("%d stats keys left after Reset", len(left))
	}
	if err := p.CatchUp(testContext(t), js, nil); err != nil {
		t.Fatal(err)
	}
	if p.Applied() != last {
		t.Fatalf("Applied = %d after rebuild, want %d", p.Applied(), last)
	}
	for i, tc := range cases {
		got, err := stats.Query(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, before[i]) {
			t.Errorf("%s after rebuild:\n got %s\nwant %s", tc.name, statsJSON(got), statsJSON(before[i]))
		}
	}
	if rebuilt := contents(t, db, "st/", false); !maps.Equal(rebuilt, keys) {
		t.Errorf("rebuild wrote %d stats keys, before it %d; contents differ", len(rebuilt), len(keys))
	}
}

func TestStatsCapsIPsAndDomains(t *testing.T) {
	t.Parallel()
	js := startUsageStream(t)
	db := openMem(t)
	p, stats := newUsageProjector(t, db)
	run(t, p, js)

	// IP i is seen i%5+1 times, each time on its own domain.
	const distinct = 2100
	type seen struct {
		ip string
		n  int64
	}
	var want []seen
	var batch []events.UsageRecord
	var last uint64
	for i := range distinct {
		ip := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		want = append(want, seen{ip, int64(i%5 + 1)})
		for range i%5 + 1 {
			r := verifyRecord(jan(2, 0, 0, 0), "tok_a", "VALID", 0, ip, fmt.Sprintf("d%04d.example", i))
			batch = append(batch, movedTo(r, "acc_many", "live"))
		}
		if len(batch) >= 1000 || i == distinct-1 {
			last = publishUsage(t, js, fmt.Sprintf("b%d", i), batch...)
			batch = batch[:0]
		}
	}
	waitFor(t, p, last)

	got, err := stats.Query(projections.StatsQuery{AccountID: "acc_many", Environment: "live",
		From: jan(2, 0, 0, 0), To: jan(3, 0, 0, 0), Granularity: "day"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b seen) int {
		if a.n != b.n {
			return int(b.n - a.n)
		}
		return strings.Compare(a.ip, b.ip)
	})
	if len(got.IPs) != projections.MaxStatsItems || len(got.Domains) != projections.MaxStatsItems {
		t.Fatalf("%d IPs and %d domains, want %d each", len(got.IPs), len(got.Domains), projections.MaxStatsItems)
	}
	for i, g := range got.IPs {
		if g.IP != want[i].ip || g.Requests != want[i].n {
			t.Fatalf("IP %d is %+v, want %+v", i, g, want[i])
		}
	}
	for i, d := range got.Domains {
		if name := fmt.Sprintf("d%04d.example", i); d.Domain != name {
			t.Fatalf("domain %d is %s, want %s", i, d.Domain, name)
		}
	}
	if got.Totals.Requests != 3*distinct || len(got.Series) != 1 || got.Series[0].Requests != 3*distinct {
		t.Fatalf("totals %+v, series %+v; want %d requests", got.Totals, got.Series, 3*distinct)
	}
}

func TestStatsQueryRejectsBadInput(t *testing.T) {
	t.Parallel()
	stats := projections.NewStats(openMem(t))
	base := projections.StatsQuery{AccountID: "acc_1", Environment: "live", From: jan(1, 0, 0, 0), To: jan(2, 0, 0, 0), Granularity: "hour"}
	for name, change := range map[string]func(*projections.StatsQuery){
		"granularity": func(q *projections.StatsQuery) { q.Granularity = "week" },
		"empty range": func(q *projections.StatsQuery) { q.To = q.From },
		"reversed":    func(q *projections.StatsQuery) { q.From, q.To = q.To, q.From },
	} {
		q := base
		change(&q)
		if _, err := stats.Query(q); !errors.Is(err, projections.ErrInvalidStatsQuery) {
			t.Errorf("%s: err = %v, want ErrInvalidStatsQuery", name, err)
		}
	}
	for _, g := range []string{"minute", "hour", "day"} {
		q := base
		q.Granularity = g
		if _, err := stats.Query(q); err != nil {
			t.Errorf("granularity %s: %v", g, err)
		}
	}
}
