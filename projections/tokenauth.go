package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"math"
	"net/netip"
	"strings"
	"sync"
	"unsafe"

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
	// id holds the token id ("tok_" and a 16-character selector) in place:
	// a separate string would cost another allocation per token. Ids of
	// another length (none are made) live in ext.
	id [tokenIDLen]byte
	// RateLimit requests per RateWindow seconds (at most 10^9 and 86400).
	RateLimit int32
	accountID *string   // interned
	scopes    *[]string // interned
	// digest is the first half of the value's SHA-256 (see
	// domain.MatchesDigest128): 128 bits against a 190-bit random secret.
	digest [domain.Digest128Size]byte
	// ExpiresAt is Unix nanoseconds; 0 for never.
	ExpiresAt  int64
	RateWindow int32
	env        environment
	revoked    bool
	// ext holds what few tokens have: a rotation's grace period, an IP
	// whitelist, usage limits.
	ext *tokenAuthExt
}

// tokenIDLen is the length of a token id: "tok_" and a selector.
const tokenIDLen = 4 + 16

// ID is the token's id.
func (t *TokenAuth) ID() string {
	if t.ext != nil && t.ext.id != "" {
		return t.ext.id
	}
	return unsafe.String(&t.id[0], tokenIDLen)
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
	id                 string // an id not of tokenIDLen bytes
	previousDigest     [domain.Digest128Size]byte
	previousValidUntil int64
	hasPrevious        bool
	hasWhitelist       bool
	ipWhitelist        []netip.Prefix
	limited            bool
}

// tokenAuthCapacity bounds the compact views a node keeps.
const tokenAuthCapacity = 4_000_000

// AccountID is the token's account: a string shared by every view of the
// account's tokens (callers may keep the pointer; never write through it).
func (t *TokenAuth) AccountID() *string { return t.accountID }

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
	a, epoch := t.auth.get(id)
	if a != nil {
		return a, true, nil
	}
	var rec TokenRecord
	ok, err := getJSON(t.db, []byte(prefixToken+id), &rec)
	if !ok || err != nil {
		return nil, false, err
	}
	a = t.interned.compact(&rec)
	t.auth.fill(a, epoch)
	return a, true, nil
}

// authCache holds the compact views under a seeded 64-bit hash of their
// id: a map slot is 16 bytes rather than 24, and a lookup checks the id,
// so two ids sharing a hash (a 2^-64 event per pair) only take turns in
// the cache. Invalidation works as in recordCache.
type authCache struct {
	seed  maphash.Seed
	mu    sync.RWMutex
	items map[uint64]*TokenAuth
	epoch uint64
	max   int
}

func newAuthCache(max int) *authCache {
	return &authCache{seed: maphash.MakeSeed(), items: make(map[uint64]*TokenAuth), max: max}
}

// get returns the view of id, or nil and the epoch to pass to fill.
func (c *authCache) get(id string) (*TokenAuth, uint64) {
	h := maphash.String(c.seed, id)
	c.mu.RLock()
	a := c.items[h]
	epoch := c.epoch
	c.mu.RUnlock()
	if a != nil && a.ID() == id {
		return a, epoch
	}
	return nil, epoch
}

func (c *authCache) fill(a *TokenAuth, epoch uint64) {
	h := maphash.String(c.seed, a.ID())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	if len(c.items) >= c.max {
		n := c.max / 10 // an arbitrary tenth: map order is unspecified
		for k := range c.items {
			if n--; n < 0 {
				break
			}
			delete(c.items, k)
		}
	}
	c.items[h] = a
}

func (c *authCache) invalidate(ids []string) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	c.epoch++
	for _, id := range ids {
		h := maphash.String(c.seed, id)
		if a := c.items[h]; a != nil && a.ID() == id {
			delete(c.items, h)
		}
	}
	c.mu.Unlock()
}

func (c *authCache) clear() {
	c.mu.Lock()
	c.epoch++
	c.items = make(map[uint64]*TokenAuth)
	c.mu.Unlock()
}

// interner shares the strings and scope sets of compact views.
type interner struct {
	mu     sync.Mutex
	strs   map[string]*string
	scopes map[string]*[]string
}

func newInterner() *interner {
	return &interner{strs: map[string]*string{}, scopes: map[string]*[]string{}}
}

func (in *interner) str(s string) *string {
	if v, ok := in.strs[s]; ok {
		return v
	}
	s = strings.Clone(s)
	in.strs[s] = &s
	return &s
}

func (in *interner) compact(r *TokenRecord) *TokenAuth {
	in.mu.Lock()
	defer in.mu.Unlock()
	a := &TokenAuth{accountID: in.str(r.AccountID), RateLimit: int32(min(r.RateLimit.Limit, math.MaxInt32)),
		RateWindow: int32(min(r.RateLimit.Window, math.MaxInt32))}
	var ext tokenAuthExt
	if len(r.ID) == tokenIDLen {
		copy(a.id[:], r.ID)
	} else {
		ext.id = strings.Clone(r.ID)
	}
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
			set[i] = *in.str(s)
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
	ext.hasWhitelist, ext.ipWhitelist = len(r.Limits.IPWhitelist) > 0, domain.ParsePrefixes(r.Limits.IPWhitelist)
	ext.limited = r.Limits.TotalRequests != nil || r.Limits.PaidRequests != nil || r.Limits.WalletAmount != nil
	if r.PreviousHash != "" && r.PreviousValidUntil != nil {
		ext.hasPrevious, ext.previousValidUntil = true, r.PreviousValidUntil.UnixNano()
		ext.previousDigest = digest128(r.PreviousHash)
	}
	if ext.id != "" || ext.hasPrevious || ext.limited || ext.hasWhitelist {
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
