package projections

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// The compact view must decide exactly as the aggregate does.
func TestTokenAuthDecidesAsTheAggregate(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Minute), now.Add(-time.Minute)
	n := int64(5)
	records := map[string]TokenRecord{
		"plain":         {},
		"expires later": {ExpiresAt: &later},
		"expired":       {ExpiresAt: &earlier},
		"expires now":   {ExpiresAt: &now},
		"revoked":       {RevokedAt: &earlier, ExpiresAt: &later},
		"whitelist":     {Limits: events.TokenLimits{IPWhitelist: []string{"203.0.113.0/24", "2001:db8::/64"}}},
		"bad whitelist": {Limits: events.TokenLimits{IPWhitelist: []string{"not-a-cidr"}}},
		"limited":       {Limits: events.TokenLimits{TotalRequests: &n}},
		"paid limited":  {Limits: events.TokenLimits{WalletAmount: &n}},
	}
	ips := []string{"203.0.113.9", "::ffff:203.0.113.9", "198.51.100.1", "2001:db8::1", "2001:db8:1::1"}
	in := newInterner()
	for name, r := range records {
		r.ID, r.AccountID, r.Environment, r.Scopes = "tok_x", "acc_a", "live", []string{"domains:read"}
		a := in.compact(&r)
		tok := domain.Token{ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, Limits: r.Limits}
		for _, at := range []time.Time{earlier, now, later.Add(time.Second)} {
			if got, want := a.Status(at.UnixNano()), tok.Status(at); got != want {
				t.Errorf("%s: status at %v = %s, aggregate says %s", name, at, got, want)
			}
		}
		for _, s := range ips {
			ip := netip.MustParseAddr(s)
			if got, want := a.AllowsIP(ip), tok.AllowsIP(ip); got != want {
				t.Errorf("%s: AllowsIP(%s) = %v, aggregate says %v", name, s, got, want)
			}
		}
		if got, want := a.AllowsIP(netip.Addr{}), tok.AllowsIP(netip.Addr{}); got != want {
			t.Errorf("%s: AllowsIP(no address) = %v, aggregate says %v", name, got, want)
		}
		if got, want := a.Limited(), tok.Limited(); got != want {
			t.Errorf("%s: Limited = %v, aggregate says %v", name, got, want)
		}
	}
}

func TestTokenAuthMatchesCurrentAndPreviousValue(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	grace := now.Add(30 * time.Second)
	r := TokenRecord{ID: "tok_x", Hash: domain.HashSecret("new"), PreviousHash: domain.HashSecret("old"), PreviousValidUntil: &grace}
	a := newInterner().compact(&r)
	for _, c := range []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"new", now, true}, {"new", grace.Add(time.Hour), true},
		{"old", now, true}, {"old", grace, false}, {"old", grace.Add(time.Second), false},
		{"other", now, false}, {"", now, false},
	} {
		if got := a.Matches(c.secret, c.at.UnixNano()); got != c.want {
			t.Errorf("Matches(%q at %v) = %v, want %v", c.secret, c.at, got, c.want)
		}
	}
	r.PreviousValidUntil = nil
	if newInterner().compact(&r).Matches("old", now.UnixNano()) {
		t.Error("a previous value without a grace period matches")
	}
}

func TestTokenAuthInternsSharedStrings(t *testing.T) {
	in := newInterner()
	a := in.compact(&TokenRecord{ID: "tok_0123456789abcdef", AccountID: string([]byte("acc_a")), Environment: "live", Scopes: []string{"a:read", "b:read"}})
	b := in.compact(&TokenRecord{ID: "tok_fedcba9876543210", AccountID: string([]byte("acc_a")), Environment: "live", Scopes: []string{"a:read", "b:read"}})
	if a.AccountID() != b.AccountID() || *a.AccountID() != "acc_a" {
		t.Error("account ids are not shared")
	}
	if &a.Scopes()[0] != &b.Scopes()[0] {
		t.Error("equal scope sets are not shared")
	}
	if a.ext != nil {
		t.Error("a token without limits, whitelist or grace period carries an extension")
	}
	if a.ID() != "tok_0123456789abcdef" || b.ID() != "tok_fedcba9876543210" {
		t.Errorf("ids %q, %q", a.ID(), b.ID())
	}
	if odd := in.compact(&TokenRecord{ID: "tok_short"}); odd.ID() != "tok_short" {
		t.Errorf("an id of another length reads back as %q", odd.ID())
	}
	if *a.Environment() != "live" || *in.compact(&TokenRecord{Environment: "test"}).Environment() != "test" {
		t.Error("environment lost")
	}
	// The memory budget (docs/performance.md) counts on this size class.
	if size := unsafe.Sizeof(TokenAuth{}); size > 80 {
		t.Errorf("TokenAuth is %d bytes, more than 80", size)
	}
}

func TestAuthCache(t *testing.T) {
	in := newInterner()
	c := newAuthCache(100)
	a := in.compact(&TokenRecord{ID: "tok_0123456789abcdef"})
	if got, _ := c.get(a.ID()); got != nil {
		t.Fatal("empty cache hit")
	}
	_, epoch := c.get(a.ID())
	c.fill(a, epoch)
	if got, _ := c.get("tok_0123456789abcdef"); got != a {
		t.Fatal("filled view not found")
	}
	if got, _ := c.get("tok_0123456789abcdeF"); got != nil {
		t.Fatal("another id finds the view")
	}
	// A fill that read before an invalidation is dropped: the view may be
	// older than the commit that invalidated it.
	_, stale := c.get("tok_fedcba9876543210")
	c.invalidate([]string{a.ID()})
	if got, _ := c.get(a.ID()); got != nil {
		t.Fatal("invalidated view still there")
	}
	c.fill(in.compact(&TokenRecord{ID: "tok_fedcba9876543210"}), stale)
	if got, _ := c.get("tok_fedcba9876543210"); got != nil {
		t.Fatal("a stale fill was kept")
	}
	for i := 0; i < 150; i++ { // bounded
		v := in.compact(&TokenRecord{ID: fmt.Sprintf("tok_%016d", i)})
		_, e := c.get(v.ID())
		c.fill(v, e)
	}
	if len(c.items) > 100 {
		t.Fatalf("%d views kept, bound 100", len(c.items))
	}
}
