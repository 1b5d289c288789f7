package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream API error codes the store maps to its sentinels.
const (
	errCodeWrongLastSequence         = 10071
	errCodeWrongLastSequenceConstant = 10164
	errCodeBatchDuplicateMessage     = 10201
	errCodeDuplicateInProcess        = 10158
)

// JetStreamStore is the [Store] on a JetStream stream.
type JetStreamStore struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream string

	mu  sync.Mutex
	str jetstream.Stream // cached handle; nil until first use
}

var _ Store = (*JetStreamStore)(nil)

// NewJetStreamStore returns a store on an existing stream (see [EnsureStreams]).
func NewJetStreamStore(nc *nats.Conn, stream string) (*JetStreamStore, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return &JetStreamStore{nc: nc, js: js, stream: stream}, nil
}

type pubAckResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Count     uint64 `json:"count,omitempty"`
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// Append stores changes atomically. One change is a plain JetStream publish;
// several are a JetStream atomic batch. The event ids are the Nats-Msg-Ids,
// so appending the same events again (a retried request) stores nothing new
// and reports Duplicate.
func (s *JetStreamStore) Append(ctx context.Context, changes ...Change) (AppendResult, error) {
	if err := validateChanges(changes); err != nil {
		return AppendResult{}, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msgs := make([]*nats.Msg, len(changes))
	for i, c := range changes {
		m, err := s.message(c)
		if err != nil {
			return AppendResult{}, err
		}
		msgs[i] = m
	}
	backoff := 10 * time.Millisecond
	for {
		if err := s.awaitConnection(ctx); err != nil {
			return AppendResult{}, err
		}
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, attemptTimeout)
		res, err, retry := s.publish(attemptCtx, msgs)
		cancelAttempt()
		if !retry {
			if err == nil && res.Duplicate && len(res.Sequences) == 0 {
				res.Sequences, err = s.sequencesOf(ctx, changes)
			}
			return res, err
		}
		// Retrying is safe: the event ids dedupe an append that did land.
		select {
		case <-ctx.Done():
			return AppendResult{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-time.After(backoff):
		}
		if backoff < 500*time.Millisecond {
			backoff *= 2
		}
	}
}

// attemptTimeout bounds one publish attempt; a lost acknowledgement is
// retried with the same event ids.
const attemptTimeout = 1500 * time.Millisecond

// reconnectGrace is how long an append waits for a lost NATS connection to
// come back before it reports [ErrUnavailable]: long enough to ride out a
// cluster fail-over, short enough that clients hear about an outage at once.
const reconnectGrace = 2 * time.Second

func (s *JetStreamStore) awaitConnection(ctx context.Context) error {
	if s.nc.IsConnected() {
		return nil
	}
	deadline := time.NewTimer(reconnectGrace)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !s.nc.IsConnected() {
		if s.nc.IsClosed() {
			return fmt.Errorf("%w: NATS connection closed", ErrUnavailable)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: NATS not connected", ErrUnavailable)
		case <-deadline.C:
			return fmt.Errorf("%w: NATS not connected", ErrUnavailable)
		case <-tick.C:
		}
	}
	return nil
}

func (s *JetStreamStore) message(c Change) (*nats.Msg, error) {
	data, err := Marshal(c.Event)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(Subject(c.Event))
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, c.Event.ID)
	m.Header.Set(jetstream.ExpectedStreamHeader, s.stream)
	if c.Expect.set {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(c.Expect.seq, 10))
		m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, AggregateSubjects(c.Event.AggregateType, c.Event.AggregateID))
	}
	return m, nil
}

// publish makes one attempt. retry says whether another attempt may succeed.
func (s *JetStreamStore) publish(ctx context.Context, msgs []*nats.Msg) (AppendResult, error, bool) {
	var reply *nats.Msg
	var err error
	if len(msgs) == 1 {
		reply, err = s.nc.RequestMsgWithContext(ctx, msgs[0])
	} else {
		reply, err = s.publishBatch(ctx, msgs)
	}
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) {
			return AppendResult{}, err, true
		}
		return AppendResult{}, fmt.Errorf("%w: %v", ErrUnavailable, err), false
	}
	var ack pubAckResponse
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return AppendResult{}, fmt.Errorf("%w: unreadable acknowledgement: %v", ErrUnavailable, err), false
	}
	if ack.Error != nil {
		switch ack.Error.ErrCode {
		case errCodeWrongLastSequence, errCodeWrongLastSequenceConstant:
			return AppendResult{}, fmt.Errorf("%w: %s", ErrConflict, ack.Error.Description), false
		case errCodeBatchDuplicateMessage:
			return AppendResult{Duplicate: true}, nil, false
		case errCodeDuplicateInProcess:
			return AppendResult{}, errors.New(ack.Error.Description), true
		}
		if ack.Error.Code == 503 {
			return AppendResult{}, errors.New(ack.Error.Description), true
		}
		return AppendResult{}, fmt.Errorf("events: append rejected (%d): %s", ack.Error.ErrCode, ack.Error.Description), false
	}
	res := AppendResult{Duplicate: ack.Duplicate}
	if len(msgs) == 1 {
		res.Sequences = []uint64{ack.Seq}
		return res, nil, false
	}
	if ack.Count != uint64(len(msgs)) || ack.Seq < ack.Count {
		return AppendResult{}, fmt.Errorf("events: batch acknowledged %d of %d events", ack.Count, len(msgs)), false
	}
	for i := range msgs {
		res.Sequences = append(res.Sequences, ack.Seq-ack.Count+1+uint64(i))
	}
	return res, nil, false
}

// publishBatch sends an atomic batch: every message but the last without a
// reply, the last with the commit header, answered by one acknowledgement.
func (s *JetStreamStore) publishBatch(ctx context.Context, msgs []*nats.Msg) (*nats.Msg, error) {
	batchID := nuidLike()
	for i, m := range msgs {
		m.Header.Set("Nats-Batch-Id", batchID)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			m.Header.Del("Nats-Batch-Commit")
			if err := s.nc.PublishMsg(m); err != nil {
				return nil, err
			}
		}
	}
	last := msgs[len(msgs)-1]
	last.Header.Set("Nats-Batch-Commit", "1")
	return s.nc.RequestMsgWithContext(ctx, last)
}

// sequencesOf finds where already-stored changes are, for a duplicate batch.
func (s *JetStreamStore) sequencesOf(ctx context.Context, changes []Change) ([]uint64, error) {
	seqs := make([]uint64, len(changes))
	for i, c := range changes {
		seq, err := s.LastSequence(ctx, c.Event.AggregateType, c.Event.AggregateID)
		if err != nil {
			return nil, err
		}
		seqs[i] = seq
	}
	return seqs, nil
}

// LastSequence asks the stream for the sequence of the aggregate's last event.
func (s *JetStreamStore) LastSequence(ctx context.Context, aggregateType, aggregateID string) (uint64, error) {
	msg, err := s.lastMsg(ctx, aggregateType, aggregateID)
	if err != nil || msg == nil {
		return 0, err
	}
	return msg.Sequence, nil
}

// LastEvent reads the aggregate's last event; found is false when it has none.
func (s *JetStreamStore) LastEvent(ctx context.Context, aggregateType, aggregateID string) (ev Event, found bool, err error) {
	msg, err := s.lastMsg(ctx, aggregateType, aggregateID)
	if err != nil || msg == nil {
		return Event{}, false, err
	}
	ev, err = Unmarshal(msg.Data, msg.Sequence)
	return ev, err == nil, err
}

// EventAt reads the event stored at sequence seq.
func (s *JetStreamStore) EventAt(ctx context.Context, seq uint64) (Event, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var ev Event
	err := retryTransient(ctx, func(ctx context.Context) error {
		str, err := s.handle(ctx)
		if err != nil {
			return err
		}
		msg, err := str.GetMsg(ctx, seq)
		if err != nil {
			return err
		}
		ev, err = Unmarshal(msg.Data, msg.Sequence)
		return err
	})
	return ev, err
}

// lastMsg is the aggregate's last stored message, nil when it has none.
func (s *JetStreamStore) lastMsg(ctx context.Context, aggregateType, aggregateID string) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var last *jetstream.RawStreamMsg
	err := retryTransient(ctx, func(ctx context.Context) error {
		str, err := s.handle(ctx)
		if err != nil {
			return err
		}
		msg, err := str.GetLastMsgForSubject(ctx, AggregateSubjects(aggregateType, aggregateID))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			last = nil
			return nil
		case err != nil:
			return err
		}
		last = msg
		return nil
	})
	return last, err
}

// retryTransient runs op until it succeeds, fails for good, or ctx ends.
// No responders and timeouts are transient: a stream leader election, a
// reconnect. Errors come back wrapped in [ErrUnavailable].
func retryTransient(ctx context.Context, op func(context.Context) error) error {
	backoff := 10 * time.Millisecond
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := op(attemptCtx)
		cancel()
		if err == nil {
			return nil
		}
		transient := errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
			errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
			errors.Is(err, jetstream.ErrNoHeartbeat)
		if !transient || ctx.Err() != nil {
			if errors.Is(err, ErrUnavailable) {
				return err
			}
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// handle returns the stream handle, looked up once.
func (s *JetStreamStore) handle(ctx context.Context) (jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.str != nil {
		return s.str, nil
	}
	str, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.str = str
	return str, nil
}

// Load reads the aggregate's history with an ordered consumer filtered on its subjects.
func (s *JetStreamStore) Load(ctx context.Context, aggregateType, aggregateID string) ([]Event, error) {
	last, err := s.LastSequence(ctx, aggregateType, aggregateID)
	if err != nil || last == 0 {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var history []Event
	err = retryTransient(ctx, func(ctx context.Context) error {
		history = history[:0]
		cons, err := s.js.OrderedConsumer(ctx, s.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{AggregateSubjects(aggregateType, aggregateID)},
		})
		if err != nil {
			return err
		}
		for {
			batch, err := cons.Fetch(256, jetstream.FetchContext(ctx))
			if err != nil {
				return err
			}
			for m := range batch.Messages() {
				meta, err := m.Metadata()
				if err != nil {
					return err
				}
				ev, err := Unmarshal(m.Data(), meta.Sequence.Stream)
				if err != nil {
					return err
				}
				history = append(history, ev)
				if meta.Sequence.Stream >= last {
					return nil
				}
			}
			if err := batch.Error(); err != nil {
				return err
			}
		}
	})
	return history, err
}
