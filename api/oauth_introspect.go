package api

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/projections"
)

// introspection is RFC 7662 §2.2's answer. An inactive token is exactly
// {"active":false}: nothing about why.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Subject   string `json:"sub,omitempty"`
	Expiry    int64  `json:"exp,omitempty"`
	IssuedAt  int64  `json:"iat,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Audience  any    `json:"aud,omitempty"`
	Issuer    string `json:"iss,omitempty"`
	JTI       string `json:"jti,omitempty"`
}

// introspectionCaller is who asks: an account and environment, or admin.
type introspectionCaller struct {
	accountID, environment string
	admin                  bool
}

// sees: tokens of other accounts are simply inactive; a sandbox caller
// sees sandbox tokens only.
func (c introspectionCaller) sees(r projections.AccessRecord) bool {
	if c.admin {
		return true
	}
	return r.AccountID == c.accountID && (c.environment == domain.EnvLive || r.Environment == c.environment)
}

// usesAPIKey reports whether the caller presents an API key (Bearer or
// X-API-Key) rather than client credentials.
func usesAPIKey(c *fiber.Ctx, r *oauthRequest) bool {
	scheme, _, _ := strings.Cut(r.authorization, " ")
	return strings.EqualFold(scheme, "Bearer") || (r.authorization == "" && c.Get("X-API-Key") != "")
}

// introspect is POST /oauth2/introspect (RFC 7662). The caller
// authenticates as a client (any client of the token's account) or with an
// API key holding tokens:introspect.
func (a *API) introspect(c *fiber.Ctx) error {
	r, oe := a.newOAuthRequest(c)
	if oe != nil {
		return oe
	}
	var caller introspectionCaller
	if usesAPIKey(c, r) {
		if err := a.authenticate(c); err != nil {
			return err // mapped to invalid_token / insufficient_scope on this path
		}
		p := principal(c)
		if !domain.HasScope(p.Scopes, domain.ScopeTokensIntrospect) {
			return errInsufficientScope.describe("the API key lacks the tokens:introspect scope")
		}
		caller = introspectionCaller{accountID: p.AccountID, environment: p.Environment, admin: p.Admin()}
	} else {
		client, oe := a.authenticateClient(c, r)
		if oe != nil {
			return oe
		}
		if public(client) {
			return errInvalidClient.describe("introspection needs client credentials; a public client has none")
		}
		caller = introspectionCaller{accountID: client.AccountID, environment: client.Environment}
	}
	token, ok := r.param("token")
	if !ok {
		return errInvalidRequest.describe("token is required")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	rec, found, err := a.lookupAccess(c, token)
	if err != nil {
		return failure(err)
	}
	if !found || !caller.sees(rec) || accessOf(rec).Status(r.now) != domain.StatusActive {
		return c.JSON(introspection{Active: false})
	}
	out := introspection{
		Active: true, Scope: strings.Join(rec.Scopes, " "), ClientID: rec.ClientID, Subject: rec.Subject,
		Expiry: rec.ExpiresAt.Unix(), IssuedAt: rec.IssuedAt.Unix(), TokenType: "Bearer",
		Audience: audienceClaim(rec.Audience), Issuer: a.issuer(),
	}
	if rec.Format == domain.AccessTokenJWT {
		out.JTI = rec.ID
	}
	return c.JSON(out)
}
