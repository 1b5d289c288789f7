package projections

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// TokenRecord is the read model of an API token. Hash is the SHA-256 of the
// token string; the token itself is never stored.
type TokenRecord struct {
	ID          string     `json:"id"`
	AccountID   string     `json:"account_id"`
	Name        string     `json:"name"`
	Scopes      []string   `json:"scopes"`
	Environment string     `json:"environment"`
	Hash        string     `json:"hash"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// Seq is the stream sequence of token.created: the listing order.
	Seq uint64 `json:"seq"`
	// Version is the stream sequence of the token's last event.
	Version uint64 `json:"version"`
}

// Tokens projects API tokens by id and by account and environment. Decoded
// records are cached in memory: token lookups are on every request's path.
type Tokens struct {
	db      *pebble.DB
	cache   *recordCache[TokenRecord]
	touched []string
}

// NewTokens returns the tokens projection on db.
func NewTokens(db *pebble.DB) *Tokens {
	return &Tokens{db: db, cache: newRecordCache[TokenRecord](200_000)}
}

var _ Committer = (*Tokens)(nil)

func (t *Tokens) AfterCommit() {
	t.cache.invalidate(t.touched)
	t.touched = t.touched[:0]
}

func (t *Tokens) AfterReset() { t.cache.clear() }

var _ Projection = (*Tokens)(nil)

const (
	prefixToken        = "tok/"
	prefixTokenAccount = "tokacc/"
)

func (*Tokens) Name() string       { return "tokens" }
func (*Tokens) Version() int       { return 1 }
func (*Tokens) Prefixes() []string { return []string{prefixToken, prefixTokenAccount} }

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
			Hash: p.Hash, CreatedAt: p.CreatedAt, ExpiresAt: p.ExpiresAt, Seq: ev.Sequence, Version: ev.Sequence,
		}
		if err := tx.SetJSON([]byte(prefixToken+p.ID), rec); err != nil {
			return err
		}
		t.touched = append(t.touched, p.ID)
		return tx.Set(tokenByAccountKey(p.AccountID, p.Environment, ev.Sequence), []byte(p.ID))
	case events.TypeTokenRevoked:
		p, err := events.Decode[events.TokenRevoked](ev)
		if err != nil {
			return err
		}
		return t.update(tx, p.ID, ev.Sequence, func(r *TokenRecord) { r.RevokedAt = &p.RevokedAt })
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
	return tx.SetJSON([]byte(prefixToken+id), rec)
}

// Get returns the token with id. The record's slices are shared with the
// cache: callers must not modify them.
func (t *Tokens) Get(id string) (TokenRecord, bool, error) {
	r, ok, epoch := t.cache.get(id)
	if ok {
		return r, true, nil
	}
	ok, err := getJSON(t.db, []byte(prefixToken+id), &r)
	if ok && err == nil {
		t.cache.fill(id, r, epoch)
	}
	return r, ok, err
}

// ErrBadCursor is returned for a cursor this projection did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// Page is one page of a listing.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// ListByAccount lists an account's tokens of one environment in creation
// order, starting after cursor.
func (t *Tokens) ListByAccount(account, env, cursor string, limit int, keep func(TokenRecord) bool) (Page[TokenRecord], error) {
	limit = max(limit, 1)
	prefix := []byte(prefixTokenAccount + account + "/" + env + "/")
	lower := prefix
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(raw) != 8 || binary.BigEndian.Uint64(raw) == math.MaxUint64 {
			return Page[TokenRecord]{}, ErrBadCursor
		}
		lower = append(append([]byte(nil), prefix...), u64(binary.BigEndian.Uint64(raw)+1)...)
	}
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return Page[TokenRecord]{}, err
	}
	defer it.Close()
	var page Page[TokenRecord]
	for ok := it.First(); ok; ok = it.Next() {
		rec, found, err := t.Get(string(it.Value()))
		if err != nil {
			return page, err
		}
		if !found || (keep != nil && !keep(rec)) {
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
