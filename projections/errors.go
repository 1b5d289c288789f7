package projections

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble"
	json "github.com/goccy/go-json"

	"github.com/tollgate/tollgate/events"
)

// Kinds of integration errors.
const (
	ErrorDeliveryFailed     = "delivery_failed"
	ErrorVerificationFailed = "verification_failed"
	ErrorServerError        = "server_error"
)

// ErrorRecord is one integration error of an account: a failed webhook
// delivery, a /verify that did not answer VALID, or a request Tollgate
// answered with a 5xx.
type ErrorRecord struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Message    string    `json:"message"`
	Reason     string    `json:"reason,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
	StatusCode int       `json:"status_code,omitempty"`
	// Related ids and context, as far as the kind has them.
	DeliveryID     string `json:"delivery_id,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
	EventID        string `json:"event_id,omitempty"`
	TokenID        string `json:"token_id,omitempty"`
	Endpoint       string `json:"endpoint,omitempty"`
	Domain         string `json:"domain,omitempty"`
}

// Errors come from two streams, each with its own projector, so each
// source is its own projection with its own prefix (a rebuild of one must
// not drop the other's). Both key an error by account, environment, then a
// 19-byte suffix: occurrence time (big-endian Unix nanoseconds), a source
// byte, the stream sequence and the record's index in its message. [Errors]
// merges the two newest first.
const (
	prefixErrorsDelivery = "erre/"
	prefixErrorsUsage    = "erru/"
	errorSuffixLen       = 19
)

func errorKey(prefix, account, env string, at time.Time, source byte, seq uint64, idx int) []byte {
	k := []byte(prefix + account + "/" + env + "/")
	k = append(k, u64(uint64(at.UnixNano()))...)
	k = append(k, source)
	k = append(k, u64(seq)...)
	return append(k, byte(idx>>8), byte(idx))
}

// DeliveryErrors projects failed delivery attempts (and deliveries dropped
// because their subscription stopped) from the event stream.
type DeliveryErrors struct{}

var _ Projection = DeliveryErrors{}

func (DeliveryErrors) Name() string       { return "delivery_errors" }
func (DeliveryErrors) Version() int       { return 1 }
func (DeliveryErrors) Prefixes() []string { return []string{prefixErrorsDelivery} }

func (DeliveryErrors) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeDeliveryAttempted:
		p, err := events.Decode[events.DeliveryAttempted](ev)
		if err != nil || p.Succeeded {
			return err
		}
		msg := fmt.Sprintf("attempt %d failed: %s", p.Attempt, describeAttempt(p))
		if p.NextAttemptAt != nil {
			msg += "; next attempt at " + p.NextAttemptAt.UTC().Format(time.RFC3339)
		} else {
			msg += "; no attempt follows: the delivery went to the poison queue"
		}
		rec := ErrorRecord{ID: "err_" + ev.ID, Kind: ErrorDeliveryFailed, Message: msg, OccurredAt: p.AttemptedAt,
			StatusCode: p.StatusCode, DeliveryID: p.ID, SubscriptionID: p.SubscriptionID}
		return tx.SetJSON(errorKey(prefixErrorsDelivery, ev.AccountID, ev.Environment, p.AttemptedAt, 'd', ev.Sequence, 0), &rec)
	case events.TypeDeliveryDead:
		p, err := events.Decode[events.DeliveryDead](ev)
		if err != nil || p.Reason != events.DeadSubscriptionInactive {
			return err // other deaths follow a failed attempt, already an error
		}
		rec := ErrorRecord{ID: "err_" + ev.ID, Kind: ErrorDeliveryFailed, Reason: p.Reason, OccurredAt: p.DeadAt,
			Message: "not delivered: " + p.Error, DeliveryID: p.ID, SubscriptionID: p.SubscriptionID}
		return tx.SetJSON(errorKey(prefixErrorsDelivery, ev.AccountID, ev.Environment, p.DeadAt, 'd', ev.Sequence, 0), &rec)
	}
	return nil
}

func describeAttempt(p events.DeliveryAttempted) string {
	switch {
	case p.StatusCode != 0 && p.Error != "":
		return "HTTP " + strconv.Itoa(p.StatusCode) + ": " + p.Error
	case p.StatusCode != 0:
		return "HTTP " + strconv.Itoa(p.StatusCode)
	case p.Error != "":
		return p.Error
	}
	return "no answer"
}

// UsageErrors projects failed verifications and server errors from the
// usage stream (a projection of the usage projector, [DecodeUsageBatch]).
type UsageErrors struct{}

var _ Projection = UsageErrors{}

func (UsageErrors) Name() string       { return "usage_errors" }
func (UsageErrors) Version() int       { return 1 }
func (UsageErrors) Prefixes() []string { return []string{prefixErrorsUsage} }

var (
	verdictField = []byte(`"verdict"`)
	validVerdict = []byte(`"verdict":"VALID"`)
	statusField  = []byte(`"status":5`)
)

func (UsageErrors) Apply(tx *Tx, ev events.Event) error {
	if ev.Type != TypeUsageBatch {
		return nil
	}
	// Most batches hold valid verifies and successful requests only: skip
	// decoding those. The batch's summary says so; a batch without one is
	// searched for a failed verdict or a 5xx.
	if sum, ok := summaryAhead(ev.Data); ok {
		if !sum.Failures {
			return nil
		}
	} else if bytes.Count(ev.Data, verdictField) == bytes.Count(ev.Data, validVerdict) && !bytes.Contains(ev.Data, statusField) {
		return nil
	}
	var batch events.UsageBatch
	if err := json.Unmarshal(ev.Data, &batch); err != nil {
		return err
	}
	for i, r := range batch.Records {
		if r.AccountID == "" {
			continue
		}
		rec := ErrorRecord{ID: "err_" + r.ID, OccurredAt: r.Time, TokenID: r.TokenID, Endpoint: r.Endpoint, Domain: r.Domain}
		switch {
		case r.Kind == events.UsageKindVerify && r.Verdict != "" && r.Verdict != "VALID":
			rec.Kind, rec.Reason = ErrorVerificationFailed, r.Verdict
			rec.Message = "verification answered " + r.Verdict
		case r.Status >= 500:
			rec.Kind, rec.StatusCode = ErrorServerError, r.Status
			rec.Message = r.Endpoint + " answered " + strconv.Itoa(r.Status)
		default:
			continue
		}
		if err := tx.SetJSON(errorKey(prefixErrorsUsage, r.AccountID, r.Environment, r.Time, 'u', ev.Sequence, i), &rec); err != nil {
			return err
		}
	}
	return nil
}

// Errors lists the integration errors of both sources.
type Errors struct {
	db *pebble.DB
}

// NewErrors returns the reader of the error projections on db.
func NewErrors(db *pebble.DB) *Errors { return &Errors{db: db} }

// List lists an account's errors in env newest first, starting after
// cursor; kind, if not empty, keeps one kind.
func (e *Errors) List(account, env, kind, cursor string, limit int) (Page[ErrorRecord], error) {
	limit = max(limit, 1)
	var after []byte
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(raw) != errorSuffixLen {
			return Page[ErrorRecord]{}, ErrBadCursor
		}
		after = raw
	}
	var sources []*errorSource
	for _, p := range []string{prefixErrorsDelivery, prefixErrorsUsage} {
		if kind == ErrorDeliveryFailed && p == prefixErrorsUsage || kind != "" && kind != ErrorDeliveryFailed && p == prefixErrorsDelivery {
			continue
		}
		src, err := openErrorSource(e.db, []byte(p+account+"/"+env+"/"), after)
		if err != nil {
			return Page[ErrorRecord]{}, err
		}
		defer src.it.Close()
		sources = append(sources, src)
	}
	var page Page[ErrorRecord]
	var lastSuffix []byte
	for {
		// The newest of the sources' current entries.
		var best *errorSource
		for _, s := range sources {
			if s.valid && (best == nil || bytes.Compare(s.suffix(), best.suffix()) > 0) {
				best = s
			}
		}
		if best == nil {
			break
		}
		var rec ErrorRecord
		if err := json.Unmarshal(best.it.Value(), &rec); err != nil {
			return page, err
		}
		suffix := append([]byte(nil), best.suffix()...)
		best.valid = best.it.Prev()
		if kind != "" && rec.Kind != kind {
			continue
		}
		if len(page.Items) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString(lastSuffix)
			break
		}
		page.Items = append(page.Items, rec)
		lastSuffix = suffix
	}
	for _, s := range sources {
		if err := s.it.Error(); err != nil {
			return page, err
		}
	}
	return page, nil
}

type errorSource struct {
	it     *pebble.Iterator
	prefix []byte
	valid  bool
}

func openErrorSource(db *pebble.DB, prefix, after []byte) (*errorSource, error) {
	upper := prefixEnd(prefix)
	if after != nil {
		upper = append(append([]byte(nil), prefix...), after...)
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	return &errorSource{it: it, prefix: prefix, valid: it.Last()}, nil
}

func (s *errorSource) suffix() []byte { return s.it.Key()[len(s.prefix):] }
