package api

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// secretRotation is the optional body of POST /clients/:id/secret.
type secretRotation struct {
	// GracePeriod is how long, in seconds, the current secret keeps working
	// beside the new one. Default 0: it stops at once. At most 86400.
	GracePeriod *int64 `json:"grace_period"`
}

// rotateClientSecret gives a client a new secret, shown once in the answer.
// A rotation that loses a race with another change is decided again once
// on the fresh state.
func (a *API) rotateClientSecret(c *fiber.Ctx) error {
	var req secretRotation
	if len(bytes.TrimSpace(requestBody(c))) > 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	var grace time.Duration
	if g := req.GracePeriod; g != nil {
		if *g < 0 || *g > int64(domain.MaxSecretGracePeriod/time.Second) {
			return invalidRequest("grace_period must be from 0 to 86400 seconds",
				domain.FieldProblem{Field: "grace_period", Message: "must be from 0 to 86400 seconds"})
		}
		grace = time.Duration(*g) * time.Second
	}
	for attempt := 0; ; attempt++ {
		rec, err := a.ownClient(c)
		if err != nil {
			return err
		}
		x := a.cmd(c)
		secret, hash, err := newClientSecret(x)
		if err != nil {
			return err
		}
		rotated, err := clientOf(rec).RotateSecret(hash, grace, x.now)
		if errors.Is(err, domain.ErrNoClientSecret) {
			return conflict(fmt.Sprintf("the client authenticates with %s and has no secret to rotate", rec.TokenEndpointAuthMethod))
		}
		if err != nil {
			return err
		}
		change, err := clientChange(x, events.AggregateClient, rec.ID, rec.AccountID, rec.Environment, rotated)
		if err != nil {
			return err
		}
		change.Expect = events.ExpectVersion(rec.Version)
		retry, err := a.commitOrRetry(c, attempt, "the client is being changed concurrently; retry", change)
		if retry {
			continue
		}
		if err != nil {
			return err
		}
		fresh, _, err := a.Clients.Get(rec.ID)
		if err != nil {
			return err
		}
		view := viewClient(fresh, x.now)
		view.ClientSecret = secret
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(view)
	}
}
