package projections

import (
	"encoding/base64"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// Delivery statuses: pending (no attempt yet, or a retry was asked for),
// failed (the last attempt failed; another is scheduled at NextAttemptAt),
// succeeded, dead (no attempt will follow; it went to the poison queue).
const (
	DeliveryPending   = "pending"
	DeliveryFailed    = "failed"
	DeliverySucceeded = "succeeded"
	DeliveryDead      = "dead"
)

// DeliveryRecord is the read model of one webhook delivery: an event to a
// subscription, with the outcome of its latest attempt.
type DeliveryRecord struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	AccountID      string `json:"account_id"`
	Environment    string `json:"environment"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	EventSeq       uint64 `json:"event_seq"`
	// Attempt is the number of the latest attempt, 0 before the first.
	Attempt       int        `json:"attempt"`
	Status        string     `json:"status"`
	StatusCode    int        `json:"status_code"`
	LatencyMS     int64      `json:"latency_ms"`
	Error         string     `json:"error,omitempty"`
	DeadReason    string     `json:"dead_reason,omitempty"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	// Seq is the stream sequence of delivery.scheduled: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the delivery's last event.
	Version uint64 `json:"version"`
}

// Deliveries projects webhook deliveries by id and, newest first, by account
// and environment, by status and by subscription.
type Deliveries struct {
	db *pebble.DB
}

// NewDeliveries returns the deliveries projection on db.
func NewDeliveries(db *pebble.DB) *Deliveries { return &Deliveries{db: db} }

var _ Projection = (*Deliveries)(nil)

// Keys: dlv/<id> holds the record; dlvacc/<account>/<env>/<seq>,
// dlvst/<account>/<env>/<status>/<seq> and dlvsub/<subscription>/<seq>
// (values: id) list deliveries.
const (
	prefixDelivery             = "dlv/"
	prefixDeliveryAccount      = "dlvacc/"
	prefixDeliveryStatus       = "dlvst/"
	prefixDeliverySubscription = "dlvsub/"
)

func (*Deliveries) Name() string { return "deliveries" }
func (*Deliveries) Version() int { return 1 }
func (*Deliveries) Prefixes() []string {
	return []string{prefixDelivery, prefixDeliveryAccount, prefixDeliveryStatus, prefixDeliverySubscription}
}

func deliveryKey(id string) []byte { return []byte(prefixDelivery + id) }

func deliveryStatusPrefix(account, env, status string) []byte {
	return []byte(prefixDeliveryStatus + account + "/" + env + "/" + status + "/")
}

func (d *Deliveries) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeDeliveryScheduled:
		p, err := events.Decode[events.DeliveryScheduled](ev)
		if err != nil {
			return err
		}
		if ok, err := tx.GetJSON(deliveryKey(p.ID), &DeliveryRecord{}); ok || err != nil {
			return err
		}
		next := p.ScheduledAt
		rec := DeliveryRecord{ID: p.ID, SubscriptionID: p.SubscriptionID, AccountID: p.AccountID, Environment: p.Environment,
			EventID: p.EventID, EventType: p.DeliveredType, EventSeq: p.EventSeq, Status: DeliveryPending,
			NextAttemptAt: &next, CreatedAt: p.ScheduledAt, UpdatedAt: p.ScheduledAt, Seq: ev.Sequence, Version: ev.Sequence}
		seq := u64(ev.Sequence)
		for _, k := range [][]byte{
			append([]byte(prefixDeliveryAccount+p.AccountID+"/"+p.Environment+"/"), seq...),
			append([]byte(prefixDeliverySubscription+p.SubscriptionID+"/"), seq...),
			append(deliveryStatusPrefix(p.AccountID, p.Environment, rec.Status), seq...),
		} {
			if err := tx.Set(k, []byte(p.ID)); err != nil {
				return err
			}
		}
		return tx.SetJSON(deliveryKey(p.ID), &rec)
	case events.TypeDeliveryAttempted:
		p, err := events.Decode[events.DeliveryAttempted](ev)
		if err != nil {
			return err
		}
		return d.update(tx, p.ID, ev.Sequence, func(r *DeliveryRecord) {
			r.Attempt, r.StatusCode, r.LatencyMS, r.Error = p.Attempt, p.StatusCode, p.LatencyMS, p.Error
			r.NextAttemptAt, r.UpdatedAt = p.NextAttemptAt, p.AttemptedAt
			r.Status = DeliveryFailed
			if p.Succeeded {
				r.Status = DeliverySucceeded
			}
		})
	case events.TypeDeliveryDead:
		p, err := events.Decode[events.DeliveryDead](ev)
		if err != nil {
			return err
		}
		return d.update(tx, p.ID, ev.Sequence, func(r *DeliveryRecord) {
			r.Status, r.DeadReason, r.NextAttemptAt, r.UpdatedAt = DeliveryDead, p.Reason, nil, p.DeadAt
			if p.Error != "" {
				r.Error = p.Error
			}
		})
	case events.TypeDeliveryRetryRequested:
		p, err := events.Decode[events.DeliveryRetryRequested](ev)
		if err != nil {
			return err
		}
		return d.update(tx, p.ID, ev.Sequence, func(r *DeliveryRecord) {
			at := p.RequestedAt
			r.Status, r.DeadReason, r.NextAttemptAt, r.UpdatedAt = DeliveryPending, "", &at, p.RequestedAt
		})
	}
	return nil
}

// update changes a record and moves it between the status indexes.
func (d *Deliveries) update(tx *Tx, id string, seq uint64, change func(*DeliveryRecord)) error {
	var rec DeliveryRecord
	ok, err := tx.GetJSON(deliveryKey(id), &rec)
	if err != nil || !ok {
		return err
	}
	before := rec.Status
	change(&rec)
	rec.Version = seq
	if rec.Status != before {
		if err := tx.Delete(append(deliveryStatusPrefix(rec.AccountID, rec.Environment, before), u64(rec.Seq)...)); err != nil {
			return err
		}
		if err := tx.Set(append(deliveryStatusPrefix(rec.AccountID, rec.Environment, rec.Status), u64(rec.Seq)...), []byte(id)); err != nil {
			return err
		}
	}
	return tx.SetJSON(deliveryKey(id), &rec)
}

// Get returns the delivery with id.
func (d *Deliveries) Get(id string) (DeliveryRecord, bool, error) {
	var r DeliveryRecord
	ok, err := getJSON(d.db, deliveryKey(id), &r)
	return r, ok, err
}

// DeliveryFilter narrows a listing; empty fields match everything.
type DeliveryFilter struct {
	Status         string
	SubscriptionID string
}

// List lists an account's deliveries in env newest first, starting after
// cursor. Filtering by subscription trusts the caller to have checked that
// the subscription is the account's.
func (d *Deliveries) List(account, env string, f DeliveryFilter, cursor string, limit int) (Page[DeliveryRecord], error) {
	limit = max(limit, 1)
	var prefix []byte
	switch {
	case f.SubscriptionID != "":
		prefix = []byte(prefixDeliverySubscription + f.SubscriptionID + "/")
	case f.Status != "":
		prefix = deliveryStatusPrefix(account, env, f.Status)
	default:
		prefix = []byte(prefixDeliveryAccount + account + "/" + env + "/")
	}
	upper := prefixEnd(prefix)
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(raw) != 8 {
			return Page[DeliveryRecord]{}, ErrBadCursor
		}
		upper = append(append([]byte(nil), prefix...), raw...)
	}
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return Page[DeliveryRecord]{}, err
	}
	defer it.Close()
	var page Page[DeliveryRecord]
	for ok := it.Last(); ok; ok = it.Prev() {
		rec, found, err := d.Get(string(it.Value()))
		if err != nil {
			return page, err
		}
		if !found || rec.AccountID != account || rec.Environment != env || (f.Status != "" && rec.Status != f.Status) {
			continue
		}
		if len(page.Items) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString(u64(page.Items[limit-1].Seq))
			break
		}
		page.Items = append(page.Items, rec)
	}
	return page, it.Error()
}
