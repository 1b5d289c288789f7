package projections

import (
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// AccountRecord is the read model of an account.
type AccountRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Root      bool      `json:"root,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Version   uint64    `json:"version"`
}

// Accounts projects accounts by id and remembers the root account.
type Accounts struct {
	db      *pebble.DB
	cache   *recordCache[AccountRecord]
	touched []string
}

// NewAccounts returns the accounts projection on db.
func NewAccounts(db *pebble.DB) *Accounts {
	return &Accounts{db: db, cache: newRecordCache[AccountRecord](100_000)}
}

var _ Committer = (*Accounts)(nil)

func (a *Accounts) AfterCommit() {
	a.cache.invalidate(a.touched)
	a.touched = a.touched[:0]
}

func (a *Accounts) AfterReset() { a.cache.clear() }

var _ Projection = (*Accounts)(nil)

const (
	prefixAccount = "acc/"
	keyRootAcct   = "sys/root"
	keyRootToken  = "sys/roottoken"
)

func (*Accounts) Name() string       { return "accounts" }
func (*Accounts) Version() int       { return 1 }
func (*Accounts) Prefixes() []string { return []string{prefixAccount, "sys/"} }

func (a *Accounts) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeSystemBootstrapped:
		p, err := events.Decode[events.SystemBootstrapped](ev)
		if err != nil {
			return err
		}
		a.touched = append(a.touched, keyRootAcct, keyRootToken)
		if err := tx.Set([]byte(keyRootAcct), []byte(p.RootAccountID)); err != nil {
			return err
		}
		return tx.Set([]byte(keyRootToken), []byte(p.RootTokenID))
	case events.TypeAccountCreated:
		p, err := events.Decode[events.AccountCreated](ev)
		if err != nil {
			return err
		}
		a.touched = append(a.touched, p.ID)
		return tx.SetJSON([]byte(prefixAccount+p.ID), &AccountRecord{
			ID: p.ID, Name: p.Name, Root: p.Root, CreatedAt: p.CreatedAt, Version: ev.Sequence,
		})
	}
	return nil
}

// Get returns the account with id.
func (a *Accounts) Get(id string) (AccountRecord, bool, error) {
	return a.cache.load(a.db, prefixAccount, id)
}

// RootAccountID is the id of the bootstrapped root account, "" before bootstrap.
func (a *Accounts) RootAccountID() (string, error) {
	raw, _, err := get(a.db, []byte(keyRootAcct))
	return string(raw), err
}

// RootTokenID is the id of the root API key, "" before bootstrap.
func (a *Accounts) RootTokenID() (string, error) {
	r, ok, epoch := a.cache.get(keyRootToken)
	if ok {
		return r.ID, nil
	}
	raw, found, err := get(a.db, []byte(keyRootToken))
	if found && err == nil {
		a.cache.fill(keyRootToken, AccountRecord{ID: string(raw)}, epoch)
	}
	return string(raw), err
}
