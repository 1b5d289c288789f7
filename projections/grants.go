package projections

import (
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// AuthCodeRecord is the read model of an authorization code, stored under
// the code's SHA-256 (the code itself is never stored).
type AuthCodeRecord struct {
	events.AuthCodeIssued
	// Grant is set once the code was redeemed.
	Grant      string     `json:"grant,omitempty"`
	RedeemedAt *time.Time `json:"redeemed_at,omitempty"`
	// Version is the stream sequence of the code's last event: what a
	// redemption expects.
	Version uint64 `json:"version"`
}

// GrantRecord is the read model of a grant: the tokens issued from one
// authorization code. Refresh tokens are kept as SHA-256 hashes.
type GrantRecord struct {
	ID          string   `json:"id"`
	Client      string   `json:"client"`
	ClientID    string   `json:"client_id"`
	AccountID   string   `json:"account_id"`
	Environment string   `json:"environment"`
	UserID      string   `json:"user_id"`
	Scopes      []string `json:"scopes"`
	Code        string   `json:"code"`
	RefreshHash string   `json:"refresh_hash,omitempty"`
	// PreviousRefreshHash may be presented once more until PreviousValidUntil.
	PreviousRefreshHash string     `json:"previous_refresh_hash,omitempty"`
	PreviousValidUntil  *time.Time `json:"previous_valid_until,omitempty"`
	// Spent are the hashes of used-up refresh tokens (the newest
	// maxGrantHistory): presenting one is reuse.
	Spent []string `json:"spent,omitempty"`
	// AccessTokens are the ids of the access tokens issued in the grant
	// (the newest maxGrantHistory), revoked with it.
	AccessTokens []string   `json:"access_tokens"`
	CreatedAt    time.Time  `json:"created_at"`
	RefreshedAt  *time.Time `json:"refreshed_at,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	RevokeReason string     `json:"revoke_reason,omitempty"`
	// Version is the stream sequence of the grant's last event.
	Version uint64 `json:"version"`
}

// maxGrantHistory bounds the spent refresh tokens and access token ids a
// grant remembers; a grant refreshed more often than that within one
// access-token lifetime is not a client Tollgate has to serve.
const maxGrantHistory = 1000

// Grants projects authorization codes and grants, and indexes grants by
// user and client (what disabling a user or withdrawing consent revokes).
type Grants struct{ db *pebble.DB }

// NewGrants returns the codes-and-grants projection on db.
func NewGrants(db *pebble.DB) *Grants { return &Grants{db: db} }

var _ Projection = (*Grants)(nil)

// Keys: acode/<hash> an authorization code, grt/<id> a grant,
// grtu/<user>/<client>/<id> (empty value) the grants of a user.
const (
	prefixAuthCode  = "acode/"
	prefixGrant     = "grt/"
	prefixGrantUser = "grtu/"
)

func (*Grants) Name() string       { return "grants" }
func (*Grants) Version() int       { return 1 }
func (*Grants) Prefixes() []string { return []string{prefixAuthCode, prefixGrant, prefixGrantUser} }

func grantKey(id string) []byte { return []byte(prefixGrant + id) }

func keepNewest(s []string) []string {
	if len(s) > maxGrantHistory {
		return s[len(s)-maxGrantHistory:]
	}
	return s
}

func (g *Grants) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeAuthCodeIssued:
		p, err := events.Decode[events.AuthCodeIssued](ev)
		if err != nil {
			return err
		}
		return tx.SetJSON([]byte(prefixAuthCode+p.ID), &AuthCodeRecord{AuthCodeIssued: p, Version: ev.Sequence})
	case events.TypeAuthCodeRedeemed:
		p, err := events.Decode[events.AuthCodeRedeemed](ev)
		if err != nil {
			return err
		}
		var rec AuthCodeRecord
		ok, err := tx.GetJSON([]byte(prefixAuthCode+p.ID), &rec)
		if err != nil || !ok {
			return err
		}
		rec.Grant, rec.RedeemedAt, rec.Version = p.Grant, &p.RedeemedAt, ev.Sequence
		return tx.SetJSON([]byte(prefixAuthCode+p.ID), &rec)
	case events.TypeGrantCreated:
		p, err := events.Decode[events.GrantCreated](ev)
		if err != nil {
			return err
		}
		if err := tx.Set([]byte(prefixGrantUser+p.UserID+"/"+p.Client+"/"+p.ID), nil); err != nil {
			return err
		}
		return tx.SetJSON(grantKey(p.ID), &GrantRecord{
			ID: p.ID, Client: p.Client, ClientID: p.ClientID, AccountID: p.AccountID, Environment: p.Environment,
			UserID: p.UserID, Scopes: p.Scopes, Code: p.Code, RefreshHash: p.RefreshHash,
			AccessTokens: []string{p.AccessToken}, CreatedAt: p.CreatedAt, Version: ev.Sequence,
		})
	case events.TypeGrantRefreshed:
		p, err := events.Decode[events.GrantRefreshed](ev)
		if err != nil {
			return err
		}
		return g.update(tx, p.ID, ev.Sequence, func(r *GrantRecord) {
			if p.GraceUse {
				r.Spent = append(r.Spent, p.SpentRefreshHash, p.SupersededRefreshHash)
				r.PreviousRefreshHash, r.PreviousValidUntil = "", nil
			} else {
				if r.PreviousRefreshHash != "" {
					r.Spent = append(r.Spent, r.PreviousRefreshHash)
				}
				r.PreviousRefreshHash, r.PreviousValidUntil = p.SpentRefreshHash, p.PreviousValidUntil
			}
			r.Spent = keepNewest(r.Spent)
			r.RefreshHash, r.RefreshedAt = p.RefreshHash, &p.RefreshedAt
			r.AccessTokens = keepNewest(append(r.AccessTokens, p.AccessToken))
		})
	case events.TypeTokenRevoked:
		if ev.AggregateType != events.AggregateGrant {
			return nil
		}
		p, err := events.Decode[events.TokenRevoked](ev)
		if err != nil {
			return err
		}
		return g.update(tx, p.ID, ev.Sequence, func(r *GrantRecord) {
			r.RevokedAt, r.RevokeReason = &p.RevokedAt, p.Reason
		})
	}
	return nil
}

func (g *Grants) update(tx *Tx, id string, seq uint64, change func(*GrantRecord)) error {
	var rec GrantRecord
	ok, err := tx.GetJSON(grantKey(id), &rec)
	if err != nil || !ok {
		return err
	}
	change(&rec)
	rec.Version = seq
	return tx.SetJSON(grantKey(id), &rec)
}

// Code returns the authorization code whose SHA-256 is hash.
func (g *Grants) Code(hash string) (AuthCodeRecord, bool, error) {
	var rec AuthCodeRecord
	ok, err := getJSON(g.db, []byte(prefixAuthCode+hash), &rec)
	return rec, ok, err
}

// Get returns the grant with id.
func (g *Grants) Get(id string) (GrantRecord, bool, error) {
	var rec GrantRecord
	ok, err := getJSON(g.db, grantKey(id), &rec)
	return rec, ok, err
}

// OfUser lists the ids of a user's grants, of one client when client is
// not empty, revoked ones included.
func (g *Grants) OfUser(user, client string) ([]string, error) {
	prefix := []byte(prefixGrantUser + user + "/")
	if client != "" {
		prefix = []byte(prefixGrantUser + user + "/" + client + "/")
	}
	it, err := g.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []string
	for ok := it.First(); ok; ok = it.Next() {
		k := string(it.Key())
		for i := len(k) - 1; i >= 0; i-- {
			if k[i] == '/' {
				ids = append(ids, k[i+1:])
				break
			}
		}
	}
	return ids, it.Error()
}
