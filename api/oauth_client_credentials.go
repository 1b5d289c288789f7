package api

import (
	"errors"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/projections"
)

// clientCredentialsGrant is RFC 6749 §4.4: a confidential client obtains a
// token for itself.
type clientCredentialsGrant struct{ a *API }

var _ tokenGrant = clientCredentialsGrant{}

func (g clientCredentialsGrant) issue(c *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) (tokenResponse, *oauthError) {
	cl := clientOf(client)
	if public(client) {
		return tokenResponse{}, errInvalidGrant.describe("a public client (token_endpoint_auth_method none) cannot use client_credentials (RFC 6749 §4.4)")
	}
	if !slices.Contains(client.GrantTypes, domain.GrantClientCredentials) {
		return tokenResponse{}, errUnauthorizedClient.describe("the client may not use the client_credentials grant")
	}
	param, given := r.param("scope")
	requested, err := domain.ParseScopeParam(param, given)
	if err != nil {
		return tokenResponse{}, errInvalidScope.describe("scope must be scope names separated by single spaces")
	}
	scopes, err := cl.GrantScopes(requested)
	switch {
	case err != nil && requested == nil:
		return tokenResponse{}, errInvalidScope.describe("no scope was requested and the client has no default_scopes")
	case err != nil:
		return tokenResponse{}, errInvalidScope.describe("the client may request only %s", strings.Join(client.Scopes, " "))
	}
	token, issued, err := g.a.issueAccessToken(c, cl, scopes, r.now)
	switch {
	case errors.Is(err, domain.ErrGrantNotAllowed):
		return tokenResponse{}, errUnauthorizedClient.describe("the client may not use the client_credentials grant")
	case errors.Is(err, domain.ErrNotFound):
		return tokenResponse{}, errInvalidClient.describe("the client was deleted")
	case err != nil:
		return tokenResponse{}, failure(err)
	}
	return tokenResponse{
		AccessToken: token, TokenType: "Bearer",
		ExpiresIn: int64(issued.ExpiresAt.Sub(issued.IssuedAt).Seconds()),
		Scope:     strings.Join(issued.Scopes, " "),
	}, nil
}
