package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Usage stream. High-volume usage records go to their own stream with
// age-based retention, in batches: one message per flush, never one append
// per request. Analytics consumers read [UsageSubjects]; each message is a
// [UsageBatch] in JSON.
const (
	UsageStream         = "TOLLGATE_USAGE"
	UsageSubjectPrefix  = "tollgate.usage"
	UsageSubjects       = UsageSubjectPrefix + ".>"
	DefaultUsageMaxAge  = 30 * 24 * time.Hour
	UsageKindVerify     = "verify"
	UsageKindAPI        = "api"
	UsageSchemaVersion1 = 1
)

// UsageRecord is one verified request (kind verify) or one request to
// Tollgate's own API (kind api). It never holds a credential.
type UsageRecord struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Time        time.Time `json:"time"`
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	TokenID     string    `json:"token_id,omitempty"`
	Domain      string    `json:"domain,omitempty"`
	Endpoint    string    `json:"endpoint,omitempty"`
	IP          string    `json:"ip,omitempty"`
	// Status is the HTTP status Tollgate answered with.
	Status int `json:"status"`
	// Verdict is the /verify code (kind verify only).
	Verdict string `json:"verdict,omitempty"`
	// Cost is the credits a VALID paid verify spent.
	Cost      int64 `json:"cost"`
	LatencyUS int64 `json:"latency_us"`
}

// UsageBatch is one message of the usage stream.
type UsageBatch struct {
	Version int           `json:"version"`
	ID      string        `json:"id"`
	Node    string        `json:"node"`
	Records []UsageRecord `json:"records"`
}

// UsageSubject is the subject a node publishes its batches on.
func UsageSubject(node string) string { return UsageSubjectPrefix + "." + node }

// EnsureUsageStream creates or migrates the usage stream.
func EnsureUsageStream(ctx context.Context, js jetstream.JetStream, replicas int, maxAge time.Duration) (jetstream.Stream, error) {
	if replicas <= 0 {
		replicas = 1
	}
	if maxAge <= 0 {
		maxAge = DefaultUsageMaxAge
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	str, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        UsageStream,
		Description: "Tollgate usage records (batched, age-limited)",
		Subjects:    []string{UsageSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      maxAge,
		Duplicates:  2 * time.Minute,
		Discard:     jetstream.DiscardOld,
		MaxMsgSize:  8 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: ensure stream %s: %v", ErrUnavailable, UsageStream, err)
	}
	return str, nil
}
