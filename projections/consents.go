package projections

import (
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// ConsentRecord is the read model of a user's consent to a client.
type ConsentRecord struct {
	UserID      string     `json:"user_id"`
	Client      string     `json:"client"`
	ClientID    string     `json:"client_id"`
	AccountID   string     `json:"account_id"`
	Environment string     `json:"environment"`
	Scopes      []string   `json:"scopes"`
	GrantedAt   time.Time  `json:"granted_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// Seq is the stream sequence of the grant that made the consent
	// current: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the consent's last event.
	Version uint64 `json:"version"`
}

// Consents projects consents by user and client, and lists a user's
// consents in force.
type Consents struct{ db *pebble.DB }

// NewConsents returns the consents projection on db.
func NewConsents(db *pebble.DB) *Consents { return &Consents{db: db} }

var _ Projection = (*Consents)(nil)

// Keys: cns/<ConsentKey> holds the record, cnsu/<user>/<seq> (value: the
// consent key) lists a user's consents in force.
const (
	prefixConsent     = "cns/"
	prefixConsentUser = "cnsu/"
)

func (*Consents) Name() string       { return "consents" }
func (*Consents) Version() int       { return 1 }
func (*Consents) Prefixes() []string { return []string{prefixConsent, prefixConsentUser} }

func consentUserKey(user string, seq uint64) []byte {
	return append([]byte(prefixConsentUser+user+"/"), u64(seq)...)
}

func (cs *Consents) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeConsentGranted:
		p, err := events.Decode[events.ConsentGranted](ev)
		if err != nil {
			return err
		}
		key := events.ConsentKey(p.UserID, p.Client)
		var rec ConsentRecord
		ok, err := tx.GetJSON([]byte(prefixConsent+key), &rec)
		if err != nil {
			return err
		}
		if !ok || rec.RevokedAt != nil {
			if ok {
				if err := tx.Delete(consentUserKey(rec.UserID, rec.Seq)); err != nil {
					return err
				}
			}
			rec = ConsentRecord{GrantedAt: p.GrantedAt, Seq: ev.Sequence}
			if err := tx.Set(consentUserKey(p.UserID, ev.Sequence), []byte(key)); err != nil {
				return err
			}
		}
		rec.UserID, rec.Client, rec.ClientID, rec.AccountID, rec.Environment = p.UserID, p.Client, p.ClientID, p.AccountID, p.Environment
		rec.Scopes, rec.UpdatedAt, rec.Version = p.Scopes, p.GrantedAt, ev.Sequence
		return tx.SetJSON([]byte(prefixConsent+key), &rec)
	case events.TypeConsentRevoked:
		p, err := events.Decode[events.ConsentRevoked](ev)
		if err != nil {
			return err
		}
		key := events.ConsentKey(p.UserID, p.Client)
		var rec ConsentRecord
		ok, err := tx.GetJSON([]byte(prefixConsent+key), &rec)
		if err != nil || !ok {
			return err
		}
		rec.RevokedAt, rec.Version = &p.RevokedAt, ev.Sequence
		if err := tx.Delete(consentUserKey(rec.UserID, rec.Seq)); err != nil {
			return err
		}
		return tx.SetJSON([]byte(prefixConsent+key), &rec)
	}
	return nil
}

// Get returns the consent of user to client (internal id), in force or
// revoked.
func (cs *Consents) Get(user, client string) (ConsentRecord, bool, error) {
	return cs.byKey(events.ConsentKey(user, client))
}

func (cs *Consents) byKey(key string) (ConsentRecord, bool, error) {
	var rec ConsentRecord
	ok, err := getJSON(cs.db, []byte(prefixConsent+key), &rec)
	return rec, ok, err
}

// ListByUser lists a user's consents in force, oldest first.
func (cs *Consents) ListByUser(user, cursor string, limit int) (Page[ConsentRecord], error) {
	return listInOrder(cs.db, []byte(prefixConsentUser+user+"/"), cursor, limit, cs.byKey,
		func(r ConsentRecord) uint64 { return r.Seq }, func(r ConsentRecord) bool { return r.RevokedAt == nil })
}
