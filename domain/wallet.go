package domain

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/events"
)

// ErrInsufficientFunds: the wallet cannot cover the amount.
var ErrInsufficientFunds = errors.New("insufficient funds")

// MaxCredit bounds one top-up.
const MaxCredit = 1_000_000_000_000

// Wallet holds an account's credits in one environment. Balance is what
// was credited minus what was settled; Outstanding is reserved by node
// leases and not yet settled.
type Wallet struct {
	AccountID   string
	Environment string
	Balance     int64
	Outstanding map[string]int64
	Threshold   int64
	Low         bool
	Version     uint64
}

// Available is what may still be leased.
func (w Wallet) Available() int64 {
	avail := w.Balance
	for _, v := range w.Outstanding {
		avail -= v
	}
	return max(avail, 0)
}

// Credit validates a top-up.
func (w Wallet) Credit(txID string, amount int64, reason string, now time.Time) (events.WalletCredited, error) {
	var v validation
	if amount < 1 || amount > MaxCredit {
		v.add("amount", "must be from 1 to %d credits", int64(MaxCredit))
	}
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > 200 {
		v.add("reason", "must be at most 200 characters")
	}
	if err := v.err(); err != nil {
		return events.WalletCredited{}, err
	}
	if reason == "" {
		reason = "credit"
	}
	return events.WalletCredited{AccountID: w.AccountID, Environment: w.Environment, TransactionID: txID,
		Amount: amount, Reason: reason, CreditedAt: now.UTC()}, nil
}

// SetThreshold validates the low-balance threshold.
func (w Wallet) SetThreshold(threshold int64) (events.WalletThresholdSet, error) {
	if threshold < 0 || threshold > MaxCredit {
		return events.WalletThresholdSet{}, &ValidationError{Problems: []FieldProblem{{Field: "low_balance_threshold", Message: "must be from 0 to 1000000000000"}}}
	}
	return events.WalletThresholdSet{AccountID: w.AccountID, Environment: w.Environment, Threshold: threshold}, nil
}

// Grant reserves up to want credits (at least need) for a node's lease.
func (w Wallet) Grant(leaseID, node string, need, want int64, now time.Time, ttl time.Duration) (events.WalletLeaseGranted, error) {
	avail := w.Available()
	if avail < need || need < 1 {
		return events.WalletLeaseGranted{}, ErrInsufficientFunds
	}
	return events.WalletLeaseGranted{AccountID: w.AccountID, Environment: w.Environment, LeaseID: leaseID, Node: node,
		Amount: min(max(want, need), avail), GrantedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()}, nil
}

// Settle debits what a lease spent. It also returns wallet.low when this
// settlement takes the balance below the threshold.
func (w Wallet) Settle(leaseID string, spent []events.TokenSpend, close bool, now time.Time) (events.WalletLeaseSettled, *events.WalletLow, error) {
	out, ok := w.Outstanding[leaseID]
	if !ok {
		return events.WalletLeaseSettled{}, nil, ErrNotFound
	}
	var total int64
	for _, s := range spent {
		total += s.Amount
	}
	if total > out {
		return events.WalletLeaseSettled{}, nil, errors.New("settlement exceeds its lease")
	}
	settled := events.WalletLeaseSettled{AccountID: w.AccountID, Environment: w.Environment, LeaseID: leaseID,
		Spent: spent, Close: close, SettledAt: now.UTC()}
	after := w.Balance - total
	if w.Threshold > 0 && !w.Low && after < w.Threshold {
		return settled, &events.WalletLow{AccountID: w.AccountID, Environment: w.Environment, Balance: after,
			Threshold: w.Threshold, At: now.UTC()}, nil
	}
	return settled, nil, nil
}
