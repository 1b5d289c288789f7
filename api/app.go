// Package api is Tollgate's HTTP layer: the Fiber app with the management
// API, the OAuth endpoints, authentication, error mapping and the OpenAPI
// document.
package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// Deps are the services the API is wired to.
type Deps struct {
	Store     events.Store
	Projector *projections.Projector
	Accounts  *projections.Accounts
	Tokens    *projections.Tokens
	Scopes    *projections.Scopes
	Wallets   *projections.Wallets
	// Stats is fed by the usage stream's own projector.
	Stats   *projections.Stats
	Clients *projections.Clients
	// Access holds OAuth access tokens; SigningKeys the keys that sign JWT
	// access tokens.
	Access      *projections.Access
	SigningKeys *projections.SigningKeys
	Idempotency *IdempotencyStore
	// Subscriptions, Deliveries and Errors are the webhook read models and
	// the integration errors.
	Subscriptions *projections.Subscriptions
	Deliveries    *projections.Deliveries
	Errors        *projections.Errors
	// Users, Consents and Grants (authorization codes and refresh-token
	// families) serve the authorization code flow.
	Users    *projections.Users
	Consents *projections.Consents
	Grants   *projections.Grants
	// CheckCallbackURL refuses callback URLs that resolve to addresses
	// Tollgate must not call (the workers' SSRF guard).
	CheckCallbackURL func(ctx context.Context, url string) error
	// Assertions remembers used private_key_jwt assertions across the
	// cluster; nil disables private_key_jwt.
	Assertions *AssertionStore
	// Fence makes OAuth revocations wait for every live node; nil answers
	// once this node has applied them.
	Fence *ClusterFence
	// Usage records verifies and API requests; nil records nothing.
	Usage *UsageRecorder
	// Ready reports nil when the node can serve (NATS connected, projections
	// caught up).
	Ready func() error
	// Registry collects the app's metrics; /metrics serves it.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the entropy source. Default crypto/rand.
	Rand io.Reader
}

// Config configures the app. Zero fields take their defaults.
type Config struct {
	// BodyLimit is the largest accepted request body. Default 1 MiB.
	BodyLimit int
	// TrustedProxies may send plain HTTP with X-Forwarded-Proto/-For.
	TrustedProxies []netip.Prefix
	// TLS is true when the listener serves HTTPS.
	TLS bool
	// WriteTimeout bounds event appends and read-your-writes waits. Default 5s.
	WriteTimeout time.Duration
	// NodeID names this node in quota leases. Default "node".
	NodeID string
	// Issuer is the OAuth issuer URL, without a trailing slash. Default
	// http://127.0.0.1:8080.
	Issuer string
	// KeyEncryptionKey (32 bytes) seals the private signing keys in the
	// event log. Every node of a cluster needs the same one. Required.
	KeyEncryptionKey []byte
	// AuthFailureLimit is how many failed client authentications per minute
	// one client_id or one IP may have before the OAuth endpoints answer it
	// 429. Default 10.
	AuthFailureLimit int
	// RefreshTokenTTL is the absolute lifetime of the refresh tokens of an
	// authorization-code grant, from the code's redemption. Default
	// [domain.DefaultRefreshTokenTTL] (30 days).
	RefreshTokenTTL time.Duration
}

func (c *Config) setDefaults() {
	if c.BodyLimit <= 0 {
		c.BodyLimit = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.NodeID == "" {
		c.NodeID = "node"
	}
	if c.Issuer == "" {
		c.Issuer = "http://127.0.0.1:8080"
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if c.AuthFailureLimit <= 0 {
		c.AuthFailureLimit = 10
	}
	if c.RefreshTokenTTL <= 0 {
		c.RefreshTokenTTL = domain.DefaultRefreshTokenTTL
	}
}

// API holds the handlers' shared state and the Fiber app serving them.
type API struct {
	Deps
	requestIDs *requestIDs
	unknown    *negativeCache
	quota      *quotaManager
	rates      *rateLimiter
	// OAuth: grants by grant_type, client authentication methods, the
	// failed-authentication throttle, the opened signing key.
	grants       map[string]tokenGrant
	clientAuth   []clientAuthMethod
	authFailures *rateLimiter
	ring         keyRing
	issuerURL    atomic.Pointer[string]
	// sessions seals the login session cookie; pending the authorization
	// request carried through the login and consent forms.
	sessions, pending *sealer
	// App is the Fiber app; serve it with App.Listener.
	App     *fiber.App
	cfg     Config
	metrics *httpMetrics
}

// New builds the API and its Fiber app.
func New(deps Deps, cfg Config) (*API, error) {
	cfg.setDefaults()
	if deps.Store == nil || deps.Projector == nil || deps.Accounts == nil || deps.Tokens == nil || deps.Scopes == nil || deps.Wallets == nil || deps.Stats == nil ||
		deps.Clients == nil || deps.Access == nil || deps.SigningKeys == nil || deps.Subscriptions == nil || deps.Deliveries == nil ||
		deps.Errors == nil || deps.CheckCallbackURL == nil || deps.Users == nil || deps.Consents == nil || deps.Grants == nil {
		return nil, errors.New("api: Store, Projector, every projection and CheckCallbackURL are required")
	}
	if len(cfg.KeyEncryptionKey) != domain.KEKSize {
		return nil, fmt.Errorf("api: the key-encryption key must be %d bytes, not %d", domain.KEKSize, len(cfg.KeyEncryptionKey))
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Rand == nil {
		deps.Rand = rand.Reader
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	if deps.Ready == nil {
		deps.Ready = func() error { return nil }
	}
	var err error
	a := &API{Deps: deps, cfg: cfg, requestIDs: newRequestIDs(deps.Rand), unknown: newNegativeCache(100_000, 5*time.Second),
		rates: newRateLimiter(), authFailures: newRateLimiter()}
	a.quota = newQuotaManager(a, cfg.NodeID)
	a.grants = map[string]tokenGrant{
		domain.GrantClientCredentials: clientCredentialsGrant{a: a},
		domain.GrantAuthorizationCode: authorizationCodeGrant{a: a},
		domain.GrantRefreshToken:      refreshTokenGrant{a: a},
	}
	a.clientAuth = a.clientAuthMethods()
	if a.sessions, err = newSealer(cfg.KeyEncryptionKey, "session", deps.Rand); err != nil {
		return nil, err
	}
	if a.pending, err = newSealer(cfg.KeyEncryptionKey, "authorization-request", deps.Rand); err != nil {
		return nil, err
	}
	a.SetIssuer(cfg.Issuer)
	m, err := newHTTPMetrics(deps.Registry, deps.Projector)
	if err != nil {
		return nil, err
	}
	a.metrics = m

	app := fiber.New(fiber.Config{
		AppName: "tollgate",
		// The transport reads up to 4× the limit so that a client sending a
		// somewhat oversized body gets a JSON 400 rather than a reset
		// connection; limitBody enforces the real limit.
		BodyLimit:             4 * cfg.BodyLimit,
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(deps.Logger),
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           120 * time.Second,
		ProxyHeader:           "", // client IPs come from trusted proxies only (see clientIP)
		JSONEncoder:           gojson.Marshal,
		// Values from requests outlive handlers in caches and events:
		// never let them alias Fiber's reused buffers.
		Immutable: true,
	})
	app.Use(a.requestID, a.observe, a.requireHTTPS, a.limitBody)
	a.routes(app)
	a.App = app
	return a, nil
}

func (a *API) routes(app *fiber.App) {
	app.Get("/healthz", a.healthz)
	app.Get("/readyz", a.readyz)
	app.Get("/metrics", a.metricsHandler())
	app.Get("/openapi.json", a.openAPI)

	app.Post("/accounts", a.auth, a.idempotent, a.createAccount)
	app.Get("/accounts/me", a.auth, a.getMyAccount)
	app.Get("/accounts/:id", a.auth, a.getAccount)

	// API keys are API tokens: /keys is the management view of the same
	// resource, guarded by the keys:* scopes.
	for _, r := range []struct{ path, read, write string }{
		{"/tokens", domain.ScopeTokensRead, domain.ScopeTokensWrite},
		{"/keys", domain.ScopeKeysRead, domain.ScopeKeysWrite},
	} {
		app.Post(r.path, a.auth, need(r.write), a.idempotent, a.createToken)
		app.Get(r.path, a.auth, need(r.read), a.listTokens)
		app.Get(r.path+"/:id", a.auth, need(r.read), a.getToken)
		app.Patch(r.path+"/:id", a.auth, need(r.write), a.idempotent, a.patchToken)
		app.Delete(r.path+"/:id", a.auth, need(r.write), a.idempotent, a.revokeToken)
	}
	app.Post("/verify", a.auth, need(domain.ScopeTokensVerify), a.verify)

	app.Get("/wallet", a.auth, need(domain.ScopeWalletRead), a.getWallet)
	app.Get("/wallet/transactions", a.auth, need(domain.ScopeWalletRead), a.listTransactions)
	app.Post("/wallet/credits", a.auth, need(domain.ScopeWalletWrite), a.idempotent, a.creditWallet)
	app.Patch("/wallet", a.auth, need(domain.ScopeWalletWrite), a.idempotent, a.patchWallet)

	app.Get("/stats", a.auth, need(domain.ScopeStatsRead), a.getStats)

	app.Get("/scopes", a.auth, need(domain.ScopeScopesRead), a.listScopes)
	app.Get("/scopes/:name", a.auth, need(domain.ScopeScopesRead), a.getScope)
	app.Post("/scopes", a.auth, a.idempotent, a.defineScope)
	app.Patch("/scopes/:name", a.auth, a.idempotent, a.updateScope)

	app.Post("/clients", a.auth, need(domain.ScopeClientsWrite), a.idempotent, a.createClient)
	app.Get("/clients", a.auth, need(domain.ScopeClientsRead), a.listClients)
	app.Get("/clients/:id", a.auth, need(domain.ScopeClientsRead), a.getClient)
	app.Patch("/clients/:id", a.auth, need(domain.ScopeClientsWrite), a.idempotent, a.patchClient)
	app.Delete("/clients/:id", a.auth, need(domain.ScopeClientsWrite), a.idempotent, a.deleteClient)
	app.Post("/clients/:id/secret", a.auth, need(domain.ScopeClientsWrite), a.idempotent, a.rotateClientSecret)

	app.Post("/users", a.auth, need(domain.ScopeUsersWrite), a.idempotent, a.createUser)
	app.Get("/users", a.auth, need(domain.ScopeUsersRead), a.listUsers)
	app.Get("/users/:id", a.auth, need(domain.ScopeUsersRead), a.getUser)
	app.Delete("/users/:id", a.auth, need(domain.ScopeUsersWrite), a.idempotent, a.deleteUser)
	app.Put("/users/:id/password", a.auth, need(domain.ScopeUsersWrite), a.idempotent, a.changePassword)
	app.Post("/users/:id/disable", a.auth, need(domain.ScopeUsersWrite), a.idempotent, a.disableUser)
	app.Get("/users/:id/consents", a.auth, need(domain.ScopeUsersRead), a.listConsents)
	app.Delete("/users/:id/consents/:client_id", a.auth, need(domain.ScopeUsersWrite), a.idempotent, a.revokeConsent)

	// OAuth 2.0: canonical paths under /oauth2/, aliases /oauth/ and /v1/oauth/.
	// The login and consent pages post their forms under the prefix they
	// were served from.
	for _, prefix := range oauthPrefixes {
		app.Get(prefix+"/authorize", a.page(a.authorize))
		app.Post(prefix+"/login", a.page(a.login))
		app.Post(prefix+"/consent", a.page(a.consent))
		app.Post(prefix+"/token", a.token)
		app.Post(prefix+"/introspect", a.introspect)
		app.Post(prefix+"/revoke", a.revokeAccess)
	}
	app.Get("/.well-known/oauth-authorization-server", a.discovery)
	app.Get("/.well-known/jwks.json", a.jwks)
	app.Get("/signing-keys", a.auth, a.listSigningKeys)
	app.Post("/signing-keys/rotate", a.auth, a.idempotent, a.rotateSigningKey)

	app.Post("/subscriptions", a.auth, need(domain.ScopeSubscriptionsWrite), a.idempotent, a.createSubscription)
	app.Get("/subscriptions", a.auth, need(domain.ScopeSubscriptionsRead), a.listSubscriptions)
	app.Get("/subscriptions/:id", a.auth, need(domain.ScopeSubscriptionsRead), a.getSubscription)
	app.Delete("/subscriptions/:id", a.auth, need(domain.ScopeSubscriptionsWrite), a.idempotent, a.deleteSubscription)
	app.Post("/subscriptions/:id/secret", a.auth, need(domain.ScopeSubscriptionsWrite), a.idempotent, a.rotateSubscriptionSecret)

	app.Get("/callbacks", a.auth, need(domain.ScopeCallbacksRead), a.listCallbacks)
	app.Post("/callbacks/:id/retry", a.auth, need(domain.ScopeCallbacksWrite), a.idempotent, a.retryCallback)
	app.Get("/errors", a.auth, need(domain.ScopeErrorsRead), a.listErrors)
}

// SetIssuer changes the issuer URL; a node whose listen port is chosen at
// start (":0") sets it once the port is known, before serving.
func (a *API) SetIssuer(issuer string) {
	issuer = strings.TrimSuffix(issuer, "/")
	a.issuerURL.Store(&issuer)
}

func (a *API) issuer() string { return *a.issuerURL.Load() }

// writeCtx bounds a write's NATS round trips and projection wait.
func (a *API) writeCtx(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), a.cfg.WriteTimeout)
}

// commit appends changes and answers only once this node's projections have
// applied them (read-your-writes).
func (a *API) commit(c *fiber.Ctx, changes ...events.Change) (events.AppendResult, error) {
	ctx, cancel := a.writeCtx(c)
	defer cancel()
	res, err := a.Store.Append(ctx, changes...)
	if err != nil {
		return res, err
	}
	if err := a.Projector.WaitFor(ctx, res.Last()); err != nil {
		return res, fmt.Errorf("%w: appended at %d but not yet applied: %v", events.ErrUnavailable, res.Last(), err)
	}
	return res, nil
}

// syncAggregate waits until this node has applied the aggregate's last event.
func (a *API) syncAggregate(c *fiber.Ctx, aggregateType, id string) error {
	ctx, cancel := a.writeCtx(c)
	defer cancel()
	_, err := a.fresh(ctx, aggregateType, id)
	return err
}

// commitOrRetry commits changes whose first one expects its aggregate's
// version. The first lost race catches this node up with that aggregate and
// asks the caller to decide again on fresh state (retry); a second is a 409
// with msg.
func (a *API) commitOrRetry(c *fiber.Ctx, attempt int, msg string, changes ...events.Change) (retry bool, err error) {
	_, err = a.commit(c, changes...)
	if !isConflict(err) {
		return false, err
	}
	if attempt > 0 {
		return false, conflict(msg)
	}
	first := changes[0].Event
	if err := a.syncAggregate(c, first.AggregateType, first.AggregateID); err != nil {
		return false, err
	}
	return true, nil
}

// fresh makes sure an aggregate the projection does not know is not merely
// late: it asks the stream for the aggregate's last sequence and waits for
// the projector to reach it. It reports whether the aggregate exists.
func (a *API) fresh(ctx context.Context, aggregateType, id string) (bool, error) {
	if !events.ValidID(id) {
		return false, nil
	}
	seq, err := a.Store.LastSequence(ctx, aggregateType, id)
	if err != nil || seq == 0 {
		return false, err
	}
	if err := a.Projector.WaitFor(ctx, seq); err != nil {
		return false, err
	}
	return true, nil
}
