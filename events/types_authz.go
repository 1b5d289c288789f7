package events

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Aggregate types of the authorization code flow.
//
// A consent is aggregate "consent" under [ConsentKey] of its user and
// client: two nodes recording consent for the same pair race on one
// aggregate. An authorization code is aggregate "authcode" under the hex
// SHA-256 of the code (the code itself is never stored); redeeming it
// expects the code's last sequence, so only one redemption wins across the
// cluster. A grant is aggregate "grant" (grt_ + the selector of its tg_rt_
// refresh tokens): the family of access and refresh tokens issued from one
// code. Revoking a grant is a [TokenRevoked] on the grant aggregate (so
// [RevocationSubjects] covers refresh-token families) appended together
// with a [TokenRevoked] on each of its live access tokens.
const (
	AggregateConsent  = "consent"
	AggregateAuthCode = "authcode"
	AggregateGrant    = "grant"
)

// Event types of consents, authorization codes and grants.
const (
	TypeConsentGranted   = "consent.granted"
	TypeConsentRevoked   = "consent.revoked"
	TypeAuthCodeIssued   = "authcode.issued"
	TypeAuthCodeRedeemed = "authcode.redeemed"
	TypeGrantCreated     = "grant.created"
	TypeGrantRefreshed   = "grant.refreshed"
)

// ConsentKey is the aggregate id of the consent of user to client (the
// client's internal id).
func ConsentKey(user, client string) string {
	sum := sha256.Sum256([]byte(user + "\x00" + client))
	return hex.EncodeToString(sum[:])
}

// ConsentGranted records that a user allowed a client the scopes listed:
// every scope consented so far, not only the new ones.
type ConsentGranted struct {
	UserID      string    `json:"user_id"`
	Client      string    `json:"client"`
	ClientID    string    `json:"client_id"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	Scopes      []string  `json:"scopes"`
	GrantedAt   time.Time `json:"granted_at"`
}

func (ConsentGranted) EventType() string { return TypeConsentGranted }
func (ConsentGranted) EventVersion() int { return 1 }

// ConsentRevoked withdraws a user's consent to a client: the next
// authorization asks again.
type ConsentRevoked struct {
	UserID    string    `json:"user_id"`
	Client    string    `json:"client"`
	ClientID  string    `json:"client_id"`
	AccountID string    `json:"account_id"`
	RevokedAt time.Time `json:"revoked_at"`
}

func (ConsentRevoked) EventType() string { return TypeConsentRevoked }
func (ConsentRevoked) EventVersion() int { return 1 }

// AuthCodeIssued records an authorization code. ID is the hex SHA-256 of
// the code. RedirectURIGiven says whether the authorization request named
// redirect_uri, which the token request must then repeat (RFC 6749 §4.1.3).
// CodeChallenge is the PKCE S256 challenge, empty without PKCE.
type AuthCodeIssued struct {
	ID                  string    `json:"id"`
	Client              string    `json:"client"`
	ClientID            string    `json:"client_id"`
	AccountID           string    `json:"account_id"`
	Environment         string    `json:"environment"`
	UserID              string    `json:"user_id"`
	Scopes              []string  `json:"scopes"`
	RedirectURI         string    `json:"redirect_uri"`
	RedirectURIGiven    bool      `json:"redirect_uri_given"`
	CodeChallenge       string    `json:"code_challenge,omitempty"`
	CodeChallengeMethod string    `json:"code_challenge_method,omitempty"`
	IssuedAt            time.Time `json:"issued_at"`
	ExpiresAt           time.Time `json:"expires_at"`
}

func (AuthCodeIssued) EventType() string { return TypeAuthCodeIssued }
func (AuthCodeIssued) EventVersion() int { return 1 }

// AuthCodeRedeemed spends a code; Grant names the tokens issued from it.
// It is appended with [GrantCreated] and the first [AccessIssued].
type AuthCodeRedeemed struct {
	ID         string    `json:"id"`
	Grant      string    `json:"grant"`
	RedeemedAt time.Time `json:"redeemed_at"`
}

func (AuthCodeRedeemed) EventType() string { return TypeAuthCodeRedeemed }
func (AuthCodeRedeemed) EventVersion() int { return 1 }

// GrantCreated starts a token family from a redeemed code. RefreshHash is
// the SHA-256 of its first refresh token, empty when the client may not
// refresh.
type GrantCreated struct {
	ID          string    `json:"id"`
	Client      string    `json:"client"`
	ClientID    string    `json:"client_id"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	UserID      string    `json:"user_id"`
	Scopes      []string  `json:"scopes"`
	Code        string    `json:"code"`
	AccessToken string    `json:"access_token"`
	RefreshHash string    `json:"refresh_hash,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

func (GrantCreated) EventType() string { return TypeGrantCreated }
func (GrantCreated) EventVersion() int { return 1 }

// GrantRefreshed rotates a grant's refresh token: SpentRefreshHash was
// presented and RefreshHash replaces it. With a grace period the spent one
// may be presented once more until PreviousValidUntil. GraceUse is true
// when this rotation was that second presentation: the refresh token the
// first one issued (SupersededRefreshHash) is spent from now on.
type GrantRefreshed struct {
	ID                    string     `json:"id"`
	AccountID             string     `json:"account_id"`
	RefreshHash           string     `json:"refresh_hash"`
	SpentRefreshHash      string     `json:"spent_refresh_hash"`
	PreviousValidUntil    *time.Time `json:"previous_valid_until,omitempty"`
	GraceUse              bool       `json:"grace_use,omitempty"`
	SupersededRefreshHash string     `json:"superseded_refresh_hash,omitempty"`
	AccessToken           string     `json:"access_token"`
	Scopes                []string   `json:"scopes"`
	RefreshedAt           time.Time  `json:"refreshed_at"`
}

func (GrantRefreshed) EventType() string { return TypeGrantRefreshed }
func (GrantRefreshed) EventVersion() int { return 1 }
