package projections

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// ClientRecord is the read model of an OAuth client. SecretHash and
// PreviousSecretHash are SHA-256 hashes; secrets themselves are never stored.
// A deleted client keeps its record (DeletedAt set) but leaves the account
// listing and its client_id.
type ClientRecord struct {
	ID          string `json:"id"`
	ClientID    string `json:"client_id"`
	AccountID   string `json:"account_id"`
	Environment string `json:"environment"`
	events.ClientSettings
	SecretHash         string     `json:"secret_hash,omitempty"`
	PreviousSecretHash string     `json:"previous_secret_hash,omitempty"`
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	DeletedAt          *time.Time `json:"deleted_at,omitempty"`
	// Seq is the stream sequence of client.created: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the client's last event.
	Version uint64 `json:"version"`
}

// ClientIDClaim is the read model of the claim on one client_id.
type ClientIDClaim struct {
	ClientID string `json:"client_id"`
	// Client is the internal id of the client holding the claim, or that
	// last held it when Released.
	Client    string `json:"client"`
	AccountID string `json:"account_id"`
	Released  bool   `json:"released,omitempty"`
	// Version is the stream sequence of the claim aggregate's last event:
	// what a new claim of a released client_id expects.
	Version uint64 `json:"version"`
}

// Clients projects OAuth clients by internal id, by client_id and by
// account and environment. Records and claims are cached in memory: the
// token endpoint looks a client up on every request.
type Clients struct {
	db            *pebble.DB
	cache         *recordCache[ClientRecord]
	claims        *recordCache[ClientIDClaim]
	touched       []string
	touchedClaims []string
}

// NewClients returns the clients projection on db.
func NewClients(db *pebble.DB) *Clients {
	return &Clients{db: db, cache: newRecordCache[ClientRecord](100_000), claims: newRecordCache[ClientIDClaim](100_000)}
}

var _ Committer = (*Clients)(nil)

func (c *Clients) AfterCommit() {
	c.cache.invalidate(c.touched)
	c.claims.invalidate(c.touchedClaims)
	c.touched, c.touchedClaims = c.touched[:0], c.touchedClaims[:0]
}

func (c *Clients) AfterReset() {
	c.cache.clear()
	c.claims.clear()
}

var _ Projection = (*Clients)(nil)

// Keys: cli/<id> holds the record, clid/<ClientIDKey> the claim on a
// client_id, cliacc/<account>/<env>/<seq> (value: id) lists an account's
// live clients in creation order.
const (
	prefixClient        = "cli/"
	prefixClientID      = "clid/"
	prefixClientAccount = "cliacc/"
)

func (*Clients) Name() string { return "clients" }
func (*Clients) Version() int { return 1 }
func (*Clients) Prefixes() []string {
	return []string{prefixClient, prefixClientID, prefixClientAccount}
}

func clientKey(id string) []byte { return []byte(prefixClient + id) }

func claimKey(key string) []byte { return []byte(prefixClientID + key) }

func clientByAccountKey(account, env string, seq uint64) []byte {
	return append([]byte(prefixClientAccount+account+"/"+env+"/"), u64(seq)...)
}

func (c *Clients) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeClientCreated:
		p, err := events.Decode[events.ClientCreated](ev)
		if err != nil {
			return err
		}
		rec := ClientRecord{
			ID: p.ID, ClientID: p.ClientID, AccountID: p.AccountID, Environment: p.Environment,
			ClientSettings: p.ClientSettings, SecretHash: p.SecretHash, CreatedAt: p.CreatedAt, UpdatedAt: p.CreatedAt,
			Seq: ev.Sequence, Version: ev.Sequence,
		}
		c.touched = append(c.touched, p.ID)
		if err := tx.SetJSON(clientKey(p.ID), &rec); err != nil {
			return err
		}
		return tx.Set(clientByAccountKey(p.AccountID, p.Environment, ev.Sequence), []byte(p.ID))
	case events.TypeClientUpdated:
		p, err := events.Decode[events.ClientUpdated](ev)
		if err != nil {
			return err
		}
		return c.update(tx, p.ID, ev.Sequence, func(r *ClientRecord) error {
			r.ClientSettings, r.UpdatedAt = p.ClientSettings, p.UpdatedAt
			if p.SecretHash != r.SecretHash {
				r.SecretHash, r.PreviousSecretHash, r.PreviousValidUntil = p.SecretHash, "", nil
			}
			return nil
		})
	case events.TypeClientSecretRotated:
		p, err := events.Decode[events.ClientSecretRotated](ev)
		if err != nil {
			return err
		}
		return c.update(tx, p.ID, ev.Sequence, func(r *ClientRecord) error {
			r.SecretHash, r.PreviousSecretHash, r.PreviousValidUntil = p.SecretHash, p.PreviousSecretHash, p.PreviousValidUntil
			r.UpdatedAt = p.RotatedAt
			return nil
		})
	case events.TypeClientDeleted:
		p, err := events.Decode[events.ClientDeleted](ev)
		if err != nil {
			return err
		}
		return c.update(tx, p.ID, ev.Sequence, func(r *ClientRecord) error {
			r.DeletedAt = &p.DeletedAt
			return tx.Delete(clientByAccountKey(r.AccountID, r.Environment, r.Seq))
		})
	case events.TypeClientIDClaimed:
		p, err := events.Decode[events.ClientIDClaimed](ev)
		if err != nil {
			return err
		}
		if err := checkClaimSubject(ev, p.ClientID); err != nil {
			return err
		}
		c.touchedClaims = append(c.touchedClaims, ev.AggregateID)
		return tx.SetJSON(claimKey(ev.AggregateID), &ClientIDClaim{
			ClientID: p.ClientID, Client: p.Client, AccountID: p.AccountID, Version: ev.Sequence,
		})
	case events.TypeClientIDReleased:
		p, err := events.Decode[events.ClientIDReleased](ev)
		if err != nil {
			return err
		}
		if err := checkClaimSubject(ev, p.ClientID); err != nil {
			return err
		}
		claim := ClientIDClaim{ClientID: p.ClientID, Client: p.Client, AccountID: p.AccountID}
		if _, err := tx.GetJSON(claimKey(ev.AggregateID), &claim); err != nil {
			return err
		}
		if claim.Client == p.Client {
			claim.Released = true
		}
		claim.Version = ev.Sequence
		c.touchedClaims = append(c.touchedClaims, ev.AggregateID)
		return tx.SetJSON(claimKey(ev.AggregateID), &claim)
	}
	return nil
}

// checkClaimSubject refuses a claim event stored under another client_id's
// aggregate: the claim key is derived, never trusted.
func checkClaimSubject(ev events.Event, clientID string) error {
	if ev.AggregateType != events.AggregateClientID || ev.AggregateID != events.ClientIDKey(clientID) {
		return fmt.Errorf("%s of %q stored under %s %s", ev.Type, clientID, ev.AggregateType, ev.AggregateID)
	}
	return nil
}

func (c *Clients) update(tx *Tx, id string, seq uint64, change func(*ClientRecord) error) error {
	var rec ClientRecord
	ok, err := tx.GetJSON(clientKey(id), &rec)
	if err != nil || !ok {
		return err
	}
	if err := change(&rec); err != nil {
		return err
	}
	rec.Version = seq
	c.touched = append(c.touched, id)
	return tx.SetJSON(clientKey(id), &rec)
}

// Get returns the client with internal id id, deleted or not. The record's
// slices are shared with the cache: callers must not modify them.
func (c *Clients) Get(id string) (ClientRecord, bool, error) {
	return c.cache.load(c.db, prefixClient, id)
}

// Claim returns the claim on clientID, held or released.
func (c *Clients) Claim(clientID string) (ClientIDClaim, bool, error) {
	key := events.ClientIDKey(clientID)
	r, ok, epoch := c.claims.get(key)
	if ok {
		return r, true, nil
	}
	ok, err := getJSON(c.db, claimKey(key), &r)
	if ok && err == nil {
		c.claims.fill(key, r, epoch)
	}
	return r, ok, err
}

// ByClientID returns the live client that holds clientID.
func (c *Clients) ByClientID(clientID string) (ClientRecord, bool, error) {
	claim, ok, err := c.Claim(clientID)
	if err != nil || !ok || claim.Released {
		return ClientRecord{}, false, err
	}
	rec, ok, err := c.Get(claim.Client)
	if err != nil || !ok || rec.DeletedAt != nil {
		return ClientRecord{}, false, err
	}
	return rec, true, nil
}

// ListByAccount lists an account's clients of one environment in creation
// order, starting after cursor; deleted clients are left out.
func (c *Clients) ListByAccount(account, env, cursor string, limit int) (Page[ClientRecord], error) {
	return listInOrder(c.db, []byte(prefixClientAccount+account+"/"+env+"/"), cursor, limit, c.Get,
		func(r ClientRecord) uint64 { return r.Seq }, func(r ClientRecord) bool { return r.DeletedAt == nil })
}
