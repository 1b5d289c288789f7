package api

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

type walletView struct {
	Balance             int64  `json:"balance"`
	Currency            string `json:"currency"`
	Environment         string `json:"environment"`
	Reserved            int64  `json:"reserved"`
	LowBalanceThreshold int64  `json:"low_balance_threshold"`
}

type transactionView struct {
	ID           string    `json:"id"`
	Amount       int64     `json:"amount"`
	BalanceAfter int64     `json:"balance_after"`
	Reason       string    `json:"reason"`
	TokenID      *string   `json:"token_id"`
	CreatedAt    time.Time `json:"created_at"`
}

func viewWallet(r projections.WalletRecord) walletView {
	var reserved int64
	for _, v := range r.Outstanding {
		reserved += v
	}
	return walletView{Balance: r.Balance, Currency: "credits", Environment: r.Environment, Reserved: reserved,
		LowBalanceThreshold: r.Threshold}
}

// walletTarget is the wallet a request acts on: the caller's account (or
// ?account_id= for admin) in the caller's environment.
func (a *API) walletTarget(c *fiber.Ctx) (string, string, error) {
	account, err := a.targetAccount(c)
	return account, principal(c).Environment, err
}

func (a *API) getWallet(c *fiber.Ctx) error {
	account, env, err := a.walletTarget(c)
	if err != nil {
		return err
	}
	rec, err := a.Wallets.Get(account, env)
	if err != nil {
		return err
	}
	return c.JSON(viewWallet(rec))
}

func (a *API) listTransactions(c *fiber.Ctx) error {
	account, env, err := a.walletTarget(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	page, err := a.Wallets.Transactions(account, env, c.Query("cursor"), limit)
	return sendPage(c, page, err, func(t projections.TransactionRecord) transactionView {
		v := transactionView{ID: t.ID, Amount: t.Amount, BalanceAfter: t.BalanceAfter, Reason: t.Reason, CreatedAt: t.CreatedAt}
		if t.TokenID != "" {
			id := t.TokenID
			v.TokenID = &id
		}
		return v
	})
}

type creditRequest struct {
	Amount int64  `json:"amount"`
	Reason string `json:"reason"`
}

// creditWallet tops a wallet up (wallet:write). Appended with
// ExpectAny: a credit never invalidates a lease.
func (a *API) creditWallet(c *fiber.Ctx) error {
	var req creditRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	account, env, err := a.walletTarget(c)
	if err != nil {
		return err
	}
	rec, err := a.Wallets.Get(account, env)
	if err != nil {
		return err
	}
	x := a.cmd(c)
	txID, err := domain.NewID(x.rand, "txn_", 20)
	if err != nil {
		return err
	}
	credited, err := walletOf(rec).Credit(txID, req.Amount, req.Reason, x.now)
	if err != nil {
		return err
	}
	meta, err := x.meta(events.AggregateWallet, events.WalletID(account, env), account, env)
	if err != nil {
		return err
	}
	ev, err := events.New(meta, credited)
	if err != nil {
		return err
	}
	if _, err := a.commit(c, events.Change{Event: ev}); err != nil {
		return err
	}
	after, err := a.Wallets.Get(account, env)
	if err != nil {
		return err
	}
	page, err := a.Wallets.Transactions(account, env, "", 50)
	if err != nil {
		return err
	}
	for _, t := range page.Items {
		if t.ID == txID {
			return c.Status(fiber.StatusCreated).JSON(transactionView{ID: t.ID, Amount: t.Amount,
				BalanceAfter: t.BalanceAfter, Reason: t.Reason, CreatedAt: t.CreatedAt})
		}
	}
	return c.Status(fiber.StatusCreated).JSON(transactionView{ID: txID, Amount: req.Amount, BalanceAfter: after.Balance,
		Reason: credited.Reason, CreatedAt: credited.CreditedAt})
}

type walletPatch struct {
	LowBalanceThreshold *int64 `json:"low_balance_threshold"`
}

// patchWallet sets the low-balance threshold (wallet:write).
func (a *API) patchWallet(c *fiber.Ctx) error {
	var req walletPatch
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.LowBalanceThreshold == nil {
		return invalidRequest("low_balance_threshold is required")
	}
	account, env, err := a.walletTarget(c)
	if err != nil {
		return err
	}
	rec, err := a.Wallets.Get(account, env)
	if err != nil {
		return err
	}
	set, err := walletOf(rec).SetThreshold(*req.LowBalanceThreshold)
	if err != nil {
		return err
	}
	meta, err := a.cmd(c).meta(events.AggregateWallet, events.WalletID(account, env), account, env)
	if err != nil {
		return err
	}
	ev, err := events.New(meta, set)
	if err != nil {
		return err
	}
	if _, err := a.commit(c, events.Change{Event: ev}); err != nil {
		return err
	}
	after, err := a.Wallets.Get(account, env)
	if err != nil {
		return err
	}
	return c.JSON(viewWallet(after))
}
