package projections

import (
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// SubscriptionRecord is the read model of a webhook subscription. Its
// secrets are sealed (events.SealedSecret), never in the clear.
type SubscriptionRecord struct {
	ID                 string               `json:"id"`
	AccountID          string               `json:"account_id"`
	Environment        string               `json:"environment"`
	URL                string               `json:"url"`
	EventTypes         []string             `json:"event_types"`
	Description        string               `json:"description"`
	Secret             events.SealedSecret  `json:"secret_sealed"`
	PreviousSecret     *events.SealedSecret `json:"previous_secret_sealed,omitempty"`
	PreviousValidUntil *time.Time           `json:"previous_valid_until,omitempty"`
	// Status is active, disabled or deleted.
	Status         string     `json:"status"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DeletedAt      *time.Time `json:"deleted_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	// ConsecutiveDead counts deliveries that exhausted their attempts since
	// the last success; FailingSince is the first failed attempt since then.
	// The workers disable an endpoint on them (domain.FailurePolicy).
	ConsecutiveDead int        `json:"consecutive_dead"`
	FailingSince    *time.Time `json:"failing_since,omitempty"`
	// Seq is the stream sequence of subscription.created: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the subscription's last event.
	Version uint64 `json:"version"`
}

// Subscriptions projects webhook subscriptions by id, by account and
// environment, and, for the delivery workers, the active ones by account,
// environment and event type. The outcome of deliveries feeds each
// endpoint's failure record.
type Subscriptions struct {
	db      *pebble.DB
	cache   *recordCache[SubscriptionRecord]
	touched []string
}

// NewSubscriptions returns the subscriptions projection on db.
func NewSubscriptions(db *pebble.DB) *Subscriptions {
	return &Subscriptions{db: db, cache: newRecordCache[SubscriptionRecord](50_000)}
}

var (
	_ Projection = (*Subscriptions)(nil)
	_ Committer  = (*Subscriptions)(nil)
)

// Keys: sub/<id> holds the record; subacc/<account>/<env>/<seq> (value: id)
// lists an account's subscriptions in creation order; subtype/<account>/
// <env>/<event type>/<id> indexes the active ones by the types they want.
const (
	prefixSubscription        = "sub/"
	prefixSubscriptionAccount = "subacc/"
	prefixSubscriptionType    = "subtype/"
)

func (*Subscriptions) Name() string { return "subscriptions" }
func (*Subscriptions) Version() int { return 1 }
func (*Subscriptions) Prefixes() []string {
	return []string{prefixSubscription, prefixSubscriptionAccount, prefixSubscriptionType}
}

func (s *Subscriptions) AfterCommit() {
	s.cache.invalidate(s.touched)
	s.touched = s.touched[:0]
}

func (s *Subscriptions) AfterReset() { s.cache.clear() }

func subscriptionKey(id string) []byte { return []byte(prefixSubscription + id) }

func subscriptionByAccountKey(account, env string, seq uint64) []byte {
	return append([]byte(prefixSubscriptionAccount+account+"/"+env+"/"), u64(seq)...)
}

func subscriptionTypePrefix(account, env, eventType string) string {
	return prefixSubscriptionType + account + "/" + env + "/" + eventType + "/"
}

func (s *Subscriptions) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeSubscriptionCreated:
		p, err := events.Decode[events.SubscriptionCreated](ev)
		if err != nil {
			return err
		}
		rec := SubscriptionRecord{ID: p.ID, AccountID: p.AccountID, Environment: p.Environment, URL: p.URL,
			EventTypes: p.EventTypes, Description: p.Description, Secret: p.Secret, Status: "active",
			CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt, Seq: ev.Sequence, Version: ev.Sequence}
		if err := tx.Set(subscriptionByAccountKey(p.AccountID, p.Environment, ev.Sequence), []byte(p.ID)); err != nil {
			return err
		}
		if err := s.index(tx, rec, true); err != nil {
			return err
		}
		s.touched = append(s.touched, p.ID)
		return tx.SetJSON(subscriptionKey(p.ID), &rec)
	case events.TypeSubscriptionSecretRotated:
		p, err := events.Decode[events.SubscriptionSecretRotated](ev)
		if err != nil {
			return err
		}
		return s.update(tx, p.ID, &ev.Sequence, func(r *SubscriptionRecord) error {
			if p.PreviousValidUntil != nil {
				prev := r.Secret
				r.PreviousSecret = &prev
			} else {
				r.PreviousSecret = nil
			}
			r.Secret, r.PreviousValidUntil, r.UpdatedAt = p.Secret, p.PreviousValidUntil, p.RotatedAt
			return nil
		})
	case events.TypeSubscriptionDisabled:
		p, err := events.Decode[events.SubscriptionDisabled](ev)
		if err != nil {
			return err
		}
		return s.update(tx, p.ID, &ev.Sequence, func(r *SubscriptionRecord) error {
			r.Status, r.DisabledReason, r.DisabledAt, r.UpdatedAt = "disabled", p.Reason, &p.DisabledAt, p.DisabledAt
			return s.index(tx, *r, false)
		})
	case events.TypeSubscriptionDeleted:
		p, err := events.Decode[events.SubscriptionDeleted](ev)
		if err != nil {
			return err
		}
		return s.update(tx, p.ID, &ev.Sequence, func(r *SubscriptionRecord) error {
			r.Status, r.DeletedAt, r.UpdatedAt = "deleted", &p.DeletedAt, p.DeletedAt
			if err := tx.Delete(subscriptionByAccountKey(r.AccountID, r.Environment, r.Seq)); err != nil {
				return err
			}
			return s.index(tx, *r, false)
		})
	case events.TypeDeliveryAttempted:
		p, err := events.Decode[events.DeliveryAttempted](ev)
		if err != nil {
			return err
		}
		return s.update(tx, p.SubscriptionID, nil, func(r *SubscriptionRecord) error {
			if p.Succeeded {
				r.ConsecutiveDead, r.FailingSince = 0, nil
			} else if r.FailingSince == nil {
				at := p.AttemptedAt
				r.FailingSince = &at
			}
			return nil
		})
	case events.TypeDeliveryDead:
		p, err := events.Decode[events.DeliveryDead](ev)
		if err != nil || p.Reason == events.DeadSubscriptionInactive {
			return err
		}
		return s.update(tx, p.SubscriptionID, nil, func(r *SubscriptionRecord) error {
			r.ConsecutiveDead++
			return nil
		})
	}
	return nil
}

// index adds (or removes) the active subscription under each event type.
func (s *Subscriptions) index(tx *Tx, r SubscriptionRecord, add bool) error {
	for _, t := range r.EventTypes {
		key := []byte(subscriptionTypePrefix(r.AccountID, r.Environment, t) + r.ID)
		var err error
		if add {
			err = tx.Set(key, nil)
		} else {
			err = tx.Delete(key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// update changes a record; seq, if not nil, is a new event of the
// subscription itself (its version).
func (s *Subscriptions) update(tx *Tx, id string, seq *uint64, change func(*SubscriptionRecord) error) error {
	var rec SubscriptionRecord
	ok, err := tx.GetJSON(subscriptionKey(id), &rec)
	if err != nil || !ok {
		return err
	}
	if err := change(&rec); err != nil {
		return err
	}
	if seq != nil {
		rec.Version = *seq
	}
	s.touched = append(s.touched, id)
	return tx.SetJSON(subscriptionKey(id), &rec)
}

// Get returns the subscription with id, deleted ones included. The
// record's slices are shared with the cache: callers must not modify them.
func (s *Subscriptions) Get(id string) (SubscriptionRecord, bool, error) {
	return s.cache.load(s.db, prefixSubscription, id)
}

// Matching lists the ids of the account's active subscriptions in env that
// want eventType.
func (s *Subscriptions) Matching(account, env, eventType string) ([]string, error) {
	prefix := []byte(subscriptionTypePrefix(account, env, eventType))
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []string
	for ok := it.First(); ok; ok = it.Next() {
		ids = append(ids, string(it.Key()[len(prefix):]))
	}
	return ids, it.Error()
}

// ListByAccount lists an account's subscriptions of one environment in
// creation order, starting after cursor.
func (s *Subscriptions) ListByAccount(account, env, cursor string, limit int) (Page[SubscriptionRecord], error) {
	return listInOrder(s.db, []byte(prefixSubscriptionAccount+account+"/"+env+"/"), cursor, limit, s.Get,
		func(r SubscriptionRecord) uint64 { return r.Seq }, nil)
}
