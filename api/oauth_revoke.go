package api

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// fenceTimeout bounds how long a revocation waits for the other nodes to
// apply it before answering anyway (the event is stored; a slow node
// applies it when it catches up).
const fenceTimeout = 2 * time.Second

// revokeAccess is POST /oauth2/revoke (RFC 7009). The client revokes one of its
// own access tokens, opaque or JWT (by its jti). Unknown tokens, tokens of
// other clients and tokens revoked before all answer 200 and change
// nothing. The revocation is token.revoked on the access token's
// aggregate: every node and every subscriber of events.RevocationSubjects
// sees it. The answer comes once this node and every other live node of the
// cluster has applied it, so introspection anywhere says inactive.
func (a *API) revokeAccess(c *fiber.Ctx) error {
	r, oe := a.newOAuthRequest(c)
	if oe != nil {
		return oe
	}
	client, oe := a.authenticateClient(c, r)
	if oe != nil {
		return oe
	}
	token, ok := r.param("token")
	if !ok {
		return errInvalidRequest.describe("token is required")
	}
	// token_type_hint is optional and only speeds up a search; there is
	// one kind of revocable token here, so it is not needed.
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	for attempt := 0; attempt < 3; attempt++ {
		rec, found, err := a.lookupAccess(c, token)
		if err != nil {
			return failure(err)
		}
		if !found || rec.Client != client.ID {
			return revocationAnswer(c)
		}
		x := a.cmd(c)
		x.actor = client.ID
		revocation, err := accessOf(rec).Revoke("revoked by the client (RFC 7009)", x.now)
		if errors.Is(err, domain.ErrConflict) {
			return revocationAnswer(c)
		}
		meta, err := x.meta(events.AggregateAccess, rec.ID, rec.AccountID, rec.Environment)
		if err != nil {
			return failure(err)
		}
		ev, err := events.New(meta, revocation)
		if err != nil {
			return failure(err)
		}
		res, err := a.commit(c, events.Change{Event: ev, Expect: events.ExpectVersion(rec.Version)})
		if isConflict(err) {
			if err := a.syncAggregate(c, events.AggregateAccess, rec.ID); err != nil {
				return failure(err)
			}
			continue
		}
		if err != nil {
			return failure(err)
		}
		a.awaitCluster(c.UserContext(), res.Last())
		return revocationAnswer(c)
	}
	return errTemporarilyUnavailable.describe("the token is being changed concurrently; retry")
}

// awaitCluster waits, for at most fenceTimeout, until every other live
// node has applied seq.
func (a *API) awaitCluster(ctx context.Context, seq uint64) {
	if a.Fence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, fenceTimeout)
	defer cancel()
	if err := a.Fence.Wait(ctx, seq); err != nil {
		a.Logger.Warn("revocation stored but not yet applied by every node", "seq", seq, "err", err)
	}
}

// revocationAnswer is RFC 7009 §2.2's answer: 200 with an empty body.
func revocationAnswer(c *fiber.Ctx) error {
	c.Status(fiber.StatusOK)
	return nil
}
