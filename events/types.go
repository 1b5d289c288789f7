package events

import "time"

// Aggregate types.
const (
	AggregateSystem  = "system"
	AggregateAccount = "account"
	AggregateToken   = "token"
	AggregateScope   = "scope"
)

// Event types. A type is part of the public contract: never rename one; add a
// new version of the payload instead.
const (
	TypeSystemBootstrapped = "system.bootstrapped"
	TypeAccountCreated     = "account.created"
	TypeTokenCreated       = "token.created"
	TypeTokenRevoked       = "token.revoked"
	TypeTokenUpdated       = "token.updated"
	TypeTokenRotated       = "token.rotated"
	TypeQuotaLeased        = "token.quota_leased"
	TypeQuotaReturned      = "token.quota_returned"
	TypeScopeDefined       = "scope.defined"
	TypeScopeUpdated       = "scope.updated"
)

// SystemBootstrapped marks the one-time creation of the root account. It is
// appended with an expectation of an empty system aggregate, so however many
// nodes start at once, only one bootstraps.
type SystemBootstrapped struct {
	RootAccountID string `json:"root_account_id"`
	RootTokenID   string `json:"root_token_id"`
}

func (SystemBootstrapped) EventType() string { return TypeSystemBootstrapped }
func (SystemBootstrapped) EventVersion() int { return 1 }

// AccountCreated is the first event of an account.
type AccountCreated struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Root      bool      `json:"root,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func (AccountCreated) EventType() string { return TypeAccountCreated }
func (AccountCreated) EventVersion() int { return 1 }

// TokenLimits caps what a token may do over its life. Nil means unlimited.
type TokenLimits struct {
	TotalRequests *int64 `json:"total_requests"`
	PaidRequests  *int64 `json:"paid_requests"`
	WalletAmount  *int64 `json:"wallet_amount"`
	// IPWhitelist holds IPs and CIDRs; empty allows every address.
	IPWhitelist []string `json:"ip_whitelist"`
}

// RateLimit is Limit requests per Window seconds.
type RateLimit struct {
	Limit  int64 `json:"limit"`
	Window int64 `json:"window"`
}

// TokenCreated records a new API token (API key). Only SHA-256 hashes of
// the token and refresh token strings are stored, never the strings.
type TokenCreated struct {
	ID          string       `json:"id"`
	AccountID   string       `json:"account_id"`
	Name        string       `json:"name"`
	Scopes      []string     `json:"scopes"`
	Environment string       `json:"environment"`
	Hash        string       `json:"hash"`
	RefreshHash string       `json:"refresh_hash,omitempty"`
	Limits      *TokenLimits `json:"limits,omitempty"`
	RateLimit   *RateLimit   `json:"rate_limit,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	ExpiresAt   *time.Time   `json:"expires_at,omitempty"`
}

func (TokenCreated) EventType() string { return TypeTokenCreated }
func (TokenCreated) EventVersion() int { return 1 }

// TokenRevoked ends a token. Downstream services follow these on
// [RevocationSubjects].
type TokenRevoked struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Reason    string    `json:"reason,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
}

func (TokenRevoked) EventType() string { return TypeTokenRevoked }
func (TokenRevoked) EventVersion() int { return 1 }

// Endpoint is a method and path pattern a scope grants access to.
type Endpoint struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

// ScopeRequirements are what a scope needs alongside it.
type ScopeRequirements struct {
	// Scopes that must be held together with this one.
	Scopes []string `json:"scopes"`
	// Paid is true when calls under this scope cost credits.
	Paid bool `json:"paid"`
}

// ScopeDefined adds a scope to the catalog. The aggregate id is the scope name.
type ScopeDefined struct {
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	Domain       string            `json:"domain"`
	Endpoints    []Endpoint        `json:"endpoints"`
	Requirements ScopeRequirements `json:"requirements"`
	Price        int64             `json:"price"`
	DefinedAt    time.Time         `json:"defined_at"`
}

func (ScopeDefined) EventType() string { return TypeScopeDefined }
func (ScopeDefined) EventVersion() int { return 1 }

// ScopeUpdated replaces a scope's description, domain, endpoints,
// requirements and price (the name never changes).
type ScopeUpdated struct {
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	Domain       string            `json:"domain"`
	Endpoints    []Endpoint        `json:"endpoints"`
	Requirements ScopeRequirements `json:"requirements"`
	Price        int64             `json:"price"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

func (ScopeUpdated) EventType() string { return TypeScopeUpdated }
func (ScopeUpdated) EventVersion() int { return 1 }

// TokenUpdated replaces a token's name, scopes, limits, rate limit and expiry.
type TokenUpdated struct {
	ID        string      `json:"id"`
	AccountID string      `json:"account_id"`
	Name      string      `json:"name"`
	Scopes    []string    `json:"scopes"`
	Limits    TokenLimits `json:"limits"`
	RateLimit RateLimit   `json:"rate_limit"`
	ExpiresAt *time.Time  `json:"expires_at,omitempty"`
	UpdatedAt time.Time   `json:"updated_at"`
}

func (TokenUpdated) EventType() string { return TypeTokenUpdated }
func (TokenUpdated) EventVersion() int { return 1 }

// TokenRotated gives a token a new value and refresh token. The previous
// value keeps working until PreviousValidUntil (the grace period), if set.
type TokenRotated struct {
	ID                 string     `json:"id"`
	AccountID          string     `json:"account_id"`
	Hash               string     `json:"hash"`
	RefreshHash        string     `json:"refresh_hash"`
	SpentRefreshHash   string     `json:"spent_refresh_hash"`
	PreviousHash       string     `json:"previous_hash"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	RotatedAt          time.Time  `json:"rotated_at"`
}

func (TokenRotated) EventType() string { return TypeTokenRotated }
func (TokenRotated) EventVersion() int { return 1 }

// Quota is an amount of each limited resource of a token.
type Quota struct {
	Requests     int64 `json:"requests"`
	PaidRequests int64 `json:"paid_requests"`
	Credits      int64 `json:"credits"`
}

// QuotaLeased hands a block of a token's remaining quota to one node, which
// then spends it without a network round trip per request. Leases are
// appended with an expectation on the token's version, so the sum of what
// was used and what is leased never exceeds the limits.
type QuotaLeased struct {
	ID        string    `json:"id"`
	LeaseID   string    `json:"lease_id"`
	Node      string    `json:"node"`
	Granted   Quota     `json:"granted"`
	LeasedAt  time.Time `json:"leased_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (QuotaLeased) EventType() string { return TypeQuotaLeased }
func (QuotaLeased) EventVersion() int { return 1 }

// QuotaReturned settles a lease: Used is spent for good. Unless Partial,
// the lease closes and the rest of what it granted is available again; a
// partial settlement keeps the lease open with what is left of it.
type QuotaReturned struct {
	ID         string     `json:"id"`
	LeaseID    string     `json:"lease_id"`
	Used       Quota      `json:"used"`
	Partial    bool       `json:"partial,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ReturnedAt time.Time  `json:"returned_at"`
	// RenewUntil extends a partially settled lease (see WalletLeaseSettled).
	RenewUntil *time.Time `json:"renew_until,omitempty"`
	// Reason says why a lease was closed by someone other than its holder.
	Reason string `json:"reason,omitempty"`
}

func (QuotaReturned) EventType() string { return TypeQuotaReturned }
func (QuotaReturned) EventVersion() int { return 1 }
