package api

import (
	"bytes"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// subscriptionRequest is the body of POST /subscriptions.
type subscriptionRequest struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
}

// subscriptionView is a subscription as the API shows it. Secret is set
// only in the answer that issued it (creation, rotation).
type subscriptionView struct {
	ID             string     `json:"id"`
	Secret         string     `json:"secret,omitempty"`
	AccountID      string     `json:"account_id"`
	Environment    string     `json:"environment"`
	URL            string     `json:"url"`
	EventTypes     []string   `json:"event_types"`
	Description    string     `json:"description"`
	Status         string     `json:"status"`
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
	// PreviousSecretValidUntil is when a rotated-away secret stops signing
	// deliveries; null when only the current one signs.
	PreviousSecretValidUntil *time.Time `json:"previous_secret_valid_until"`
	CreatedAt                time.Time  `json:"created_at"`
	UpdatedAt                time.Time  `json:"updated_at"`
}

func viewSubscription(r projections.SubscriptionRecord, now time.Time) subscriptionView {
	v := subscriptionView{ID: r.ID, AccountID: r.AccountID, Environment: r.Environment, URL: r.URL,
		EventTypes: nonNil(r.EventTypes), Description: r.Description, Status: r.Status, DisabledAt: r.DisabledAt,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.DisabledReason != "" {
		v.DisabledReason = &r.DisabledReason
	}
	if r.PreviousValidUntil != nil && now.Before(*r.PreviousValidUntil) {
		v.PreviousSecretValidUntil = r.PreviousValidUntil
	}
	return v
}

// newSealedSecret draws a signing secret and seals it for the subscription.
func (a *API) newSealedSecret(x cmdCtx, subscriptionID string) (string, events.SealedSecret, error) {
	secret, err := domain.NewWebhookSecret(x.rand)
	if err != nil {
		return "", events.SealedSecret{}, err
	}
	sealed, err := domain.SealSecret(a.cfg.KeyEncryptionKey, subscriptionID, secret, x.rand)
	return secret, sealed, err
}

func (a *API) createSubscription(c *fiber.Ctx) error {
	var req subscriptionRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	x := a.cmd(c)
	id, err := domain.NewID(x.rand, domain.SubscriptionIDPrefix, 20)
	if err != nil {
		return err
	}
	secret, sealed, err := a.newSealedSecret(x, id)
	if err != nil {
		return err
	}
	env := principal(c).Environment
	created, err := domain.NewSubscription(domain.CreateSubscription{ID: id, AccountID: account, Environment: env,
		URL: req.URL, EventTypes: req.EventTypes, Description: req.Description, Secret: sealed}, x.now)
	if err != nil {
		return err
	}
	ctx, cancel := a.writeCtx(c)
	err = a.CheckCallbackURL(ctx, created.URL)
	cancel()
	if err != nil {
		return invalidRequest("url: "+err.Error(), domain.FieldProblem{Field: "url", Message: err.Error()})
	}
	change, err := clientChange(x, events.AggregateSubscription, id, account, env, created)
	if err != nil {
		return err
	}
	change.Expect = events.ExpectNew
	if _, err := a.commit(c, change); err != nil {
		return err
	}
	rec, ok, err := a.Subscriptions.Get(id)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("subscription applied but missing from the projection")
	}
	view := viewSubscription(rec, x.now)
	view.Secret = secret
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderLocation, "/subscriptions/"+id)
	return c.Status(fiber.StatusCreated).JSON(view)
}

// ownSubscription finds a live subscription of the caller's account (or
// any, for admin with account_id) in its key's environment; anything else
// is 404, so ids are not confirmed to strangers.
func (a *API) ownSubscription(c *fiber.Ctx) (projections.SubscriptionRecord, error) {
	account, err := a.targetAccount(c)
	if err != nil {
		return projections.SubscriptionRecord{}, err
	}
	id := c.Params("id")
	if !strings.HasPrefix(id, domain.SubscriptionIDPrefix) || !events.ValidID(id) {
		return projections.SubscriptionRecord{}, notFound("subscription")
	}
	rec, ok, err := a.Subscriptions.Get(id)
	if err == nil && !ok {
		// Made on another node a moment ago?
		ctx, cancel := a.writeCtx(c)
		exists, ferr := a.fresh(ctx, events.AggregateSubscription, id)
		cancel()
		if ferr == nil && exists {
			rec, ok, err = a.Subscriptions.Get(id)
		}
	}
	if err != nil {
		return rec, err
	}
	if !ok || rec.AccountID != account || rec.Environment != principal(c).Environment || rec.Status == domain.SubscriptionDeleted {
		return rec, notFound("subscription")
	}
	return rec, nil
}

func subscriptionOf(r projections.SubscriptionRecord) domain.Subscription {
	return domain.Subscription{ID: r.ID, AccountID: r.AccountID, Environment: r.Environment, Status: r.Status, Version: r.Version}
}

func (a *API) getSubscription(c *fiber.Ctx) error {
	rec, err := a.ownSubscription(c)
	if err != nil {
		return err
	}
	return c.JSON(viewSubscription(rec, a.now(c)))
}

func (a *API) listSubscriptions(c *fiber.Ctx) error {
	account, err := a.targetAccount(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := a.Subscriptions.ListByAccount(account, principal(c).Environment, c.Query("cursor"), limit)
	now := a.now(c)
	return sendPage(c, page, err, func(r projections.SubscriptionRecord) subscriptionView { return viewSubscription(r, now) })
}

// changeSubscription appends what decide makes of the current record,
// deciding once more on fresh state if another change won the race.
func (a *API) changeSubscription(c *fiber.Ctx, decide func(projections.SubscriptionRecord, cmdCtx) (events.Payload, error)) (cmdCtx, error) {
	for attempt := 0; ; attempt++ {
		rec, err := a.ownSubscription(c)
		if err != nil {
			return cmdCtx{}, err
		}
		x := a.cmd(c)
		p, err := decide(rec, x)
		if err != nil {
			return x, err
		}
		change, err := clientChange(x, events.AggregateSubscription, rec.ID, rec.AccountID, rec.Environment, p)
		if err != nil {
			return x, err
		}
		change.Expect = events.ExpectVersion(rec.Version)
		retry, err := a.commitOrRetry(c, attempt, "the subscription is being changed concurrently; retry", change)
		if retry {
			continue
		}
		return x, err
	}
}

func (a *API) deleteSubscription(c *fiber.Ctx) error {
	_, err := a.changeSubscription(c, func(r projections.SubscriptionRecord, x cmdCtx) (events.Payload, error) {
		p, err := subscriptionOf(r).Delete(x.now)
		if errors.Is(err, domain.ErrNotFound) {
			return nil, notFound("subscription")
		}
		return p, err
	})
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// rotateSubscriptionSecret gives a subscription a new signing secret,
// shown once. With grace_period (seconds, at most 86400) deliveries carry
// signatures with both secrets until it ends.
func (a *API) rotateSubscriptionSecret(c *fiber.Ctx) error {
	var req secretRotation
	if len(bytes.TrimSpace(requestBody(c))) > 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	var grace time.Duration
	if g := req.GracePeriod; g != nil {
		if *g < 0 || *g > int64(domain.MaxWebhookSecretGrace/time.Second) {
			return invalidRequest("grace_period must be from 0 to 86400 seconds",
				domain.FieldProblem{Field: "grace_period", Message: "must be from 0 to 86400 seconds"})
		}
		grace = time.Duration(*g) * time.Second
	}
	var secret string
	x, err := a.changeSubscription(c, func(r projections.SubscriptionRecord, x cmdCtx) (events.Payload, error) {
		s, sealed, err := a.newSealedSecret(x, r.ID)
		if err != nil {
			return nil, err
		}
		secret = s
		return subscriptionOf(r).RotateSecret(sealed, grace, x.now)
	})
	if err != nil {
		return err
	}
	rec, err := a.ownSubscription(c)
	if err != nil {
		return err
	}
	view := viewSubscription(rec, x.now)
	view.Secret = secret
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(view)
}
