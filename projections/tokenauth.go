package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"net/netip"
	"strings"
	"sync"

	"github.com/tollgate/tollgate/domain"
)

// TokenAuth is what checking a presented token needs, and no more: a
// compact view of a token record kept in memory for every token a node
// serves (up to tokenAuthCapacity), so a node with a million active tokens
// answers them all from memory in a couple of hundred bytes each. Strings
// that many tokens share (account ids, environments, scope sets) are
// interned. A TokenAuth is shared and never modified; a change to the
// token replaces it.
type TokenAuth struct {
	ID        string
	AccountID string
	scopes    *[]string // interned
	// digest is the first half of the value's SHA-256 (see
	// domain.MatchesDigest128): 128 bits against a 190-bit random secret.
	digest [domain.Digest128Size]byte
	// ExpiresAt is Unix nanoseconds; 0 for never.
	ExpiresAt int64
	// RateLimit requests per RateWindow seconds.
	RateLimit  int64
	RateWindow int32
	env        environment
	revoked    bool
	// ext holds what few tokens have: a rotation's grace period, an IP
	// whitelist, usage limits.
	ext *tokenAuthExt
}

// environment is a token's environment in one byte.
type environment uint8

const (
	envOther environment = iota
	envLive
	envTest
)

// The environments' names, shared by every view (callers may take their
// address; they are never modified).
var (
	envLiveName = domain.EnvLive
	envTestName = domain.EnvTest
	envNoName   = ""
)

// Environment is the token's environment, "live" or "test".
func (t *TokenAuth) Environment() *string {
	switch t.env {
	case envLive:
		return &envLiveName
	case envTest:
		return &envTestName
	}
	return &envNoName
}

type tokenAuthExt struct {
	previousDigest     [domain.Digest128Size]byte
	previousValidUntil int64
	hasPrevious        bool
	hasWhitelist       bool
	ipWhitelist        []netip.Prefix
	limited            bool
}

// tokenAuthCapacity bounds the compact views a node keeps.
const tokenAuthCapacity = 4_000_000

// Scopes are the token's scopes, shared with every token that has the
// same set: never modify them.
func (t *TokenAuth) Scopes() []string {
	if t.scopes == nil {
		return nil
	}
	return *t.scopes
}

// Status is domain.Token.Status on the compact view.
func (t *TokenAuth) Status(nowUnixNano int64) string {
	switch {
	case t.revoked:
		return domain.StatusRevoked
	case t.ExpiresAt != 0 && nowUnixNano >= t.ExpiresAt:
		return domain.StatusExpired
	}
	return domain.StatusActive
}

// Matches reports, in constant time, whether secret is the token's value,
// or its previous value before nowUnixNano during a rotation's grace period.
func (t *TokenAuth) Matches(secret string, nowUnixNano int64) bool {
	current := domain.MatchesDigest128(secret, &t.digest)
	previous := t.ext != nil && t.ext.hasPrevious && nowUnixNano < t.ext.previousValidUntil &&
		domain.MatchesDigest128(secret, &t.ext.previousDigest)
	return current || previous
}

// AllowsIP is domain.Token.AllowsIP on the compact view, with the whitelist
// parsed once.
func (t *TokenAuth) AllowsIP(ip netip.Addr) bool {
	if t.ext == nil || !t.ext.hasWhitelist {
		return true
	}
	return domain.PrefixesContain(t.ext.ipWhitelist, ip)
}

// Limited is domain.Token.Limited: the token has a usage limit, so using
// it needs its full record (quota leases).
func (t *TokenAuth) Limited() bool { return t.ext != nil && t.ext.limited }

// Auth returns the compact view of token id, from memory or else from the
// stored record. It is shared: never modify it.
func (t *Tokens) Auth(id string) (*TokenAuth, bool, error) {
	a, ok, epoch := t.auth.getRef(id)
	if ok {
		return a, true, nil
	}
	var rec TokenRecord
	ok, err := getJSON(t.db, []byte(prefixToken+id), &rec)
	if !ok || err != nil {
		return nil, false, err
	}
	a = t.interned.compact(&rec)
	t.auth.fillOwned(a.ID, a, epoch)
	return a, true, nil
}

// interner shares the strings and scope sets of compact views.
type interner struct {
	mu     sync.Mutex
	strs   map[string]string
	scopes map[string]*[]string
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, scopes: map[string]*[]string{}}
}

func (in *interner) str(s string) string {
	if v, ok := in.strs[s]; ok {
		return v
	}
	s = strings.Clone(s)
	in.strs[s] = s
	return s
}

func (in *interner) compact(r *TokenRecord) *TokenAuth {
	in.mu.Lock()
	defer in.mu.Unlock()
	a := &TokenAuth{ID: strings.Clone(r.ID), AccountID: in.str(r.AccountID), RateLimit: r.RateLimit.Limit,
		RateWindow: int32(min(r.RateLimit.Window, math.MaxInt32))}
	switch r.Environment {
	case domain.EnvLive:
		a.env = envLive
	case domain.EnvTest:
		a.env = envTest
	}
	key := strings.Join(r.Scopes, " ")
	scopes, ok := in.scopes[key]
	if !ok {
		set := make([]string, len(r.Scopes))
		for i, s := range r.Scopes {
			set[i] = in.str(s)
		}
		scopes = &set
		in.scopes[strings.Clone(key)] = scopes
	}
	a.scopes = scopes
	a.digest = digest128(r.Hash)
	if r.ExpiresAt != nil {
		a.ExpiresAt = r.ExpiresAt.UnixNano()
	}
	a.revoked = r.RevokedAt != nil
	ext := tokenAuthExt{hasWhitelist: len(r.Limits.IPWhitelist) > 0, ipWhitelist: domain.ParsePrefixes(r.Limits.IPWhitelist),
		limited: r.Limits.TotalRequests != nil || r.Limits.PaidRequests != nil || r.Limits.WalletAmount != nil}
	if r.PreviousHash != "" && r.PreviousValidUntil != nil {
		ext.hasPrevious, ext.previousValidUntil = true, r.PreviousValidUntil.UnixNano()
		ext.previousDigest = digest128(r.PreviousHash)
	}
	if ext.hasPrevious || ext.limited || ext.hasWhitelist {
		a.ext = &ext
	}
	return a
}

// digest128 is the first half of a stored hex SHA-256. A malformed one
// (never written by Tollgate) gives zeros, which no secret's digest equals
// in practice.
func digest128(hexed string) (d [domain.Digest128Size]byte) {
	if len(hexed) == 2*sha256.Size {
		_, _ = hex.Decode(d[:], []byte(hexed[:2*domain.Digest128Size]))
	}
	return d
}
