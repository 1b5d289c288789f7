package events

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Webhook deliveries: aggregate "delivery", one per event and subscription,
// id [DeliveryID]. Its events record when it was scheduled, every attempt
// and its outcome, and its end.
const (
	AggregateDelivery = "delivery"

	TypeDeliveryScheduled      = "delivery.scheduled"
	TypeDeliveryAttempted      = "delivery.attempted"
	TypeDeliveryDead           = "delivery.dead"
	TypeDeliveryRetryRequested = "delivery.retry_requested"
)

// DeliveryID is the id of the delivery of one event to one subscription. It
// is derived, not drawn, so a fan-out that runs twice for the same event
// (its message was redelivered) names the same delivery. It is also the
// webhook-id receivers deduplicate on: stable across attempts.
func DeliveryID(eventID, subscriptionID string) string {
	sum := sha256.Sum256([]byte(eventID + "\x00" + subscriptionID))
	return "dlv_" + hex.EncodeToString(sum[:16])
}

// DerivedEventID names an event that a worker appends on behalf of another
// fact (the delivery of attempt n, say), so that doing it twice stores it
// once: the id is the JetStream Nats-Msg-Id.
func DerivedEventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// DeliveryScheduled is the first event of a delivery. EventSeq is where the
// delivered event is in the event stream: a manual retry renders the
// webhook from it again.
type DeliveryScheduled struct {
	ID             string    `json:"id"`
	SubscriptionID string    `json:"subscription_id"`
	AccountID      string    `json:"account_id"`
	Environment    string    `json:"environment"`
	EventID        string    `json:"event_id"`
	DeliveredType  string    `json:"event_type"`
	EventSeq       uint64    `json:"event_seq"`
	ScheduledAt    time.Time `json:"scheduled_at"`
}

func (DeliveryScheduled) EventType() string { return TypeDeliveryScheduled }
func (DeliveryScheduled) EventVersion() int { return 1 }

// DeliveryAttempted is one HTTP attempt and its outcome. A failed attempt
// with NextAttemptAt has a retry scheduled; without, it was the last (then a
// [DeliveryDead] follows in the same batch).
type DeliveryAttempted struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	AccountID      string `json:"account_id"`
	// Attempt counts from 1.
	Attempt   int  `json:"attempt"`
	Succeeded bool `json:"succeeded"`
	// StatusCode is the endpoint's HTTP status, 0 when none came (refused
	// address, timeout, connection error).
	StatusCode    int        `json:"status_code"`
	LatencyMS     int64      `json:"latency_ms"`
	Error         string     `json:"error,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	AttemptedAt   time.Time  `json:"attempted_at"`
}

func (DeliveryAttempted) EventType() string { return TypeDeliveryAttempted }
func (DeliveryAttempted) EventVersion() int { return 1 }

// Reasons a delivery ends without success.
const (
	DeadExhausted            = "exhausted"
	DeadGone                 = "gone"
	DeadSubscriptionInactive = "subscription_inactive"
)

// DeliveryDead ends a delivery that will not be attempted again: its
// attempts are exhausted, the endpoint answered 410 Gone, or its
// subscription was disabled or deleted. It went to the poison queue.
type DeliveryDead struct {
	ID             string    `json:"id"`
	SubscriptionID string    `json:"subscription_id"`
	AccountID      string    `json:"account_id"`
	Attempts       int       `json:"attempts"`
	Reason         string    `json:"reason"`
	Error          string    `json:"error,omitempty"`
	DeadAt         time.Time `json:"dead_at"`
}

func (DeliveryDead) EventType() string { return TypeDeliveryDead }
func (DeliveryDead) EventVersion() int { return 1 }

// DeliveryRetryRequested asks for one more attempt now (POST
// /callbacks/:id/retry). It supersedes any retry already scheduled: a
// scheduled attempt finds the delivery changed and does nothing.
type DeliveryRetryRequested struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	AccountID      string `json:"account_id"`
	// Attempt is the number the requested attempt will have.
	Attempt     int       `json:"attempt"`
	RequestedAt time.Time `json:"requested_at"`
}

func (DeliveryRetryRequested) EventType() string { return TypeDeliveryRetryRequested }
func (DeliveryRetryRequested) EventVersion() int { return 1 }
