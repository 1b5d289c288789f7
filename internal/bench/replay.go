package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/projections"
)

// History shape per account, as in projections' BenchmarkReplay: the
// account, four keys (live and test), one of them revoked again.
const (
	replayKeys           = 4
	replayRevoked        = 1
	replayPerAccount     = 1 + replayKeys + replayRevoked
	replayPublishPending = 8192
)

// prepareReplay appends the history to a fresh stream on its own embedded
// NATS (in-process, whatever --url says: it measures this machine).
func (s *Session) prepareReplay(ctx context.Context) (func(context.Context, int) (Result, error), error) {
	dir := filepath.Join(s.dir, "replay")
	if s.dir == "" { // --url: the session made no data dir
		var err error
		if dir, err = os.MkdirTemp("", "tollgate-bench-replay-"); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { _ = os.RemoveAll(dir) })
	}
	st, err := node.OpenStorage(ctx, node.Config{DataDir: dir, NATSListen: "", Logger: s.opts.Logger})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, st.Close)
	total := s.opts.ReplayEvents
	var published atomic.Int64
	stop := s.prog.track(Replay, countStatus("appending events", published.Load, int64(total)))
	last, err := appendHistory(ctx, st.NC, total, &published)
	stop()
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, n int) (Result, error) {
		rounds := max(n, 1)
		var took time.Duration
		for i := 0; i < rounds; i++ {
			d, err := s.replayOnce(ctx, st, filepath.Join(dir, fmt.Sprintf("rebuild-%d", i)), last)
			if err != nil {
				return Result{}, err
			}
			took += d
		}
		events := int64(last) * int64(rounds)
		return Result{Unit: "events/s", Throughput: float64(events) / took.Seconds(), Count: events,
			Settings: map[string]any{"events": last, "mix": "per account: 1 account.created, 4 token.created, 1 token.revoked",
				"projections": "every event projection, on-disk Pebble, as tollgate rebuild"},
			Notes: []string{fmt.Sprintf("CatchUp of %s events into empty projections; Pebble open and close not timed", group(int64(last)))},
		}, nil
	}, nil
}

// replayOnce rebuilds every event projection into a fresh Pebble under dir
// and returns how long the catch-up took.
func (s *Session) replayOnce(ctx context.Context, st *node.Storage, dir string, last uint64) (time.Duration, error) {
	// The scenario measures `tollgate rebuild`, which runs with this GOGC.
	defer debug.SetGCPercent(debug.SetGCPercent(projections.RebuildGCPercent))
	db, err := projections.Open(dir, false)
	if err != nil {
		return 0, err
	}
	defer func() {
		_ = db.Close()
		_ = os.RemoveAll(dir)
	}()
	p, err := projections.NewProjector(db, projections.Config{Logger: s.opts.Logger}, node.EventProjections(db)...)
	if err != nil {
		return 0, err
	}
	var applied atomic.Int64
	stop := s.prog.track(Replay, countStatus("rebuilding", applied.Load, int64(last)))
	var took time.Duration
	s.profiled(Replay, func() {
		start := time.Now()
		err = p.CatchUp(ctx, st.JS, func(n, _ uint64) { applied.Store(int64(n)) })
		took = time.Since(start)
	})
	applied.Store(int64(p.Applied()))
	stop()
	if err == nil && (p.Applied() != last || p.Skipped() != 0) {
		err = fmt.Errorf("applied %d of %d events, skipped %d", p.Applied(), last, p.Skipped())
	}
	return took, err
}

// appendHistory publishes n events asynchronously, as the store would have
// written them (subject per aggregate, event id as Nats-Msg-Id), and returns
// the stream's last sequence.
func appendHistory(ctx context.Context, nc *nats.Conn, n int, published *atomic.Int64) (uint64, error) {
	pub, err := newAsyncPublisher(nc, nil)
	if err != nil {
		return 0, err
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	seq := 0
	publish := func(aggType, aggID, account, env string, p events.Payload) error {
		seq++
		ev, err := events.New(events.Meta{ID: fmt.Sprintf("evt_replay%014d", seq), AggregateType: aggType, AggregateID: aggID,
			AccountID: account, Environment: env, Time: t0.Add(time.Duration(seq) * time.Millisecond), Actor: "tok_root",
			CorrelationID: fmt.Sprintf("req_%020d", seq)}, p)
		if err != nil {
			return err
		}
		if err := pub.publish(ev); err != nil {
			return err
		}
		published.Add(1)
		return ctx.Err()
	}
	scopes := []string{"accounts:read", "keys:read", "keys:write", "tokens:read", "tokens:write"}
	for a := 0; seq < n; a++ {
		acc := fmt.Sprintf("acc_%016d", a)
		at := t0.Add(time.Duration(a) * time.Second)
		if err := publish(events.AggregateAccount, acc, acc, "", events.AccountCreated{ID: acc, Name: "Account " + acc, CreatedAt: at}); err != nil {
			return 0, err
		}
		if n-seq < replayPerAccount-1 {
			continue // fill up to exactly n with accounts that have no keys
		}
		for k := 0; k < replayKeys; k++ {
			tok, env := fmt.Sprintf("tok_%016d_%d", a, k), []string{"live", "test"}[k%2]
			expires := at.Add(90 * 24 * time.Hour)
			if err := publish(events.AggregateToken, tok, acc, env, events.TokenCreated{ID: tok, AccountID: acc, Name: fmt.Sprintf("key %d", k),
				Scopes: scopes, Environment: env, Hash: fmt.Sprintf("%064x", a*replayKeys+k), CreatedAt: at, ExpiresAt: &expires}); err != nil {
				return 0, err
			}
		}
		for k := 0; k < replayRevoked; k++ {
			tok := fmt.Sprintf("tok_%016d_%d", a, k)
			if err := publish(events.AggregateToken, tok, acc, "live", events.TokenRevoked{ID: tok, AccountID: acc, Reason: "rotated",
				RevokedAt: at.Add(time.Hour)}); err != nil {
				return 0, err
			}
		}
	}
	last, err := pub.finish(ctx)
	if err != nil {
		return 0, err
	}
	if last != uint64(seq) {
		return 0, fmt.Errorf("stream holds %d events, published %d", last, seq)
	}
	return last, nil
}
