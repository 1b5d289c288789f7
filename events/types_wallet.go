package events

import "time"

// Wallet aggregate: one per account and environment, id WalletID(account, env).
const (
	AggregateWallet = "wallet"

	TypeWalletCredited      = "wallet.credited"
	TypeWalletThresholdSet  = "wallet.threshold_set"
	TypeWalletLeaseGranted  = "wallet.lease_granted"
	TypeWalletLeaseSettled  = "wallet.lease_settled"
	TypeWalletLeaseReleased = "wallet.lease_released"
	TypeWalletLow           = "wallet.low"
)

// WalletID is the aggregate id of an account's wallet in one environment.
func WalletID(account, env string) string { return account + "-" + env }

// WalletCredited adds credits (a top-up).
type WalletCredited struct {
	AccountID     string    `json:"account_id"`
	Environment   string    `json:"environment"`
	TransactionID string    `json:"transaction_id"`
	Amount        int64     `json:"amount"`
	Reason        string    `json:"reason"`
	CreditedAt    time.Time `json:"credited_at"`
}

func (WalletCredited) EventType() string { return TypeWalletCredited }
func (WalletCredited) EventVersion() int { return 1 }

// WalletThresholdSet sets the balance below which wallet.low is emitted
// (once per crossing); 0 disables it.
type WalletThresholdSet struct {
	AccountID   string `json:"account_id"`
	Environment string `json:"environment"`
	Threshold   int64  `json:"threshold"`
}

func (WalletThresholdSet) EventType() string { return TypeWalletThresholdSet }
func (WalletThresholdSet) EventVersion() int { return 1 }

// WalletLeaseGranted reserves credits for one node, which spends them
// without a round trip per paid request. Appended with an expectation on
// the wallet's version: leases never exceed the balance.
type WalletLeaseGranted struct {
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	LeaseID     string    `json:"lease_id"`
	Node        string    `json:"node"`
	Amount      int64     `json:"amount"`
	GrantedAt   time.Time `json:"granted_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (WalletLeaseGranted) EventType() string { return TypeWalletLeaseGranted }
func (WalletLeaseGranted) EventVersion() int { return 1 }

// TokenSpend is what one token spent under a lease.
type TokenSpend struct {
	TokenID string `json:"token_id"`
	Amount  int64  `json:"amount"`
	Calls   int64  `json:"calls"`
}

// WalletLeaseSettled debits what was spent under a lease (one ledger entry
// per token) and, with Close, gives the rest of the lease back.
type WalletLeaseSettled struct {
	AccountID   string       `json:"account_id"`
	Environment string       `json:"environment"`
	LeaseID     string       `json:"lease_id"`
	Spent       []TokenSpend `json:"spent"`
	Close       bool         `json:"close"`
	SettledAt   time.Time    `json:"settled_at"`
	// RenewUntil extends an open lease: a lease not renewed expires and any
	// node may release it (its holder is presumed dead).
	RenewUntil *time.Time `json:"renew_until,omitempty"`
}

func (WalletLeaseSettled) EventType() string { return TypeWalletLeaseSettled }
func (WalletLeaseSettled) EventVersion() int { return 1 }

// WalletLeaseReleased gives a lease back without a settlement: its node
// restarted or the lease expired. What it spent since its last settlement
// is not charged.
type WalletLeaseReleased struct {
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	LeaseID     string    `json:"lease_id"`
	Reason      string    `json:"reason"`
	ReleasedAt  time.Time `json:"released_at"`
}

func (WalletLeaseReleased) EventType() string { return TypeWalletLeaseReleased }
func (WalletLeaseReleased) EventVersion() int { return 1 }

// WalletLow: the balance crossed below the account's threshold.
type WalletLow struct {
	AccountID   string    `json:"account_id"`
	Environment string    `json:"environment"`
	Balance     int64     `json:"balance"`
	Threshold   int64     `json:"threshold"`
	At          time.Time `json:"at"`
}

func (WalletLow) EventType() string { return TypeWalletLow }
func (WalletLow) EventVersion() int { return 1 }
