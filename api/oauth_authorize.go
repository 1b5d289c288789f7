package api

import (
	"errors"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// authzRequest is a validated authorization request (RFC 6749 §4.1.1 with
// RFC 7636 PKCE), carried sealed through the login and consent forms.
type authzRequest struct {
	ClientID            string   `json:"client_id"`
	RedirectURI         string   `json:"redirect_uri"`
	RedirectURIGiven    bool     `json:"redirect_uri_given,omitempty"`
	Scopes              []string `json:"scopes"`
	State               string   `json:"state,omitempty"`
	CodeChallenge       string   `json:"code_challenge,omitempty"`
	CodeChallengeMethod string   `json:"code_challenge_method,omitempty"`
	Expires             int64    `json:"exp"`
}

// authorize is GET /oauth2/authorize. An unknown client or a redirect_uri
// the client did not register is an error page: nothing is sent to a URI
// that is not known to be the client's. Other problems go back to the
// client's redirect_uri as RFC 6749 §4.1.2.1 errors, with state. A valid
// request shows the login page, the consent page, or (consent given
// before) redirects with a code at once.
func (a *API) authorize(c *fiber.Ctx) error {
	req, client, err := a.parseAuthorization(c)
	if err != nil {
		return err
	}
	sess, err := a.ensureSession(c)
	if err != nil {
		return err
	}
	return a.proceed(c, req, client, sess)
}

func (a *API) parseAuthorization(c *fiber.Ctx) (authzRequest, projections.ClientRecord, error) {
	var client projections.ClientRecord
	q, err := parseForm(string(c.Request().URI().QueryString()))
	if err != nil {
		return authzRequest{}, client, badAuthorization("The request is malformed: " + err.Error() + ".")
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		return authzRequest{}, client, badAuthorization("client_id is missing.")
	}
	ctx, cancel := a.writeCtx(c)
	client, ok, err := a.clientByClientID(ctx, clientID)
	cancel()
	if err != nil {
		return authzRequest{}, client, err
	}
	if !ok {
		return authzRequest{}, client, badAuthorization("No application is registered with this client_id.")
	}
	req := authzRequest{ClientID: clientID, RedirectURI: q.Get("redirect_uri"), State: q.Get("state")}
	switch {
	case req.RedirectURI != "" && !slices.Contains(client.RedirectURIs, req.RedirectURI):
		return req, client, badAuthorization("The redirect_uri is not registered for this application.")
	case req.RedirectURI != "":
		req.RedirectURIGiven = true
	case len(client.RedirectURIs) == 1:
		req.RedirectURI = client.RedirectURIs[0] // RFC 6749 §3.1.2.3
	default:
		return req, client, badAuthorization("redirect_uri is required: the application has no single registered redirect URI.")
	}
	fail := func(code, description string) (authzRequest, projections.ClientRecord, error) {
		return req, client, &redirectError{redirectURI: req.RedirectURI, code: code, description: description, state: req.State}
	}
	switch rt := q.Get("response_type"); {
	case rt == "":
		return fail("invalid_request", "response_type is required")
	case rt != "code":
		return fail("unsupported_response_type", "only response_type=code is supported")
	}
	if !slices.Contains(client.GrantTypes, domain.GrantAuthorizationCode) {
		return fail("unauthorized_client", "the client may not use the authorization code grant")
	}
	param, given := q["scope"]
	requested, err := domain.ParseScopeParam(q.Get("scope"), given && len(param) > 0)
	if err != nil {
		return fail("invalid_scope", "scope must be scope names separated by single spaces")
	}
	if req.Scopes, err = clientOf(client).AuthorizeScopes(requested); err != nil {
		return fail("invalid_scope", "the client may request only: "+domain.ScopeString(client.Scopes))
	}
	req.CodeChallenge, req.CodeChallengeMethod = q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case req.CodeChallenge == "" && req.CodeChallengeMethod != "":
		return fail("invalid_request", "code_challenge_method without code_challenge")
	case req.CodeChallenge == "" && public(client):
		return fail("invalid_request", "PKCE is required for public clients: send code_challenge with code_challenge_method=S256")
	case req.CodeChallenge != "" && req.CodeChallengeMethod != domain.PKCEMethodS256:
		return fail("invalid_request", "code_challenge_method must be S256 (plain is not accepted)")
	case req.CodeChallenge != "" && !domain.ValidCodeChallenge(req.CodeChallenge):
		return fail("invalid_request", "code_challenge must be the unpadded base64url SHA-256 of the code_verifier")
	}
	return req, client, nil
}

// proceed takes a valid request as far as the browser's session allows:
// the login page, the consent page, or a code.
func (a *API) proceed(c *fiber.Ctx, req authzRequest, client projections.ClientRecord, sess session) error {
	user, ok, err := a.sessionUser(c, sess, client)
	if err != nil {
		return err
	}
	if !ok {
		return a.showLogin(c, fiber.StatusOK, req, client, sess, "", "")
	}
	consent, err := a.currentConsent(c, user.ID, client.ID)
	if err != nil {
		return err
	}
	if consent.Covers(req.Scopes) {
		return a.issueCode(c, req, client, user)
	}
	return a.showConsent(c, req, client, user, sess)
}

// sessionUser is the logged-in user of the session, if it may authorize
// this client: active, of the client's account and environment.
func (a *API) sessionUser(c *fiber.Ctx, sess session, client projections.ClientRecord) (projections.UserRecord, bool, error) {
	if sess.UserID == "" {
		return projections.UserRecord{}, false, nil
	}
	ctx, cancel := a.writeCtx(c)
	defer cancel()
	user, ok, err := a.userByID(ctx, sess.UserID)
	if err != nil || !ok {
		return user, false, err
	}
	return user, userOf(user).Active() && user.AccountID == client.AccountID && user.Environment == client.Environment, nil
}

// currentConsent reads the user's consent to the client once this node has
// applied its last event (it may have been given on another node).
func (a *API) currentConsent(c *fiber.Ctx, user, client string) (domain.Consent, error) {
	if err := a.syncAggregate(c, events.AggregateConsent, events.ConsentKey(user, client)); err != nil {
		return domain.Consent{}, err
	}
	rec, found, err := a.Consents.Get(user, client)
	return consentOf(rec, found), err
}

func (a *API) sealRequest(c *fiber.Ctx, req authzRequest, sess session) (string, error) {
	req.Expires = a.now(c).Add(pendingTTL).Unix()
	return a.pending.seal(req, sess.CSRF)
}

func (a *API) showLogin(c *fiber.Ctx, status int, req authzRequest, client projections.ClientRecord, sess session, username, problem string) error {
	sealed, err := a.sealRequest(c, req, sess)
	if err != nil {
		return err
	}
	return a.render(c, status, "login", loginPage{Action: oauthPrefix(c.Path()) + "/login", ClientName: client.Name, CSRF: sess.CSRF, Request: sealed,
		Username: username, Error: problem}, origin(req.RedirectURI))
}

func (a *API) showConsent(c *fiber.Ctx, req authzRequest, client projections.ClientRecord, user projections.UserRecord, sess session) error {
	sealed, err := a.sealRequest(c, req, sess)
	if err != nil {
		return err
	}
	lines := make([]scopeLine, 0, len(req.Scopes))
	for _, name := range req.Scopes {
		line := scopeLine{Name: name}
		if rec, ok, err := a.Scopes.Get(name); err == nil && ok {
			line.Description = rec.Description
		}
		lines = append(lines, line)
	}
	return a.render(c, fiber.StatusOK, "consent", consentPage{Action: oauthPrefix(c.Path()) + "/consent", ClientName: client.Name, ClientID: client.ClientID,
		Username: user.Username, CSRF: sess.CSRF, Request: sealed, Scopes: lines}, origin(req.RedirectURI))
}

// issueCode appends authcode.issued and redirects to the client with the
// code, state and iss (RFC 9207: the issuer, exactly as in discovery, so
// a client talking to several servers can tell who answered). The code is 43 random base62 characters; only its
// SHA-256 is stored.
func (a *API) issueCode(c *fiber.Ctx, req authzRequest, client projections.ClientRecord, user projections.UserRecord) error {
	x := a.cmd(c)
	x.actor = user.ID
	code, err := domain.NewID(x.rand, "", 43)
	if err != nil {
		return err
	}
	hash := domain.HashSecret(code)
	issued, err := clientOf(client).IssueAuthCode(domain.IssueCode{ID: hash, UserID: user.ID, Scopes: req.Scopes,
		RedirectURI: req.RedirectURI, RedirectURIGiven: req.RedirectURIGiven, CodeChallenge: req.CodeChallenge,
		CodeChallengeMethod: req.CodeChallengeMethod, Now: x.now})
	switch {
	case errors.Is(err, domain.ErrGrantNotAllowed):
		return &redirectError{redirectURI: req.RedirectURI, code: "unauthorized_client", description: "the client may not use the authorization code grant", state: req.State}
	case err != nil:
		return badAuthorization("The application's registration changed; start again from the application.")
	}
	change, err := clientChange(x, events.AggregateAuthCode, hash, client.AccountID, client.Environment, issued)
	if err != nil {
		return err
	}
	change.Expect = events.ExpectNew
	if _, err := a.commit(c, change); err != nil {
		return err
	}
	return a.redirect(c, withParams(req.RedirectURI, "code", code, "state", req.State, "iss", a.issuer()))
}
