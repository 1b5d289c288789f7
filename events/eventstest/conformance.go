// Package eventstest holds the conformance suite every [events.Store]
// backend must pass.
package eventstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
)

// NewStore returns a store. Stores may share one event log: the suite uses
// aggregate ids unique to each run.
type NewStore func(t *testing.T) events.Store

type probe struct {
	Note string `json:"note"`
}

func (probe) EventType() string { return "probe.noted" }
func (probe) EventVersion() int { return 1 }

var counter atomic.Uint64

var runID = fmt.Sprintf("r%d", time.Now().UnixNano())

func event(t *testing.T, aggType, aggID, note string) events.Event {
	t.Helper()
	aggID = uniq(t, aggID)
	ev, err := events.New(events.Meta{
		ID:            fmt.Sprintf("evt_%s_%d", runID, counter.Add(1)),
		AggregateType: aggType,
		AggregateID:   aggID,
		AccountID:     "acc_test",
		Time:          time.Now(),
	}, probe{Note: note})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// uniq makes an aggregate id unique to this subtest.
func uniq(t *testing.T, id string) string {
	sum := 0
	for _, c := range t.Name() {
		sum = sum*31 + int(c)
		sum &= 0xffffff
	}
	return fmt.Sprintf("%s-%x-%s", runID, sum, id)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// Run runs the conformance suite.
func Run(t *testing.T, newStore NewStore) {
	t.Run("AppendThenLoad", func(t *testing.T) {
		s := newStore(t)
		var seqs []uint64
		for i := 0; i < 3; i++ {
			res, err := s.Append(ctx(t), events.Change{Event: event(t, "probe", "p1", fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, res.Last())
		}
		if _, err := s.Append(ctx(t), events.Change{Event: event(t, "probe", "p10", "other")}); err != nil {
			t.Fatal(err)
		}
		hist, err := s.Load(ctx(t), "probe", uniq(t, "p1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 3 {
			t.Fatalf("history has %d events, want 3", len(hist))
		}
		for i, ev := range hist {
			p, err := events.Decode[probe](ev)
			if err != nil {
				t.Fatal(err)
			}
			if p.Note != fmt.Sprint(i) || ev.Sequence != seqs[i] {
				t.Fatalf("event %d: note %q seq %d, want %q seq %d", i, p.Note, ev.Sequence, fmt.Sprint(i), seqs[i])
			}
		}
		last, err := s.LastSequence(ctx(t), "probe", uniq(t, "p1"))
		if err != nil || last != seqs[2] {
			t.Fatalf("LastSequence = %d, %v; want %d", last, err, seqs[2])
		}
	})

	t.Run("EmptyAggregate", func(t *testing.T) {
		s := newStore(t)
		hist, err := s.Load(ctx(t), "probe", uniq(t, "missing"))
		if err != nil || len(hist) != 0 {
			t.Fatalf("Load(missing) = %v, %v", hist, err)
		}
		last, err := s.LastSequence(ctx(t), "probe", uniq(t, "missing"))
		if err != nil || last != 0 {
			t.Fatalf("LastSequence(missing) = %d, %v", last, err)
		}
	})

	t.Run("ExpectNewOnExisting", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Append(ctx(t), events.Change{Event: event(t, "probe", "p2", "a"), Expect: events.ExpectNew}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Append(ctx(t), events.Change{Event: event(t, "probe", "p2", "b"), Expect: events.ExpectNew})
		if !errors.Is(err, events.ErrConflict) {
			t.Fatalf("second ExpectNew: %v, want ErrConflict", err)
		}
	})

	t.Run("RacingAppendsOneWins", func(t *testing.T) {
		s := newStore(t)
		res, err := s.Append(ctx(t), events.Change{Event: event(t, "probe", "race", "base")})
		if err != nil {
			t.Fatal(err)
		}
		base := res.Last()
		for round := 0; round < 10; round++ {
			var wins, conflicts atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			expect := events.ExpectVersion(base) // both racers expect the same version
			var won atomic.Uint64
			for w := 0; w < 2; w++ {
				ev := event(t, "probe", "race", fmt.Sprintf("r%d-w%d", round, w))
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					r, err := s.Append(ctx(t), events.Change{Event: ev, Expect: expect})
					switch {
					case err == nil:
						wins.Add(1)
						won.Store(r.Last())
					case errors.Is(err, events.ErrConflict):
						conflicts.Add(1)
					default:
						t.Error(err)
					}
				}()
			}
			close(start)
			wg.Wait()
			base = won.Load()
			if wins.Load() != 1 || conflicts.Load() != 1 {
				t.Fatalf("round %d: %d wins, %d conflicts; want exactly one of each", round, wins.Load(), conflicts.Load())
			}
		}
		hist, err := s.Load(ctx(t), "probe", uniq(t, "race"))
		if err != nil || len(hist) != 11 {
			t.Fatalf("history %d events (%v), want 11", len(hist), err)
		}
	})

	t.Run("SameEventIDStoredOnce", func(t *testing.T) {
		s := newStore(t)
		ev := event(t, "probe", "idem", "once")
		first, err := s.Append(ctx(t), events.Change{Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Append(ctx(t), events.Change{Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Last() != first.Last() {
			t.Fatalf("retry: %+v, want duplicate at %d", again, first.Last())
		}
		hist, _ := s.Load(ctx(t), "probe", uniq(t, "idem"))
		if len(hist) != 1 {
			t.Fatalf("stored %d times", len(hist))
		}
	})

	t.Run("BatchIsAtomic", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Append(ctx(t), events.Change{Event: event(t, "probe", "taken", "x")}); err != nil {
			t.Fatal(err)
		}
		_, err := s.Append(ctx(t),
			events.Change{Event: event(t, "probe", "fresh", "a"), Expect: events.ExpectNew},
			events.Change{Event: event(t, "probe", "taken", "b"), Expect: events.ExpectNew},
		)
		if !errors.Is(err, events.ErrConflict) {
			t.Fatalf("batch with a failing expectation: %v, want ErrConflict", err)
		}
		if hist, _ := s.Load(ctx(t), "probe", uniq(t, "fresh")); len(hist) != 0 {
			t.Fatalf("a failed batch stored %d events", len(hist))
		}
		a, b := event(t, "probe", "fresh", "a"), event(t, "probe", "also", "b")
		res, err := s.Append(ctx(t), events.Change{Event: a, Expect: events.ExpectNew}, events.Change{Event: b, Expect: events.ExpectNew})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sequences) != 2 || res.Sequences[1] != res.Sequences[0]+1 {
			t.Fatalf("batch sequences %v", res.Sequences)
		}
		again, err := s.Append(ctx(t), events.Change{Event: a}, events.Change{Event: b})
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.Last() != res.Last() {
			t.Fatalf("batch retry: %+v, want duplicate of %v", again, res.Sequences)
		}
	})

	t.Run("InvalidEventRejected", func(t *testing.T) {
		s := newStore(t)
		ev := event(t, "probe", "ok", "x")
		ev.AggregateID = "has.dot"
		if _, err := s.Append(ctx(t), events.Change{Event: ev}); !errors.Is(err, events.ErrInvalidEvent) {
			t.Fatalf("append with dotted id: %v, want ErrInvalidEvent", err)
		}
	})
}
