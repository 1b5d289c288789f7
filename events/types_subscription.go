package events

import "time"

// Webhook subscriptions: aggregate "subscription", id sub_…. A subscription
// names a URL and the event types it wants delivered there, signed with a
// secret in the Standard Webhooks scheme.
const (
	AggregateSubscription = "subscription"

	TypeSubscriptionCreated       = "subscription.created"
	TypeSubscriptionSecretRotated = "subscription.secret_rotated"
	TypeSubscriptionDisabled      = "subscription.disabled"
	TypeSubscriptionDeleted       = "subscription.deleted"
)

// Event types a subscription may ask for. They are the envelope types of the
// events delivered, part of the public contract.
//
// TypeTokenExpired and TypeUsageLimitReached have no emitter yet: a token
// expires by the clock, not by a command, and a usage limit is reached on a
// node's lease, not in the log. They are accepted in subscriptions so that
// receivers can ask for them today; the housekeeping worker that will append
// token.expired (one per token whose expires_at passed, appended with an
// expectation on the token's version so nodes do not race) and the quota
// settlement that will append usage.limit_reached (when a settlement leaves
// a limit at zero) will be delivered without any change to subscriptions.
const (
	TypeTokenExpired      = "token.expired"
	TypeUsageLimitReached = "usage.limit_reached"
)

// SubscribableTypes lists every event type a subscription may ask for.
func SubscribableTypes() []string {
	return []string{
		TypeClientCreated, TypeClientSecretRotated,
		TypeTokenCreated, TypeTokenExpired, TypeTokenRevoked, TypeTokenRotated,
		TypeUsageLimitReached,
		TypeWalletCredited, TypeWalletLow,
	}
}

// SealedSecret is a secret encrypted with AES-256-GCM under the node's
// key-encryption key. Webhook signing needs the raw secret at delivery time,
// so it cannot be stored as a hash like token secrets; it never enters an
// event or a projection in the clear.
type SealedSecret struct {
	// KeyID names the key-encryption key (a digest of it, not the key), so a
	// node holding another key says so instead of failing to decrypt.
	KeyID string `json:"key_id"`
	// Ciphertext is base64 of nonce || ciphertext || tag; the additional
	// data is the subscription id.
	Ciphertext string `json:"ciphertext"`
}

// SubscriptionCreated is the first event of a subscription.
type SubscriptionCreated struct {
	ID          string       `json:"id"`
	AccountID   string       `json:"account_id"`
	Environment string       `json:"environment"`
	URL         string       `json:"url"`
	EventTypes  []string     `json:"event_types"`
	Description string       `json:"description"`
	Secret      SealedSecret `json:"secret_sealed"`
	CreatedAt   time.Time    `json:"created_at"`
}

func (SubscriptionCreated) EventType() string { return TypeSubscriptionCreated }
func (SubscriptionCreated) EventVersion() int { return 1 }

// SubscriptionSecretRotated gives a subscription a new signing secret.
// Until PreviousValidUntil, deliveries carry signatures with both secrets.
type SubscriptionSecretRotated struct {
	ID                 string       `json:"id"`
	AccountID          string       `json:"account_id"`
	Secret             SealedSecret `json:"secret_sealed"`
	PreviousValidUntil *time.Time   `json:"previous_valid_until,omitempty"`
	RotatedAt          time.Time    `json:"rotated_at"`
}

func (SubscriptionSecretRotated) EventType() string { return TypeSubscriptionSecretRotated }
func (SubscriptionSecretRotated) EventVersion() int { return 1 }

// SubscriptionDisabled stops deliveries to a subscription: its endpoint
// answered 410 Gone, or failed for too long.
type SubscriptionDisabled struct {
	ID         string    `json:"id"`
	AccountID  string    `json:"account_id"`
	Reason     string    `json:"reason"`
	DisabledAt time.Time `json:"disabled_at"`
}

func (SubscriptionDisabled) EventType() string { return TypeSubscriptionDisabled }
func (SubscriptionDisabled) EventVersion() int { return 1 }

// SubscriptionDeleted ends a subscription.
type SubscriptionDeleted struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	DeletedAt time.Time `json:"deleted_at"`
}

func (SubscriptionDeleted) EventType() string { return TypeSubscriptionDeleted }
func (SubscriptionDeleted) EventVersion() int { return 1 }
