package api

import (
	"errors"
	"fmt"
	"mime"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// OAuth endpoints live under three prefixes: /oauth2/ is canonical,
// /oauth/ and /v1/oauth/ are aliases.
var oauthPrefixes = []string{"/oauth2", "/oauth", "/v1/oauth"}

func isOAuthPath(p string) bool {
	return strings.HasPrefix(p, "/oauth2/") || strings.HasPrefix(p, "/oauth/") || strings.HasPrefix(p, "/v1/oauth/")
}

// oauthPrefix is the OAuth prefix of path p, /oauth2 when it has none: the
// login and consent pages post their forms under the prefix they were
// served from, so a proxy that forwards only an alias keeps working.
func oauthPrefix(p string) string {
	for _, prefix := range oauthPrefixes {
		if strings.HasPrefix(p, prefix+"/") {
			return prefix
		}
	}
	return oauthPrefixes[0]
}

// oauthError is an RFC 6749 §5.2 error. The package-level values carry the
// code and status; a handler refines one with describe (and wrap, for the
// log), so the wire error and its cause travel together.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
	retryAfter  int
	// basic: the client tried HTTP Basic, so a 401 names the scheme in
	// WWW-Authenticate (RFC 6749 §5.2).
	basic bool
	cause error
}

// RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6750 §3.1 and RFC 8628 (slow_down) errors.
var (
	errInvalidRequest          = &oauthError{Code: "invalid_request", status: fiber.StatusBadRequest}
	errInvalidClient           = &oauthError{Code: "invalid_client", status: fiber.StatusUnauthorized}
	errInvalidGrant            = &oauthError{Code: "invalid_grant", status: fiber.StatusBadRequest}
	errUnauthorizedClient      = &oauthError{Code: "unauthorized_client", status: fiber.StatusBadRequest}
	errUnsupportedGrantType    = &oauthError{Code: "unsupported_grant_type", status: fiber.StatusBadRequest}
	errInvalidScope            = &oauthError{Code: "invalid_scope", status: fiber.StatusBadRequest}
	errSlowDown                = &oauthError{Code: "slow_down", status: fiber.StatusTooManyRequests}
	errInvalidToken            = &oauthError{Code: "invalid_token", status: fiber.StatusUnauthorized}
	errInsufficientScope       = &oauthError{Code: "insufficient_scope", status: fiber.StatusForbidden}
	errServerError             = &oauthError{Code: "server_error", status: fiber.StatusInternalServerError}
	errTemporarilyUnavailable  = &oauthError{Code: "temporarily_unavailable", status: fiber.StatusServiceUnavailable, retryAfter: 1}
	errAuthenticationFailed    = errInvalidClient.describe("client authentication failed")
	errMissingClientCredential = errInvalidClient.describe("client authentication is required: HTTP Basic, client_secret in the body, or a client_assertion")
)

func (e *oauthError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

func (e *oauthError) Unwrap() error { return e.cause }

// describe returns a copy of e with a description for the client.
func (e *oauthError) describe(format string, args ...any) *oauthError {
	c := *e
	c.Description = fmt.Sprintf(format, args...)
	return &c
}

// wrap returns a copy of e that carries cause for the log.
func (e *oauthError) wrap(cause error) *oauthError {
	c := *e
	c.cause = cause
	return &c
}

// viaBasic returns a copy of e that knows whether HTTP Basic was tried.
func (e *oauthError) viaBasic(basic bool) *oauthError {
	c := *e
	c.basic = basic
	return &c
}

func (e *oauthError) write(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	if e.retryAfter > 0 {
		c.Set(fiber.HeaderRetryAfter, fmt.Sprint(e.retryAfter))
	}
	switch {
	case e.status == fiber.StatusUnauthorized && e.basic:
		c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="tollgate", charset="UTF-8"`)
	case e.Code == "invalid_token" || e.Code == "insufficient_scope":
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="tollgate", error="`+e.Code+`"`)
	}
	return c.Status(e.status).JSON(e)
}

// oauthErrorOf turns any error on an OAuth path into an RFC error:
// infrastructure failures into server_error or temporarily_unavailable,
// the management errors of the shared middleware (HTTPS, body size, API
// keys) into their RFC counterparts. It returns nil for other paths.
func oauthErrorOf(c *fiber.Ctx, err error) *oauthError {
	var oe *oauthError
	if errors.As(err, &oe) {
		return oe
	}
	if !isOAuthPath(c.Path()) {
		return nil
	}
	e := toAPIError(err)
	var out *oauthError
	switch e.Code {
	case "unauthorized":
		out = errInvalidToken.describe("the API key is invalid, expired or revoked")
	case "forbidden":
		out = errInsufficientScope.describe("the API key lacks the tokens:introspect scope or may not be used from this address")
	case "rate_limited":
		out = errSlowDown.describe("%s", e.Message)
	case "unavailable":
		out = errTemporarilyUnavailable.describe("the event log is unreachable; retry later")
	case "internal_error":
		out = errServerError.describe("internal error")
	default:
		out = errInvalidRequest.describe("%s", e.Message)
		out.status = e.Status
	}
	if e.RetryAfter > 0 {
		out.retryAfter = e.RetryAfter
	}
	out.cause = err
	return out
}

// failure maps an infrastructure error of a handler to an RFC error.
func failure(err error) *oauthError {
	if errors.Is(err, events.ErrUnavailable) || errors.Is(err, events.ErrConflict) {
		return errTemporarilyUnavailable.describe("the event log is unreachable; retry later").wrap(err)
	}
	return errServerError.describe("internal error").wrap(err)
}

// oauthRequest is a parsed request to an OAuth endpoint.
type oauthRequest struct {
	form url.Values
	now  time.Time
	ip   netip.Addr
	// authorization is the Authorization header.
	authorization string
	// Filled in by the client authentication methods.
	basicID, basicSecret string
	assertion            *clientAssertion
}

// param returns a form parameter; ok is false when it is absent.
func (r *oauthRequest) param(k string) (string, bool) {
	v := r.form[k]
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

const formContentType = "application/x-www-form-urlencoded"

// newOAuthRequest reads the body as an HTML form (the only encoding OAuth
// endpoints take).
func (a *API) newOAuthRequest(c *fiber.Ctx) (*oauthRequest, *oauthError) {
	r := &oauthRequest{now: a.now(c), ip: a.clientIP(c), authorization: c.Get(fiber.HeaderAuthorization)}
	body := requestBody(c)
	if len(body) > 0 {
		ct := c.Get(fiber.HeaderContentType)
		if ct != formContentType {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != formContentType {
				return nil, errInvalidRequest.describe("Content-Type must be application/x-www-form-urlencoded")
			}
		}
	}
	form, err := parseForm(string(body))
	if err != nil {
		return nil, errInvalidRequest.describe("%s", err.Error())
	}
	r.form = form
	return r, nil
}

// maxFormParams bounds the parameters of one form.
const maxFormParams = 64

// parseForm decodes an application/x-www-form-urlencoded body. A parameter
// may appear once (RFC 6749 §3.2): a repeated one is an error, whatever its
// values. Parameters without a value count as absent (§3.1).
func parseForm(body string) (url.Values, error) {
	if strings.Count(body, "&") >= maxFormParams {
		return nil, fmt.Errorf("the form has more than %d parameters", maxFormParams)
	}
	values, err := url.ParseQuery(body)
	if err != nil {
		return nil, errors.New("the form body is malformed")
	}
	for k, v := range values {
		if len(v) > 1 {
			return nil, fmt.Errorf("parameter %q is repeated", truncate(k, 40))
		}
		if v[0] == "" {
			delete(values, k)
		}
	}
	return values, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// tokenGrant issues tokens for one grant type at the token endpoint.
type tokenGrant interface {
	issue(c *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) (tokenResponse, *oauthError)
}

// tokenResponse is RFC 6749 §5.1's successful answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	// RefreshToken is issued with authorization codes (and rotated on
	// every refresh) to clients allowed the refresh_token grant.
	RefreshToken string `json:"refresh_token,omitempty"`
}

// grantType reads grant_type from the body or, alternatively, the query
// string; both at once is a repeated parameter.
func grantType(c *fiber.Ctx, r *oauthRequest) (string, *oauthError) {
	fromBody, inBody := r.param("grant_type")
	query := c.Request().URI().QueryArgs()
	inQuery := len(query.PeekMulti("grant_type"))
	switch {
	case inQuery > 1 || (inQuery == 1 && inBody):
		return "", errInvalidRequest.describe(`parameter "grant_type" is repeated`)
	case inBody:
		return fromBody, nil
	case inQuery == 1 && len(query.Peek("grant_type")) > 0:
		return string(query.Peek("grant_type")), nil
	}
	return "", errInvalidRequest.describe("grant_type is required")
}

// token is POST /oauth2/token.
func (a *API) token(c *fiber.Ctx) error {
	r, oe := a.newOAuthRequest(c)
	if oe != nil {
		return oe
	}
	gt, oe := grantType(c, r)
	if oe != nil {
		return oe
	}
	grant, ok := a.grants[gt]
	if !ok {
		return errUnsupportedGrantType.describe("grant_type %q is not supported: use %s, %s or %s", truncate(gt, 40),
			domain.GrantAuthorizationCode, domain.GrantClientCredentials, domain.GrantRefreshToken)
	}
	client, oe := a.authenticateClient(c, r)
	if oe != nil {
		return oe
	}
	resp, oe := grant.issue(c, r, client)
	if oe != nil {
		return oe
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderPragma, "no-cache")
	return c.JSON(resp)
}
