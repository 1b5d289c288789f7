package tollgate

import (
	"encoding/json"
	"fmt"
	"time"
)

// Subjects and streams of Tollgate's event log.
const (
	// EventsStream is the JetStream stream of every event.
	EventsStream = "TOLLGATE_EVENTS"
	// RevocationSubjects is the one wildcard on which revocations of every
	// kind of token (API tokens, OAuth access tokens) are published.
	RevocationSubjects = "tollgate.events.*.*.token.revoked"
)

// Event types (the envelope's Type, the webhook payload's type).
const (
	TypeTokenCreated        = "token.created"
	TypeTokenRotated        = "token.rotated"
	TypeTokenRevoked        = "token.revoked"
	TypeTokenExpired        = "token.expired"
	TypeClientCreated       = "client.created"
	TypeClientSecretRotated = "client.secret_rotated"
	TypeWalletCredited      = "wallet.credited"
	TypeWalletLow           = "wallet.low"
	TypeUsageLimitReached   = "usage.limit_reached"
)

// Envelope is an event as stored in the event log and published on
// tollgate.events.<aggregate>.<id>.<type>.
type Envelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	AccountID     string          `json:"account_id,omitempty"`
	Environment   string          `json:"environment,omitempty"`
	Time          time.Time       `json:"time"`
	Actor         string          `json:"actor,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Data          json.RawMessage `json:"data"`
}

// WebhookPayload is the body of every webhook (Standard Webhooks shape).
// Data holds the event's fields without its hashes.
type WebhookPayload struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// TokenCreated: an API token was issued.
type TokenCreated struct {
	ID          string     `json:"id"`
	AccountID   string     `json:"account_id"`
	Name        string     `json:"name"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// TokenRotated: a token got a new value; the previous one works until
// PreviousValidUntil, if set.
type TokenRotated struct {
	ID                 string     `json:"id"`
	AccountID          string     `json:"account_id"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	RotatedAt          time.Time  `json:"rotated_at"`
}

// TokenRevoked: a token was revoked and must be refused from now on.
type TokenRevoked struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Reason    string    `json:"reason,omitempty"`
	RevokedAt time.Time `json:"revoked_at"`
}

// ClientCreated: an OAuth client was registered.
type ClientCreated struct {
	ID          string    `json:"id"`
	ClientID    string    `json:"client_id"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	Name        string    `json:"name"`
	GrantTypes  []string  `json:"grant_types"`
	Scopes      []string  `json:"scopes"`
	CreatedAt   time.Time `json:"created_at"`
}

// ClientSecretRotated: an OAuth client got a new secret.
type ClientSecretRotated struct {
	ID                 string     `json:"id"`
	AccountID          string     `json:"account_id"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	RotatedAt          time.Time  `json:"rotated_at"`
}

// WalletCredited: credits were added to an account's wallet.
type WalletCredited struct {
	AccountID     string    `json:"account_id"`
	Environment   string    `json:"environment"`
	TransactionID string    `json:"transaction_id"`
	Amount        int64     `json:"amount"`
	Reason        string    `json:"reason"`
	CreditedAt    time.Time `json:"credited_at"`
}

// WalletLow: the balance crossed below the account's threshold.
type WalletLow struct {
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	Balance     int64     `json:"balance"`
	Threshold   int64     `json:"threshold"`
	At          time.Time `json:"at"`
}

// Decode unmarshals raw event data (an Envelope's or a WebhookPayload's
// Data) into T, checking that typ is the type T describes.
func Decode[T any](typ string, data json.RawMessage) (T, error) {
	var v T
	want := ""
	switch any(v).(type) {
	case TokenCreated:
		want = TypeTokenCreated
	case TokenRotated:
		want = TypeTokenRotated
	case TokenRevoked:
		want = TypeTokenRevoked
	case ClientCreated:
		want = TypeClientCreated
	case ClientSecretRotated:
		want = TypeClientSecretRotated
	case WalletCredited:
		want = TypeWalletCredited
	case WalletLow:
		want = TypeWalletLow
	}
	if want != "" && typ != want {
		return v, fmt.Errorf("tollgate: a %s event is not a %s", typ, want)
	}
	return v, json.Unmarshal(data, &v)
}
