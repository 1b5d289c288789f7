package projections

import (
	"encoding/base64"
	"fmt"

	"time"

	json "github.com/goccy/go-json"

	"github.com/cockroachdb/pebble"

	"github.com/tollgate/tollgate/events"
)

// WalletRecord is the read model of a wallet. Balance is credited minus
// settled; Outstanding is reserved by node leases.
type WalletRecord struct {
	AccountID   string            `json:"account_id"`
	Environment string            `json:"environment"`
	Balance     int64             `json:"balance"`
	Outstanding map[string]int64  `json:"outstanding,omitempty"`
	LeaseNodes  map[string]string `json:"lease_nodes,omitempty"`
	// LeaseExpiry: a lease not renewed by then may be released by anyone.
	LeaseExpiry map[string]time.Time `json:"lease_expiry,omitempty"`
	Threshold   int64                `json:"threshold"`
	Low         bool                 `json:"low"`
	Version     uint64               `json:"version"`
}

// TransactionRecord is one ledger entry: credits positive, debits negative.
type TransactionRecord struct {
	ID           string    `json:"id"`
	Amount       int64     `json:"amount"`
	BalanceAfter int64     `json:"balance_after"`
	Reason       string    `json:"reason"`
	TokenID      string    `json:"token_id,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Wallets projects wallets and their ledgers.
type Wallets struct {
	db      *pebble.DB
	cache   *recordCache[WalletRecord]
	touched []string
}

// NewWallets returns the wallets projection on db.
func NewWallets(db *pebble.DB) *Wallets {
	return &Wallets{db: db, cache: newRecordCache[WalletRecord](100_000)}
}

var (
	_ Projection = (*Wallets)(nil)
	_ Committer  = (*Wallets)(nil)
)

const (
	prefixWallet    = "wal/"
	prefixWalletTxn = "walt/"
)

func (*Wallets) Name() string       { return "wallets" }
func (*Wallets) Version() int       { return 2 }
func (*Wallets) Prefixes() []string { return []string{prefixWallet, prefixWalletTxn} }

func (w *Wallets) AfterCommit() {
	w.cache.invalidate(w.touched)
	w.touched = w.touched[:0]
}

func (w *Wallets) AfterReset() { w.cache.clear() }

func walletKey(account, env string) string { return prefixWallet + account + "/" + env }

func txnPrefix(account, env string) []byte {
	return []byte(prefixWalletTxn + account + "/" + env + "/")
}

func (w *Wallets) Apply(tx *Tx, ev events.Event) error {
	switch ev.Type {
	case events.TypeWalletCredited:
		p, err := events.Decode[events.WalletCredited](ev)
		if err != nil {
			return err
		}
		return w.update(tx, p.AccountID, p.Environment, ev.Sequence, func(r *WalletRecord) error {
			r.Balance += p.Amount
			if r.Balance >= r.Threshold {
				r.Low = false // armed again for the next crossing
			}
			return w.ledger(tx, r, ev.Sequence, 0, TransactionRecord{ID: p.TransactionID, Amount: p.Amount,
				Reason: p.Reason, CreatedAt: p.CreditedAt})
		})
	case events.TypeWalletThresholdSet:
		p, err := events.Decode[events.WalletThresholdSet](ev)
		if err != nil {
			return err
		}
		return w.update(tx, p.AccountID, p.Environment, ev.Sequence, func(r *WalletRecord) error {
			r.Threshold = p.Threshold
			r.Low = r.Threshold > 0 && r.Balance < r.Threshold && r.Low
			return nil
		})
	case events.TypeWalletLeaseGranted:
		p, err := events.Decode[events.WalletLeaseGranted](ev)
		if err != nil {
			return err
		}
		return w.update(tx, p.AccountID, p.Environment, ev.Sequence, func(r *WalletRecord) error {
			if r.Outstanding == nil {
				r.Outstanding, r.LeaseNodes = map[string]int64{}, map[string]string{}
			}
			if r.LeaseExpiry == nil {
				r.LeaseExpiry = map[string]time.Time{}
			}
			r.Outstanding[p.LeaseID] += p.Amount
			r.LeaseNodes[p.LeaseID] = p.Node
			r.LeaseExpiry[p.LeaseID] = p.ExpiresAt
			return nil
		})
	case events.TypeWalletLeaseSettled:
		p, err := events.Decode[events.WalletLeaseSettled](ev)
		if err != nil {
			return err
		}
		return w.update(tx, p.AccountID, p.Environment, ev.Sequence, func(r *WalletRecord) error {
			for i, s := range p.Spent {
				r.Balance -= s.Amount
				r.Outstanding[p.LeaseID] -= s.Amount
				reason := fmt.Sprintf("usage: %d paid calls", s.Calls)
				if err := w.ledger(tx, r, ev.Sequence, i, TransactionRecord{ID: fmt.Sprintf("txn_%d_%d", ev.Sequence, i),
					Amount: -s.Amount, Reason: reason, TokenID: s.TokenID, CreatedAt: p.SettledAt}); err != nil {
					return err
				}
			}
			if p.Close {
				delete(r.Outstanding, p.LeaseID)
				delete(r.LeaseNodes, p.LeaseID)
				delete(r.LeaseExpiry, p.LeaseID)
			} else if p.RenewUntil != nil && r.LeaseExpiry != nil {
				r.LeaseExpiry[p.LeaseID] = *p.RenewUntil
			}
			return nil
		})
	case events.TypeWalletLeaseReleased:
		p, err := events.Decode[events.WalletLeaseReleased](ev)
		if err != nil {
			return err
		}
		return w.update(tx, p.AccountID, p.Environment, ev.Sequence, func(r *WalletRecord) error {
			delete(r.Outstanding, p.LeaseID)
			delete(r.LeaseNodes, p.LeaseID)
			delete(r.LeaseExpiry, p.LeaseID)
			return nil
		})
	case events.TypeWalletLow:
		p, err := events.Decode[events.WalletLow](ev)
		if err != nil {
			return err
		}
		return w.update(tx, p.AccountID, p.Environment, ev.Sequence, func(r *WalletRecord) error {
			r.Low = true
			return nil
		})
	}
	return nil
}

func (w *Wallets) update(tx *Tx, account, env string, seq uint64, change func(*WalletRecord) error) error {
	key := walletKey(account, env)
	rec := WalletRecord{AccountID: account, Environment: env}
	if _, err := tx.GetJSON([]byte(key), &rec); err != nil {
		return err
	}
	if err := change(&rec); err != nil {
		return err
	}
	rec.Version = seq
	w.touched = append(w.touched, key)
	return tx.SetJSON([]byte(key), &rec)
}

// ledger appends an entry with the balance after it, keyed by stream
// sequence and position so the order is the order of the log.
func (w *Wallets) ledger(tx *Tx, r *WalletRecord, seq uint64, idx int, t TransactionRecord) error {
	t.BalanceAfter = r.Balance
	key := append(append(txnPrefix(r.AccountID, r.Environment), u64(seq)...), byte(idx>>8), byte(idx))
	return tx.SetJSON(key, t)
}

// Get returns the wallet of an account in an environment; a wallet never
// credited is empty, not missing.
func (w *Wallets) Get(account, env string) (WalletRecord, error) {
	key := walletKey(account, env)
	r, ok, epoch := w.cache.get(key)
	if ok {
		return r, nil
	}
	r = WalletRecord{AccountID: account, Environment: env}
	found, err := getJSON(w.db, []byte(key), &r)
	if err == nil && found {
		w.cache.fill(key, r, epoch)
	}
	return r, err
}

// Transactions lists the ledger newest first, starting after cursor.
func (w *Wallets) Transactions(account, env, cursor string, limit int) (Page[TransactionRecord], error) {
	limit = max(limit, 1)
	prefix := txnPrefix(account, env)
	upper := prefixEnd(prefix)
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || len(raw) != 10 {
			return Page[TransactionRecord]{}, ErrBadCursor
		}
		upper = append(append([]byte(nil), prefix...), raw...)
	}
	it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return Page[TransactionRecord]{}, err
	}
	defer it.Close()
	var page Page[TransactionRecord]
	var lastKey []byte
	for ok := it.Last(); ok; ok = it.Prev() {
		if len(page.Items) == limit {
			page.NextCursor = base64.RawURLEncoding.EncodeToString(lastKey[len(prefix):])
			break
		}
		var t TransactionRecord
		if err := json.Unmarshal(it.Value(), &t); err != nil {
			return page, err
		}
		page.Items = append(page.Items, t)
		lastKey = append(lastKey[:0], it.Key()...)
	}
	return page, it.Error()
}

// WithLeasesOf lists the wallets in which node holds a lease ("" for any
// node).
func (w *Wallets) WithLeasesOf(node string) ([]WalletRecord, error) {
	it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefixWallet), UpperBound: prefixEnd([]byte(prefixWallet))})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []WalletRecord
	for ok := it.First(); ok; ok = it.Next() {
		var r WalletRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, err
		}
		for _, n := range r.LeaseNodes {
			if n == node || node == "" {
				out = append(out, r)
				break
			}
		}
	}
	return out, it.Error()
}
