package domain

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/events"
)

// Token statuses.
const (
	StatusActive  = "active"
	StatusExpired = "expired"
	StatusRevoked = "revoked"
)

// Default rate limit of every token: 10000 requests per 60 seconds.
const (
	DefaultRateLimit  = 10000
	DefaultRateWindow = 60
)

// Token errors.
var (
	// ErrRefreshReuse: a refresh token that was already spent came back. The
	// caller must revoke the token (RFC 9700 reuse detection).
	ErrRefreshReuse = errors.New("refresh token already used")
	// ErrRefreshInvalid: the refresh token is not this token's.
	ErrRefreshInvalid = errors.New("refresh token does not match")
	// ErrQuotaExhausted: nothing is left to lease in the dimension asked for.
	ErrQuotaExhausted = errors.New("quota exhausted")
)

// Token is an API token (also called API key): a bearer credential of one
// account and environment holding a set of scopes, with optional limits.
type Token struct {
	ID          string
	AccountID   string
	Name        string
	Scopes      []string
	Environment string
	Hash        string
	RefreshHash string
	// SpentRefreshHashes are refresh tokens already exchanged.
	SpentRefreshHashes []string
	PreviousHash       string
	PreviousValidUntil *time.Time
	Limits             events.TokenLimits
	RateLimit          events.RateLimit
	CreatedAt          time.Time
	ExpiresAt          *time.Time
	RevokedAt          *time.Time
	// Used is quota spent for good; Leased is quota handed to nodes and not
	// yet returned, per lease id.
	Used    events.Quota
	Leases  map[string]events.Quota
	Version uint64
}

// Status is the token's state at now.
func (t Token) Status(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return StatusRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

// IssueToken is the command that creates a token. Secret generation happens
// outside; the command carries the credential it made.
type IssueToken struct {
	Credential  Credential
	Hash        string
	RefreshHash string
	AccountID   string
	Name        string
	Scopes      []string
	Environment string
	TTL         time.Duration
	ExpiresAt   *time.Time
	Limits      *events.TokenLimits
	RateLimit   *events.RateLimit
	// GrantorScopes are the scopes of whoever issues the token; a token never
	// holds a scope its grantor lacks. Nil for the system (bootstrap).
	GrantorScopes []string
}

// maxTokenTTL bounds token lifetimes: ten years.
const maxTokenTTL = 10 * 365 * 24 * time.Hour

// NewToken validates the command and returns the token's first event.
func NewToken(cmd IssueToken, now time.Time) (events.TokenCreated, error) {
	var v validation
	cmd.Name = strings.TrimSpace(cmd.Name)
	checkName(&v, "name", cmd.Name)
	if !events.ValidID(cmd.AccountID) {
		v.add("account_id", "is not a valid account id")
	}
	if cmd.Environment != EnvLive && cmd.Environment != EnvTest {
		v.add("environment", "must be %q or %q", EnvLive, EnvTest)
	} else if cmd.Credential.Environment() != cmd.Environment {
		v.add("environment", "does not match the credential prefix")
	}
	checkScopes(&v, cmd.Scopes)
	expires := checkExpiry(&v, cmd.TTL, cmd.ExpiresAt, now)
	limits := checkLimits(&v, cmd.Limits)
	rate := checkRateLimit(&v, cmd.RateLimit)
	if err := v.err(); err != nil {
		return events.TokenCreated{}, err
	}
	if err := checkGrant(cmd.GrantorScopes, cmd.Scopes); err != nil {
		return events.TokenCreated{}, err
	}
	created := events.TokenCreated{
		ID:          cmd.Credential.TokenID(),
		AccountID:   cmd.AccountID,
		Name:        cmd.Name,
		Scopes:      normalizeScopes(cmd.Scopes),
		Environment: cmd.Environment,
		Hash:        cmd.Hash,
		RefreshHash: cmd.RefreshHash,
		CreatedAt:   now.UTC(),
		ExpiresAt:   expires,
		RateLimit:   &rate,
	}
	if cmd.Limits != nil {
		created.Limits = &limits
	}
	return created, nil
}

func checkScopes(v *validation, scopes []string) {
	if len(scopes) == 0 {
		v.add("scopes", "at least one scope is required")
	}
	for _, s := range scopes {
		if !ValidScopeName(s) {
			v.add("scopes", "%q is not a valid scope name", s)
		}
	}
}

func checkGrant(grantor, scopes []string) error {
	if grantor == nil {
		return nil
	}
	for _, s := range scopes {
		if !HasScope(grantor, s) || (s == ScopeAdmin && !slices.Contains(grantor, ScopeAdmin)) {
			return ErrForbidden
		}
	}
	return nil
}

func checkExpiry(v *validation, ttl time.Duration, at *time.Time, now time.Time) *time.Time {
	switch {
	case ttl != 0 && at != nil:
		v.add("ttl", "give ttl or expires_at, not both")
	case ttl < 0 || (ttl > 0 && ttl < time.Second) || ttl > maxTokenTTL:
		v.add("ttl", "must be between 1 second and 10 years")
	case ttl > 0:
		e := now.Add(ttl).UTC().Truncate(time.Second)
		return &e
	case at != nil:
		if !at.After(now) || at.Sub(now) > maxTokenTTL {
			v.add("expires_at", "must be in the future and within 10 years")
		}
		e := at.UTC()
		return &e
	}
	return nil
}

func checkLimits(v *validation, l *events.TokenLimits) events.TokenLimits {
	if l == nil {
		return events.TokenLimits{}
	}
	out := *l
	for name, p := range map[string]*int64{"total_requests": l.TotalRequests, "paid_requests": l.PaidRequests, "wallet_amount": l.WalletAmount} {
		if p != nil && *p < 0 {
			v.add("limits."+name, "must be >= 0")
		}
	}
	if len(l.IPWhitelist) > 100 {
		v.add("limits.ip_whitelist", "at most 100 entries")
	}
	out.IPWhitelist = nil
	for _, s := range l.IPWhitelist {
		p, err := ParseIPOrCIDR(s)
		if err != nil {
			v.add("limits.ip_whitelist", "%q is neither an IP address nor a CIDR", s)
			continue
		}
		out.IPWhitelist = append(out.IPWhitelist, p.String())
	}
	return out
}

func checkRateLimit(v *validation, r *events.RateLimit) events.RateLimit {
	if r == nil {
		return events.RateLimit{Limit: DefaultRateLimit, Window: DefaultRateWindow}
	}
	if r.Limit < 1 || r.Limit > 1_000_000_000 {
		v.add("rate_limit.limit", "must be from 1 to 1000000000")
	}
	if r.Window < 1 || r.Window > 86400 {
		v.add("rate_limit.window", "must be from 1 to 86400 seconds")
	}
	return *r
}

// ParseIPOrCIDR reads "203.0.113.7", "2001:db8::1" or "2001:db8::/64".
func ParseIPOrCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// AllowsIP reports whether ip may use the token.
func (t Token) AllowsIP(ip netip.Addr) bool {
	if len(t.Limits.IPWhitelist) == 0 {
		return true
	}
	return PrefixesContain(ParsePrefixes(t.Limits.IPWhitelist), ip)
}

// ParsePrefixes parses a stored IP whitelist (CIDRs), skipping entries that
// do not parse; callers that keep the result parse a whitelist once.
func ParsePrefixes(whitelist []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(whitelist))
	for _, s := range whitelist {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// PrefixesContain reports whether ip (IPv4-mapped IPv6 counts as IPv4) is
// in one of prefixes.
func PrefixesContain(prefixes []netip.Prefix, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// UpdateToken changes a token's settings; nil fields keep their value.
type UpdateToken struct {
	Name          *string
	Scopes        []string
	Limits        *events.TokenLimits
	RateLimit     *events.RateLimit
	TTL           time.Duration
	ExpiresAt     *time.Time
	GrantorScopes []string
}

// Update validates the change and returns token.updated.
func (t *Token) Update(cmd UpdateToken, now time.Time) (events.TokenUpdated, error) {
	if t.RevokedAt != nil {
		return events.TokenUpdated{}, ErrConflict
	}
	var v validation
	up := events.TokenUpdated{ID: t.ID, AccountID: t.AccountID, Name: t.Name, Scopes: t.Scopes,
		Limits: t.Limits, RateLimit: t.RateLimit, ExpiresAt: t.ExpiresAt, UpdatedAt: now.UTC()}
	if cmd.Name != nil {
		up.Name = strings.TrimSpace(*cmd.Name)
		checkName(&v, "name", up.Name)
	}
	if cmd.Scopes != nil {
		checkScopes(&v, cmd.Scopes)
		up.Scopes = normalizeScopes(cmd.Scopes)
	}
	if cmd.Limits != nil {
		up.Limits = checkLimits(&v, cmd.Limits)
	}
	if cmd.RateLimit != nil {
		up.RateLimit = checkRateLimit(&v, cmd.RateLimit)
	}
	if cmd.TTL != 0 || cmd.ExpiresAt != nil {
		up.ExpiresAt = checkExpiry(&v, cmd.TTL, cmd.ExpiresAt, now)
	}
	if err := v.err(); err != nil {
		return events.TokenUpdated{}, err
	}
	if cmd.Scopes != nil {
		if err := checkGrant(cmd.GrantorScopes, cmd.Scopes); err != nil {
			return events.TokenUpdated{}, err
		}
	}
	return up, nil
}

// MaxGracePeriod bounds how long a rotated-away token value keeps working.
const MaxGracePeriod = 5 * time.Minute

// Rotate exchanges the refresh token (given by its hash) for a new token
// value and refresh token. A refresh token spent before is reuse: the
// caller revokes the token.
func (t *Token) Rotate(presentedRefreshHash, newHash, newRefreshHash string, grace time.Duration, now time.Time) (events.TokenRotated, error) {
	if t.RevokedAt != nil {
		return events.TokenRotated{}, ErrConflict
	}
	if slices.Contains(t.SpentRefreshHashes, presentedRefreshHash) {
		return events.TokenRotated{}, ErrRefreshReuse
	}
	if t.RefreshHash == "" || !ConstantTimeEqual(presentedRefreshHash, t.RefreshHash) {
		return events.TokenRotated{}, ErrRefreshInvalid
	}
	if grace < 0 || grace > MaxGracePeriod {
		return events.TokenRotated{}, &ValidationError{Problems: []FieldProblem{{Field: "grace_period", Message: "must be from 0 to 300 seconds"}}}
	}
	r := events.TokenRotated{ID: t.ID, AccountID: t.AccountID, Hash: newHash, RefreshHash: newRefreshHash,
		SpentRefreshHash: presentedRefreshHash, PreviousHash: t.Hash, RotatedAt: now.UTC()}
	if grace > 0 {
		until := now.Add(grace).UTC()
		r.PreviousValidUntil = &until
	}
	return r, nil
}

// Revoke ends the token. Revoking twice is a conflict, so the caller can
// answer idempotently without appending a second event.
func (t *Token) Revoke(reason string, now time.Time) (events.TokenRevoked, error) {
	if t.RevokedAt != nil {
		return events.TokenRevoked{}, ErrConflict
	}
	return events.TokenRevoked{ID: t.ID, AccountID: t.AccountID, Reason: reason, RevokedAt: now.UTC()}, nil
}

// Available is what is left to lease in each limited dimension; -1 means
// unlimited.
func (t Token) Available() events.Quota {
	leased := events.Quota{}
	for _, q := range t.Leases {
		leased.Requests += q.Requests
		leased.PaidRequests += q.PaidRequests
		leased.Credits += q.Credits
	}
	left := func(limit *int64, used, out int64) int64 {
		if limit == nil {
			return -1
		}
		return max(0, *limit-used-out)
	}
	return events.Quota{
		Requests:     left(t.Limits.TotalRequests, t.Used.Requests, leased.Requests),
		PaidRequests: left(t.Limits.PaidRequests, t.Used.PaidRequests, leased.PaidRequests),
		Credits:      left(t.Limits.WalletAmount, t.Used.Credits, leased.Credits),
	}
}

// Limited reports whether any quota dimension is capped.
func (t Token) Limited() bool {
	return t.Limits.TotalRequests != nil || t.Limits.PaidRequests != nil || t.Limits.WalletAmount != nil
}

// Lease grants node up to want in each capped dimension (uncapped
// dimensions grant nothing: they need no lease). It fails with
// ErrQuotaExhausted when a dimension asked for has nothing left.
func (t Token) Lease(leaseID, node string, want events.Quota, now time.Time, ttl time.Duration) (events.QuotaLeased, error) {
	avail := t.Available()
	grant := events.Quota{}
	take := func(want, avail int64) (int64, bool) {
		switch {
		case avail < 0 || want <= 0:
			return 0, true
		case avail == 0:
			return 0, false
		}
		return min(want, avail), true
	}
	var ok1, ok2, ok3 bool
	grant.Requests, ok1 = take(want.Requests, avail.Requests)
	grant.PaidRequests, ok2 = take(want.PaidRequests, avail.PaidRequests)
	grant.Credits, ok3 = take(want.Credits, avail.Credits)
	if !ok1 || !ok2 || !ok3 {
		return events.QuotaLeased{}, ErrQuotaExhausted
	}
	return events.QuotaLeased{ID: t.ID, LeaseID: leaseID, Node: node, Granted: grant,
		LeasedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()}, nil
}

// ConstantTimeEqual compares two hashes without leaking where they differ.
func ConstantTimeEqual(a, b string) bool {
	return len(a) == len(b) && subtleCompare(a, b)
}
