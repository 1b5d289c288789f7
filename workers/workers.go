package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// Deps are what the workers are wired to.
type Deps struct {
	// Connect opens a NATS connection for the workers' own use: Watermill's
	// JetStream subscriber drains its connection when it closes, so it
	// cannot share the node's.
	Connect func(name string) (*nats.Conn, error)
	// JS is the node's JetStream context: work and poison messages are
	// published with it.
	JS            jetstream.JetStream
	NC            *nats.Conn
	Store         *events.JetStreamStore
	Projector     *projections.Projector
	Subscriptions *projections.Subscriptions
	Deliveries    *projections.Deliveries
	// KEK opens the sealed signing secrets.
	KEK []byte
}

// Workers is the running delivery machinery of one node.
type Workers struct {
	cfg     Config
	deps    Deps
	client  *http.Client
	limiter *limiter

	runCtx  context.Context
	stopRun context.CancelFunc
	router  *message.Router
	conns   []*nats.Conn
	done    chan struct{}

	secretsMu sync.Mutex
	secrets   map[string]openedSecrets

	attempts, succeeded atomic.Uint64
}

// New prepares the workers; Start runs them.
func New(deps Deps, cfg Config) (*Workers, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Connect == nil || deps.JS == nil || deps.NC == nil || deps.Store == nil || deps.Projector == nil ||
		deps.Subscriptions == nil || deps.Deliveries == nil || len(deps.KEK) == 0 {
		return nil, errors.New("workers: every dependency is required")
	}
	guard := Guard{AllowLoopback: cfg.AllowLoopback}
	w := &Workers{cfg: cfg, deps: deps, client: guard.Client(cfg.RequestTimeout, cfg.EndpointConcurrency),
		limiter: newLimiter(cfg.EndpointConcurrency), secrets: map[string]openedSecrets{}, done: make(chan struct{})}
	w.runCtx, w.stopRun = context.WithCancel(context.Background())
	return w, nil
}

// Metadata keys under which the unmarshaler keeps what the payload does
// not say: the stream sequence and the subject.
const (
	metaStreamSeq = "Tollgate-Stream-Seq"
	metaSubject   = "Tollgate-Subject"
)

// Start creates the streams and durable consumers, then runs the router:
// FanOutWorkers loops on the fan-out consumer and DeliveryWorkers loops on
// the deliveries consumer. Watermill's JetStream subscriber handles one
// message at a time per subscription, so each loop is its own handler.
func (w *Workers) Start(ctx context.Context) error {
	if err := ensureStreams(ctx, w.deps.JS, w.cfg); err != nil {
		return err
	}
	// Watermill tells of every message at info level: that is debug here.
	logger := watermill.NewSlogLoggerWithLevelMapping(w.cfg.Logger.With("component", "callbacks"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug, slog.LevelDebug: watermill.LevelTrace})
	// Messages handed back (busy endpoint, NATS hiccup) return after a
	// delay that grows with their redeliveries.
	retryLater := growingDelay{base: 200 * time.Millisecond, max: 5 * time.Second}
	// The fan-out is idempotent: its acknowledgements need no confirmation
	// (a lost one redelivers a message that changes nothing).
	fanSub, err := w.subscriber(logger, events.DefaultStream, callbacksConsumer, retryLater, 32, true)
	if err != nil {
		return err
	}
	// One message per pull: a message waiting in a busy loop's buffer would
	// be held past its ack wait while idle loops starve.
	// Attempts are acknowledged with confirmation: an attempt is not
	// acknowledged until the server says so.
	dlvSub, err := w.subscriber(logger, DeliveriesStream, deliveriesConsumer, retryLater, 1, false)
	if err != nil {
		return err
	}
	// Poison messages go out on the node's connection, which outlives the
	// subscribers' (the publisher is never closed: it would close it).
	poisonPub, err := wmjs.NewPublisher(wmjs.PublisherConfig{Conn: w.deps.NC, Logger: logger})
	if err != nil {
		return err
	}
	poison, err := middleware.PoisonQueueWithFilter(poisonPub, PoisonSubject, poisoned)
	if err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: time.Minute}, logger)
	if err != nil {
		return err
	}
	router.AddMiddleware(middleware.Recoverer)
	retry := middleware.Retry{MaxRetries: 3, InitialInterval: 50 * time.Millisecond, Multiplier: 2,
		MaxInterval: time.Second, Logger: logger}
	for i := range w.cfg.FanOutWorkers {
		h := router.AddConsumerHandler(fmt.Sprintf("fanout-%d", i), events.DefaultStream, fanSub, w.fanOut)
		h.AddMiddleware(retry.Middleware)
	}
	for i := range w.cfg.DeliveryWorkers {
		h := router.AddConsumerHandler(fmt.Sprintf("deliver-%d", i), DeliveriesStream, dlvSub, w.deliver)
		h.AddMiddleware(poison)
	}
	w.router = router
	go func() {
		defer close(w.done)
		if err := router.Run(context.Background()); err != nil {
			w.cfg.Logger.Error("callbacks: router stopped", "err", err)
		}
	}()
	select {
	case <-router.Running():
		return nil
	case <-w.done:
		return errors.New("workers: router stopped at start")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subscriber attaches a Watermill JetStream subscriber, on a connection of
// its own, to a durable consumer Tollgate created: it never creates or
// deletes consumers itself.
func (w *Workers) subscriber(logger watermill.LoggerAdapter, stream, consumer string, nak wmjs.Delay, batch int, ackAsync bool) (*wmjs.Subscriber, error) {
	nc, err := w.deps.Connect("tollgate-" + consumer)
	if err != nil {
		return nil, fmt.Errorf("workers: connect: %w", err)
	}
	w.conns = append(w.conns, nc)
	return wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:           nc,
		Logger:         logger,
		AckWaitTimeout: w.cfg.AckWait,
		NakDelay:       nak,
		AckAsync:       ackAsync,
		Unmarshaler:    unmarshaler{},
		ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(batch)},
		ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, topic string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
			c, err := js.Consumer(ctx, stream, consumer)
			return c, nil, err
		},
	})
}

// Close stops consuming and lets attempts under way finish until ctx ends;
// then they are cancelled, unrecorded and unacknowledged, and are made
// again after a restart. Messages whose outcome was recorded but whose
// acknowledgement did not get out are redelivered after AckWait and found
// already done.
func (w *Workers) Close(ctx context.Context) error {
	if w.router == nil {
		w.stopRun()
		return nil
	}
	stop := context.AfterFunc(ctx, w.stopRun)
	defer stop()
	err := w.router.Close()
	<-w.done
	w.stopRun()
	for _, nc := range w.conns {
		nc.Close()
	}
	return err
}

// Abort stops at once, as a crash would: connections first.
func (w *Workers) Abort() {
	for _, nc := range w.conns {
		nc.Close()
	}
	w.stopRun()
	if w.router != nil {
		_ = w.router.Close()
		<-w.done
	}
}

// Stats counts attempts made by this node since it started.
func (w *Workers) Stats() (attempts, succeeded uint64) {
	return w.attempts.Load(), w.succeeded.Load()
}

func (w *Workers) observe(_ work, out outcome) {
	w.attempts.Add(1)
	if out.ok {
		w.succeeded.Add(1)
	}
}

// unmarshaler makes Watermill messages of JetStream messages. Unlike the
// adapter's default, it keeps only Tollgate's own headers (scheduler and
// deduplication headers must not follow a message to the poison stream) and
// records the stream sequence, which the event envelope does not carry.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(m jetstream.Msg) (*message.Message, error) {
	md := message.Metadata{}
	for _, k := range []string{headerDeliveryID} {
		if v := m.Headers().Get(k); v != "" {
			md.Set(k, v)
		}
	}
	if meta, err := m.Metadata(); err == nil {
		md.Set(metaStreamSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	}
	md.Set(metaSubject, m.Subject())
	msg := message.NewMessage(m.Headers().Get(watermillUUID), m.Data())
	msg.Metadata = md
	return msg, nil
}

// growingDelay hands a message back after base, doubled per redelivery up
// to max.
type growingDelay struct{ base, max time.Duration }

func (d growingDelay) WaitTime(delivered uint64) time.Duration {
	delay := d.base
	for i := uint64(1); i < delivered && delay < d.max; i++ {
		delay *= 2
	}
	return min(delay, d.max)
}
