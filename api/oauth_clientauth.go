package api

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/projections"
)

// clientAuthMethod is one way a client authenticates at the OAuth
// endpoints (RFC 6749 §2.3, RFC 7523 §2.2). One file per method.
type clientAuthMethod interface {
	// name is the token_endpoint_auth_method a client registers for it.
	name() string
	// presented reports whether the request carries this method's credentials.
	presented(r *oauthRequest) bool
	// clientID reads the client_id the credentials claim, before any check.
	clientID(r *oauthRequest) (string, *oauthError)
	// verify checks the credentials against the client that holds the id.
	verify(c *fiber.Ctx, r *oauthRequest, client projections.ClientRecord) *oauthError
}

var (
	_ clientAuthMethod = basicAuth{}
	_ clientAuthMethod = postAuth{}
	_ clientAuthMethod = (*jwtAuth)(nil)
	_ clientAuthMethod = noneAuth{}
)

// Brute-force throttle: failed client authentications are counted per
// client_id and per caller IP on this node; past the limit in one minute
// every attempt for that client_id or from that IP is answered 429 until
// the window slides on.
const authFailureWindow = 60

// authenticateClient finds the client the request authenticates as. The
// request must use exactly one method, the one the client registered.
func (a *API) authenticateClient(c *fiber.Ctx, r *oauthRequest) (projections.ClientRecord, *oauthError) {
	var method clientAuthMethod
	for _, m := range a.clientAuth {
		if !m.presented(r) {
			continue
		}
		if method != nil {
			return projections.ClientRecord{}, errInvalidRequest.describe("use exactly one client authentication method (RFC 6749 §2.3)")
		}
		method = m
	}
	if method == nil {
		return projections.ClientRecord{}, errMissingClientCredential
	}
	basic := method.name() == basicAuth{}.name()
	id, oe := method.clientID(r)
	if oe != nil {
		a.countAuthFailure(c, r, "", method.name(), oe.Description)
		return projections.ClientRecord{}, oe.viaBasic(basic)
	}
	if formID, ok := r.param("client_id"); ok && formID != id {
		return projections.ClientRecord{}, errInvalidRequest.describe("client_id does not match the client that authenticates")
	}
	if oe := a.throttled(id, r); oe != nil {
		return projections.ClientRecord{}, oe
	}
	fail := func(reason string, oe *oauthError) (projections.ClientRecord, *oauthError) {
		a.countAuthFailure(c, r, id, method.name(), reason)
		return projections.ClientRecord{}, oe.viaBasic(basic)
	}
	rec, ok, err := a.Clients.ByClientID(id) // the common case: no context, no timer
	if err == nil && !ok {
		ctx, cancel := a.writeCtx(c)
		rec, ok, err = a.clientByClientID(ctx, id)
		cancel()
	}
	switch {
	case err != nil:
		return projections.ClientRecord{}, failure(err)
	case !ok:
		return fail("unknown client_id", errAuthenticationFailed)
	case rec.TokenEndpointAuthMethod != method.name():
		return fail("wrong method", errInvalidClient.describe("the client is registered for %s, not %s", rec.TokenEndpointAuthMethod, method.name()))
	}
	if oe := method.verify(c, r, rec); oe != nil {
		return fail(oe.Description, oe)
	}
	return rec, nil
}

// throttled answers 429 while clientID or the caller's IP is over the
// failure limit, before any credential is checked.
func (a *API) throttled(clientID string, r *oauthRequest) *oauthError {
	limit := int64(a.cfg.AuthFailureLimit)
	for _, key := range [2]string{"client\x00" + clientID, "ip\x00" + r.ip.String()} {
		if over, st := a.authFailures.exceeded(key, limit, authFailureWindow, r.now); over {
			oe := errSlowDown.describe("too many failed client authentications; retry in %d seconds", st.Reset)
			oe.retryAfter = int(st.Reset)
			return oe
		}
	}
	return nil
}

// countAuthFailure counts a failed authentication against the client_id
// (if one was claimed) and the caller's IP, and logs it. The log names the
// client_id, never a secret or an assertion.
func (a *API) countAuthFailure(c *fiber.Ctx, r *oauthRequest, clientID, method, reason string) {
	limit := int64(a.cfg.AuthFailureLimit)
	if clientID != "" {
		a.authFailures.allow("client\x00"+clientID, limit, authFailureWindow, r.now)
	}
	a.authFailures.allow("ip\x00"+r.ip.String(), limit, authFailureWindow, r.now)
	a.Logger.Info("client authentication failed", "client_id", loggable(clientID), "method", method,
		"ip", r.ip.String(), "reason", reason, "request_id", requestID(c))
}

// loggable keeps what looks like a credential out of the log: a secret or
// an assertion sent where a client_id belongs.
func loggable(clientID string) string {
	if strings.HasPrefix(clientID, "tg_") || strings.HasPrefix(clientID, "eyJ") {
		return "[redacted]"
	}
	return truncate(clientID, 200)
}

// clientAuthMethods lists the methods the token endpoint accepts, in
// discovery order. private_key_jwt needs the assertion store (replays are
// refused across the cluster).
func (a *API) clientAuthMethods() []clientAuthMethod {
	methods := []clientAuthMethod{basicAuth{}, postAuth{}}
	if a.Assertions != nil {
		methods = append(methods, &jwtAuth{a: a})
	}
	return append(methods, noneAuth{})
}

// credentialMethods names the methods that authenticate a client with a
// credential: what discovery lists.
func credentialMethods(methods []clientAuthMethod) []string {
	var out []string
	for _, m := range methods {
		if m.name() != domain.AuthNone {
			out = append(out, m.name())
		}
	}
	return out
}
