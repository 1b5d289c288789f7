package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/projections"
)

// noneAuth identifies a public client (token_endpoint_auth_method none) by
// its client_id alone (RFC 6749 §2.1, §3.2.1). It proves nothing, so the
// grants decide what a public client may do: client_credentials refuses it
// (invalid_grant), introspection refuses it; revocation lets it revoke its
// own tokens (RFC 7009 §2.1); authorization_code requires them to use PKCE.
type noneAuth struct{}

func (noneAuth) name() string { return domain.AuthNone }

func (noneAuth) presented(r *oauthRequest) bool {
	_, id := r.param("client_id")
	_, secret := r.param("client_secret")
	_, assertion := r.param("client_assertion")
	_, assertionType := r.param("client_assertion_type")
	return id && !secret && !assertion && !assertionType && !(basicAuth{}).presented(r)
}

func (noneAuth) clientID(r *oauthRequest) (string, *oauthError) {
	id, _ := r.param("client_id")
	return id, nil
}

func (noneAuth) verify(*fiber.Ctx, *oauthRequest, projections.ClientRecord) *oauthError { return nil }

// public reports whether the client authenticated without credentials.
func public(client projections.ClientRecord) bool {
	return client.TokenEndpointAuthMethod == domain.AuthNone
}
