package api_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// POST /callbacks/:id/retry makes one more attempt of a dead delivery.
func TestCallbackManualRetry(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second))
	tn := newTenant(t, n.URL())
	other := newTenant(t, n.URL())
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t, func(int, hook, *http.Request) int {
		if failing.Load() {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	sub := subscribe(t, tn.owner, rc.URL, "token.revoked")
	rc.verifyWith(sub.Secret)
	tok := tn.token(t, map[string]any{})
	if r := tn.owner.Do(t, "DELETE", "/tokens/"+tok.ID, nil); r.Status != 204 {
		t.Fatalf("revoke: %d", r.Status)
	}
	var dead []deliveryOut
	tollgatetest.Eventually(t, 15*time.Second, func() bool {
		dead = callbacks(t, tn.owner, "?status=dead")
		return len(dead) == 1
	}, "dead delivery")
	id := dead[0].ID

	if r := other.owner.Do(t, "POST", "/callbacks/"+id+"/retry", nil); r.Status != 404 {
		t.Fatalf("another account's retry: %d", r.Status)
	}
	if r := tn.owner.Do(t, "POST", "/callbacks/dlv_nope/retry", nil); r.Status != 404 {
		t.Fatalf("unknown delivery: %d", r.Status)
	}
	failing.Store(false)
	r := tn.owner.Do(t, "POST", "/callbacks/"+id+"/retry", nil)
	var pending deliveryOut
	r.JSON(t, &pending)
	if r.Status != http.StatusAccepted || pending.Status != "pending" || pending.Attempt != 2 {
		t.Fatalf("retry: %d %s", r.Status, r.Body)
	}
	var done []deliveryOut
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		done = callbacks(t, tn.owner, "?status=succeeded")
		return len(done) == 1
	}, "delivered after the retry")
	if done[0].ID != id || done[0].Attempt != 3 || done[0].EventType != "token.revoked" {
		t.Fatalf("after retry: %+v", done[0])
	}
	hooks := rc.got()
	last := hooks[len(hooks)-1]
	if len(hooks) != 3 || last.ID != id || last.Verified != nil || string(last.Body) != string(hooks[0].Body) {
		t.Fatalf("hooks: %d, last %+v (first body %s)", len(hooks), last, hooks[0].Body)
	}
}

// An endpoint whose deliveries keep dying is disabled: five dead in a row.
func TestSustainedFailureDisablesSubscription(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second))
	tn := newTenant(t, n.URL())
	rc := newReceiver(t, func(int, hook, *http.Request) int { return http.StatusInternalServerError })
	sub := subscribe(t, tn.owner, rc.URL, "token.created")
	for range 5 {
		tn.token(t, map[string]any{})
	}
	var s subscriptionOut
	tollgatetest.Eventually(t, 20*time.Second, func() bool {
		tn.owner.Do(t, "GET", "/subscriptions/"+sub.ID, nil).JSON(t, &s)
		return s.Status == "disabled"
	}, "disabled after five dead deliveries")
	if s.DisabledReason == nil || !strings.Contains(*s.DisabledReason, "sustained failure") {
		t.Fatalf("%+v", s)
	}
	if d := callbacks(t, tn.owner, "?status=dead&subscription_id="+sub.ID); len(d) != 5 {
		t.Fatalf("%d dead deliveries", len(d))
	}
}

// GET /errors lists failed deliveries and failed verifications together,
// newest first, a page at a time.
func TestErrorsListsDeliveriesAndVerifications(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second))
	tn := newTenant(t, n.URL())
	rc := newReceiver(t, func(int, hook, *http.Request) int { return http.StatusTeapot })
	subscribe(t, tn.owner, rc.URL, "token.created")
	tok := tn.token(t, map[string]any{"limits": map[string]any{"ip_whitelist": []string{"203.0.113.1"}}})
	if v := tn.verify(t, map[string]any{"token": tok.Token, "ip": "198.51.100.1"}); v.Code != "FORBIDDEN_IP" {
		t.Fatalf("verify: %+v", v)
	}
	tn.verify(t, map[string]any{"token": "tg_live_nonsense"})
	var all []integrationErrorOut
	tollgatetest.Eventually(t, 15*time.Second, func() bool {
		all = integrationErrors(t, tn.owner, "")
		return len(all) == 4
	}, "two failed attempts and two failed verifications")
	kinds := map[string]int{}
	for _, e := range all {
		kinds[e.Kind]++
		if e.Kind == "verification_failed" && e.Reason == "FORBIDDEN_IP" && e.TokenID != tok.ID {
			t.Errorf("verification error without its token: %+v", e)
		}
	}
	if kinds["delivery_failed"] != 2 || kinds["verification_failed"] != 2 {
		t.Fatalf("kinds %v", kinds)
	}
	var paged []integrationErrorOut
	cursor := ""
	for {
		var page struct {
			Data       []integrationErrorOut `json:"data"`
			NextCursor *string               `json:"next_cursor"`
		}
		tn.owner.Do(t, "GET", "/errors?limit=1&cursor="+cursor, nil).JSON(t, &page)
		paged = append(paged, page.Data...)
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(paged) != 4 {
		t.Fatalf("paged through %d errors", len(paged))
	}
	for i := range paged {
		if paged[i].ID != all[i].ID {
			t.Fatalf("page order differs at %d: %s vs %s", i, paged[i].ID, all[i].ID)
		}
	}
	if v := integrationErrors(t, tn.owner, "?kind=verification_failed"); len(v) != 2 {
		t.Fatalf("verification errors: %+v", v)
	}
	if r := tn.owner.Do(t, "GET", "/errors?kind=nope", nil); r.Status != 400 {
		t.Fatalf("bad kind: %d", r.Status)
	}
}
