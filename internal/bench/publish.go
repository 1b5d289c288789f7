package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

// asyncPublisher appends events to the event stream in the store's message
// format (subject per aggregate, event id as Nats-Msg-Id) without waiting
// for each acknowledgement: the store's own Append waits for every one,
// which makes a million events take minutes.
type asyncPublisher struct {
	js       jetstream.JetStream
	failed   atomic.Int64
	firstErr firstError
	sent     int
	headers  map[string]string
}

func newAsyncPublisher(nc *nats.Conn, headers map[string]string) (*asyncPublisher, error) {
	p := &asyncPublisher{headers: headers}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(replayPublishPending),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			p.failed.Add(1)
			p.firstErr.set(err)
		}))
	if err != nil {
		return nil, err
	}
	p.js = js
	return p, nil
}

func (p *asyncPublisher) publish(ev events.Event) error {
	data, err := events.Marshal(ev)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(events.Subject(ev))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	for k, v := range p.headers {
		msg.Header.Set(k, v)
	}
	// A NATS server in another process may lag: wait rather than fail.
	if _, err := p.js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute)); err != nil {
		return err
	}
	p.sent++
	return nil
}

// finish waits for every acknowledgement and returns the stream's last
// sequence.
func (p *asyncPublisher) finish(ctx context.Context) (uint64, error) {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("publishing: %d acknowledgements outstanding", p.js.PublishAsyncPending())
	}
	if p.failed.Load() > 0 {
		return 0, errors.Join(fmt.Errorf("%d of %d publishes failed", p.failed.Load(), p.sent), p.firstErr.get())
	}
	str, err := p.js.Stream(ctx, events.DefaultStream)
	if err != nil {
		return 0, err
	}
	info, err := str.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}
