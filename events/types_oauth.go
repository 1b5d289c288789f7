package events

import (
	"time"

	json "github.com/goccy/go-json"
)

// Aggregate types of the OAuth token endpoint. An access token is aggregate
// "access" under its id (tok_ + the selector of its tg_at_ string, or the
// jti of a JWT access token). Its revocation is a [TokenRevoked] on that
// aggregate, so [RevocationSubjects] covers access tokens too. Signing keys
// are one aggregate, "signingkey" with id [SigningKeysID]: every rotation
// expects its last sequence, so two nodes can never both create a key.
const (
	AggregateAccess     = "access"
	AggregateSigningKey = "signingkey"
	// SigningKeysID is the id of the one signing-key aggregate.
	SigningKeysID = "keys"
)

// Event types of access tokens and signing keys.
const (
	TypeAccessIssued      = "access.issued"
	TypeSigningKeyCreated = "signing_key.created"
	TypeSigningKeyRetired = "signing_key.retired"
)

// AccessIssued records an OAuth access token. Hash is the SHA-256 of the
// token string (opaque or JWT); the token itself is never stored.
type AccessIssued struct {
	ID string `json:"id"`
	// Hash is the SHA-256 (hex) of the issued string.
	Hash string `json:"hash"`
	// Client is the internal id of the client (cli_…); ClientID what it
	// presents at the token endpoint.
	Client      string   `json:"client"`
	ClientID    string   `json:"client_id"`
	AccountID   string   `json:"account_id"`
	Environment string   `json:"environment"`
	Scopes      []string `json:"scopes"`
	Subject     string   `json:"sub"`
	Audience    []string `json:"aud"`
	// Format is "opaque" or "jwt".
	Format string `json:"format"`
	// JTI is the JWT's jti (equal to ID); empty for opaque tokens.
	JTI string `json:"jti,omitempty"`
	// KeyID names the signing key of a JWT.
	KeyID     string    `json:"kid,omitempty"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Grant is the grant (grt_…) of a token issued for a user from an
	// authorization code or a refresh token; Subject is then the user id.
	Grant string `json:"grant,omitempty"`
}

func (AccessIssued) EventType() string { return TypeAccessIssued }
func (AccessIssued) EventVersion() int { return 1 }

// SigningKeyCreated adds a key that signs JWT access tokens from now on.
// EncryptedPrivate is the PKCS #8 private key sealed with AES-256-GCM under
// the cluster's key-encryption key (nonce first, the kid as additional
// data), base64 encoded; Public is the public JWK.
type SigningKeyCreated struct {
	KID              string          `json:"kid"`
	Algorithm        string          `json:"alg"`
	Public           json.RawMessage `json:"public_jwk"`
	EncryptedPrivate string          `json:"encrypted_private"`
	CreatedAt        time.Time       `json:"created_at"`
}

func (SigningKeyCreated) EventType() string { return TypeSigningKeyCreated }
func (SigningKeyCreated) EventVersion() int { return 1 }

// SigningKeyRetired stops a key from signing. Its public key stays in the
// JWKS until PublishUntil, when the last token it signed has expired.
type SigningKeyRetired struct {
	KID          string    `json:"kid"`
	RetiredAt    time.Time `json:"retired_at"`
	PublishUntil time.Time `json:"publish_until"`
}

func (SigningKeyRetired) EventType() string { return TypeSigningKeyRetired }
func (SigningKeyRetired) EventVersion() int { return 1 }
