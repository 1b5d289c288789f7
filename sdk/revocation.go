package tollgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FollowerConfig configures a [RevocationFollower]. Zero fields take their
// defaults.
type FollowerConfig struct {
	// StatePath is a file where the follower keeps its set and its stream
	// position, so that after a restart it resumes where it stopped instead
	// of reading the log from the start. Empty: memory only.
	StatePath string
	// Stream is the event stream. Default [EventsStream].
	Stream string
	// FlushInterval is how often a changed state is written. Default 1s.
	FlushInterval time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// RevocationFollower keeps the set of revoked tokens from the event log:
// it reads [RevocationSubjects] with an ordered JetStream consumer from
// where it stopped, and tells listeners of each revocation as it arrives.
type RevocationFollower struct {
	js  jetstream.JetStream
	cfg FollowerConfig

	mu        sync.RWMutex
	revoked   map[string]time.Time
	seq       uint64
	dirty     bool
	listeners []func(tokenID string)
	// stopped is set when Run ends: a message the consumer still hands
	// over afterwards is not applied, so the state saved last is the
	// follower's position (the message is read again on the next run).
	stopped bool

	caughtUp     chan struct{}
	caughtUpOnce sync.Once
}

type followerState struct {
	Seq     uint64               `json:"seq"`
	Revoked map[string]time.Time `json:"revoked"`
}

// NewRevocationFollower loads the saved state, if any; Run follows the log.
func NewRevocationFollower(nc *nats.Conn, cfg FollowerConfig) (*RevocationFollower, error) {
	if cfg.Stream == "" {
		cfg.Stream = EventsStream
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	f := &RevocationFollower{js: js, cfg: cfg, revoked: map[string]time.Time{}, caughtUp: make(chan struct{})}
	if cfg.StatePath != "" {
		raw, err := os.ReadFile(cfg.StatePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			var st followerState
			if err := json.Unmarshal(raw, &st); err != nil {
				return nil, fmt.Errorf("tollgate: revocation state %s: %w", cfg.StatePath, err)
			}
			f.seq = st.Seq
			for id, at := range st.Revoked {
				f.revoked[id] = at
			}
		}
	}
	return f, nil
}

// IsRevoked reports whether the token with this id (tok_…) was revoked.
func (f *RevocationFollower) IsRevoked(tokenID string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, ok := f.revoked[tokenID]
	return ok
}

// OnRevoke registers fn, called with each token id revoked from now on.
func (f *RevocationFollower) OnRevoke(fn func(tokenID string)) {
	f.mu.Lock()
	f.listeners = append(f.listeners, fn)
	f.mu.Unlock()
}

// Position is the stream sequence of the last revocation applied.
func (f *RevocationFollower) Position() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.seq
}

// CaughtUp is closed once the follower has read every revocation the log
// held when it started.
func (f *RevocationFollower) CaughtUp() <-chan struct{} { return f.caughtUp }

// Run follows the log until ctx ends, then saves the state. It returns
// early only if it cannot start.
func (f *RevocationFollower) Run(ctx context.Context) error {
	f.mu.Lock()
	f.stopped = false
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.stopped = true
		f.mu.Unlock()
		f.flush()
	}()
	cons, err := f.js.OrderedConsumer(ctx, f.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{RevocationSubjects},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    f.Position() + 1,
	})
	if err != nil {
		return fmt.Errorf("tollgate: follow revocations: %w", err)
	}
	if info, err := cons.Info(ctx); err == nil && info.NumPending == 0 {
		f.markCaughtUp()
	}
	cc, err := cons.Consume(f.apply)
	if err != nil {
		return fmt.Errorf("tollgate: follow revocations: %w", err)
	}
	defer cc.Stop()
	tick := time.NewTicker(f.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			f.flush()
		}
	}
}

func (f *RevocationFollower) apply(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	var env Envelope
	var p TokenRevoked
	if err := json.Unmarshal(m.Data(), &env); err == nil {
		p, err = Decode[TokenRevoked](env.Type, env.Data)
		if err != nil {
			f.cfg.Logger.Warn("tollgate: undecodable revocation", "seq", meta.Sequence.Stream, "err", err)
		}
	}
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	if p.ID != "" {
		f.revoked[p.ID] = p.RevokedAt
	}
	f.seq, f.dirty = meta.Sequence.Stream, true
	listeners := f.listeners
	f.mu.Unlock()
	if p.ID != "" {
		for _, fn := range listeners {
			fn(p.ID)
		}
	}
	if meta.NumPending == 0 {
		f.markCaughtUp()
	}
}

func (f *RevocationFollower) markCaughtUp() { f.caughtUpOnce.Do(func() { close(f.caughtUp) }) }

// flush writes the state if it changed: to a temporary file, then renamed,
// so a crash leaves the previous state or the new one.
func (f *RevocationFollower) flush() {
	if f.cfg.StatePath == "" {
		return
	}
	f.mu.Lock()
	if !f.dirty {
		f.mu.Unlock()
		return
	}
	raw, err := json.Marshal(followerState{Seq: f.seq, Revoked: f.revoked})
	f.dirty = false
	f.mu.Unlock()
	if err == nil {
		tmp := f.cfg.StatePath + ".tmp"
		if err = os.WriteFile(tmp, raw, 0o600); err == nil {
			err = os.Rename(tmp, f.cfg.StatePath)
		}
	}
	if err != nil {
		f.cfg.Logger.Error("tollgate: revocation state not saved", "path", filepath.Clean(f.cfg.StatePath), "err", err)
		f.mu.Lock()
		f.dirty = true
		f.mu.Unlock()
	}
}
