package api

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

// walletLease is this node's reservation of an account's credits, spent in
// memory and settled to the ledger periodically.
type walletLease struct {
	mu       sync.Mutex
	id       string
	left     int64
	spent    map[string]int64 // by token, since the last settlement
	calls    map[string]int64
	lastUsed time.Time
}

func (m *quotaManager) walletLease(account, env string) *walletLease {
	key := events.WalletID(account, env)
	if l, ok := m.wallets.Load(key); ok {
		return l.(*walletLease)
	}
	l, _ := m.wallets.LoadOrStore(key, &walletLease{spent: map[string]int64{}, calls: map[string]int64{}})
	return l.(*walletLease)
}

func walletOf(r projections.WalletRecord) domain.Wallet {
	return domain.Wallet{AccountID: r.AccountID, Environment: r.Environment, Balance: r.Balance,
		Outstanding: r.Outstanding, Threshold: r.Threshold, Low: r.Low, Version: r.Version}
}

// spendWallet takes cost credits from the token's account wallet, leasing
// more when this node's lease runs short. ok is false when the wallet
// cannot cover the cost.
func (m *quotaManager) spendWallet(ctx context.Context, tok domain.Token, cost int64, now time.Time) (bool, error) {
	wl := m.walletLease(tok.AccountID, tok.Environment)
	wl.mu.Lock()
	defer wl.mu.Unlock()
	for attempt := 0; attempt < maxLeaseAttempts; attempt++ {
		if attempt > 0 {
			backoffJitter(attempt)
		}
		if wl.left >= cost {
			wl.left -= cost
			wl.spent[tok.ID] += cost
			wl.calls[tok.ID]++
			wl.lastUsed = now
			return true, nil
		}
		rec, err := m.a.Wallets.Get(tok.AccountID, tok.Environment)
		if err != nil {
			return false, err
		}
		w := walletOf(rec)
		need := cost - wl.left
		want := max(need, min(w.Available()/8, 1000*cost))
		if wl.id == "" {
			if wl.id, err = domain.NewID(m.a.Rand, "wls_", 20); err != nil {
				return false, err
			}
		}
		grant, err := w.Grant(wl.id, m.node, need, want, now, m.ttl)
		if errors.Is(err, domain.ErrInsufficientFunds) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		actx, cancel := context.WithTimeout(ctx, m.a.cfg.WriteTimeout)
		err = m.appendWallet(actx, w, grant)
		cancel()
		switch {
		case err == nil:
			wl.left += grant.Amount
		case !errors.Is(err, events.ErrConflict):
			return false, err
		}
	}
	return false, errors.New("wallet lease: too much contention")
}

// maxLeaseAttempts bounds how often a node retries a lease or settlement
// that lost a race on the same wallet or token.
const maxLeaseAttempts = 50

// backoffJitter sleeps a little, more after more lost races, so racing
// nodes spread out.
func backoffJitter(attempt int) {
	d := time.Duration(min(attempt, 10)) * time.Millisecond
	time.Sleep(d/2 + time.Duration(time.Now().UnixNano()%int64(d/2+1)))
}

// appendWallet appends wallet events expecting the wallet's version, then
// waits for this node's projection; on a conflict it catches up first.
func (m *quotaManager) appendWallet(ctx context.Context, w domain.Wallet, payloads ...events.Payload) error {
	id := events.WalletID(w.AccountID, w.Environment)
	changes := make([]events.Change, 0, len(payloads))
	x := cmdCtx{rand: m.a.Rand, now: m.a.Now(), actor: "node:" + m.node}
	for i, p := range payloads {
		meta, err := x.meta(events.AggregateWallet, id, w.AccountID, w.Environment)
		if err != nil {
			return err
		}
		ev, err := events.New(meta, p)
		if err != nil {
			return err
		}
		expect := events.ExpectVersion(w.Version)
		if i > 0 {
			expect = events.ExpectAny // same aggregate, same atomic batch
		}
		changes = append(changes, events.Change{Event: ev, Expect: expect})
	}
	res, err := m.a.Store.Append(ctx, changes...)
	if errors.Is(err, events.ErrConflict) {
		seq, lerr := m.a.Store.LastSequence(ctx, events.AggregateWallet, id)
		if lerr == nil {
			lerr = m.a.Projector.WaitFor(ctx, seq)
		}
		return errors.Join(err, lerr)
	}
	if err != nil {
		return err
	}
	return m.a.Projector.WaitFor(ctx, res.Last())
}

// settleWallets debits what this node spent and closes leases idle for
// closeIdle (all of them with closeIdle 0).
func (m *quotaManager) settleWallets(ctx context.Context, closeIdle time.Duration) error {
	var errs []error
	now := m.a.Now()
	m.wallets.Range(func(_, v any) bool {
		wl := v.(*walletLease)
		wl.mu.Lock()
		defer wl.mu.Unlock()
		if wl.id == "" {
			return true
		}
		closing := now.Sub(wl.lastUsed) >= closeIdle
		if len(wl.spent) == 0 && !closing {
			return true
		}
		if err := m.settle(ctx, wl, closing, now); err != nil {
			errs = append(errs, err)
		}
		return true
	})
	return errors.Join(errs...)
}

func (m *quotaManager) settle(ctx context.Context, wl *walletLease, closing bool, now time.Time) error {
	var account, env string
	spends := make([]events.TokenSpend, 0, len(wl.spent))
	for tokenID, amount := range wl.spent {
		spends = append(spends, events.TokenSpend{TokenID: tokenID, Amount: amount, Calls: wl.calls[tokenID]})
	}
	sort.Slice(spends, func(i, j int) bool { return spends[i].TokenID < spends[j].TokenID })
	// The lease's wallet is named by any token's record; find it once.
	var rec projections.WalletRecord
	found := false
	m.wallets.Range(func(k, v any) bool {
		if v.(*walletLease) == wl {
			account, env = splitWalletID(k.(string))
			found = true
			return false
		}
		return true
	})
	if !found {
		return nil
	}
	for attempt := 0; attempt < maxLeaseAttempts; attempt++ {
		if attempt > 0 {
			backoffJitter(attempt)
		}
		var err error
		if rec, err = m.a.Wallets.Get(account, env); err != nil {
			return err
		}
		w := walletOf(rec)
		settled, low, err := w.Settle(wl.id, spends, closing, now)
		if errors.Is(err, domain.ErrNotFound) {
			// The lease was released (say, by a restart): nothing to settle.
			wl.id, wl.left, wl.spent, wl.calls = "", 0, map[string]int64{}, map[string]int64{}
			return nil
		}
		if err != nil {
			return err
		}
		if !closing {
			renew := now.Add(m.ttl).UTC()
			settled.RenewUntil = &renew
		}
		payloads := []events.Payload{settled}
		if low != nil {
			payloads = append(payloads, *low)
		}
		actx, cancel := context.WithTimeout(ctx, m.a.cfg.WriteTimeout)
		err = m.appendWallet(actx, w, payloads...)
		cancel()
		if errors.Is(err, events.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		wl.spent, wl.calls = map[string]int64{}, map[string]int64{}
		if closing {
			wl.id, wl.left = "", 0
		}
		return nil
	}
	return errors.New("wallet settlement: too much contention")
}

func splitWalletID(id string) (account, env string) {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '-' {
			return id[:i], id[i+1:]
		}
	}
	return id, ""
}

// ReleaseOwnWalletLeases gives back the wallet leases a previous run of
// this node held (after a crash): what they spent since their last
// settlement is not charged, the rest is free again.
func (a *API) ReleaseOwnWalletLeases(ctx context.Context) error {
	recs, err := a.Wallets.WithLeasesOf(a.cfg.NodeID)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range recs {
		for leaseID, node := range r.LeaseNodes {
			if node != a.cfg.NodeID {
				continue
			}
			rel := events.WalletLeaseReleased{AccountID: r.AccountID, Environment: r.Environment, LeaseID: leaseID,
				Reason: "node restarted", ReleasedAt: a.Now().UTC()}
			var err error
			for attempt := 0; attempt < maxLeaseAttempts; attempt++ {
				if err = a.quota.appendWallet(ctx, walletOf(r), rel); !errors.Is(err, events.ErrConflict) {
					break
				}
				backoffJitter(attempt + 1)
				if r, err = a.Wallets.Get(r.AccountID, r.Environment); err != nil {
					break
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// leaseGrace is how long past its expiry a lease is left alone before
// another node releases it.
const leaseGrace = 30 * time.Second

// ExpireLeases releases leases whose holder stopped renewing them (a node
// that died and has not come back): their credit and quota are free again.
// Any node may do it; a lost race is skipped until the next round.
func (a *API) ExpireLeases(ctx context.Context) error {
	now := a.Now()
	var errs []error
	wallets, err := a.Wallets.WithLeasesOf("")
	if err != nil {
		return err
	}
	for _, r := range wallets {
		for leaseID, until := range r.LeaseExpiry {
			if now.Before(until.Add(leaseGrace)) {
				continue
			}
			rel := events.WalletLeaseReleased{AccountID: r.AccountID, Environment: r.Environment, LeaseID: leaseID,
				Reason: "expired", ReleasedAt: now.UTC()}
			if err := a.quota.appendWallet(ctx, walletOf(r), rel); err != nil && !errors.Is(err, events.ErrConflict) {
				errs = append(errs, err)
			}
			break // the version changed: the next round sees the rest
		}
	}
	tokens, err := a.Tokens.WithLeasesOf("")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range tokens {
		for leaseID, until := range r.LeaseExpiry {
			if now.Before(until.Add(leaseGrace)) {
				continue
			}
			ret := events.QuotaReturned{ID: r.ID, LeaseID: leaseID, Reason: "expired", ReturnedAt: now.UTC()}
			if err := a.appendToken(ctx, r, ret, "node:"+a.cfg.NodeID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
