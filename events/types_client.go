package events

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	json "github.com/goccy/go-json"
)

// Aggregate types of OAuth clients. A client is aggregate "client" under a
// generated internal id. Its client_id may be any printable text (':', '@',
// '%', spaces), which cannot stand in a subject, so the cluster-wide claim
// on a client_id is a second aggregate, "clientid", whose id is
// [ClientIDKey] of the client_id.
const (
	AggregateClient   = "client"
	AggregateClientID = "clientid"
)

// Event types of OAuth clients and their client_id claims.
const (
	TypeClientCreated       = "client.created"
	TypeClientUpdated       = "client.updated"
	TypeClientSecretRotated = "client.secret_rotated"
	TypeClientDeleted       = "client.deleted"
	TypeClientIDClaimed     = "client.id_claimed"
	TypeClientIDReleased    = "client.id_released"
)

// ClientIDKey is the aggregate id of the claim on clientID: the hex SHA-256
// of the client_id, 64 characters that are always a valid subject token.
func ClientIDKey(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return hex.EncodeToString(sum[:])
}

// ClientSettings are what an operator states about an OAuth client, stored
// normalized: sorted lists, defaults filled in. Its fields are flattened into
// the JSON of [ClientCreated] and [ClientUpdated].
type ClientSettings struct {
	Name                    string   `json:"name"`
	GrantTypes              []string `json:"grant_types"`
	Scopes                  []string `json:"scopes"`
	DefaultScopes           []string `json:"default_scopes"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	// JWKS is a JWK Set of public keys ({"keys":[…]}), nil when the client
	// has none.
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	RedirectURIs []string        `json:"redirect_uris"`
	// AccessTokenTTL is the lifetime of the client's access tokens in seconds.
	AccessTokenTTL    int64  `json:"access_token_ttl"`
	AccessTokenFormat string `json:"access_token_format"`
	// RefreshTokenGracePeriod is how many seconds a spent refresh token may
	// be presented once more (0: never).
	RefreshTokenGracePeriod int64 `json:"refresh_token_grace_period"`
}

// ClientCreated is the first event of an OAuth client. SecretHash is the
// SHA-256 of the client secret (empty for clients that authenticate without
// one); the secret itself is never stored.
type ClientCreated struct {
	ID          string `json:"id"`
	ClientID    string `json:"client_id"`
	AccountID   string `json:"account_id"`
	Environment string `json:"environment"`
	ClientSettings
	SecretHash string    `json:"secret_hash,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

func (ClientCreated) EventType() string { return TypeClientCreated }
func (ClientCreated) EventVersion() int { return 1 }

// ClientUpdated replaces every setting of a client. SecretHash is the
// client's secret after the change: unchanged, new (the client switched to a
// secret-based authentication method and was given one) or empty (it
// switched to one without a secret). A changed SecretHash ends any grace
// period of a previous secret.
type ClientUpdated struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	ClientSettings
	SecretHash string    `json:"secret_hash,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func (ClientUpdated) EventType() string { return TypeClientUpdated }
func (ClientUpdated) EventVersion() int { return 1 }

// ClientSecretRotated gives a client a new secret. The previous secret keeps
// working until PreviousValidUntil when a grace period was asked for.
type ClientSecretRotated struct {
	ID                 string     `json:"id"`
	AccountID          string     `json:"account_id"`
	SecretHash         string     `json:"secret_hash"`
	PreviousSecretHash string     `json:"previous_secret_hash,omitempty"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	RotatedAt          time.Time  `json:"rotated_at"`
}

func (ClientSecretRotated) EventType() string { return TypeClientSecretRotated }
func (ClientSecretRotated) EventVersion() int { return 1 }

// ClientDeleted ends a client. It is appended together with
// [ClientIDReleased], so its client_id can be claimed again.
type ClientDeleted struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	ClientID  string    `json:"client_id"`
	DeletedAt time.Time `json:"deleted_at"`
}

func (ClientDeleted) EventType() string { return TypeClientDeleted }
func (ClientDeleted) EventVersion() int { return 1 }

// ClientIDClaimed reserves a client_id for one client across the cluster.
// The aggregate id is [ClientIDKey] of ClientID; the claim is appended in the
// same atomic batch as [ClientCreated], expecting the claim aggregate to be
// empty (or, after a release, at its last sequence).
type ClientIDClaimed struct {
	ClientID  string    `json:"client_id"`
	Client    string    `json:"client"`
	AccountID string    `json:"account_id"`
	ClaimedAt time.Time `json:"claimed_at"`
}

func (ClientIDClaimed) EventType() string { return TypeClientIDClaimed }
func (ClientIDClaimed) EventVersion() int { return 1 }

// ClientIDReleased gives a client_id up when its client is deleted.
type ClientIDReleased struct {
	ClientID   string    `json:"client_id"`
	Client     string    `json:"client"`
	AccountID  string    `json:"account_id"`
	ReleasedAt time.Time `json:"released_at"`
}

func (ClientIDReleased) EventType() string { return TypeClientIDReleased }
func (ClientIDReleased) EventVersion() int { return 1 }
