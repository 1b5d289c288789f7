package projections

import (
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// AccessRecord is the read model of an OAuth access token. Hash is the
// SHA-256 of the token string; the token itself is never stored.
type AccessRecord struct {
	ID           string     `json:"id"`
	Hash         string     `json:"hash"`
	Client       string     `json:"client"`
	ClientID     string     `json:"client_id"`
	AccountID    string     `json:"account_id"`
	Environment  string     `json:"environment"`
	Scopes       []string   `json:"scopes"`
	Subject      string     `json:"sub"`
	Audience     []string   `json:"aud"`
	Format       string     `json:"format"`
	KeyID        string     `json:"kid,omitempty"`
	IssuedAt     time.Time  `json:"issued_at"`
	ExpiresAt    time.Time  `json:"expires_at"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	// Grant is the grant of a token issued for a user.
	Grant string `json:"grant,omitempty"`
	// Version is the stream sequence of the token's last event.
	Version uint64 `json:"version"`
}

// Access projects OAuth access tokens by id. Decoded records are cached in
// memory: introspection reads one on every call.
type Access struct {
	db      *pebble.DB
	cache   *recordCache[AccessRecord]
	touched []string
}

// NewAccess returns the access-token projection on db.
func NewAccess(db *pebble.DB) *Access {
	return &Access{db: db, cache: newRecordCache[AccessRecord](200_000)}
}

var (
	_ Projection = (*Access)(nil)
	_ Committer  = (*Access)(nil)
)

const prefixAccess = "oat/"

func (*Access) Name() string       { return "access" }
func (*Access) Version() int       { return 2 }
func (*Access) Prefixes() []string { return []string{prefixAccess} }

func (a *Access) AfterCommit() {
	a.cache.invalidate(a.touched)
	a.touched = a.touched[:0]
}

func (a *Access) AfterReset() { a.cache.clear() }

func (a *Access) Apply(tx *Tx, ev events.Event) error {
	if ev.AggregateType != events.AggregateAccess {
		return nil // token.revoked of API tokens is the tokens projection's
	}
	switch ev.Type {
	case events.TypeAccessIssued:
		p, err := events.Decode[events.AccessIssued](ev)
		if err != nil {
			return err
		}
		a.touched = append(a.touched, p.ID)
		return tx.SetJSON([]byte(prefixAccess+p.ID), &AccessRecord{
			ID: p.ID, Hash: p.Hash, Client: p.Client, ClientID: p.ClientID, AccountID: p.AccountID,
			Environment: p.Environment, Scopes: p.Scopes, Subject: p.Subject, Audience: p.Audience,
			Format: p.Format, KeyID: p.KeyID, IssuedAt: p.IssuedAt, ExpiresAt: p.ExpiresAt, Grant: p.Grant, Version: ev.Sequence,
		})
	case events.TypeTokenRevoked:
		p, err := events.Decode[events.TokenRevoked](ev)
		if err != nil {
			return err
		}
		var rec AccessRecord
		ok, err := tx.GetJSON([]byte(prefixAccess+p.ID), &rec)
		if err != nil || !ok {
			return err
		}
		rec.RevokedAt, rec.RevokeReason, rec.Version = &p.RevokedAt, p.Reason, ev.Sequence
		a.touched = append(a.touched, p.ID)
		return tx.SetJSON([]byte(prefixAccess+p.ID), &rec)
	}
	return nil
}

// Get returns the access token with id. The record's slices are shared with
// the cache: callers must not modify them.
func (a *Access) Get(id string) (AccessRecord, bool, error) {
	return a.cache.load(a.db, prefixAccess, id)
}
