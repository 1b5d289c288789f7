package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tollgate/tollgate/events"
)

// fanOut handles one message of the fan-out consumer: a subscribable event
// becomes one delivery per subscription that wants it, a manual retry
// becomes a due attempt. It is idempotent (derived ids, expectations,
// message ids), so the Retry middleware may run it again and a redelivered
// message changes nothing.
func (w *Workers) fanOut(msg *message.Message) error {
	if _, wanted := fanOutType(msg.Metadata.Get(metaSubject)); !wanted {
		return nil
	}
	seq, err := strconv.ParseUint(msg.Metadata.Get(metaStreamSeq), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: message without a stream sequence", errUnprocessable)
	}
	ev, err := events.Unmarshal(msg.Payload, seq)
	if err != nil {
		w.cfg.Logger.Error("callbacks: undecodable event skipped", "seq", seq, "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(w.runCtx, w.cfg.AckWait/2)
	defer cancel()
	if ev.Type == events.TypeDeliveryRetryRequested {
		return w.queueRetry(ctx, ev)
	}
	if !slices.Contains(events.SubscribableTypes(), ev.Type) || ev.AccountID == "" {
		return nil
	}
	// Subscriptions made before the event must see it: wait until this
	// node's projections have applied the log up to it.
	if err := w.deps.Projector.WaitFor(ctx, ev.Sequence); err != nil {
		return err
	}
	ids, err := w.deps.Subscriptions.Matching(ev.AccountID, ev.Environment, ev.Type)
	if err != nil || len(ids) == 0 {
		return err
	}
	body, err := RenderPayload(ev)
	if err != nil {
		w.cfg.Logger.Error("callbacks: event cannot be rendered", "seq", seq, "type", ev.Type, "err", err)
		return nil
	}
	var errs []error
	for _, id := range ids {
		// The projection may be ahead of the event: a subscription made
		// after it does not get it.
		if sub, ok, err := w.deps.Subscriptions.Get(id); err != nil || !ok || sub.Seq > ev.Sequence {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, w.schedule(ctx, ev, id, body))
	}
	return errors.Join(errs...)
}

// schedule records the delivery of ev to one subscription and queues its
// first attempt.
func (w *Workers) schedule(ctx context.Context, ev events.Event, subscriptionID string, body []byte) error {
	id := events.DeliveryID(ev.ID, subscriptionID)
	now := w.cfg.Now().UTC()
	p := events.DeliveryScheduled{ID: id, SubscriptionID: subscriptionID, AccountID: ev.AccountID, Environment: ev.Environment,
		EventID: ev.ID, DeliveredType: ev.Type, EventSeq: ev.Sequence, ScheduledAt: now}
	rec, err := events.New(w.meta(id, ev.AccountID, ev.Environment, ev.ID, now, "scheduled"), p)
	if err != nil {
		return err
	}
	res, err := w.deps.Store.Append(ctx, events.Change{Event: rec, Expect: events.ExpectNew})
	version := res.Last()
	if errors.Is(err, events.ErrConflict) {
		// Scheduled before this message was redelivered. If nothing has
		// happened to it since, its first attempt may not have been queued.
		last, found, lerr := w.deps.Store.LastEvent(ctx, events.AggregateDelivery, id)
		if lerr != nil || !found || last.Type != events.TypeDeliveryScheduled {
			return lerr
		}
		version, err = last.Sequence, nil
	}
	if err != nil {
		return err
	}
	job := work{DeliveryID: id, SubscriptionID: subscriptionID, AccountID: ev.AccountID, Environment: ev.Environment,
		EventID: ev.ID, EventType: ev.Type, Attempt: 1, Version: version, Body: body}
	return publishWork(ctx, w.deps.JS, job, now, now)
}

// queueRetry turns delivery.retry_requested into a due attempt.
func (w *Workers) queueRetry(ctx context.Context, ev events.Event) error {
	p, err := events.Decode[events.DeliveryRetryRequested](ev)
	if err != nil {
		w.cfg.Logger.Error("callbacks: undecodable retry request skipped", "seq", ev.Sequence, "err", err)
		return nil
	}
	if err := w.deps.Projector.WaitFor(ctx, ev.Sequence); err != nil {
		return err
	}
	rec, ok, err := w.deps.Deliveries.Get(p.ID)
	if err != nil || !ok {
		return err
	}
	src, err := w.deps.Store.EventAt(ctx, rec.EventSeq)
	if err != nil {
		return err
	}
	body, err := RenderPayload(src)
	if err != nil {
		return fmt.Errorf("%w: render %s: %v", errUnprocessable, src.ID, err)
	}
	now := w.cfg.Now()
	job := work{DeliveryID: rec.ID, SubscriptionID: rec.SubscriptionID, AccountID: rec.AccountID, Environment: rec.Environment,
		EventID: rec.EventID, EventType: rec.EventType, Attempt: p.Attempt, Version: ev.Sequence, Body: body}
	return publishWork(ctx, w.deps.JS, job, now, now)
}

// meta is the envelope of a delivery event the workers append on behalf
// of another fact. Its id derives from the delivery and what happened, so
// doing it twice stores it once.
func (w *Workers) meta(deliveryID, account, env, correlation string, now time.Time, what ...string) events.Meta {
	return events.Meta{ID: events.DerivedEventID(append([]string{deliveryID}, what...)...), AggregateType: events.AggregateDelivery,
		AggregateID: deliveryID, AccountID: account, Environment: env, Time: now, Actor: actor, CorrelationID: correlation}
}

// actor names the workers in the envelopes of the events they append.
const actor = "callbacks"
