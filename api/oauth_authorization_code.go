package api

import (
	"errors"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// authorizationCodeGrant is RFC 6749 §4.1.3 with RFC 7636 PKCE: a client
// exchanges a code for an access token for the user who authorized it
// (and, if the client may refresh, a refresh token). A code is redeemed
// once across the cluster: the redemption expects the code's version and
// is appended atomically with the grant and the access token, so two nodes
// cannot both issue tokens from one code. A code presented again revokes
// what it issued (RFC 6749 §4.1.2).
type authorizationCodeGrant struct{ a *API }

var _ tokenGrant = authorizationCodeGrant{}

func (g authorizationCodeGrant) issue(c *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) (tokenResponse, *oauthError) {
	a := g.a
	if !slices.Contains(client.GrantTypes, domain.GrantAuthorizationCode) {
		return tokenResponse{}, errUnauthorizedClient.describe("the client may not use the authorization_code grant")
	}
	code, ok := r.param("code")
	if !ok {
		return tokenResponse{}, errInvalidRequest.describe("code is required")
	}
	redirectURI, _ := r.param("redirect_uri")
	verifier, _ := r.param("code_verifier")
	hash := domain.HashSecret(code)
	for attempt := 0; attempt < 3; attempt++ {
		if err := a.syncAggregate(c, events.AggregateAuthCode, hash); err != nil {
			return tokenResponse{}, failure(err)
		}
		rec, found, err := a.Grants.Code(hash)
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		if !found {
			return tokenResponse{}, errInvalidGrant.describe("the authorization code is not valid")
		}
		authCode := domain.AuthCode{AuthCodeIssued: rec.AuthCodeIssued, Grant: rec.Grant}
		grantID, refresh, selector, err := newGrantID(a, c, client)
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		redeemed, err := authCode.Redeem(domain.RedeemCode{Client: client.ID, RedirectURI: redirectURI, CodeVerifier: verifier,
			Grant: grantID, Now: r.now})
		switch {
		case errors.Is(err, domain.ErrCodeUsed):
			if err := a.revokeGrant(c, rec.Grant, "authorization code replayed"); err != nil {
				return tokenResponse{}, failure(err)
			}
			return tokenResponse{}, errInvalidGrant.describe("the authorization code was already used; the tokens issued with it are revoked")
		case err != nil:
			return tokenResponse{}, errInvalidGrant.describe("the authorization code is not valid: %s", codeProblem(authCode, client, redirectURI, r))
		}
		ctx, cancel := a.writeCtx(c)
		user, ok, err := a.userByID(ctx, rec.UserID)
		cancel()
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		if !ok || !userOf(user).Active() {
			return tokenResponse{}, errInvalidGrant.describe("the user who authorized the code is disabled or deleted")
		}
		cl := clientOf(client)
		token, access, issued, err := a.newAccessToken(c, cl, domain.IssueAccess{Scopes: rec.Scopes, UserID: rec.UserID, Grant: grantID, Now: r.now})
		if err != nil {
			return tokenResponse{}, accessFailure(err)
		}
		var refreshToken, refreshHash string
		if refresh {
			if refreshToken, err = domain.NewCredentialFor(a.rand(c), domain.PrefixRefreshToken, selector); err != nil {
				return tokenResponse{}, failure(err)
			}
			refreshHash = domain.HashSecret(refreshToken)
		}
		x := a.cmd(c)
		x.actor = client.ID
		redeemChange, err := clientChange(x, events.AggregateAuthCode, hash, rec.AccountID, rec.Environment, redeemed)
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		redeemChange.Expect = events.ExpectVersion(rec.Version)
		grantChange, err := clientChange(x, events.AggregateGrant, grantID, rec.AccountID, rec.Environment,
			authCode.NewGrant(grantID, issued.ID, refreshHash, r.now))
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		grantChange.Expect = events.ExpectNew
		_, err = a.commit(c, redeemChange, grantChange, access)
		if isConflict(err) {
			continue // redeemed elsewhere meanwhile: decided again, as a replay
		}
		if err != nil {
			return tokenResponse{}, failure(err)
		}
		resp := tokenResponseOf(token, issued)
		resp.RefreshToken = refreshToken
		return resp, nil
	}
	return tokenResponse{}, errTemporarilyUnavailable.describe("the authorization code is being redeemed concurrently; retry")
}

// newGrantID draws the id of a new grant: grt_ + the selector its refresh
// tokens will share. refresh says whether the client gets refresh tokens.
func newGrantID(a *API, c *fiber.Ctx, client projections.ClientRecord) (id string, refresh bool, selector string, err error) {
	_, cred, err := domain.NewCredential(a.rand(c), domain.PrefixRefreshToken)
	if err != nil {
		return "", false, "", err
	}
	return domain.GrantIDPrefix + cred.Selector, slices.Contains(client.GrantTypes, domain.GrantRefreshToken), cred.Selector, nil
}

// codeProblem says, for error_description, why a code was refused.
func codeProblem(code domain.AuthCode, client projections.ClientRecord, redirectURI string, r *oauthRequest) string {
	verifier, _ := r.param("code_verifier")
	switch {
	case code.Client != client.ID:
		return "it was issued to another client"
	case !r.now.Before(code.ExpiresAt):
		return "it expired (codes live 60 seconds)"
	case code.RedirectURIGiven && redirectURI != code.RedirectURI:
		return "redirect_uri must be the one of the authorization request"
	case redirectURI != "" && redirectURI != code.RedirectURI:
		return "redirect_uri does not match"
	case code.CodeChallenge == "":
		return "code_verifier was sent but the authorization request had no code_challenge"
	case verifier == "":
		return "code_verifier is required (PKCE)"
	}
	return "code_verifier does not match the code_challenge"
}

// accessFailure maps an error of newAccessToken.
func accessFailure(err error) *oauthError {
	switch {
	case errors.Is(err, domain.ErrGrantNotAllowed):
		return errUnauthorizedClient.describe("the client may not use the authorization_code grant")
	case errors.Is(err, domain.ErrNotFound):
		return errInvalidClient.describe("the client was deleted")
	}
	return failure(err)
}

func tokenResponseOf(token string, issued events.AccessIssued) tokenResponse {
	return tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(issued.ExpiresAt.Sub(issued.IssuedAt).Seconds()),
		Scope: strings.Join(issued.Scopes, " ")}
}
