package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

func i64(v int64) *int64 { return &v }

func TestTokenRotate(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tok := domain.Token{ID: "tok_1", AccountID: "acc_1", Hash: "h1", RefreshHash: "r1", SpentRefreshHashes: []string{"r0"}}
	if _, err := tok.Rotate("r0", "h2", "r2", 0, at); !errors.Is(err, domain.ErrRefreshReuse) {
		t.Fatalf("spent refresh token: %v", err)
	}
	if _, err := tok.Rotate("rX", "h2", "r2", 0, at); !errors.Is(err, domain.ErrRefreshInvalid) {
		t.Fatalf("foreign refresh token: %v", err)
	}
	var verr *domain.ValidationError
	if _, err := tok.Rotate("r1", "h2", "r2", domain.MaxGracePeriod+time.Second, at); !errors.As(err, &verr) {
		t.Fatalf("grace over the maximum: %v", err)
	}
	r, err := tok.Rotate("r1", "h2", "r2", time.Minute, at)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash != "h2" || r.RefreshHash != "r2" || r.SpentRefreshHash != "r1" || r.PreviousHash != "h1" ||
		r.PreviousValidUntil == nil || !r.PreviousValidUntil.Equal(at.Add(time.Minute)) {
		t.Fatalf("rotation %+v", r)
	}
	if r, _ := tok.Rotate("r1", "h2", "r2", 0, at); r.PreviousValidUntil != nil {
		t.Fatal("no grace still keeps the old value")
	}
	tok.RevokedAt = &at
	if _, err := tok.Rotate("r1", "h2", "r2", 0, at); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("rotating a revoked token: %v", err)
	}
}

func TestTokenLeases(t *testing.T) {
	t.Parallel()
	at := time.Now()
	tok := domain.Token{ID: "tok_1", Limits: events.TokenLimits{TotalRequests: i64(100), WalletAmount: i64(50)},
		Used: events.Quota{Requests: 40, Credits: 45}, Leases: map[string]events.Quota{"l1": {Requests: 50}}}
	if a := tok.Available(); a.Requests != 10 || a.PaidRequests != -1 || a.Credits != 5 {
		t.Fatalf("available %+v", a)
	}
	l, err := tok.Lease("l2", "n1", events.Quota{Requests: 30, PaidRequests: 7, Credits: 3}, at, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Capped dimensions grant what is left; an uncapped one grants nothing.
	if l.Granted != (events.Quota{Requests: 10, Credits: 3}) || l.Node != "n1" || !l.ExpiresAt.Equal(at.Add(time.Minute).UTC()) {
		t.Fatalf("lease %+v", l)
	}
	tok.Leases["l2"] = l.Granted
	if _, err := tok.Lease("l3", "n1", events.Quota{Requests: 1}, at, time.Minute); !errors.Is(err, domain.ErrQuotaExhausted) {
		t.Fatalf("lease beyond the limit: %v", err)
	}
	if !tok.Limited() || (domain.Token{}).Limited() {
		t.Fatal("Limited")
	}
}

func TestWalletGrantAndSettle(t *testing.T) {
	t.Parallel()
	at := time.Now()
	w := domain.Wallet{AccountID: "acc_1", Environment: "live", Balance: 100, Threshold: 50,
		Outstanding: map[string]int64{"a": 60}}
	if w.Available() != 40 {
		t.Fatalf("available %d", w.Available())
	}
	if _, err := w.Grant("b", "n2", 41, 41, at, time.Minute); !errors.Is(err, domain.ErrInsufficientFunds) {
		t.Fatalf("grant beyond the balance: %v", err)
	}
	g, err := w.Grant("b", "n2", 5, 1000, at, time.Minute)
	if err != nil || g.Amount != 40 {
		t.Fatalf("grant %+v %v", g, err)
	}
	if _, _, err := w.Settle("a", []events.TokenSpend{{TokenID: "t", Amount: 61}}, false, at); err == nil {
		t.Fatal("settled more than the lease")
	}
	s, low, err := w.Settle("a", []events.TokenSpend{{TokenID: "t", Amount: 60, Calls: 6}}, true, at)
	if err != nil || !s.Close || low == nil || low.Balance != 40 {
		t.Fatalf("settle %+v low %+v err %v", s, low, err)
	}
	w.Low = true
	if _, low, _ := w.Settle("a", []events.TokenSpend{{TokenID: "t", Amount: 60}}, true, at); low != nil {
		t.Fatal("wallet.low twice without a new crossing")
	}
	if _, _, err := w.Settle("zzz", nil, true, at); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown lease: %v", err)
	}
	var verr *domain.ValidationError
	if _, err := w.Credit("txn_1", 0, "", at); !errors.As(err, &verr) {
		t.Fatalf("zero credit: %v", err)
	}
	if c, err := w.Credit("txn_1", 5, "", at); err != nil || c.Reason != "credit" {
		t.Fatalf("credit %+v %v", c, err)
	}
}
