package projections

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

// Projection is one read model.
type Projection interface {
	// Name identifies the projection; it is stored with its version.
	Name() string
	// Version changes whenever Apply or the key layout changes; a stored
	// version that differs triggers a rebuild.
	Version() int
	// Prefixes are the key prefixes the projection owns; a rebuild deletes them.
	Prefixes() []string
	// Apply folds one event into the batch. Events it does not know are ignored.
	Apply(tx *Tx, ev events.Event) error
}

// Config configures a [Projector]. Zero fields take their defaults.
type Config struct {
	// Name of the projector; its stream position is stored under it. Default "events".
	Name string
	// Stream to consume. Default [events.DefaultStream].
	Stream string
	// BatchSize is the most events applied in one Pebble batch. Default 2000.
	BatchSize int
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Decode turns a stream message into the event projections apply.
	// Default events.Unmarshal; the usage stream uses [DecodeUsageBatch].
	Decode func(data []byte, seq uint64) (events.Event, error)
}

// RebuildGCPercent is GOGC while `tollgate rebuild` replays the log: a
// rebuild allocates briskly and keeps little alive, and collecting less
// often makes it about a fifth faster for a heap a few batches larger.
const RebuildGCPercent = 400

// TypeUsageBatch is the type [DecodeUsageBatch] gives usage-stream messages.
const TypeUsageBatch = "usage.batch"

// DecodeUsageBatch wraps a usage-stream message (an events.UsageBatch in
// JSON) as an event of type [TypeUsageBatch] whose Data is the batch.
func DecodeUsageBatch(data []byte, seq uint64) (events.Event, error) {
	return events.Event{Type: TypeUsageBatch, Data: data, Sequence: seq}, nil
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "events"
	}
	if c.Stream == "" {
		c.Stream = events.DefaultStream
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Decode == nil {
		c.Decode = events.Unmarshal
	}
}

// Projector applies the event stream to its projections in batches. Each
// batch stores the last applied stream sequence with the data it wrote, so
// after a crash it resumes exactly where the durable state ends.
type Projector struct {
	db    *pebble.DB
	cfg   Config
	projs []Projection

	applied  atomic.Uint64
	caughtUp atomic.Bool
	skipped  atomic.Uint64

	mu     sync.Mutex
	notify chan struct{} // closed and replaced after every commit
}

// NewProjector prepares a projector. Projections whose stored version differs
// from their code's are dropped together with the position, so Run replays
// the stream into them from the start.
func NewProjector(db *pebble.DB, cfg Config, projs ...Projection) (*Projector, error) {
	cfg.setDefaults()
	p := &Projector{db: db, cfg: cfg, projs: projs, notify: make(chan struct{})}
	stale, err := p.staleProjections()
	if err != nil {
		return nil, err
	}
	if len(stale) > 0 {
		cfg.Logger.Info("projection version changed: rebuilding", "projector", cfg.Name, "projections", stale)
		if err := p.Reset(); err != nil {
			return nil, err
		}
	}
	pos, err := p.storedPosition()
	if err != nil {
		return nil, err
	}
	p.applied.Store(pos)
	return p, nil
}

func (p *Projector) positionKey() []byte { return []byte(prefixMeta + "pos/" + p.cfg.Name) }

func versionKey(name string) []byte { return []byte(prefixMeta + "ver/" + name) }

func (p *Projector) storedPosition() (uint64, error) {
	raw, ok, err := get(p.db, p.positionKey())
	if err != nil || !ok {
		return 0, err
	}
	return strconv.ParseUint(string(raw), 10, 64)
}

func (p *Projector) staleProjections() ([]string, error) {
	var stale []string
	for _, pr := range p.projs {
		raw, ok, err := get(p.db, versionKey(pr.Name()))
		if err != nil {
			return nil, err
		}
		if !ok || string(raw) != strconv.Itoa(pr.Version()) {
			stale = append(stale, pr.Name())
		}
	}
	return stale, nil
}

// Reset drops every projection's data and the position, and records the
// current versions. The next Run replays the whole stream.
func (p *Projector) Reset() error {
	b := p.db.NewBatch()
	defer b.Close()
	for _, pr := range p.projs {
		for _, prefix := range pr.Prefixes() {
			if err := b.DeleteRange([]byte(prefix), prefixEnd([]byte(prefix)), nil); err != nil {
				return err
			}
		}
		if err := b.Set(versionKey(pr.Name()), []byte(strconv.Itoa(pr.Version())), nil); err != nil {
			return err
		}
	}
	if err := b.Delete(p.positionKey(), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, pr := range p.projs {
		if c, ok := pr.(Committer); ok {
			c.AfterReset()
		}
	}
	p.applied.Store(0)
	return nil
}

// Applied is the last stream sequence applied.
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// CaughtUp reports whether the projector has applied everything the stream
// held when it last looked.
func (p *Projector) CaughtUp() bool { return p.caughtUp.Load() }

// Skipped counts events that could not be applied (logged when they happen).
func (p *Projector) Skipped() uint64 { return p.skipped.Load() }

// WaitFor blocks until the projector has applied seq, for read-your-writes.
func (p *Projector) WaitFor(ctx context.Context, seq uint64) error {
	for {
		p.mu.Lock()
		ch := p.notify
		p.mu.Unlock()
		if p.applied.Load() >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("projections: waiting for sequence %d (applied %d): %w", seq, p.applied.Load(), ctx.Err())
		}
	}
}

// Run consumes the stream from the stored position until ctx ends. It
// returns nil on cancellation.
func (p *Projector) Run(ctx context.Context, js jetstream.JetStream) error {
	return p.run(ctx, js, 0, nil)
}

// CatchUp applies the stream up to its last sequence at call time and
// returns. progress, if not nil, is called after every batch.
func (p *Projector) CatchUp(ctx context.Context, js jetstream.JetStream, progress func(applied, last uint64)) error {
	str, err := js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return err
	}
	info, err := str.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if p.Applied() >= last {
		return nil
	}
	return p.run(ctx, js, last, progress)
}

// delivery is one event decoded by the consumer goroutine, so decoding
// overlaps with applying the previous batch.
type delivery struct {
	ev      events.Event
	err     error
	seq     uint64
	pending uint64
}

// run consumes until ctx ends, or until sequence until is applied when until > 0.
func (p *Projector) run(ctx context.Context, js jetstream.JetStream, until uint64, progress func(applied, last uint64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := p.markCaughtUpIfCurrent(ctx, js); err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if pos := p.Applied(); pos > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = pos + 1
	}
	cons, err := js.OrderedConsumer(ctx, p.cfg.Stream, cfg)
	if err != nil {
		return fmt.Errorf("projections: consumer on %s: %w", p.cfg.Stream, err)
	}
	ch := make(chan delivery, 4*p.cfg.BatchSize)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			return
		}
		ev, err := p.cfg.Decode(m.Data(), meta.Sequence.Stream)
		select {
		case ch <- delivery{ev: ev, err: err, seq: meta.Sequence.Stream, pending: meta.NumPending}:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(p.cfg.BatchSize))
	if err != nil {
		return fmt.Errorf("projections: consume %s: %w", p.cfg.Stream, err)
	}
	defer cc.Stop()

	batch := make([]delivery, 0, p.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case d := <-ch:
			batch = append(batch, d)
		}
		// Group commit: take what is already waiting, up to the batch size.
	drain:
		for len(batch) < p.cfg.BatchSize && batch[len(batch)-1].pending > 0 {
			select {
			case d := <-ch:
				batch = append(batch, d)
			default:
				break drain
			}
		}
		if err := p.apply(batch); err != nil {
			return err
		}
		last := batch[len(batch)-1]
		if last.pending == 0 {
			p.caughtUp.Store(true)
		}
		if progress != nil {
			progress(last.seq, last.seq+last.pending)
		}
		if until > 0 && last.seq >= until {
			return nil
		}
	}
}

func (p *Projector) markCaughtUpIfCurrent(ctx context.Context, js jetstream.JetStream) error {
	str, err := js.Stream(ctx, p.cfg.Stream)
	if err != nil {
		return fmt.Errorf("projections: stream %s: %w", p.cfg.Stream, err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		return fmt.Errorf("projections: stream %s: %w", p.cfg.Stream, err)
	}
	if info.State.LastSeq <= p.Applied() {
		p.caughtUp.Store(true)
	}
	return nil
}

// apply writes one batch and its position atomically, then wakes waiters.
func (p *Projector) apply(batch []delivery) error {
	b := p.db.NewIndexedBatch()
	defer b.Close()
	tx := &Tx{b: b}
	applied := p.Applied()
	for _, d := range batch {
		if d.seq <= applied {
			continue // redelivered after a consumer reset
		}
		err := d.err
		if err == nil {
			for _, pr := range p.projs {
				if err = pr.Apply(tx, d.ev); err != nil {
					err = fmt.Errorf("%s: %w", pr.Name(), err)
					break
				}
			}
		}
		if err != nil {
			// A bad event must not stop every projection forever; it is
			// counted, logged and visible in /metrics.
			p.skipped.Add(1)
			p.cfg.Logger.Error("projection could not apply event", "projector", p.cfg.Name, "seq", d.seq, "err", err)
		}
		applied = d.seq
	}
	if err := b.Set(p.positionKey(), []byte(strconv.FormatUint(applied, 10)), nil); err != nil {
		return err
	}
	// NoSync is safe: the batch is atomic in the WAL, and a batch lost in a
	// crash is replayed from the stream because its position is lost with it.
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("projections: commit: %w", err)
	}
	for _, pr := range p.projs {
		if c, ok := pr.(Committer); ok {
			c.AfterCommit()
		}
	}
	p.applied.Store(applied)
	p.mu.Lock()
	close(p.notify)
	p.notify = make(chan struct{})
	p.mu.Unlock()
	return nil
}
