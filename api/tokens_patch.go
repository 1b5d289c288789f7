package api

import (
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// tokenPatch is the body of PATCH /tokens/:id: changes, or a rotation when
// refresh_token is given.
type tokenPatch struct {
	Name         *string             `json:"name"`
	Scopes       []string            `json:"scopes"`
	TTL          *int64              `json:"ttl"`
	ExpiresAt    *time.Time          `json:"expires_at"`
	Limits       *events.TokenLimits `json:"limits"`
	RateLimit    *events.RateLimit   `json:"rate_limit"`
	RefreshToken *string             `json:"refresh_token"`
	GracePeriod  *int64              `json:"grace_period"`
}

func (a *API) patchToken(c *fiber.Ctx) error {
	var req tokenPatch
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	rec, err := a.ownToken(c)
	if err != nil {
		return err
	}
	if req.RefreshToken != nil {
		if req.Name != nil || req.Scopes != nil || req.TTL != nil || req.ExpiresAt != nil || req.Limits != nil || req.RateLimit != nil {
			return invalidRequest("a rotation (refresh_token) cannot change other fields in the same request")
		}
		return a.rotateToken(c, req, 0)
	}
	if req.GracePeriod != nil {
		return invalidRequest("grace_period goes with refresh_token")
	}
	if req.Scopes != nil {
		if err := a.checkTokenScopes(req.Scopes); err != nil {
			return err
		}
	}
	cmd := domain.UpdateToken{Name: req.Name, Scopes: req.Scopes, ExpiresAt: req.ExpiresAt, Limits: req.Limits,
		RateLimit: req.RateLimit, GrantorScopes: principal(c).Scopes}
	if req.TTL != nil {
		if *req.TTL <= 0 || *req.TTL > maxTTLSeconds {
			return invalidRequest("ttl must be from 1 second to 10 years", domain.FieldProblem{Field: "ttl", Message: "must be from 1 to 315360000 seconds"})
		}
		cmd.TTL = time.Duration(*req.TTL) * time.Second
	}
	tok := tokenOf(rec)
	updated, err := tok.Update(cmd, a.now(c))
	if errors.Is(err, domain.ErrConflict) {
		return conflict("a revoked token cannot be changed")
	}
	if err != nil {
		return err
	}
	meta, err := a.cmd(c).meta(events.AggregateToken, rec.ID, rec.AccountID, rec.Environment)
	if err != nil {
		return err
	}
	ev, err := events.New(meta, updated)
	if err != nil {
		return err
	}
	if _, err := a.commit(c, events.Change{Event: ev, Expect: events.ExpectVersion(rec.Version)}); err != nil {
		if errors.Is(err, events.ErrConflict) {
			return conflict("the token changed concurrently; read it again and retry")
		}
		return err
	}
	fresh, _, err := a.Tokens.Get(rec.ID)
	if err != nil {
		return err
	}
	return c.JSON(a.viewToken(fresh, a.now(c)))
}

// rotateToken exchanges a refresh token for a new token value and refresh
// token. A refresh token presented a second time revokes the token: someone
// else has it (RFC 9700 reuse detection).
func (a *API) rotateToken(c *fiber.Ctx, req tokenPatch, depth int) error {
	rec, err := a.ownToken(c)
	if err != nil {
		return err
	}
	grace := time.Duration(0)
	if req.GracePeriod != nil {
		if *req.GracePeriod < 0 || *req.GracePeriod > int64(domain.MaxGracePeriod/time.Second) {
			return invalidRequest("grace_period must be from 0 to 300 seconds",
				domain.FieldProblem{Field: "grace_period", Message: "must be from 0 to 300 seconds"})
		}
		grace = time.Duration(*req.GracePeriod) * time.Second
	}
	cred, err := domain.ParseCredential(*req.RefreshToken)
	if err != nil || cred.Prefix != domain.PrefixRefreshToken || cred.TokenID() != rec.ID {
		return invalidRequest("refresh_token is not this token's refresh token")
	}
	x := a.cmd(c)
	prefix := domain.PrefixLive
	if rec.Environment == domain.EnvTest {
		prefix = domain.PrefixTest
	}
	secret, err := domain.NewCredentialFor(x.rand, prefix, cred.Selector)
	if err != nil {
		return err
	}
	refresh, err := domain.NewCredentialFor(x.rand, domain.PrefixRefreshToken, cred.Selector)
	if err != nil {
		return err
	}
	tok := tokenOf(rec)
	rotated, err := tok.Rotate(domain.HashSecret(*req.RefreshToken), domain.HashSecret(secret), domain.HashSecret(refresh), grace, x.now)
	switch {
	case errors.Is(err, domain.ErrRefreshReuse):
		if rerr := a.revoke(c, rec, "refresh_token_reuse"); rerr != nil && !errors.Is(rerr, domain.ErrConflict) {
			return rerr
		}
		return conflict("refresh_token was already used: the token has been revoked")
	case errors.Is(err, domain.ErrRefreshInvalid):
		return invalidRequest("refresh_token is not this token's refresh token")
	case errors.Is(err, domain.ErrConflict):
		return conflict("a revoked token cannot be rotated")
	case err != nil:
		return err
	}
	meta, err := x.meta(events.AggregateToken, rec.ID, rec.AccountID, rec.Environment)
	if err != nil {
		return err
	}
	ev, err := events.New(meta, rotated)
	if err != nil {
		return err
	}
	if _, err := a.commit(c, events.Change{Event: ev, Expect: events.ExpectVersion(rec.Version)}); err != nil {
		if errors.Is(err, events.ErrConflict) && depth < 3 {
			// Changed concurrently (perhaps a rotation that spent this very
			// refresh token): catch up and decide again.
			ctx, cancel := a.writeCtx(c)
			_, ferr := a.fresh(ctx, events.AggregateToken, rec.ID)
			cancel()
			if ferr != nil {
				return ferr
			}
			return a.rotateToken(c, req, depth+1)
		}
		return err
	}
	fresh, _, err := a.Tokens.Get(rec.ID)
	if err != nil {
		return err
	}
	view := a.viewToken(fresh, x.now)
	view.Token, view.RefreshToken = secret, refresh
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(view)
}
