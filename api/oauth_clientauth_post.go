package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/projections"
)

// postAuth is client_secret_post: client_id and client_secret in the form
// body (RFC 6749 §2.3.1).
type postAuth struct{}

func (postAuth) name() string { return domain.AuthClientSecretPost }

func (postAuth) presented(r *oauthRequest) bool {
	_, ok := r.param("client_secret")
	return ok
}

func (postAuth) clientID(r *oauthRequest) (string, *oauthError) {
	id, ok := r.param("client_id")
	if !ok {
		return "", errInvalidClient.describe("client_id is required with client_secret")
	}
	return id, nil
}

func (postAuth) verify(_ *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) *oauthError {
	secret, _ := r.param("client_secret")
	if !clientOf(client).CheckSecret(secret, r.now) {
		return errAuthenticationFailed
	}
	return nil
}
