package api

import (
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// pendingForm is a submitted login or consent form, checked: the session's
// CSRF secret, the sealed authorization request, its client.
type pendingForm struct {
	form   url.Values
	sess   session
	req    authzRequest
	client projections.ClientRecord
}

var errStaleForm = &pageError{status: fiber.StatusForbidden, title: "This form has expired",
	message: "Your sign-in session ended or the form was sent from elsewhere."}

func (a *API) readPendingForm(c *fiber.Ctx) (pendingForm, error) {
	var f pendingForm
	if mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); err != nil || mt != formContentType {
		return f, badAuthorization("The form must be sent as application/x-www-form-urlencoded.")
	}
	form, err := parseForm(string(requestBody(c)))
	if err != nil {
		return f, badAuthorization("The form is malformed: " + err.Error() + ".")
	}
	sess, ok := a.readSession(c)
	if !ok || !checkCSRF(sess, form.Get("csrf_token")) {
		return f, errStaleForm
	}
	var req authzRequest
	if a.pending.open(form.Get("request"), sess.CSRF, &req) != nil {
		return f, badAuthorization("The form was altered.")
	}
	if a.now(c).Unix() >= req.Expires {
		return f, errStaleForm
	}
	ctx, cancel := a.writeCtx(c)
	client, ok, err := a.clientByClientID(ctx, req.ClientID)
	cancel()
	if err != nil {
		return f, err
	}
	if !ok || !slices.Contains(client.RedirectURIs, req.RedirectURI) {
		return f, badAuthorization("The application is no longer registered.")
	}
	return pendingForm{form: form, sess: sess, req: req, client: client}, nil
}

// login is POST /oauth2/login (and its aliases). The user logs in against
// the account (and environment) that owns the client. Failures are
// throttled per username and per IP with the client-authentication
// limiter; the log never holds the password.
func (a *API) login(c *fiber.Ctx) error {
	f, err := a.readPendingForm(c)
	if err != nil {
		return err
	}
	username, password := f.form.Get("username"), f.form.Get("password")
	now, ip := a.now(c), a.clientIP(c).String()
	limit := int64(a.cfg.AuthFailureLimit)
	keys := [2]string{"login\x00" + f.client.AccountID + "\x00" + f.client.Environment + "\x00" + strings.ToLower(username), "loginip\x00" + ip}
	for _, k := range keys {
		if over, st := a.authFailures.exceeded(k, limit, authFailureWindow, now); over {
			c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(st.Reset, 10))
			return a.showLogin(c, fiber.StatusTooManyRequests, f.req, f.client, f.sess, username,
				"Too many failed sign-ins. Wait a minute and try again.")
		}
	}
	ctx, cancel := a.writeCtx(c)
	user, found, err := a.userByUsername(ctx, f.client.AccountID, f.client.Environment, username)
	cancel()
	if err != nil {
		return err
	}
	ok := false
	if found {
		ok = userOf(user).Login(password)
	} else {
		domain.CheckNoPassword(password)
	}
	if !ok {
		for _, k := range keys {
			a.authFailures.allow(k, limit, authFailureWindow, now)
		}
		a.Logger.Info("login failed", "client_id", loggable(f.client.ClientID), "username", truncate(username, 100),
			"ip", ip, "request_id", requestID(c))
		return a.showLogin(c, fiber.StatusUnauthorized, f.req, f.client, f.sess, username, "Wrong username or password.")
	}
	// A new session (and CSRF secret) at login: a session planted before
	// it cannot ride along.
	sess, err := a.newSession(c, user.ID)
	if err != nil {
		return err
	}
	return a.proceed(c, f.req, f.client, sess)
}

// consent is POST /oauth2/consent (and its aliases): allow records the consent (remembered
// for this user, client and scopes) and redirects with a code; deny
// redirects with access_denied.
func (a *API) consent(c *fiber.Ctx) error {
	f, err := a.readPendingForm(c)
	if err != nil {
		return err
	}
	user, ok, err := a.sessionUser(c, f.sess, f.client)
	if err != nil {
		return err
	}
	if !ok {
		return a.showLogin(c, fiber.StatusOK, f.req, f.client, f.sess, "", "Sign in again to continue.")
	}
	switch f.form.Get("decision") {
	case "allow":
	case "deny":
		return &redirectError{redirectURI: f.req.RedirectURI, code: "access_denied", description: "the user denied the request", state: f.req.State}
	default:
		return badAuthorization("The form is missing the decision.")
	}
	if err := a.recordConsent(c, f.client, user, f.req.Scopes); err != nil {
		return err
	}
	return a.issueCode(c, f.req, f.client, user)
}

// recordConsent appends consent.granted unless the consent already covers
// the scopes, deciding again once on a lost race.
func (a *API) recordConsent(c *fiber.Ctx, client projections.ClientRecord, user projections.UserRecord, scopes []string) error {
	key := events.ConsentKey(user.ID, client.ID)
	for attempt := 0; ; attempt++ {
		rec, found, err := a.Consents.Get(user.ID, client.ID)
		if err != nil {
			return err
		}
		current := consentOf(rec, found)
		if current.Covers(scopes) {
			return nil
		}
		x := a.cmd(c)
		x.actor = user.ID
		ev := domain.GrantConsent(current, userOf(user), clientOf(client), scopes, x.now)
		change, err := clientChange(x, events.AggregateConsent, key, client.AccountID, client.Environment, ev)
		if err != nil {
			return err
		}
		change.Expect = events.ExpectNew
		if found {
			change.Expect = events.ExpectVersion(rec.Version)
		}
		retry, err := a.commitOrRetry(c, attempt, "the consent is being changed concurrently; retry", change)
		if !retry {
			return err
		}
	}
}
