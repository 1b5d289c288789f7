package domain

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/events"
)

// Errors of the token endpoint's rules; the API maps them to RFC 6749 codes.
var (
	// ErrInvalidScope: a requested scope is malformed or not the client's,
	// or nothing was requested and the client has no default scopes.
	ErrInvalidScope = errors.New("invalid scope")
	// ErrGrantNotAllowed: the client may not use this grant type.
	ErrGrantNotAllowed = errors.New("grant type not allowed for this client")
)

// ParseScopeParam splits an RFC 6749 §3.3 scope parameter: scope names
// separated by single spaces. given is false when the parameter was absent.
func ParseScopeParam(param string, given bool) ([]string, error) {
	if !given {
		return nil, nil
	}
	parts := strings.Split(param, " ")
	for _, s := range parts {
		if !ValidScopeName(s) {
			return nil, ErrInvalidScope
		}
	}
	return normalizeScopes(parts), nil
}

// GrantScopes decides the scopes of a client_credentials token: the
// requested ones, each of which the client must hold, or without a request
// the client's default scopes.
func (c Client) GrantScopes(requested []string) ([]string, error) {
	if requested == nil {
		if len(c.Settings.DefaultScopes) == 0 {
			return nil, ErrInvalidScope
		}
		return slices.Clone(c.Settings.DefaultScopes), nil
	}
	for _, s := range requested {
		if !slices.Contains(c.Settings.Scopes, s) {
			return nil, ErrInvalidScope
		}
	}
	return requested, nil
}

// IssueAccess is the command that issues an access token to a client.
// Generation of the token (and its id and hash) happens outside.
type IssueAccess struct {
	ID       string
	Hash     string
	Scopes   []string
	Audience []string
	// KeyID is the signing key of a JWT access token.
	KeyID string
	// UserID and Grant are set for a token issued for a user (authorization
	// code or refresh token grant): the token's subject is then the user.
	UserID string
	Grant  string
	Now    time.Time
}

// IssueAccessToken returns access.issued for a token of the client's
// format and lifetime: for the client itself (client_credentials) or, with
// a grant, for a user (authorization_code).
func (c Client) IssueAccessToken(cmd IssueAccess) (events.AccessIssued, error) {
	if c.DeletedAt != nil || c.ID == "" {
		return events.AccessIssued{}, ErrNotFound
	}
	grantType, subject := GrantClientCredentials, c.ClientID
	if cmd.Grant != "" {
		grantType, subject = GrantAuthorizationCode, cmd.UserID
	}
	if !slices.Contains(c.Settings.GrantTypes, grantType) {
		return events.AccessIssued{}, ErrGrantNotAllowed
	}
	ttl := c.Settings.AccessTokenTTL
	if ttl <= 0 {
		ttl = DefaultAccessTokenTTL
	}
	iat := cmd.Now.UTC().Truncate(time.Second)
	ev := events.AccessIssued{
		ID: cmd.ID, Hash: cmd.Hash, Client: c.ID, ClientID: c.ClientID, AccountID: c.AccountID,
		Environment: c.Environment, Scopes: cmd.Scopes, Subject: subject, Audience: cmd.Audience, Grant: cmd.Grant,
		Format: c.Settings.AccessTokenFormat, IssuedAt: iat, ExpiresAt: iat.Add(time.Duration(ttl) * time.Second),
	}
	if ev.Format == "" {
		ev.Format = AccessTokenOpaque
	}
	if ev.Format == AccessTokenJWT {
		ev.JTI, ev.KeyID = cmd.ID, cmd.KeyID
	}
	return ev, nil
}

// AccessToken is an issued OAuth access token as introspection sees it.
type AccessToken struct {
	ID        string
	AccountID string
	ExpiresAt time.Time
	RevokedAt *time.Time
}

// Status is active, expired or revoked at now.
func (t AccessToken) Status(now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return StatusRevoked
	case !now.Before(t.ExpiresAt):
		return StatusExpired
	}
	return StatusActive
}

// Revoke ends the access token; revoking twice is [ErrConflict], so the
// caller answers without appending again.
func (t AccessToken) Revoke(reason string, now time.Time) (events.TokenRevoked, error) {
	if t.RevokedAt != nil {
		return events.TokenRevoked{}, ErrConflict
	}
	return events.TokenRevoked{ID: t.ID, AccountID: t.AccountID, Reason: reason, RevokedAt: now.UTC()}, nil
}
