package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

type walletOut struct {
	Balance             int64  `json:"balance"`
	Currency            string `json:"currency"`
	Environment         string `json:"environment"`
	Reserved            int64  `json:"reserved"`
	LowBalanceThreshold int64  `json:"low_balance_threshold"`
}

type txnOut struct {
	ID           string  `json:"id"`
	Amount       int64   `json:"amount"`
	BalanceAfter int64   `json:"balance_after"`
	Reason       string  `json:"reason"`
	TokenID      *string `json:"token_id"`
}

// ledger reads every transaction, newest first.
func ledger(t *testing.T, c *tollgatetest.Client, query string) []txnOut {
	t.Helper()
	var all []txnOut
	cursor := ""
	for {
		var page struct {
			Data       []txnOut `json:"data"`
			NextCursor *string  `json:"next_cursor"`
		}
		c.Do(t, "GET", "/wallet/transactions?limit=7&cursor="+cursor+query, nil).JSON(t, &page)
		all = append(all, page.Data...)
		if page.NextCursor == nil {
			return all
		}
		cursor = *page.NextCursor
	}
}

func TestWalletCreditsDebitsAndLedger(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	n := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	acc := newAccount(t, root, "payer")
	owner := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)
	q := "&account_id=" + acc.ID

	// The account's own key may read but not credit its wallet.
	if r := owner.Do(t, "POST", "/wallet/credits", map[string]any{"amount": 10}); r.Status != 403 {
		t.Fatalf("self-credit: %d", r.Status)
	}
	for _, bad := range []string{`{"amount":0}`, `{"amount":-5}`, `{"amount":"ten"}`, `{"amount":5,"currency":"usd"}`} {
		if r := root.Do(t, "POST", "/wallet/credits?account_id="+acc.ID, []byte(bad), "Content-Type", "application/json"); r.Status != 400 {
			t.Fatalf("credit %s: %d %s", bad, r.Status, r.Body)
		}
	}
	credit := func(amount int64, key string) {
		r := root.Do(t, "POST", "/wallet/credits?account_id="+acc.ID, map[string]any{"amount": amount, "reason": "top-up"}, "Idempotency-Key", key)
		if r.Status != 201 {
			t.Fatalf("credit: %d %s", r.Status, r.Body)
		}
	}
	credit(10, "k1")
	credit(10, "k1") // a retry: credited once
	var w walletOut
	owner.Do(t, "GET", "/wallet", nil).JSON(t, &w)
	if w.Balance != 10 || w.Currency != "credits" || w.Environment != "live" {
		t.Fatalf("wallet after one credit of 10: %+v", w)
	}

	// wallet.low once per crossing.
	low := make(chan *nats.Msg, 8)
	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.ChanSubscribe("tollgate.events.wallet.*.wallet.low", low); err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()
	if r := owner.Do(t, "PATCH", "/wallet", map[string]any{"low_balance_threshold": 5}); r.Status != 403 {
		t.Fatalf("threshold by the account's own key: %d", r.Status)
	}
	if r := root.Do(t, "PATCH", "/wallet?account_id="+acc.ID, map[string]any{"low_balance_threshold": 5}); r.Status != 200 {
		t.Fatalf("threshold: %d %s", r.Status, r.Body)
	}

	// Paid verifies: cost 3 against 10 credits: 3 succeed, then funds run out.
	tn := tenant{acc: acc, owner: owner, base: n.URL()}
	tok := tn.token(t, map[string]any{})
	var codes []string
	for i := 0; i < 5; i++ {
		codes = append(codes, tn.verify(t, map[string]any{"token": tok.Token, "cost": 3}).Code)
	}
	if strings.Join(codes, ",") != "VALID,VALID,VALID,INSUFFICIENT_FUNDS,INSUFFICIENT_FUNDS" {
		t.Fatalf("verdicts %v", codes)
	}
	// Settlement reaches the ledger within a couple of seconds.
	tollgatetest.Eventually(t, 5*time.Second, func() bool {
		owner.Do(t, "GET", "/wallet", nil).JSON(t, &w)
		return w.Balance == 1
	}, "balance 10 - 3×3 = 1 after settlement")
	entries := ledger(t, owner, "")
	var sum int64
	for _, e := range entries {
		sum += e.Amount
	}
	if sum != w.Balance || entries[0].BalanceAfter != w.Balance {
		t.Fatalf("ledger %+v sums to %d, balance %d", entries, sum, w.Balance)
	}
	debit := entries[0]
	if debit.Amount != -9 || debit.TokenID == nil || *debit.TokenID != tok.ID {
		t.Fatalf("debit entry %+v", debit)
	}
	select {
	case m := <-low:
		var ev struct {
			Data struct{ Balance, Threshold int64 } `json:"data"`
		}
		_ = json.Unmarshal(m.Data, &ev)
		if ev.Data.Balance != 1 || ev.Data.Threshold != 5 {
			t.Fatalf("wallet.low %s", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wallet.low after crossing the threshold")
	}
	// Below the threshold already: no second event until a credit re-arms it.
	credit(100, "k2")
	for i := 0; i < 33; i++ {
		if v := tn.verify(t, map[string]any{"token": tok.Token, "cost": 3}); v.Code != "VALID" {
			t.Fatalf("spend %d: %s", i, v.Code)
		}
	}
	tollgatetest.Eventually(t, 5*time.Second, func() bool {
		owner.Do(t, "GET", "/wallet", nil).JSON(t, &w)
		return w.Balance == 2
	}, "balance 101 - 99 = 2")
	select {
	case <-low:
	case <-time.After(5 * time.Second):
		t.Fatal("no wallet.low after the second crossing")
	}
	select {
	case m := <-low:
		t.Fatalf("a third wallet.low: %s", m.Data)
	case <-time.After(300 * time.Millisecond):
	}

	// Sandbox has its own wallet.
	sb := tn.token(t, map[string]any{"environment": "test"})
	if v := tn.verify(t, map[string]any{"token": sb.Token, "cost": 1}); v.Code != "INSUFFICIENT_FUNDS" {
		t.Fatalf("sandbox token spending production credit: %s", v.Code)
	}
	_ = q
}
