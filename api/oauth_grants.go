package api

import (
	"context"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// revocationBatch bounds the events of one atomic append when a grant's
// access tokens are revoked (JetStream caps atomic batches).
const revocationBatch = 100

func grantOf(r projections.GrantRecord) domain.Grant {
	return domain.Grant{ID: r.ID, Client: r.Client, AccountID: r.AccountID, UserID: r.UserID, Scopes: r.Scopes,
		RefreshHash: r.RefreshHash, PreviousRefreshHash: r.PreviousRefreshHash, PreviousValidUntil: r.PreviousValidUntil,
		Spent: r.Spent, RevokedAt: r.RevokedAt, CreatedAt: r.CreatedAt}
}

// grantByID looks a grant up, asking the stream on a miss (it may have
// been created on another node a moment ago).
func (a *API) grantByID(ctx context.Context, id string) (projections.GrantRecord, bool, error) {
	if !strings.HasPrefix(id, domain.GrantIDPrefix) || !events.ValidID(id) {
		return projections.GrantRecord{}, false, nil
	}
	rec, ok, err := a.Grants.Get(id)
	if err != nil || ok {
		return rec, ok, err
	}
	exists, err := a.fresh(ctx, events.AggregateGrant, id)
	if err != nil || !exists {
		return rec, false, err
	}
	return a.Grants.Get(id)
}

// revokeGrant revokes a grant and every live access token issued in it:
// token.revoked on the grant (its refresh tokens stop working) and on each
// access token, in atomic batches, the first expecting the grant's
// version. The answer waits until every live node has applied them, so
// introspection anywhere says inactive. A revoked grant is left alone.
func (a *API) revokeGrant(c *fiber.Ctx, id, reason string) error {
	for attempt := 0; ; attempt++ {
		ctx, cancel := a.writeCtx(c)
		rec, ok, err := a.grantByID(ctx, id)
		cancel()
		if err != nil || !ok {
			return err
		}
		x := a.cmd(c)
		revocation, err := grantOf(rec).Revoke(reason, x.now)
		if err != nil {
			return nil // revoked already
		}
		first, err := clientChange(x, events.AggregateGrant, rec.ID, rec.AccountID, rec.Environment, revocation)
		if err != nil {
			return err
		}
		first.Expect = events.ExpectVersion(rec.Version)
		batches := [][]events.Change{{first}}
		for _, tokenID := range rec.AccessTokens {
			tok, found, err := a.Access.Get(tokenID)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			ev, err := accessOf(tok).Revoke(reason, x.now)
			if err != nil || accessOf(tok).Status(x.now) != domain.StatusActive {
				continue // revoked or expired already
			}
			change, err := clientChange(x, events.AggregateAccess, tok.ID, tok.AccountID, tok.Environment, ev)
			if err != nil {
				return err
			}
			if last := &batches[len(batches)-1]; len(*last) < revocationBatch {
				*last = append(*last, change)
			} else {
				batches = append(batches, []events.Change{change})
			}
		}
		var seq uint64
		res, err := a.commit(c, batches[0]...)
		if isConflict(err) && attempt < 2 {
			if err := a.syncAggregate(c, events.AggregateGrant, id); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		seq = res.Last()
		for _, b := range batches[1:] {
			if res, err = a.commit(c, b...); err != nil {
				return err
			}
			seq = res.Last()
		}
		a.awaitCluster(c.UserContext(), seq)
		return nil
	}
}

// revokeGrantsOf revokes every grant of a user (of one client when client
// is not empty).
func (a *API) revokeGrantsOf(c *fiber.Ctx, user, client, reason string) error {
	ids, err := a.Grants.OfUser(user, client)
	if err != nil {
		return err
	}
	for _, id := range ids {
		rec, ok, err := a.Grants.Get(id)
		if err != nil {
			return err
		}
		if !ok || rec.RevokedAt != nil {
			continue
		}
		if err := a.revokeGrant(c, id, reason); err != nil {
			return err
		}
	}
	return nil
}
