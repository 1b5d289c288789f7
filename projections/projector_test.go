package projections_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/projections"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventLog is an embedded NATS server with the event stream.
type eventLog struct {
	js    jetstream.JetStream
	store *events.JetStreamStore
	mu    sync.Mutex
	n     int
}

func startEventLog(t *testing.T) *eventLog {
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
	if _, err := events.EnsureStream(testContext(t), js, events.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	store, err := events.NewJetStreamStore(nc, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return &eventLog{js: js, store: store}
}

// append stores one event and returns its stream sequence.
func (l *eventLog) append(t *testing.T, aggType, aggID, account string, p events.Payload) uint64 {
	t.Helper()
	l.mu.Lock()
	l.n++
	id := fmt.Sprintf("evt_%d", l.n)
	l.mu.Unlock()
	ev, err := events.New(events.Meta{ID: id, AggregateType: aggType, AggregateID: aggID, AccountID: account, Time: t0}, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.store.Append(testContext(t), events.Change{Event: ev})
	if err != nil {
		t.Fatal(err)
	}
	return res.Last()
}

func (l *eventLog) account(t *testing.T, id string) uint64 {
	return l.append(t, events.AggregateAccount, id, id, events.AccountCreated{ID: id, Name: "Account " + id, CreatedAt: t0})
}

func (l *eventLog) token(t *testing.T, id, account, env string) uint64 {
	return l.append(t, events.AggregateToken, id, account, events.TokenCreated{
		ID: id, AccountID: account, Name: "token " + id, Scopes: []string{"tokens:read"},
		Environment: env, Hash: "h" + id, CreatedAt: t0, ExpiresAt: ptr(t0.Add(time.Hour)),
	})
}

func (l *eventLog) revoke(t *testing.T, id, account string) uint64 {
	return l.append(t, events.AggregateToken, id, account, events.TokenRevoked{ID: id, AccountID: account, RevokedAt: t0.Add(time.Minute)})
}

func ptr[T any](v T) *T { return &v }

func openMem(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := projections.Open("", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newProjector(t *testing.T, db *pebble.DB, cfg projections.Config, projs ...projections.Projection) *projections.Projector {
	t.Helper()
	cfg.Logger = quiet
	p, err := projections.NewProjector(db, cfg, projs...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run starts p.Run and returns a function that stops it and waits for it;
// the function is also called at cleanup.
func run(t *testing.T, p *projections.Projector, js jetstream.JetStream) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, js) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, p *projections.Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitFor(ctx, seq); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or 10 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// contents returns every key and value under prefix ("" for all), leaving
// out the projector's own "m/" keys when skipMeta is set.
func contents(t *testing.T, db *pebble.DB, prefix string, skipMeta bool) map[string]string {
	t.Helper()
	opts := &pebble.IterOptions{}
	if prefix != "" {
		opts.LowerBound, opts.UpperBound = []byte(prefix), []byte(prefix+"\xff")
	}
	it, err := db.NewIter(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		if skipMeta && len(it.Key()) >= 2 && string(it.Key()[:2]) == "m/" {
			continue
		}
		out[string(it.Key())] = string(it.Value())
	}
	if err := it.Error(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProjectorAppliesAccountsAndTokens(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	accounts, tokens := projections.NewAccounts(db), projections.NewTokens(db)
	p := newProjector(t, db, projections.Config{}, accounts, tokens)
	run(t, p, log.js)

	accSeq := log.account(t, "acc_1")
	tokSeq := log.token(t, "tok_1", "acc_1", "live")
	waitFor(t, p, tokSeq)
	eventually(t, "caught up", p.CaughtUp)

	acc, ok, err := accounts.Get("acc_1")
	if err != nil || !ok {
		t.Fatalf("Accounts.Get = %v, %v", ok, err)
	}
	if acc.ID != "acc_1" || acc.Name != "Account acc_1" || !acc.CreatedAt.Equal(t0) || acc.Version != accSeq {
		t.Fatalf("account %+v, want version %d", acc, accSeq)
	}
	tok, ok, err := tokens.Get("tok_1")
	if err != nil || !ok {
		t.Fatalf("Tokens.Get = %v, %v", ok, err)
	}
	if tok.AccountID != "acc_1" || tok.Environment != "live" || tok.Hash != "htok_1" || !slices.Equal(tok.Scopes, []string{"tokens:read"}) ||
		tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) || tok.RevokedAt != nil || tok.Seq != tokSeq || tok.Version != tokSeq {
		t.Fatalf("token %+v, want seq and version %d", tok, tokSeq)
	}
	if _, ok, err := tokens.Get("tok_missing"); ok || err != nil {
		t.Fatalf("Get(tok_missing) = %v, %v; want not found", ok, err)
	}

	revSeq := log.revoke(t, "tok_1", "acc_1")
	waitFor(t, p, revSeq)
	tok, _, err = tokens.Get("tok_1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.RevokedAt == nil || !tok.RevokedAt.Equal(t0.Add(time.Minute)) || tok.Version != revSeq || tok.Seq != tokSeq {
		t.Fatalf("revoked token %+v, want version %d and seq %d", tok, revSeq, tokSeq)
	}
	if p.Applied() != revSeq || p.Skipped() != 0 {
		t.Fatalf("Applied = %d, Skipped = %d; want %d, 0", p.Applied(), p.Skipped(), revSeq)
	}
}

// badToken has the type of token.created but a body that does not decode.
type badToken struct {
	Scopes string `json:"scopes"`
}

func (badToken) EventType() string { return events.TypeTokenCreated }
func (badToken) EventVersion() int { return 1 }

func TestProjectorSkipsUndecodableEvent(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	tokens := projections.NewTokens(db)
	p := newProjector(t, db, projections.Config{}, tokens)
	run(t, p, log.js)

	log.append(t, events.AggregateToken, "tok_bad", "acc_1", badToken{Scopes: "x"})
	seq := log.token(t, "tok_good", "acc_1", "live")
	waitFor(t, p, seq)
	if p.Skipped() != 1 {
		t.Fatalf("Skipped = %d, want 1", p.Skipped())
	}
	if _, ok, _ := tokens.Get("tok_good"); !ok {
		t.Fatal("event after the bad one was not applied")
	}
}

func TestListByAccount(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	tokens := projections.NewTokens(db)
	p := newProjector(t, db, projections.Config{}, tokens)

	var want []string
	var last uint64
	for i := range 25 {
		id := fmt.Sprintf("tok_a_%02d", i)
		want = append(want, id)
		last = log.token(t, id, "acc_a", "live")
		switch i % 5 {
		case 1:
			last = log.token(t, fmt.Sprintf("tok_a_test_%02d", i), "acc_a", "test")
		case 3:
			last = log.token(t, fmt.Sprintf("tok_b_%02d", i), "acc_b", "live")
		}
	}
	if err := p.CatchUp(testContext(t), log.js, nil); err != nil {
		t.Fatal(err)
	}
	if p.Applied() != last {
		t.Fatalf("Applied = %d after CatchUp, want %d", p.Applied(), last)
	}

	var got []string
	var sizes []int
	cursor := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		res, err := tokens.ListByAccount("acc_a", "live", cursor, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(res.Items))
		for _, r := range res.Items {
			if r.AccountID != "acc_a" || r.Environment != "live" {
				t.Fatalf("listed %+v", r)
			}
			got = append(got, r.ID)
		}
		if res.NextCursor == "" {
			break
		}
		cursor = res.NextCursor
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", sizes)
	}
	if !slices.Equal(got, want) {
		t.Errorf("listed %v\nwant %v", got, want)
	}

	for _, tt := range []struct{ account, env string }{{"acc_a", "test"}, {"acc_b", "live"}, {"acc_b", "test"}, {"acc_c", "live"}} {
		res, err := tokens.ListByAccount(tt.account, tt.env, "", 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Items {
			if r.AccountID != tt.account || r.Environment != tt.env {
				t.Errorf("%s/%s listed %+v", tt.account, tt.env, r)
			}
		}
		wantLen := map[string]int{"acc_a/test": 5, "acc_b/live": 5}[tt.account+"/"+tt.env]
		if len(res.Items) != wantLen || res.NextCursor != "" {
			t.Errorf("%s/%s: %d items, cursor %q; want %d, none", tt.account, tt.env, len(res.Items), res.NextCursor, wantLen)
		}
	}

	even := func(r projections.TokenRecord) bool { return r.Seq%2 == 0 }
	res, err := tokens.ListByAccount("acc_a", "live", "", 100, even)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Items {
		if r.Seq%2 != 0 {
			t.Errorf("keep filter let %+v through", r)
		}
	}

	for _, bad := range []string{"%%%", "not base64!", "AAAA", "AAAAAAAAAAAAAAAA"} {
		if _, err := tokens.ListByAccount("acc_a", "live", bad, 10, nil); !errors.Is(err, projections.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", bad, err)
		}
	}
}

func TestProjectorResumesAfterRestart(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	dir := filepath.Join(t.TempDir(), "pebble")
	cfg := projections.Config{BatchSize: 7}

	appendSome := func(from, to int) (last uint64) {
		for i := from; i < to; i++ {
			acc := fmt.Sprintf("acc_%d", i%3)
			if i < 3 {
				last = log.account(t, acc)
				continue
			}
			env := []string{"live", "test"}[i%2]
			last = log.token(t, fmt.Sprintf("tok_%02d", i), acc, env)
			if i%4 == 0 {
				last = log.revoke(t, fmt.Sprintf("tok_%02d", i-1), fmt.Sprintf("acc_%d", (i-1)%3))
			}
		}
		return last
	}

	first := appendSome(0, 20)
	db, err := projections.Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	p := newProjector(t, db, cfg, projections.NewAccounts(db), projections.NewTokens(db), counter{})
	stop := run(t, p, log.js)
	waitFor(t, p, first)
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	final := appendSome(20, 45)
	db, err = projections.Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	accounts, tokens := projections.NewAccounts(db), projections.NewTokens(db)
	p = newProjector(t, db, cfg, accounts, tokens, counter{})
	stored := contents(t, db, "m/pos/events", false)["m/pos/events"]
	if p.Applied() != first || stored != strconv.FormatUint(first, 10) {
		t.Fatalf("reopened: Applied = %d, stored position %q; want %d", p.Applied(), stored, first)
	}
	run(t, p, log.js)
	waitFor(t, p, final)
	for i := 3; i < 45; i++ {
		if _, ok, err := tokens.Get(fmt.Sprintf("tok_%02d", i)); !ok || err != nil {
			t.Errorf("tok_%02d missing after restart (%v)", i, err)
		}
	}
	if _, ok, _ := accounts.Get("acc_2"); !ok {
		t.Error("acc_2 missing after restart")
	}

	fresh := openMem(t)
	rebuilt := newProjector(t, fresh, projections.Config{}, projections.NewAccounts(fresh), projections.NewTokens(fresh), counter{})
	if err := rebuilt.CatchUp(testContext(t), log.js, nil); err != nil {
		t.Fatal(err)
	}
	got, want := contents(t, db, "", true), contents(t, fresh, "", true)
	if n := want["cnt/n"]; n != strconv.FormatUint(final, 10) {
		t.Fatalf("rebuild counted %s events, want %d", n, final)
	}
	if len(want) == 0 || !maps.Equal(got, want) {
		t.Fatalf("resumed projection differs from a rebuild:\nresumed %d keys, %s events counted\nrebuilt %d keys, %s events counted",
			len(got), got["cnt/n"], len(want), want["cnt/n"])
	}
}

// counter counts the events it has applied, so applying one twice or
// skipping one changes its content.
type counter struct{}

func (counter) Name() string       { return "counter" }
func (counter) Version() int       { return 1 }
func (counter) Prefixes() []string { return []string{"cnt/"} }
func (counter) Apply(tx *projections.Tx, ev events.Event) error {
	raw, _, err := tx.Get([]byte("cnt/n"))
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(string(raw))
	return tx.Set([]byte("cnt/n"), []byte(strconv.Itoa(n+1)))
}

// probe records every event it sees under "probe/", tagged with its version.
type probe struct{ version int }

func (*probe) Name() string       { return "probe" }
func (p *probe) Version() int     { return p.version }
func (*probe) Prefixes() []string { return []string{"probe/"} }
func (p *probe) Apply(tx *projections.Tx, ev events.Event) error {
	return tx.Set([]byte("probe/"+ev.ID), []byte(fmt.Sprintf("v%d@%d", p.version, ev.Sequence)))
}

func TestProjectorRebuildsOnVersionChange(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	var last uint64
	for i := range 12 {
		last = log.account(t, fmt.Sprintf("acc_%d", i))
	}

	p := newProjector(t, db, projections.Config{}, &probe{version: 1}, projections.NewAccounts(db))
	stop := run(t, p, log.js)
	waitFor(t, p, last)
	stop()
	if n := len(contents(t, db, "probe/", false)); n != 12 {
		t.Fatalf("%d probe keys, want 12", n)
	}
	if err := db.Set([]byte("probe/stray"), []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}

	// Same version: nothing is dropped.
	p = newProjector(t, db, projections.Config{}, &probe{version: 1}, projections.NewAccounts(db))
	if p.Applied() != last || len(contents(t, db, "probe/", false)) != 13 {
		t.Fatalf("same version: Applied = %d, want %d and data kept", p.Applied(), last)
	}

	p = newProjector(t, db, projections.Config{}, &probe{version: 2}, projections.NewAccounts(db))
	if p.Applied() != 0 {
		t.Fatalf("after version change Applied = %d, want 0", p.Applied())
	}
	for _, prefix := range []string{"probe/", "acc/", "m/pos/"} {
		if left := contents(t, db, prefix, false); len(left) != 0 {
			t.Fatalf("after version change %d keys left under %s", len(left), prefix)
		}
	}
	if v := contents(t, db, "m/ver/probe", false)["m/ver/probe"]; v != "2" {
		t.Fatalf("stored version %q, want 2", v)
	}

	run(t, p, log.js)
	waitFor(t, p, last)
	got := contents(t, db, "probe/", false)
	if len(got) != 12 {
		t.Fatalf("after replay %d probe keys, want 12", len(got))
	}
	for k, v := range got {
		if v[:3] != "v2@" {
			t.Errorf("%s = %s after replay, want written by version 2", k, v)
		}
	}
}

func TestCatchUpReportsProgress(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	var last uint64
	for i := range 50 {
		last = log.account(t, fmt.Sprintf("acc_%d", i))
	}

	p := newProjector(t, db, projections.Config{BatchSize: 8}, projections.NewAccounts(db))
	type call struct{ applied, last uint64 }
	var calls []call
	err := p.CatchUp(testContext(t), log.js, func(applied, last uint64) { calls = append(calls, call{applied, last}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) < (50+7)/8 {
		t.Fatalf("%d progress calls for 50 events in batches of 8: %v", len(calls), calls)
	}
	for i, c := range calls {
		if i > 0 && c.applied <= calls[i-1].applied {
			t.Fatalf("progress not increasing: %v", calls)
		}
		// Nothing is appended meanwhile, so every call knows the same end.
		if c.last != last {
			t.Fatalf("progress call %d reports last %d, want %d: %v", i, c.last, last, calls)
		}
	}
	end := calls[len(calls)-1]
	if end.applied != last || end.last != last || p.Applied() != last {
		t.Fatalf("progress ended at %+v, Applied = %d; want %d", end, p.Applied(), last)
	}

	calls = nil
	if err := p.CatchUp(testContext(t), log.js, func(a, l uint64) { calls = append(calls, call{a, l}) }); err != nil || len(calls) != 0 {
		t.Fatalf("CatchUp when current: err = %v, progress %v", err, calls)
	}
}

func TestWaitForCancelled(t *testing.T) {
	t.Parallel()
	db := openMem(t)
	p := newProjector(t, db, projections.Config{}, projections.NewAccounts(db))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitFor(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor(cancelled) = %v, want context.Canceled", err)
	}
	if err := p.WaitFor(ctx, 0); err != nil {
		t.Fatalf("WaitFor(0) = %v, want nil: nothing to wait for", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(deadline) = %v, want context.DeadlineExceeded", err)
	}
}
