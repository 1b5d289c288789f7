package api

import (
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// patchClient changes a client's settings. A client moved from a method
// without a secret to client_secret_basic or client_secret_post is given a
// secret, shown once in this answer. A write that loses a race with another
// change is decided again once on the fresh state.
func (a *API) patchClient(c *fiber.Ctx) error {
	var req clientPatch
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	p := principal(c)
	for attempt := 0; ; attempt++ {
		rec, err := a.ownClient(c)
		if err != nil {
			return err
		}
		if req.ClientID != nil && *req.ClientID != rec.ClientID {
			return invalidRequest("client_id cannot be changed: create a new client instead",
				domain.FieldProblem{Field: "client_id", Message: fmt.Sprintf("cannot be changed (is %q)", rec.ClientID)})
		}
		current := clientOf(rec)
		spec, err := req.merge(current.Spec())
		if err != nil {
			return err
		}
		x := a.cmd(c)
		var secret, newHash string
		if current.SecretHash == "" && domain.ClientUsesSecret(spec.TokenEndpointAuthMethod) {
			if secret, newHash, err = newClientSecret(x); err != nil {
				return err
			}
		}
		if req.Scopes != nil {
			if _, err := a.lookupScopes(*req.Scopes); err != nil {
				return err
			}
		}
		updated, changed, err := current.Update(domain.UpdateClient{Spec: spec, NewSecretHash: newHash, GrantorScopes: p.Scopes}, x.now)
		if err != nil {
			return err
		}
		if !changed {
			return c.JSON(viewClient(rec, x.now)) // nothing to change: no event
		}
		change, err := clientChange(x, events.AggregateClient, rec.ID, rec.AccountID, rec.Environment, updated)
		if err != nil {
			return err
		}
		change.Expect = events.ExpectVersion(rec.Version)
		retry, err := a.commitOrRetry(c, attempt, "the client is being changed concurrently; read it again and retry", change)
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
		if updated.SecretHash == newHash && newHash != "" {
			view.ClientSecret = secret
			c.Set(fiber.HeaderCacheControl, "no-store")
		}
		return c.JSON(view)
	}
}

// deleteClient ends a client and releases its client_id in one atomic
// append, so the client_id can be used again at once.
func (a *API) deleteClient(c *fiber.Ctx) error {
	for attempt := 0; ; attempt++ {
		rec, err := a.ownClient(c)
		if err != nil {
			return err
		}
		claim, ok, err := a.Clients.Claim(rec.ClientID)
		if err != nil {
			return err
		}
		if !ok || claim.Client != rec.ID || claim.Released {
			return fmt.Errorf("client %s: claim on its client_id missing from the projection (%+v)", rec.ID, claim)
		}
		x := a.cmd(c)
		deleted, released, err := clientOf(rec).Delete(x.now)
		if err != nil {
			return err
		}
		deletedChange, err := clientChange(x, events.AggregateClient, rec.ID, rec.AccountID, rec.Environment, deleted)
		if err != nil {
			return err
		}
		releasedChange, err := clientChange(x, events.AggregateClientID, events.ClientIDKey(rec.ClientID), rec.AccountID, rec.Environment, released)
		if err != nil {
			return err
		}
		deletedChange.Expect, releasedChange.Expect = events.ExpectVersion(rec.Version), events.ExpectVersion(claim.Version)
		_, err = a.commit(c, deletedChange, releasedChange)
		if isConflict(err) && attempt < 2 {
			if err := a.syncAggregate(c, events.AggregateClient, rec.ID); err != nil {
				return err
			}
			if err := a.syncAggregate(c, events.AggregateClientID, events.ClientIDKey(rec.ClientID)); err != nil {
				return err
			}
			continue
		}
		if isConflict(err) {
			return conflict("the client is being changed concurrently; retry")
		}
		if err != nil {
			return err
		}
		return c.SendStatus(fiber.StatusNoContent)
	}
}
