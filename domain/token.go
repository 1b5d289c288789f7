package domain

import (
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

// Token is an API token (also called API key): a bearer credential of one
// account and environment holding a set of scopes.
type Token struct {
	ID          string
	AccountID   string
	Name        string
	Scopes      []string
	Environment string
	Hash        string
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	RevokedAt   *time.Time
	Version     uint64
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
	AccountID   string
	Name        string
	Scopes      []string
	Environment string
	TTL         time.Duration
	ExpiresAt   *time.Time
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
	if len(cmd.Scopes) == 0 {
		v.add("scopes", "at least one scope is required")
	}
	for _, s := range cmd.Scopes {
		if !ValidScopeName(s) {
			v.add("scopes", "%q is not a valid scope name", s)
		}
	}
	var expires *time.Time
	switch {
	case cmd.TTL != 0 && cmd.ExpiresAt != nil:
		v.add("ttl", "give ttl or expires_at, not both")
	case cmd.TTL < 0 || (cmd.TTL > 0 && cmd.TTL < time.Second) || cmd.TTL > maxTokenTTL:
		v.add("ttl", "must be between 1 second and 10 years")
	case cmd.TTL > 0:
		e := now.Add(cmd.TTL).UTC().Truncate(time.Second)
		expires = &e
	case cmd.ExpiresAt != nil:
		if !cmd.ExpiresAt.After(now) || cmd.ExpiresAt.Sub(now) > maxTokenTTL {
			v.add("expires_at", "must be in the future and within 10 years")
		}
		e := cmd.ExpiresAt.UTC()
		expires = &e
	}
	if err := v.err(); err != nil {
		return events.TokenCreated{}, err
	}
	if cmd.GrantorScopes != nil {
		for _, s := range cmd.Scopes {
			if !HasScope(cmd.GrantorScopes, s) || (s == ScopeAdmin && !slices.Contains(cmd.GrantorScopes, ScopeAdmin)) {
				return events.TokenCreated{}, ErrForbidden
			}
		}
	}
	return events.TokenCreated{
		ID:          cmd.Credential.TokenID(),
		AccountID:   cmd.AccountID,
		Name:        cmd.Name,
		Scopes:      normalizeScopes(cmd.Scopes),
		Environment: cmd.Environment,
		Hash:        cmd.Hash,
		CreatedAt:   now.UTC(),
		ExpiresAt:   expires,
	}, nil
}

// Revoke ends the token. Revoking twice is a conflict, so the caller can
// answer idempotently without appending a second event.
func (t *Token) Revoke(reason string, now time.Time) (events.TokenRevoked, error) {
	if t.RevokedAt != nil {
		return events.TokenRevoked{}, ErrConflict
	}
	return events.TokenRevoked{ID: t.ID, AccountID: t.AccountID, Reason: reason, RevokedAt: now.UTC()}, nil
}

// Apply folds one event into the token, for rebuilding it from history.
func (t *Token) Apply(ev events.Event) error {
	switch ev.Type {
	case events.TypeTokenCreated:
		p, err := events.Decode[events.TokenCreated](ev)
		if err != nil {
			return err
		}
		*t = Token{ID: p.ID, AccountID: p.AccountID, Name: p.Name, Scopes: p.Scopes,
			Environment: p.Environment, Hash: p.Hash, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt}
	case events.TypeTokenRevoked:
		p, err := events.Decode[events.TokenRevoked](ev)
		if err != nil {
			return err
		}
		t.RevokedAt = &p.RevokedAt
	}
	t.Version = ev.Sequence
	return nil
}
