package projections

import (
	"strings"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// TokenRecord is the read model of an API token. Hash is the SHA-256 of the
// token string; the token itself is never stored.
type TokenRecord struct {
	ID                 string                  `json:"id"`
	AccountID          string                  `json:"account_id"`
	Name               string                  `json:"name"`
	Scopes             []string                `json:"scopes"`
	Environment        string                  `json:"environment"`
	Hash               string                  `json:"hash"`
	RefreshHash        string                  `json:"refresh_hash,omitempty"`
	SpentRefreshHashes []string                `json:"spent_refresh_hashes,omitempty"`
	PreviousHash       string                  `json:"previous_hash,omitempty"`
	PreviousValidUntil *time.Time              `json:"previous_valid_until,omitempty"`
	Limits             events.TokenLimits      `json:"limits"`
	RateLimit          events.RateLimit        `json:"rate_limit"`
	CreatedAt          time.Time               `json:"created_at"`
	UpdatedAt          *time.Time              `json:"updated_at,omitempty"`
	ExpiresAt          *time.Time              `json:"expires_at,omitempty"`
	RevokedAt          *time.Time              `json:"revoked_at,omitempty"`
	RevokeReason       string                  `json:"revoke_reason,omitempty"`
	LastUsedAt         *time.Time              `json:"last_used_at,omitempty"`
	Used               events.Quota            `json:"used"`
	Leases             map[string]events.Quota `json:"leases,omitempty"`
	// LeaseNodes maps each open lease to the node holding it.
	LeaseNodes map[string]string `json:"lease_nodes,omitempty"`
	// LeaseExpiry: a lease not renewed by then may be released by anyone.
	LeaseExpiry map[string]time.Time `json:"lease_expiry,omitempty"`
	// Seq is the stream sequence of token.created: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the token's last event.
	Version uint64 `json:"version"`
}

// Tokens projects API tokens by id and by account and environment. Decoded
// records are cached in memory: token lookups are on every request's path.
type Tokens struct {
	db    *pebble.DB
	cache *recordCache[TokenRecord]
	// auth holds the compact views that authentication reads.
	auth     *authCache
	interned *interner
	touched  []string
}

// NewTokens returns the tokens projection on db.
func NewTokens(db *pebble.DB) *Tokens {
	return &Tokens{db: db, cache: newRecordCache[TokenRecord](200_000),
		auth: newAuthCache(tokenAuthCapacity), interned: newInterner()}
}

var _ Committer = (*Tokens)(nil)

func (t *Tokens) AfterCommit() {
	t.cache.invalidate(t.touched)
	t.auth.invalidate(t.touched)
	t.touched = t.touched[:0]
}

func (t *Tokens) AfterReset() {
	t.cache.clear()
	t.auth.clear()
}

var _ Projection = (*Tokens)(nil)

const (
	prefixToken          = "tok/"
	prefixTokenAccount   = "tokacc/"
	prefixTokenLeaseNode = "tokl/" // node/token: tokens in which a node holds a lease
)

func (*Tokens) Name() string { return "tokens" }
func (*Tokens) Version() int { return 4 }
func (*Tokens) Prefixes() []string {
	return []string{prefixToken, prefixTokenAccount, prefixTokenLeaseNode}
}

func tokenByAccountKey(account, env string, seq uint64) []byte {
	return append([]byte(prefixTokenAccount+account+"/"+env+"/"), u64(seq)...)
}

func (t *Tokens) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeTokenCreated:
		p, err := events.Decode[events.TokenCreated](ev)
		if err != nil {
			return err
		}
		rec := TokenRecord{
			ID: p.ID, AccountID: p.AccountID, Name: p.Name, Scopes: p.Scopes, Environment: p.Environment,
			Hash: p.Hash, RefreshHash: p.RefreshHash, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt,
			Seq: ev.Sequence, Version: ev.Sequence,
			// Tokens created before limits existed have the default rate limit.
			RateLimit: events.RateLimit{Limit: 10000, Window: 60},
		}
		if p.Limits != nil {
			rec.Limits = *p.Limits
		}
		if p.RateLimit != nil {
			rec.RateLimit = *p.RateLimit
		}
		if err := tx.SetJSON([]byte(prefixToken+p.ID), &rec); err != nil {
			return err
		}
		t.touched = append(t.touched, p.ID)
		return tx.Set(tokenByAccountKey(p.AccountID, p.Environment, ev.Sequence), []byte(p.ID))
	case events.TypeTokenRevoked:
		if ev.AggregateType != events.AggregateToken {
			return nil // an OAuth access token's (see Access)
		}
		p, err := events.Decode[events.TokenRevoked](ev)
		if err != nil {
			return err
		}
		return t.update(tx, p.ID, ev.Sequence, func(r *TokenRecord) { r.RevokedAt, r.RevokeReason = &p.RevokedAt, p.Reason })
	case events.TypeTokenUpdated:
		p, err := events.Decode[events.TokenUpdated](ev)
		if err != nil {
			return err
		}
		return t.update(tx, p.ID, ev.Sequence, func(r *TokenRecord) {
			r.Name, r.Scopes, r.Limits, r.RateLimit, r.ExpiresAt = p.Name, p.Scopes, p.Limits, p.RateLimit, p.ExpiresAt
			r.UpdatedAt = &p.UpdatedAt
		})
	case events.TypeTokenRotated:
		p, err := events.Decode[events.TokenRotated](ev)
		if err != nil {
			return err
		}
		return t.update(tx, p.ID, ev.Sequence, func(r *TokenRecord) {
			r.Hash, r.RefreshHash = p.Hash, p.RefreshHash
			r.PreviousHash, r.PreviousValidUntil = p.PreviousHash, p.PreviousValidUntil
			r.SpentRefreshHashes = append(r.SpentRefreshHashes, p.SpentRefreshHash)
			r.UpdatedAt = &p.RotatedAt
		})
	case events.TypeQuotaLeased:
		p, err := events.Decode[events.QuotaLeased](ev)
		if err != nil {
			return err
		}
		return t.update(tx, p.ID, ev.Sequence, func(r *TokenRecord) {
			if r.Leases == nil {
				r.Leases, r.LeaseNodes = map[string]events.Quota{}, map[string]string{}
			}
			q := r.Leases[p.LeaseID]
			q.Requests += p.Granted.Requests
			q.PaidRequests += p.Granted.PaidRequests
			q.Credits += p.Granted.Credits
			if r.LeaseExpiry == nil {
				r.LeaseExpiry = map[string]time.Time{}
			}
			r.Leases[p.LeaseID], r.LeaseNodes[p.LeaseID], r.LeaseExpiry[p.LeaseID] = q, p.Node, p.ExpiresAt
			_ = tx.Set([]byte(prefixTokenLeaseNode+p.Node+"/"+r.ID), nil)
		})
	case events.TypeQuotaReturned:
		p, err := events.Decode[events.QuotaReturned](ev)
		if err != nil {
			return err
		}
		return t.update(tx, p.ID, ev.Sequence, func(r *TokenRecord) {
			if p.Partial {
				q := r.Leases[p.LeaseID]
				q.Requests -= p.Used.Requests
				q.PaidRequests -= p.Used.PaidRequests
				q.Credits -= p.Used.Credits
				r.Leases[p.LeaseID] = q
				if p.RenewUntil != nil && r.LeaseExpiry != nil {
					r.LeaseExpiry[p.LeaseID] = *p.RenewUntil
				}
			} else {
				if node := r.LeaseNodes[p.LeaseID]; node != "" {
					_ = tx.Delete([]byte(prefixTokenLeaseNode + node + "/" + r.ID))
				}
				delete(r.Leases, p.LeaseID)
				delete(r.LeaseNodes, p.LeaseID)
				delete(r.LeaseExpiry, p.LeaseID)
			}
			r.Used.Requests += p.Used.Requests
			r.Used.PaidRequests += p.Used.PaidRequests
			r.Used.Credits += p.Used.Credits
			if p.LastUsedAt != nil && (r.LastUsedAt == nil || p.LastUsedAt.After(*r.LastUsedAt)) {
				r.LastUsedAt = p.LastUsedAt
			}
		})
	}
	return nil
}

func (t *Tokens) update(tx *Tx, id string, seq uint64, change func(*TokenRecord)) error {
	var rec TokenRecord
	ok, err := tx.GetJSON([]byte(prefixToken+id), &rec)
	if err != nil || !ok {
		return err
	}
	change(&rec)
	rec.Version = seq
	t.touched = append(t.touched, id)
	return tx.SetJSON([]byte(prefixToken+id), &rec)
}

// Get returns the token with id. The record's slices are shared with the
// cache: callers must not modify them.
func (t *Tokens) Get(id string) (TokenRecord, bool, error) {
	return t.cache.load(t.db, prefixToken, id)
}

// Lookup is Get without a copy, for the request path: the record is shared
// with every other reader and must not be modified.
func (t *Tokens) Lookup(id string) (*TokenRecord, bool, error) {
	return t.cache.loadRef(t.db, prefixToken, id)
}

// ListByAccount lists an account's tokens of one environment in creation
// order, starting after cursor.
func (t *Tokens) ListByAccount(account, env, cursor string, limit int, keep func(TokenRecord) bool) (Page[TokenRecord], error) {
	return listInOrder(t.db, []byte(prefixTokenAccount+account+"/"+env+"/"), cursor, limit, t.Get,
		func(r TokenRecord) uint64 { return r.Seq }, keep)
}

// WithLeasesOf lists the tokens in which node holds a quota lease ("" for
// any node).
func (t *Tokens) WithLeasesOf(node string) ([]TokenRecord, error) {
	prefix := []byte(prefixTokenLeaseNode + node + "/")
	if node == "" {
		prefix = []byte(prefixTokenLeaseNode)
	}
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []TokenRecord
	for ok := it.First(); ok; ok = it.Next() {
		key := string(it.Key()[len(prefixTokenLeaseNode):]) // node/token
		rec, found, err := t.Get(key[strings.LastIndexByte(key, '/')+1:])
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, rec)
		}
	}
	return out, it.Error()
}
