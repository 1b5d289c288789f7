package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

// UsageRecorder buffers usage records and publishes them to the usage
// stream in batches: one message per flush, never one append per request.
// A clean shutdown flushes everything; a crash loses at most one flush
// interval.
type UsageRecorder struct {
	nc       *nats.Conn
	node     string
	interval time.Duration
	max      int
	log      *slog.Logger
	n        atomic.Uint64 // names records

	mu      sync.Mutex
	buf     []events.UsageRecord
	wake    chan struct{}
	dropped uint64
}

// UsageConfig configures a [UsageRecorder]. Zero fields take their defaults.
type UsageConfig struct {
	// Node names the publisher; batches go to events.UsageSubject(Node).
	Node string
	// FlushInterval is the longest a record waits. Default 250ms.
	FlushInterval time.Duration
	// MaxBatch flushes early at this many records. Default 2000.
	MaxBatch int
	Logger   *slog.Logger
}

// NewUsageRecorder returns a recorder publishing on nc; run it with Run.
func NewUsageRecorder(nc *nats.Conn, cfg UsageConfig) *UsageRecorder {
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 250 * time.Millisecond
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 2000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &UsageRecorder{nc: nc, node: cfg.Node, interval: cfg.FlushInterval, max: cfg.MaxBatch,
		log: cfg.Logger, wake: make(chan struct{}, 1)}
}

// Record queues one record.
func (u *UsageRecorder) Record(r events.UsageRecord) {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.buf = append(u.buf, r)
	full := len(u.buf) >= u.max
	u.mu.Unlock()
	if full {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
}

// Run flushes every interval (or when a batch fills) until ctx ends, then
// flushes what is left.
func (u *UsageRecorder) Run(ctx context.Context) {
	t := time.NewTicker(u.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			u.Flush(fctx)
			cancel()
			return
		case <-t.C:
		case <-u.wake:
		}
		u.Flush(ctx)
	}
}

// Flush publishes buffered records now. Records that could not be
// published go back to the front of the buffer for the next flush.
func (u *UsageRecorder) Flush(ctx context.Context) {
	for {
		u.mu.Lock()
		if len(u.buf) == 0 {
			u.mu.Unlock()
			return
		}
		n := min(len(u.buf), u.max)
		recs := u.buf[:n:n]
		u.buf = u.buf[n:]
		u.mu.Unlock()
		if err := u.publish(ctx, recs); err != nil {
			u.log.Warn("usage batch not published; kept for the next flush", "records", n, "err", err)
			u.mu.Lock()
			u.buf = append(recs, u.buf...)
			if limit := 50 * u.max; len(u.buf) > limit { // NATS down for long: bound memory
				u.dropped += uint64(len(u.buf) - limit)
				u.buf = append([]events.UsageRecord(nil), u.buf[len(u.buf)-limit:]...)
			}
			u.mu.Unlock()
			return
		}
	}
}

func (u *UsageRecorder) publish(ctx context.Context, recs []events.UsageRecord) error {
	// Records are named when first published, off the request path. A
	// batch that failed keeps its names, so its retry dedupes.
	prefix := ""
	for i := range recs {
		if recs[i].ID != "" {
			continue
		}
		if prefix == "" {
			prefix = u.node + "-" + itoa36(uint64(time.Now().UnixNano())) + "-"
		}
		recs[i].ID = prefix + itoa36(u.n.Add(1))
	}
	sum := events.Summarize(recs)
	batch := events.UsageBatch{Version: events.UsageSchemaVersion1, ID: recs[0].ID, Node: u.node, Summary: &sum, Records: recs}
	data, err := gojson.Marshal(batch)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(events.UsageSubject(u.node))
	msg.Data = data
	// The first record's id names the batch: a retried publish dedupes.
	msg.Header.Set(jetstream.MsgIDHeader, batch.ID)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	reply, err := u.nc.RequestMsgWithContext(pctx, msg)
	if err != nil {
		return err
	}
	var ack struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return err
	}
	if ack.Error != nil {
		return errors.New(ack.Error.Description)
	}
	return nil
}

// Dropped counts records lost to the memory bound during a long outage.
func (u *UsageRecorder) Dropped() uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dropped
}

func itoa36(v uint64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	if v == 0 {
		return "0"
	}
	var b [16]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = digits[v%36]
		v /= 36
	}
	return string(b[i:])
}

// recordAPIUsage records a request to Tollgate's own API by an
// authenticated caller.
func (a *API) recordAPIUsage(p *Principal, method, route, ip string, status int, took time.Duration, now time.Time) {
	if a.Usage == nil || p == nil {
		return
	}
	a.Usage.Record(events.UsageRecord{Kind: events.UsageKindAPI, Time: now.UTC(), AccountID: p.AccountID,
		Environment: p.Environment, TokenID: p.TokenID, Endpoint: method + " " + route, IP: ip,
		Status: status, LatencyUS: took.Microseconds()})
}
