package api

import (
	"errors"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// refreshTokenGrant is RFC 6749 §6 with rotation on every use (RFC 9700
// §4.14.2): the answer carries a new refresh token and the presented one
// is spent. Presenting a spent one revokes the whole grant (every access
// and refresh token issued from its code). Within the client's
// refresh_token_grace_period the token spent last may be presented once
// more (a client that lost the answer); that use is answered like the
// first and the refresh token the first use issued becomes spent. A
// refresh token works only for the client it was issued to, only while
// its user is active, and only until the grant is Config.RefreshTokenTTL
// old (an absolute lifetime: rotation does not extend it).
type refreshTokenGrant struct{ a *API }

var _ tokenGrant = refreshTokenGrant{}

func (g refreshTokenGrant) issue(c *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) (tokenResponse, *oauthError) {
	a := g.a
	if !slices.Contains(client.GrantTypes, domain.GrantRefreshToken) {
		return tokenResponse{}, errUnauthorizedClient.describe("the client may not use the refresh_token grant")
	}
	presented, ok := r.param("refresh_token")
	if !ok {
		return tokenResponse{}, errInvalidRequest.describe("refresh_token is required")
	}
	param, given := r.param("scope")
	requested, err := domain.ParseScopeParam(param, given)
	if err != nil {
		return tokenResponse{}, errInvalidScope.describe("scope must be scope names separated by single spaces")
	}
	cred, err := domain.ParseCredential(presented)
	if err != nil || cred.Prefix != domain.PrefixRefreshToken {
		return tokenResponse{}, errInvalidGrant.describe("the refresh token is not valid")
	}
	grantID := domain.GrantIDPrefix + cred.Selector
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := a.writeCtx(c)
		if attempt > 0 {
			_, err = a.fresh(ctx, events.AggregateGrant, grantID)
		}
		rec, found := projections.GrantRecord{}, false
		if err == nil {
			rec, found, err = a.grantByID(ctx, grantID)
		}
		var user projections.UserRecord
		userOK := false
		if err == nil && found {
			user, userOK, err = a.userByID(ctx, rec.UserID)
		}
		cancel()
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		if !found || rec.Client != client.ID {
			return tokenResponse{}, errInvalidGrant.describe("the refresh token is not valid for this client")
		}
		if !userOK || !userOf(user).Active() {
			return tokenResponse{}, errInvalidGrant.describe("the user is disabled or deleted")
		}
		next, err := domain.NewCredentialFor(a.rand(c), domain.PrefixRefreshToken, cred.Selector)
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		cl := clientOf(client)
		// The rotation decides the scopes; the access token made with them
		// is then named in it.
		refreshed, err := grantOf(rec).Refresh(domain.Refresh{Client: client.ID, Hash: domain.HashSecret(presented),
			NewRefreshHash: domain.HashSecret(next), Scopes: requested,
			Grace: time.Duration(client.RefreshTokenGracePeriod) * time.Second, MaxAge: a.cfg.RefreshTokenTTL, Now: r.now})
		switch {
		case errors.Is(err, domain.ErrRefreshReuse):
			if err := a.revokeGrant(c, rec.ID, "refresh token reused"); err != nil {
				return tokenResponse{}, failure(err)
			}
			return tokenResponse{}, errInvalidGrant.describe("the refresh token was already used; every token of this grant is revoked")
		case errors.Is(err, domain.ErrRefreshTokenExpired):
			return tokenResponse{}, errInvalidGrant.describe("the refresh token expired; the user must authorize again")
		case errors.Is(err, domain.ErrInvalidScope):
			return tokenResponse{}, errInvalidScope.describe("scope may only narrow the granted scopes: %s", domain.ScopeString(rec.Scopes))
		case err != nil:
			return tokenResponse{}, errInvalidGrant.describe("the refresh token is not valid")
		}
		token, access, issued, err := a.newAccessToken(c, cl, domain.IssueAccess{Scopes: refreshed.Scopes, UserID: rec.UserID, Grant: rec.ID, Now: r.now})
		if err != nil {
			return tokenResponse{}, accessFailure(err)
		}
		refreshed.AccessToken = issued.ID
		x := a.cmd(c)
		x.actor = client.ID
		change, err := clientChange(x, events.AggregateGrant, rec.ID, rec.AccountID, rec.Environment, refreshed)
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		change.Expect = events.ExpectVersion(rec.Version)
		_, err = a.commit(c, change, access)
		if isConflict(err) {
			continue // refreshed elsewhere meanwhile: decided again on fresh state
		}
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		resp := tokenResponseOf(token, issued)
		resp.RefreshToken = next
		return resp, nil
	}
	return tokenResponse{}, errTemporarilyUnavailable.describe("the refresh token is being used concurrently; retry")
}
