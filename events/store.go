package events

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the event store, matched with errors.Is.
var (
	// ErrConflict means an expectation on an aggregate's last sequence did not
	// hold: someone else appended first. Reload and decide again.
	ErrConflict = errors.New("events: concurrent modification")
	// ErrUnavailable means the event log could not be reached; nothing was
	// appended as far as this node knows.
	ErrUnavailable = errors.New("events: event log unavailable")
)

// Expectation states what an append expects of its aggregate's history.
type Expectation struct {
	set bool
	seq uint64
}

// ExpectAny appends without a concurrency check.
var ExpectAny = Expectation{}

// ExpectNew requires the aggregate to have no events yet.
var ExpectNew = Expectation{set: true}

// ExpectVersion requires the aggregate's last event to be at stream sequence
// seq (0: no events yet).
func ExpectVersion(seq uint64) Expectation { return Expectation{set: true, seq: seq} }

// Change is one event to append and what its aggregate is expected to hold.
type Change struct {
	Event  Event
	Expect Expectation
}

// AppendResult tells where the appended events landed.
type AppendResult struct {
	// Sequences holds the stream sequence of each change, in order.
	Sequences []uint64
	// Duplicate is true when the events had already been stored (same event
	// ids); Sequences then tell where the originals are.
	Duplicate bool
}

// Last is the highest sequence of the result.
func (r AppendResult) Last() uint64 {
	var max uint64
	for _, s := range r.Sequences {
		if s > max {
			max = s
		}
	}
	return max
}

// Store is the event store. All changes of one Append are stored atomically:
// all or none, each expectation checked.
type Store interface {
	Append(ctx context.Context, changes ...Change) (AppendResult, error)
	// Load returns the history of one aggregate, oldest first.
	Load(ctx context.Context, aggregateType, aggregateID string) ([]Event, error)
	// LastSequence is the stream sequence of the aggregate's last event, 0 if none.
	LastSequence(ctx context.Context, aggregateType, aggregateID string) (uint64, error)
}

// DefaultTimeout bounds store calls whose context has no deadline.
const DefaultTimeout = 5 * time.Second

func validateChanges(changes []Change) error {
	if len(changes) == 0 {
		return fmt.Errorf("%w: nothing to append", ErrInvalidEvent)
	}
	seen := make(map[string]bool, len(changes))
	for _, c := range changes {
		if err := c.Event.Validate(); err != nil {
			return err
		}
		if seen[c.Event.ID] {
			return fmt.Errorf("%w: event id %s repeated", ErrInvalidEvent, c.Event.ID)
		}
		seen[c.Event.ID] = true
	}
	return nil
}
