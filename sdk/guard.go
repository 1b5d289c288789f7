package tollgate

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// GuardConfig configures a [Guard]. Zero fields take their defaults.
type GuardConfig struct {
	// Client asks Tollgate (POST /verify). Required.
	Client *Client
	// Follower, if set, ends a cached verdict the moment its token's
	// revocation arrives. Without it a revoked token passes until its
	// cached verdict expires.
	Follower *RevocationFollower
	// Scopes every request needs.
	Scopes []string
	// CacheTTL is how long a VALID verdict is reused without asking
	// Tollgate. Default 5s; negative disables the cache. A reused verdict
	// is not a verify call: Tollgate counts no usage and spends no quota or
	// credit for it. Disable the cache for metered scopes.
	CacheTTL time.Duration
	// MaxCached bounds the cache. Default 100,000 tokens.
	MaxCached int
}

// Guard checks the tokens of incoming requests.
type Guard struct {
	cfg GuardConfig

	mu      sync.Mutex
	cache   map[[32]byte]cached
	byToken map[string][][32]byte
}

type cached struct {
	v     Verdict
	until time.Time
}

// NewGuard returns a guard; with a follower, revocations clear its cache.
func NewGuard(cfg GuardConfig) *Guard {
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	if cfg.MaxCached <= 0 {
		cfg.MaxCached = 100_000
	}
	g := &Guard{cfg: cfg, cache: map[[32]byte]cached{}, byToken: map[string][][32]byte{}}
	if cfg.Follower != nil {
		cfg.Follower.OnRevoke(g.forget)
	}
	return g
}

// Check returns Tollgate's verdict on token for a caller at ip (may be
// empty), from the cache when it holds a fresh VALID one.
func (g *Guard) Check(ctx context.Context, token, ip string) (Verdict, error) {
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	g.mu.Lock()
	c, ok := g.cache[key]
	g.mu.Unlock()
	if ok && now.Before(c.until) && (c.v.ExpiresAt == nil || now.Before(*c.v.ExpiresAt)) {
		if g.cfg.Follower == nil || !g.cfg.Follower.IsRevoked(c.v.TokenID) {
			return c.v, nil
		}
		g.forget(c.v.TokenID)
		c.v.Valid, c.v.Code = false, VerdictRevoked
		return c.v, nil
	}
	v, err := g.cfg.Client.Verify(ctx, VerifyRequest{Token: token, Scopes: g.cfg.Scopes, IP: ip})
	if err != nil {
		return Verdict{}, err
	}
	if v.Valid && g.cfg.CacheTTL > 0 && (g.cfg.Follower == nil || !g.cfg.Follower.IsRevoked(v.TokenID)) {
		g.mu.Lock()
		if len(g.cache) >= g.cfg.MaxCached {
			g.cache, g.byToken = map[[32]byte]cached{}, map[string][][32]byte{}
		}
		g.cache[key] = cached{v: v, until: now.Add(g.cfg.CacheTTL)}
		g.byToken[v.TokenID] = append(g.byToken[v.TokenID], key)
		g.mu.Unlock()
	}
	return v, nil
}

// forget drops the cached verdicts of a token (every value it had).
func (g *Guard) forget(tokenID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range g.byToken[tokenID] {
		delete(g.cache, k)
	}
	delete(g.byToken, tokenID)
}

// StatusFor is the HTTP status a service answers a verdict with: 401 for
// unknown, revoked or expired tokens, 403 for a token that may not make
// this call, 429 over its rate limit, 200 for VALID.
func StatusFor(v Verdict) int {
	switch v.Code {
	case VerdictValid:
		return http.StatusOK
	case VerdictForbiddenIP, VerdictInsufficientScope, VerdictUsageExceeded, VerdictInsufficientFunds:
		return http.StatusForbidden
	case VerdictRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusUnauthorized
}

// TokenFromRequest reads "Authorization: Bearer <token>" or X-API-Key.
func TokenFromRequest(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

type verdictKey struct{}

// VerdictFrom returns the verdict [Guard.Handler] admitted the request with.
func VerdictFrom(ctx context.Context) (Verdict, bool) {
	v, ok := ctx.Value(verdictKey{}).(Verdict)
	return v, ok
}

// Handler lets through requests whose token Tollgate finds VALID; others get
// a JSON error with [StatusFor]'s status (503 when Tollgate cannot be asked).
func (g *Guard) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := TokenFromRequest(r)
		if token == "" {
			writeError(w, http.StatusUnauthorized, VerdictNotFound)
			return
		}
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		v, err := g.Check(r.Context(), token, ip)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable")
			return
		}
		if !v.Valid {
			writeError(w, StatusFor(v), v.Code)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), verdictKey{}, v)))
	})
}

func writeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}
