package workers

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
)

// Streams and consumers of the delivery workers. Durable consumer names are
// part of the data: renaming one starts it over.
const (
	// DeliveriesStream holds one message per attempt to make: due now on
	// tollgate.deliveries.due.<delivery id>, or scheduled for later on
	// tollgate.deliveries.retry.<delivery id> (a JetStream message schedule,
	// one per delivery, that the server publishes to the due subject when
	// its time comes).
	DeliveriesStream  = "TOLLGATE_DELIVERIES"
	deliveriesPrefix  = "tollgate.deliveries"
	dueSubjects       = deliveriesPrefix + ".due.>"
	callbacksConsumer = "tollgate-callbacks"
	// deliveriesConsumer attempts due deliveries.
	deliveriesConsumer = "tollgate-deliveries"

	// PoisonStream keeps deliveries that will not be attempted again, for
	// operators to inspect or replay: the poison queue.
	PoisonStream = "TOLLGATE_POISON"
	// PoisonSubject is where dead deliveries go. Each message is the work
	// message of the last attempt; headers Tollgate-Dead-Reason and
	// Tollgate-Delivery-Id say why and which.
	PoisonSubject = "tollgate.poison.deliveries"
)

func dueSubject(deliveryID string) string   { return deliveriesPrefix + ".due." + deliveryID }
func retrySubject(deliveryID string) string { return deliveriesPrefix + ".retry." + deliveryID }

// fanOutType is the event type of an event subject, and whether the
// fan-out acts on it: every subscribable type, and manual retries. The
// fan-out consumer reads the whole log and skips the rest by subject,
// before decoding anything. (A consumer filtered on the ten subjects
// instead costs the server a walk of the stream's subject tree per
// delivery: a third of the CPU of a delivery benchmark.)
func fanOutType(subject string) (string, bool) {
	parts := strings.SplitN(subject, ".", 5)
	if len(parts) < 5 {
		return "", false
	}
	t := parts[4]
	return t, t == events.TypeDeliveryRetryRequested || slices.Contains(events.SubscribableTypes(), t)
}

// ensureStreams creates or updates the work and poison streams and both
// durable consumers. It is idempotent.
func ensureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	maxDelay := time.Duration(0)
	for _, d := range cfg.Backoff {
		maxDelay = max(maxDelay, d)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeliveriesStream,
		Description: "Tollgate webhook attempts: due now, or scheduled",
		Subjects:    []string{deliveriesPrefix + ".>"},
		// Work queue: an acknowledged attempt is gone; a schedule stays
		// until the server fires it.
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Duplicates:        time.Hour,
		AllowMsgSchedules: true,
		AllowRollup:       true,
		MaxMsgSize:        2 << 20,
	}); err != nil {
		return fmt.Errorf("%w: stream %s: %v", events.ErrUnavailable, DeliveriesStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        PoisonStream,
		Description: "Tollgate webhook deliveries that will not be attempted again",
		Subjects:    []string{"tollgate.poison.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  time.Hour,
		Discard:     jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("%w: stream %s: %v", events.ErrUnavailable, PoisonStream, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, events.DefaultStream, jetstream.ConsumerConfig{
		Durable:     callbacksConsumer,
		Description: "Tollgate webhook fan-out: one delivery per event and subscription",
		// A new consumer starts with the events appended from now on:
		// turning webhooks on must not deliver the whole history.
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		// Only the events the fan-out handles: it never sees the bulk of
		// the log (access tokens issued, quota leases).
		FilterSubjects: subscribableSubjects(),
		Replicas:       cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("%w: consumer %s: %v", events.ErrUnavailable, callbacksConsumer, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, DeliveriesStream, jetstream.ConsumerConfig{
		Durable:       deliveriesConsumer,
		Description:   "Tollgate webhook attempts",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		FilterSubject: dueSubjects,
		Replicas:      cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("%w: consumer %s: %v", events.ErrUnavailable, deliveriesConsumer, err)
	}
	return nil
}

// work is one attempt to make: the message of the deliveries stream.
type work struct {
	DeliveryID     string `json:"delivery_id"`
	SubscriptionID string `json:"subscription_id"`
	AccountID      string `json:"account_id"`
	Environment    string `json:"environment"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	// Attempt counts from 1.
	Attempt int `json:"attempt"`
	// Version is the delivery's last stream sequence when the attempt was
	// scheduled. The attempt is made only if the delivery is still there:
	// a redelivered message whose attempt was already recorded, or a
	// schedule superseded by a manual retry, does nothing.
	Version uint64 `json:"version"`
	// Body is the webhook payload, signed and sent as is.
	Body []byte `json:"body"`
}

// Headers of work and poison messages.
const (
	headerDeliveryID = "Tollgate-Delivery-Id"
	headerDeadReason = "Tollgate-Dead-Reason"
	// watermillUUID is the header Watermill reads a message's id from.
	watermillUUID = "_watermill_message_uuid"
)

// publishWork queues an attempt: due now when at is not after now,
// otherwise as a message schedule that fires at at (whole seconds, rounded
// up). Publishing the same attempt twice stores it once.
func publishWork(ctx context.Context, js jetstream.JetStream, w work, at, now time.Time) error {
	data, err := json.Marshal(w)
	if err != nil {
		return err
	}
	id := w.DeliveryID + "." + strconv.Itoa(w.Attempt) + "." + strconv.FormatUint(w.Version, 10)
	msg := nats.NewMsg(dueSubject(w.DeliveryID))
	msg.Data = data
	msg.Header.Set(headerDeliveryID, w.DeliveryID)
	msg.Header.Set(watermillUUID, id)
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(id), jetstream.WithExpectStream(DeliveriesStream)}
	if at.After(now) {
		if frac := at.Sub(at.Truncate(time.Second)); frac > 0 {
			at = at.Add(time.Second - frac)
		}
		msg.Subject = retrySubject(w.DeliveryID)
		opts = append(opts, jetstream.WithScheduleAt(at), jetstream.WithScheduleTarget(dueSubject(w.DeliveryID)))
	}
	if _, err := js.PublishMsg(ctx, msg, opts...); err != nil {
		return fmt.Errorf("%w: queue attempt %d of %s: %v", events.ErrUnavailable, w.Attempt, w.DeliveryID, err)
	}
	return nil
}

// subscribableSubjects are the subjects of the events the fan-out handles
// (see fanOutType): every subscribable type and retry requests.
func subscribableSubjects() []string {
	out := []string{events.SubjectPrefix + ".*.*." + events.TypeDeliveryRetryRequested}
	for _, t := range events.SubscribableTypes() {
		out = append(out, events.SubjectPrefix+".*.*."+t)
	}
	return out
}
