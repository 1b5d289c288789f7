package domain

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/events"
)

// AuthCodeTTL is how long an authorization code may be redeemed.
const AuthCodeTTL = 60 * time.Second

// DefaultRefreshTokenTTL is the absolute lifetime of a grant's refresh
// tokens when the node sets none: a grant may be refreshed until
// created_at + this, however often it rotated.
const DefaultRefreshTokenTTL = 30 * 24 * time.Hour

// PKCEMethodS256 is the only code_challenge_method accepted (RFC 7636 §4.2).
const PKCEMethodS256 = "S256"

// GrantIDPrefix starts the id of a grant: grt_ + the selector its refresh
// tokens share.
const GrantIDPrefix = "grt_"

// Errors of the authorization code and refresh token grants; the API maps
// them to invalid_grant.
var (
	// ErrCodeUsed: the code was redeemed before. Whatever it issued must be
	// revoked (RFC 6749 §4.1.2).
	ErrCodeUsed = errors.New("authorization code already used")
	// ErrCodeInvalid: expired, of another client, or a redirect_uri or
	// code_verifier that does not match.
	ErrCodeInvalid = errors.New("authorization code invalid")
	// ErrRefreshTokenInvalid: unknown, of another client, or of a revoked grant.
	ErrRefreshTokenInvalid = errors.New("refresh token invalid")
	// ErrRefreshTokenExpired: a refresh token of the grant (current or
	// spent) presented after the grant's absolute lifetime. Nothing is
	// revoked: the family simply ended.
	ErrRefreshTokenExpired = errors.New("refresh token expired")
)

// ValidCodeChallenge reports whether s can be an S256 code_challenge: the
// unpadded base64url of a SHA-256 (43 characters).
func ValidCodeChallenge(s string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(raw) == sha256.Size
}

// ValidCodeVerifier reports whether s is an RFC 7636 §4.1 code_verifier: 43
// to 128 characters of A-Z a-z 0-9 - . _ ~.
func ValidCodeVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// S256Challenge is BASE64URL(SHA256(verifier)).
func S256Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthorizeScopes decides the scopes of an authorization request, like
// [Client.GrantScopes]: requested ones the client holds, or its defaults.
func (c Client) AuthorizeScopes(requested []string) ([]string, error) {
	return c.GrantScopes(requested)
}

// IssueCode is the command that issues an authorization code to a client
// for a user. The code is generated outside; ID is its SHA-256.
type IssueCode struct {
	ID                  string
	UserID              string
	Scopes              []string
	RedirectURI         string
	RedirectURIGiven    bool
	CodeChallenge       string
	CodeChallengeMethod string
	Now                 time.Time
}

// IssueAuthCode returns authcode.issued. A public client must use PKCE.
func (c Client) IssueAuthCode(cmd IssueCode) (events.AuthCodeIssued, error) {
	switch {
	case c.DeletedAt != nil || c.ID == "":
		return events.AuthCodeIssued{}, ErrNotFound
	case !slices.Contains(c.Settings.GrantTypes, GrantAuthorizationCode):
		return events.AuthCodeIssued{}, ErrGrantNotAllowed
	case !slices.Contains(c.Settings.RedirectURIs, cmd.RedirectURI):
		return events.AuthCodeIssued{}, ErrCodeInvalid
	case c.Settings.TokenEndpointAuthMethod == AuthNone && cmd.CodeChallenge == "":
		return events.AuthCodeIssued{}, ErrCodeInvalid
	case cmd.CodeChallenge != "" && (cmd.CodeChallengeMethod != PKCEMethodS256 || !ValidCodeChallenge(cmd.CodeChallenge)):
		return events.AuthCodeIssued{}, ErrCodeInvalid
	}
	at := cmd.Now.UTC()
	return events.AuthCodeIssued{
		ID: cmd.ID, Client: c.ID, ClientID: c.ClientID, AccountID: c.AccountID, Environment: c.Environment,
		UserID: cmd.UserID, Scopes: cmd.Scopes, RedirectURI: cmd.RedirectURI, RedirectURIGiven: cmd.RedirectURIGiven,
		CodeChallenge: cmd.CodeChallenge, CodeChallengeMethod: cmd.CodeChallengeMethod,
		IssuedAt: at, ExpiresAt: at.Add(AuthCodeTTL),
	}, nil
}

// AuthCode is an issued authorization code as the token endpoint sees it.
type AuthCode struct {
	events.AuthCodeIssued
	// Grant is set once the code was redeemed.
	Grant string
}

// RedeemCode is a token request's claim on a code.
type RedeemCode struct {
	Client string // internal id of the authenticated client
	// RedirectURI is the token request's redirect_uri, "" if absent.
	RedirectURI  string
	CodeVerifier string
	Grant        string
	Now          time.Time
}

// Redeem checks the token request against the code and returns
// authcode.redeemed. A code redeemed before is [ErrCodeUsed], whoever
// presents it; every other mismatch is [ErrCodeInvalid].
func (a AuthCode) Redeem(cmd RedeemCode) (events.AuthCodeRedeemed, error) {
	switch {
	case a.ID == "" || a.Client != cmd.Client:
		return events.AuthCodeRedeemed{}, ErrCodeInvalid
	case a.Grant != "":
		return events.AuthCodeRedeemed{}, ErrCodeUsed
	case !cmd.Now.Before(a.ExpiresAt):
		return events.AuthCodeRedeemed{}, ErrCodeInvalid
	case a.RedirectURIGiven && !subtleCompare(cmd.RedirectURI, a.RedirectURI):
		return events.AuthCodeRedeemed{}, ErrCodeInvalid
	case !a.RedirectURIGiven && cmd.RedirectURI != "" && cmd.RedirectURI != a.RedirectURI:
		return events.AuthCodeRedeemed{}, ErrCodeInvalid
	case a.CodeChallenge == "" && cmd.CodeVerifier != "":
		return events.AuthCodeRedeemed{}, ErrCodeInvalid // RFC 9700 §2.1.1: no verifier without a challenge
	case a.CodeChallenge != "" && (!ValidCodeVerifier(cmd.CodeVerifier) || !subtleCompare(S256Challenge(cmd.CodeVerifier), a.CodeChallenge)):
		return events.AuthCodeRedeemed{}, ErrCodeInvalid
	}
	return events.AuthCodeRedeemed{ID: a.ID, Grant: cmd.Grant, RedeemedAt: cmd.Now.UTC()}, nil
}

// NewGrant returns grant.created for a redeemed code. refreshHash is empty
// when the client may not use refresh tokens.
func (a AuthCode) NewGrant(id, accessToken, refreshHash string, now time.Time) events.GrantCreated {
	return events.GrantCreated{
		ID: id, Client: a.Client, ClientID: a.ClientID, AccountID: a.AccountID, Environment: a.Environment,
		UserID: a.UserID, Scopes: a.Scopes, Code: a.ID, AccessToken: accessToken, RefreshHash: refreshHash, CreatedAt: now.UTC(),
	}
}

// Grant is a family of tokens issued from one authorization code.
type Grant struct {
	ID          string
	Client      string
	AccountID   string
	UserID      string
	Scopes      []string
	RefreshHash string
	// PreviousRefreshHash may be presented once more until PreviousValidUntil.
	PreviousRefreshHash string
	PreviousValidUntil  *time.Time
	// Spent are hashes of refresh tokens used up: presenting one is reuse.
	Spent     []string
	RevokedAt *time.Time
	// CreatedAt is when the code was redeemed: the grant's refresh tokens
	// live until CreatedAt + [Refresh.MaxAge].
	CreatedAt time.Time
}

// ExpiresAt is the end of the grant's refresh tokens for a lifetime of
// maxAge.
func (g Grant) ExpiresAt(maxAge time.Duration) time.Time { return g.CreatedAt.Add(maxAge) }

// Refresh is a refresh token request.
type Refresh struct {
	Client string
	// Hash is the SHA-256 of the presented refresh token.
	Hash           string
	NewRefreshHash string
	AccessToken    string
	// Scopes narrows the grant's scopes for the new access token (RFC 6749
	// §6); nil keeps them all.
	Scopes []string
	Grace  time.Duration
	// MaxAge is the absolute lifetime of the grant's refresh tokens,
	// counted from the grant's creation; it must be positive (zero or less
	// lets nothing refresh).
	MaxAge time.Duration
	Now    time.Time
}

// Refresh rotates the grant's refresh token. The current token rotates;
// within the grace period the previous one rotates once more, and the
// token its first use issued becomes spent. A spent token is
// [ErrRefreshReuse]; anything else that does not match is
// [ErrRefreshTokenInvalid]. Scopes beyond the grant's are [ErrInvalidScope].
// Once the grant is MaxAge old, any of its tokens, current or spent, is
// [ErrRefreshTokenExpired] (not reuse: nothing is revoked); a token that
// is not the grant's stays [ErrRefreshTokenInvalid].
func (g Grant) Refresh(r Refresh) (events.GrantRefreshed, error) {
	if g.ID == "" || g.Client != r.Client || g.RevokedAt != nil || g.RefreshHash == "" {
		return events.GrantRefreshed{}, ErrRefreshTokenInvalid
	}
	if !r.Now.Before(g.ExpiresAt(r.MaxAge)) {
		if subtleCompare(r.Hash, g.RefreshHash) || g.spent(r.Hash) {
			return events.GrantRefreshed{}, ErrRefreshTokenExpired
		}
		return events.GrantRefreshed{}, ErrRefreshTokenInvalid
	}
	ev := events.GrantRefreshed{ID: g.ID, AccountID: g.AccountID, RefreshHash: r.NewRefreshHash,
		SpentRefreshHash: r.Hash, AccessToken: r.AccessToken, RefreshedAt: r.Now.UTC()}
	switch {
	case subtleCompare(r.Hash, g.RefreshHash):
		if r.Grace > 0 {
			until := r.Now.Add(r.Grace).UTC()
			ev.PreviousValidUntil = &until
		}
	case g.PreviousRefreshHash != "" && subtleCompare(r.Hash, g.PreviousRefreshHash) &&
		g.PreviousValidUntil != nil && r.Now.Before(*g.PreviousValidUntil):
		ev.GraceUse, ev.SupersededRefreshHash = true, g.RefreshHash
	case g.spent(r.Hash):
		return events.GrantRefreshed{}, ErrRefreshReuse
	default:
		return events.GrantRefreshed{}, ErrRefreshTokenInvalid
	}
	ev.Scopes = slices.Clone(g.Scopes)
	if r.Scopes != nil {
		for _, s := range r.Scopes {
			if !slices.Contains(g.Scopes, s) {
				return events.GrantRefreshed{}, ErrInvalidScope
			}
		}
		ev.Scopes = r.Scopes
	}
	return ev, nil
}

func (g Grant) spent(hash string) bool {
	found := false
	for _, h := range append(slices.Clone(g.Spent), g.PreviousRefreshHash) {
		if h != "" && subtleCompare(h, hash) {
			found = true
		}
	}
	return found
}

// Revoke ends the grant: its refresh tokens stop working. Revoking twice
// is [ErrConflict].
func (g Grant) Revoke(reason string, now time.Time) (events.TokenRevoked, error) {
	if g.RevokedAt != nil {
		return events.TokenRevoked{}, ErrConflict
	}
	return events.TokenRevoked{ID: g.ID, AccountID: g.AccountID, Reason: reason, RevokedAt: now.UTC()}, nil
}

// Consent is what a user allowed a client.
type Consent struct {
	UserID string
	Client string
	Scopes []string
	// Revoked: the consent was withdrawn (or never given).
	Revoked bool
}

// Covers reports whether the consent includes every scope.
func (c Consent) Covers(scopes []string) bool {
	if c.Revoked || c.UserID == "" {
		return false
	}
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	return true
}

// GrantConsent returns consent.granted for the scopes a user just allowed,
// added to what the consent held.
func GrantConsent(current Consent, user User, client Client, scopes []string, now time.Time) events.ConsentGranted {
	all := slices.Clone(scopes)
	if !current.Revoked {
		all = append(all, current.Scopes...)
	}
	return events.ConsentGranted{UserID: user.ID, Client: client.ID, ClientID: client.ClientID, AccountID: client.AccountID,
		Environment: client.Environment, Scopes: normalizeScopes(all), GrantedAt: now.UTC()}
}

// Revoke withdraws a consent; one that is not in force is [ErrNotFound].
func (c Consent) Revoke(clientID, account string, now time.Time) (events.ConsentRevoked, error) {
	if c.Revoked || c.UserID == "" {
		return events.ConsentRevoked{}, ErrNotFound
	}
	return events.ConsentRevoked{UserID: c.UserID, Client: c.Client, ClientID: clientID, AccountID: account, RevokedAt: now.UTC()}, nil
}

// ScopeString joins scopes for an RFC 6749 scope parameter.
func ScopeString(scopes []string) string { return strings.Join(scopes, " ") }
