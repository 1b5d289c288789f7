package api

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// deliveryView is a webhook delivery as GET /callbacks shows it: the event,
// the subscription, and the latest attempt.
type deliveryView struct {
	ID             string     `json:"id"`
	SubscriptionID string     `json:"subscription_id"`
	EventID        string     `json:"event_id"`
	EventType      string     `json:"event_type"`
	Attempt        int        `json:"attempt"`
	Status         string     `json:"status"`
	StatusCode     *int       `json:"status_code"`
	LatencyMS      *int64     `json:"latency_ms"`
	Error          *string    `json:"error"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func viewDelivery(r projections.DeliveryRecord) deliveryView {
	v := deliveryView{ID: r.ID, SubscriptionID: r.SubscriptionID, EventID: r.EventID, EventType: r.EventType,
		Attempt: r.Attempt, Status: r.Status, NextAttemptAt: r.NextAttemptAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.Attempt > 0 {
		v.LatencyMS = &r.LatencyMS
		if r.StatusCode != 0 {
			v.StatusCode = &r.StatusCode
		}
	}
	if r.Error != "" {
		v.Error = &r.Error
	}
	return v
}

var deliveryStatuses = []string{projections.DeliveryPending, projections.DeliveryFailed, projections.DeliverySucceeded, projections.DeliveryDead}

// listCallbacks lists the account's deliveries newest first, filtered by
// status and subscription.
func (a *API) listCallbacks(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	env := principal(c).Environment
	f := projections.DeliveryFilter{Status: c.Query("status"), SubscriptionID: c.Query("subscription_id")}
	if f.Status != "" && !slices.Contains(deliveryStatuses, f.Status) {
		return invalidRequest("status must be one of " + strings.Join(deliveryStatuses, ", "))
	}
	if f.SubscriptionID != "" {
		// Another account's subscription filters down to nothing.
		sub, ok, err := a.Subscriptions.Get(f.SubscriptionID)
		if err != nil {
			return err
		}
		if !ok || sub.AccountID != account || sub.Environment != env {
			return c.JSON(listResponse[deliveryView]{Data: []deliveryView{}})
		}
	}
	page, err := a.Deliveries.List(account, env, f, c.Query("cursor"), limit)
	return sendPage(c, page, err, viewDelivery)
}

// retryCallback asks for one more attempt of a delivery, now. It answers
// 202: the workers make the attempt; GET /callbacks shows how it went.
func (a *API) retryCallback(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	id := c.Params("id")
	if !events.ValidID(id) {
		return notFound("delivery")
	}
	for attempt := 0; ; attempt++ {
		rec, ok, err := a.Deliveries.Get(id)
		if err == nil && !ok && attempt == 0 {
			ctx, cancel := a.writeCtx(c)
			_, err = a.fresh(ctx, events.AggregateDelivery, id)
			cancel()
			if err == nil {
				rec, ok, err = a.Deliveries.Get(id)
			}
		}
		if err != nil {
			return err
		}
		if !ok || rec.AccountID != account || rec.Environment != principal(c).Environment {
			return notFound("delivery")
		}
		sub, ok, err := a.Subscriptions.Get(rec.SubscriptionID)
		if err != nil {
			return err
		}
		if !ok || sub.Status != domain.SubscriptionActive {
			return conflict("the delivery's subscription is " + subscriptionStatus(sub, ok) + ": nothing can be delivered to it")
		}
		x := a.cmd(c)
		p := events.DeliveryRetryRequested{ID: rec.ID, SubscriptionID: rec.SubscriptionID, AccountID: rec.AccountID,
			Attempt: rec.Attempt + 1, RequestedAt: x.now.UTC()}
		change, err := clientChange(x, events.AggregateDelivery, rec.ID, rec.AccountID, rec.Environment, p)
		if err != nil {
			return err
		}
		change.Expect = events.ExpectVersion(rec.Version)
		_, err = a.commit(c, change)
		if isConflict(err) && attempt < 2 {
			if err := a.syncAggregate(c, events.AggregateDelivery, rec.ID); err != nil {
				return err
			}
			continue
		}
		if isConflict(err) {
			return conflict("the delivery is being attempted right now; retry")
		}
		if err != nil {
			return err
		}
		rec, _, err = a.Deliveries.Get(id)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(viewDelivery(rec))
	}
}

func subscriptionStatus(r projections.SubscriptionRecord, ok bool) string {
	if !ok {
		return domain.SubscriptionDeleted
	}
	return r.Status
}

// errorView is one integration error.
type errorView = projections.ErrorRecord

var errorKinds = []string{projections.ErrorDeliveryFailed, projections.ErrorVerificationFailed, projections.ErrorServerError}

// listErrors lists the account's integration errors newest first: failed
// deliveries, verifications that did not answer VALID, server errors.
func (a *API) listErrors(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	kind := c.Query("kind")
	if kind != "" && !slices.Contains(errorKinds, kind) {
		return invalidRequest("kind must be one of " + strings.Join(errorKinds, ", "))
	}
	page, err := a.Errors.List(account, principal(c).Environment, kind, c.Query("cursor"), limit)
	if errors.Is(err, projections.ErrBadCursor) {
		return invalidRequest("cursor is not valid")
	}
	if err != nil {
		return err
	}
	out := listResponse[errorView]{Data: page.Items}
	if out.Data == nil {
		out.Data = []errorView{}
	}
	if page.NextCursor != "" {
		out.NextCursor = &page.NextCursor
	}
	return c.JSON(out)
}
