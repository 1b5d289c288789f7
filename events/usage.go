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
	Version int    `json:"version"`
	ID      string `json:"id"`
	Node    string `json:"node"`
	// Summary comes before Records in the JSON (see UsageSummary).
	Summary *UsageSummary `json:"summary,omitempty"`
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

// UsageSummary is what a batch adds to the statistics, computed by the
// publishing node from the batch's own records. It comes before the
// records in the JSON, so the statistics projection reads it and stops,
// instead of decoding every record. Batches without one (written before
// it existed) are summarized from their records; the result is the same.
type UsageSummary struct {
	// Groups count verify records by what the statistics keep apart.
	Groups []UsageGroup `json:"groups"`
	// LastUsed is, per token, the latest time it was used: a VALID verify
	// or an authenticated API call.
	LastUsed map[string]time.Time `json:"last_used,omitempty"`
	// Failures says whether a record is a failed verify or a 5xx answer:
	// the integration-errors projection reads the records only then.
	Failures bool `json:"failures,omitempty"`
}

// UsageGroup counts the verify records of one account environment, token
// (empty: none), caller IP, domain and minute (Unix seconds; -1 for a time
// before 1970).
type UsageGroup struct {
	AccountID    string `json:"account_id"`
	Environment  string `json:"environment"`
	TokenID      string `json:"token_id,omitempty"`
	IP           string `json:"ip,omitempty"`
	Domain       string `json:"domain,omitempty"`
	Minute       int64  `json:"minute"`
	Requests     int64  `json:"requests"`
	PaidRequests int64  `json:"paid_requests,omitempty"`
	Errors       int64  `json:"errors,omitempty"`
	CreditsSpent int64  `json:"credits_spent,omitempty"`
}

// NoMinute is UsageGroup.Minute for records timed before 1970.
const NoMinute = -1

// Summarize computes a batch's summary from its records. Records whose
// account or environment is not an id count only for last use: ids become
// statistics key segments.
func Summarize(records []UsageRecord) UsageSummary {
	type key struct {
		account, env, token, ip, domain string
		minute                          int64
	}
	groups := map[key]int{}
	var s UsageSummary
	for i := range records {
		r := &records[i]
		if r.Status >= 500 || (r.Kind == UsageKindVerify && r.Verdict != "" && r.Verdict != "VALID") {
			s.Failures = true
		}
		if ValidID(r.TokenID) && (r.Kind == UsageKindAPI || r.Verdict == "VALID") {
			if s.LastUsed == nil {
				s.LastUsed = map[string]time.Time{}
			}
			if at, ok := s.LastUsed[r.TokenID]; !ok || r.Time.After(at) {
				s.LastUsed[r.TokenID] = r.Time
			}
		}
		if r.Kind != UsageKindVerify || !ValidID(r.AccountID) || !ValidID(r.Environment) {
			continue
		}
		k := key{account: r.AccountID, env: r.Environment, ip: r.IP, domain: r.Domain, minute: NoMinute}
		if ValidID(r.TokenID) {
			k.token = r.TokenID
		}
		if unix := r.Time.Unix(); unix >= 0 {
			k.minute = unix - unix%60
		}
		at, ok := groups[k]
		if !ok {
			at = len(s.Groups)
			groups[k] = at
			s.Groups = append(s.Groups, UsageGroup{AccountID: k.account, Environment: k.env, TokenID: k.token,
				IP: k.ip, Domain: k.domain, Minute: k.minute})
		}
		g := &s.Groups[at]
		g.Requests++
		switch {
		case r.Verdict != "VALID":
			g.Errors++
		case r.Cost > 0:
			g.PaidRequests++
			g.CreditsSpent += r.Cost
		}
	}
	return s
}
