package workers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	json "github.com/goccy/go-json"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// Errors that steer the handler chain.
var (
	// errDead: the delivery is over without success; the PoisonQueue
	// middleware moves its message to the poison stream.
	errDead = errors.New("delivery is dead")
	// errUnprocessable: the message can never be handled; it goes to the
	// poison stream too.
	errUnprocessable = errors.New("unprocessable message")
)

func poisoned(err error) bool { return errors.Is(err, errDead) || errors.Is(err, errUnprocessable) }

// deliver handles one due attempt. It is acknowledged (returns nil, or
// errDead once the poison queue has it) only after the attempt's outcome is
// in the event log and its follow-up (a scheduled retry) is queued.
func (w *Workers) deliver(msg *message.Message) error {
	var job work
	if err := json.Unmarshal(msg.Payload, &job); err != nil || job.DeliveryID == "" || job.Attempt < 1 {
		return fmt.Errorf("%w: work message: %v", errUnprocessable, err)
	}
	// Not msg.Context(): Watermill cancels it when the router closes, and
	// an attempt under way gets the shutdown timeout to finish.
	ctx := w.runCtx
	last, found, err := w.deps.Store.LastEvent(ctx, events.AggregateDelivery, job.DeliveryID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: delivery %s does not exist", errUnprocessable, job.DeliveryID)
	}
	if last.Sequence != job.Version {
		return w.resume(ctx, msg, job, last)
	}
	// The subscription was made before the delivery was scheduled: once this
	// node has applied the log up to the delivery, it knows the subscription
	// (the fan-out may have run on another node).
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = w.deps.Projector.WaitFor(wctx, job.Version)
	cancel()
	if err != nil {
		return err
	}
	sub, ok, err := w.deps.Subscriptions.Get(job.SubscriptionID)
	if err != nil {
		return err
	}
	if !ok || sub.Status != domain.SubscriptionActive {
		status := "deleted"
		if ok {
			status = sub.Status
		}
		return w.abandon(ctx, msg, job, "the subscription is "+status)
	}
	if !w.limiter.acquire(sub.ID) {
		// The endpoint has its share of attempts in flight: hand the
		// message back for later (quietly; this is no error).
		msg.Nack()
		return nil
	}
	out := w.attempt(ctx, sub, job)
	w.limiter.release(sub.ID)
	if ctx.Err() != nil {
		// Stopped mid-attempt: nothing is recorded and nothing acknowledged,
		// so the attempt is made again once a node picks the message up.
		return ctx.Err()
	}
	return w.record(ctx, msg, sub, job, out)
}

// record appends the attempt's outcome and acts on it.
func (w *Workers) record(ctx context.Context, msg *message.Message, sub projections.SubscriptionRecord, job work, out outcome) error {
	now := w.cfg.Now().UTC()
	att := events.DeliveryAttempted{ID: job.DeliveryID, SubscriptionID: job.SubscriptionID, AccountID: job.AccountID,
		Attempt: job.Attempt, Succeeded: out.ok, StatusCode: out.status, LatencyMS: out.latency.Milliseconds(),
		Error: out.err, AttemptedAt: now}
	var dead *events.DeliveryDead
	var next time.Time
	switch {
	case out.ok:
	case out.status == 410:
		dead = &events.DeliveryDead{Reason: events.DeadGone, Error: "the endpoint answered 410 Gone"}
	default:
		if d, more := w.cfg.nextDelay(job.Attempt); more {
			next = now.Add(d).Truncate(time.Second).Add(time.Second)
			att.NextAttemptAt = &next
		} else {
			dead = &events.DeliveryDead{Reason: events.DeadExhausted, Error: fmt.Sprintf("all %d attempts failed", job.Attempt)}
		}
	}
	ev, err := events.New(w.meta(job.DeliveryID, job.AccountID, job.Environment, job.EventID, now, "attempt", strconv.Itoa(job.Attempt), strconv.FormatUint(job.Version, 10)), att)
	if err != nil {
		return err
	}
	changes := []events.Change{{Event: ev, Expect: events.ExpectVersion(job.Version)}}
	if dead != nil {
		dead.ID, dead.SubscriptionID, dead.AccountID, dead.Attempts, dead.DeadAt = job.DeliveryID, job.SubscriptionID, job.AccountID, job.Attempt, now
		dev, err := events.New(w.meta(job.DeliveryID, job.AccountID, job.Environment, job.EventID, now, "dead", strconv.Itoa(job.Attempt)), *dead)
		if err != nil {
			return err
		}
		changes = append(changes, events.Change{Event: dev, Expect: events.ExpectAny})
	}
	res, err := w.deps.Store.Append(ctx, changes...)
	if errors.Is(err, events.ErrConflict) {
		return nil // another node recorded this attempt first
	}
	if err != nil {
		return err
	}
	w.observe(job, out)
	if out.ok {
		return nil
	}
	if out.status == 410 {
		w.disable(ctx, sub, "the endpoint answered 410 Gone")
	} else {
		w.checkSustainedFailure(ctx, sub.ID, res.Last())
	}
	if dead != nil {
		return w.bury(msg, job, dead.Reason)
	}
	job.Attempt, job.Version = job.Attempt+1, res.Sequences[0]
	return publishWork(ctx, w.deps.JS, job, next, now)
}

// resume handles a message whose delivery changed since the attempt was
// scheduled. If the change is this very attempt's outcome, the node that
// recorded it may have stopped before its follow-up: do the follow-up
// again (both are idempotent). Anything else means the message is stale.
func (w *Workers) resume(ctx context.Context, msg *message.Message, job work, last events.Event) error {
	switch last.Type {
	case events.TypeDeliveryAttempted:
		p, err := events.Decode[events.DeliveryAttempted](last)
		if err != nil || p.Attempt != job.Attempt || p.Succeeded || p.NextAttemptAt == nil {
			return nil
		}
		next := job
		next.Attempt, next.Version = job.Attempt+1, last.Sequence
		return publishWork(ctx, w.deps.JS, next, *p.NextAttemptAt, w.cfg.Now())
	case events.TypeDeliveryDead:
		p, err := events.Decode[events.DeliveryDead](last)
		if err != nil || p.Attempts != job.Attempt && !(p.Reason == events.DeadSubscriptionInactive && p.Attempts == job.Attempt-1) {
			return nil
		}
		return w.bury(msg, job, p.Reason)
	}
	return nil
}

// abandon ends a delivery whose subscription was disabled or deleted.
func (w *Workers) abandon(ctx context.Context, msg *message.Message, job work, why string) error {
	now := w.cfg.Now().UTC()
	dead := events.DeliveryDead{ID: job.DeliveryID, SubscriptionID: job.SubscriptionID, AccountID: job.AccountID,
		Attempts: job.Attempt - 1, Reason: events.DeadSubscriptionInactive, Error: why, DeadAt: now}
	ev, err := events.New(w.meta(job.DeliveryID, job.AccountID, job.Environment, job.EventID, now, "dead", strconv.Itoa(job.Attempt-1)), dead)
	if err != nil {
		return err
	}
	_, err = w.deps.Store.Append(ctx, events.Change{Event: ev, Expect: events.ExpectVersion(job.Version)})
	if errors.Is(err, events.ErrConflict) {
		return nil
	}
	if err != nil {
		return err
	}
	return w.bury(msg, job, dead.Reason)
}

// bury hands the message to the PoisonQueue middleware, with headers that
// say which delivery and why, and a message id that keeps a repeat out.
func (w *Workers) bury(msg *message.Message, job work, reason string) error {
	for k := range msg.Metadata {
		delete(msg.Metadata, k)
	}
	msg.Metadata.Set("Nats-Msg-Id", "poison."+job.DeliveryID+"."+strconv.Itoa(job.Attempt))
	msg.Metadata.Set(headerDeliveryID, job.DeliveryID)
	msg.Metadata.Set(headerDeadReason, reason)
	return fmt.Errorf("%w: %s after attempt %d (%s)", errDead, job.DeliveryID, job.Attempt, reason)
}

// disable turns a subscription off; a failure is logged, not retried: the
// next failed delivery decides again.
func (w *Workers) disable(ctx context.Context, sub projections.SubscriptionRecord, reason string) {
	for range 3 {
		s := domain.Subscription{ID: sub.ID, AccountID: sub.AccountID, Environment: sub.Environment, Status: sub.Status, Version: sub.Version}
		p, err := s.Disable(reason, w.cfg.Now())
		if err != nil {
			return // not active any more
		}
		ev, err := events.New(events.Meta{ID: events.DerivedEventID(sub.ID, "disabled", strconv.FormatUint(sub.Version, 10)),
			AggregateType: events.AggregateSubscription, AggregateID: sub.ID, AccountID: sub.AccountID,
			Environment: sub.Environment, Time: w.cfg.Now(), Actor: actor}, p)
		if err != nil {
			return
		}
		res, err := w.deps.Store.Append(ctx, events.Change{Event: ev, Expect: events.ExpectVersion(sub.Version)})
		if err == nil {
			w.cfg.Logger.Warn("callbacks: subscription disabled", "subscription", sub.ID, "reason", reason)
			_ = w.deps.Projector.WaitFor(ctx, res.Last())
			return
		}
		if !errors.Is(err, events.ErrConflict) {
			w.cfg.Logger.Error("callbacks: subscription not disabled", "subscription", sub.ID, "err", err)
			return
		}
		// Changed meanwhile (a secret rotation): decide on the fresh record.
		seq, err := w.deps.Store.LastSequence(ctx, events.AggregateSubscription, sub.ID)
		if err != nil || w.deps.Projector.WaitFor(ctx, seq) != nil {
			return
		}
		if sub, _, err = w.deps.Subscriptions.Get(sub.ID); err != nil {
			return
		}
	}
}

// checkSustainedFailure disables an endpoint that has failed for too long,
// as seen by the projection once it has applied the attempt at seq.
func (w *Workers) checkSustainedFailure(ctx context.Context, subscriptionID string, seq uint64) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := w.deps.Projector.WaitFor(wctx, seq); err != nil {
		return
	}
	sub, ok, err := w.deps.Subscriptions.Get(subscriptionID)
	if err != nil || !ok || sub.Status != domain.SubscriptionActive {
		return
	}
	if reason, yes := w.cfg.Failure.ShouldDisable(sub.ConsecutiveDead, sub.FailingSince, w.cfg.Now()); yes {
		w.disable(ctx, sub, reason)
	}
}
