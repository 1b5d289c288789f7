package api

import (
	"context"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

const (
	localRequestID = "tg.request_id"
	localPrincipal = "tg.principal"
	localRand      = "tg.rand"
	localNow       = "tg.now"
)

// requestID keeps a sane incoming X-Request-Id or makes one.
func (a *API) requestID(c *fiber.Ctx) error {
	id := c.Get(fiber.HeaderXRequestID)
	if !saneHeaderValue(id, 128) {
		id = a.requestIDs.next()
	}
	c.Locals(localRequestID, id)
	c.Set(fiber.HeaderXRequestID, id)
	return c.Next()
}

// requestIDs makes unique request ids cheaply: a random per-process prefix
// and a counter (ids need to be unique, not secret).
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs(rnd io.Reader) *requestIDs {
	p, err := domain.NewID(rnd, "req_", 10)
	if err != nil {
		p = "req_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return &requestIDs{prefix: p + "_"}
}

func (r *requestIDs) next() string {
	return r.prefix + strconv.FormatUint(r.n.Add(1), 36)
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

func saneHeaderValue(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// requireHTTPS refuses plain HTTP except on loopback or from a trusted proxy
// that says the client used HTTPS.
func (a *API) requireHTTPS(c *fiber.Ctx) error {
	if a.cfg.TLS || c.Path() == "/healthz" || c.Path() == "/readyz" {
		return c.Next()
	}
	peer := remoteAddr(c)
	if peer.IsLoopback() {
		return c.Next()
	}
	// Behind a trusted proxy the hop to Tollgate may be plain HTTP; the
	// client's own scheme is what the proxy reports, when it reports one.
	if a.trusted(peer) && !strings.EqualFold(c.Get(fiber.HeaderXForwardedProto), "http") {
		return c.Next()
	}
	return &Error{Status: fiber.StatusBadRequest, Code: "https_required", Message: "HTTPS is required"}
}

func remoteAddr(c *fiber.Ctx) netip.Addr {
	addr, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return addr.Unmap()
}

func (a *API) trusted(addr netip.Addr) bool {
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// clientIP is the caller's address: the peer, or the last untrusted hop of
// X-Forwarded-For when the peer is a trusted proxy.
func (a *API) clientIP(c *fiber.Ctx) netip.Addr {
	peer := remoteAddr(c)
	if !a.trusted(peer) {
		return peer
	}
	hops := strings.Split(c.Get(fiber.HeaderXForwardedFor), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		ip = ip.Unmap()
		if !a.trusted(ip) {
			return ip
		}
	}
	return peer
}

// Principal is the authenticated caller.
type Principal struct {
	TokenID     string
	AccountID   string
	Environment string
	Scopes      []string
	// secret is the presented credential, kept only for the request's
	// lifetime to derive the idempotency encryption key.
	secret string
}

// Admin reports whether the caller holds the admin scope.
func (p *Principal) Admin() bool {
	for _, s := range p.Scopes {
		if s == domain.ScopeAdmin {
			return true
		}
	}
	return false
}

func principal(c *fiber.Ctx) *Principal {
	p, _ := c.Locals(localPrincipal).(*Principal)
	return p
}

// presentedKey reads the credential from Authorization: Bearer or X-API-Key.
func presentedKey(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
		return ""
	}
	return strings.TrimSpace(c.Get("X-API-Key"))
}

// auth authenticates the API key and applies the token's own limits to
// Tollgate's API: revoked, expired or unknown keys get 401, a caller outside
// the key's IP whitelist or past its request quota 403, a caller over its
// rate limit 429.
func (a *API) auth(c *fiber.Ctx) error {
	if err := a.authenticate(c); err != nil {
		return err
	}
	return c.Next()
}

// authenticate is auth without passing on: on success the principal is
// set on the request.
func (a *API) authenticate(c *fiber.Ctx) error {
	key := presentedKey(c)
	if key == "" || len(key) > 512 {
		return errUnauthorized
	}
	now := a.now(c)
	rec, code := a.checkCredential(c, key, now)
	if code != "" {
		return errUnauthorized
	}
	if !rec.AllowsIP(a.clientIP(c)) {
		return errForbidden
	}
	if ok, st := a.rates.allow(rec.ID(), int64(rec.RateLimit), int64(rec.RateWindow), now); !ok {
		setRateHeaders(c, st)
		return &Error{Status: fiber.StatusTooManyRequests, Code: "rate_limited", RetryAfter: int(st.Reset),
			Message: "Rate limit exceeded: retry after the window resets"}
	} else {
		setRateHeaders(c, st)
	}
	if rec.Limited() {
		full, ok, err := a.Tokens.Lookup(rec.ID())
		if err != nil {
			return err
		}
		if !ok {
			return errUnauthorized
		}
		verdict, _, err := a.quota.spend(c.UserContext(), *full, false, 0, now)
		if err != nil {
			return err
		}
		if verdict != verdictValid {
			return errForbidden
		}
	}
	c.Locals(localPrincipal, &Principal{
		TokenID: rec.ID(), AccountID: *rec.AccountID(), Environment: *rec.Environment(), Scopes: rec.Scopes(), secret: key,
	})
	return nil
}

// setRateHeaders sends the IETF RateLimit header fields.
// The values are built in a stack buffer that the header copies.
func setRateHeaders(c *fiber.Ctx, st rateState) {
	var buf [64]byte
	h := &c.Response().Header
	v := append(buf[:0], `"token";q=`...)
	v = strconv.AppendInt(v, st.Limit, 10)
	v = append(v, ";w="...)
	v = strconv.AppendInt(v, st.Window, 10)
	h.SetBytesV("RateLimit-Policy", v)
	v = append(buf[:0], `"token";r=`...)
	v = strconv.AppendInt(v, st.Remaining, 10)
	v = append(v, ";t="...)
	v = strconv.AppendInt(v, st.Reset, 10)
	h.SetBytesV("RateLimit", v)
}

// Verdicts of a credential check, in the order they are checked.
const (
	verdictNotFound = "NOT_FOUND"
	verdictRevoked  = "REVOKED"
	verdictExpired  = "EXPIRED"
)

// checkCredential finds the record of a presented API token and checks its
// hash in constant time, accepting the previous value during a rotation's
// grace period. tg_ strings must be well-formed (checksum) and name their
// record; other strings can only be the verbatim root key. code is empty
// for a usable token, else NOT_FOUND, REVOKED or EXPIRED.
func (a *API) checkCredential(c *fiber.Ctx, key string, now time.Time) (*projections.TokenAuth, string) {
	var id string
	if strings.HasPrefix(key, "tg_") {
		cred, err := domain.ParseCredential(key)
		if err != nil || cred.Environment() == "" {
			return nil, verdictNotFound
		}
		id = cred.TokenID()
	} else {
		root, err := a.Accounts.RootTokenID()
		if err != nil || root == "" {
			return nil, verdictNotFound
		}
		id = root
	}
	rec, found, err := a.Tokens.Auth(id)
	if err == nil && !found && !a.unknown.has(id) {
		// Issued on another node a moment ago? Ask the stream, then look
		// again. Ids the stream does not know are remembered for a few
		// seconds, so made-up keys cannot make every request a NATS round trip.
		// A short bound: with NATS down, an unknown key must not hold the
		// request for the whole write timeout.
		ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
		exists, ferr := a.fresh(ctx, events.AggregateToken, id)
		cancel()
		if ferr == nil && exists {
			rec, found, err = a.Tokens.Auth(id)
		} else if ferr == nil {
			a.unknown.add(id)
		}
	}
	if err != nil || !found {
		return nil, verdictNotFound
	}
	unixNano := now.UnixNano()
	if !rec.Matches(key, unixNano) {
		return nil, verdictNotFound
	}
	if strings.HasPrefix(key, "tg_") && domain.CredentialEnvironment(key) != *rec.Environment() {
		return nil, verdictNotFound
	}
	switch rec.Status(unixNano) {
	case domain.StatusRevoked:
		return rec, verdictRevoked
	case domain.StatusExpired:
		return rec, verdictExpired
	}
	return rec, ""
}

// need builds a handler that requires a scope.
func need(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		if p == nil || !domain.HasScope(p.Scopes, scope) {
			return errForbidden
		}
		return c.Next()
	}
}

// targetAccount is the account a request acts on: the caller's own, or with
// admin the one named by ?account_id=. A non-admin naming another account
// gets 404, so account ids are not confirmed to strangers.
func (a *API) targetAccount(c *fiber.Ctx) (string, error) {
	p := principal(c)
	want := c.Query("account_id")
	if want == "" || want == p.AccountID {
		return p.AccountID, nil
	}
	if !p.Admin() {
		return "", notFound("account")
	}
	if _, ok, err := a.Accounts.Get(want); err != nil || !ok {
		if err != nil {
			return "", err
		}
		return "", notFound("account")
	}
	return want, nil
}

func (a *API) now(c *fiber.Ctx) time.Time {
	if t, ok := c.Locals(localNow).(time.Time); ok {
		return t
	}
	return a.Now()
}

// cmdCtx is what a command needs from its request: entropy, the time,
// who acts and the correlation id.
type cmdCtx struct {
	rand        io.Reader
	now         time.Time
	actor       string
	correlation string
}

func (a *API) cmd(c *fiber.Ctx) cmdCtx {
	x := cmdCtx{rand: a.rand(c), now: a.now(c), correlation: requestID(c)}
	if p := principal(c); p != nil {
		x.actor = p.TokenID
	}
	return x
}

// meta fills an event envelope.
func (x cmdCtx) meta(aggregateType, aggregateID, accountID, env string) (events.Meta, error) {
	id, err := domain.NewID(x.rand, "evt_", 22)
	if err != nil {
		return events.Meta{}, err
	}
	return events.Meta{
		ID: id, AggregateType: aggregateType, AggregateID: aggregateID, AccountID: accountID,
		Environment: env, Time: x.now, Actor: x.actor, CorrelationID: x.correlation,
	}, nil
}
