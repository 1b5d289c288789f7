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

// TokenCreated records a new API token (API key). Only the SHA-256 of the
// token string is stored, never the token itself.
type TokenCreated struct {
	ID          string     `json:"id"`
	AccountID   string     `json:"account_id"`
	Name        string     `json:"name"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	Hash        string     `json:"hash"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
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
