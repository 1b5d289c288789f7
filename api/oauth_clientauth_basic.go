package api

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/projections"
)

// basicAuth is client_secret_basic: HTTP Basic with the client_id and
// secret each form-URL-encoded before they are joined with ':' and Base64
// encoded (RFC 6749 §2.3.1), so "a%3Ab" is the client_id "a:b".
type basicAuth struct{}

func (basicAuth) name() string { return domain.AuthClientSecretBasic }

func (basicAuth) presented(r *oauthRequest) bool {
	scheme, _, _ := strings.Cut(r.authorization, " ")
	return strings.EqualFold(scheme, "Basic")
}

func (basicAuth) clientID(r *oauthRequest) (string, *oauthError) {
	id, secret, err := parseBasic(r.authorization)
	if err != nil {
		return "", errInvalidClient.describe("%s", err.Error())
	}
	r.basicID, r.basicSecret = id, secret
	return id, nil
}

func (basicAuth) verify(_ *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) *oauthError {
	if !clientOf(client).CheckSecret(r.basicSecret, r.now) {
		return errAuthenticationFailed
	}
	return nil
}

// maxBasicHeader bounds the Authorization header of HTTP Basic.
const maxBasicHeader = 4096

// Problems of an HTTP Basic header. Their text is the error_description.
var (
	errBasicMalformed = errors.New("the Authorization header is not HTTP Basic with Base64 credentials")
	errBasicNoColon   = errors.New("HTTP Basic credentials must be client_id:client_secret")
	errBasicEncoding  = errors.New("client_id and client_secret must be form-URL-encoded in HTTP Basic (RFC 6749 §2.3.1)")
	errBasicEmpty     = errors.New("HTTP Basic credentials need a client_id and a client_secret")
)

// parseBasic reads "Basic base64(urlencode(id):urlencode(secret))". The
// scheme is case-insensitive; the encoded id cannot contain ':', so the
// first ':' separates it from the secret.
func parseBasic(header string) (id, secret string, err error) {
	if len(header) > maxBasicHeader {
		return "", "", errBasicMalformed
	}
	scheme, encoded, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errBasicMalformed
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", errBasicMalformed
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errBasicNoColon
	}
	if id, err = url.QueryUnescape(rawID); err != nil {
		return "", "", errBasicEncoding
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil {
		return "", "", errBasicEncoding
	}
	if id == "" || secret == "" {
		return "", "", errBasicEmpty
	}
	return id, secret, nil
}
