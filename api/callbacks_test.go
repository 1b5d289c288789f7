package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/internal/tollgatetest"
	"github.com/tollgate/tollgate/workers"
)

// A receiver that fails the first three attempts gets the fourth, signed
// the same way each time under one stable webhook-id.
func TestCallbackRetriedUntilItSucceeds(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second, time.Second, time.Second, time.Second))
	tn := newTenant(t, n.URL())
	rc := newReceiver(t, func(n int, _ hook, _ *http.Request) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	sub := subscribe(t, tn.owner, rc.URL+"/hooks", "token.created", "token.revoked")
	if !strings.HasPrefix(sub.Secret, "whsec_") {
		t.Fatalf("secret %q", sub.Secret)
	}
	rc.verifyWith(sub.Secret)
	tok := tn.token(t, map[string]any{"name": "watched"})

	tollgatetest.Eventually(t, 20*time.Second, func() bool { return len(rc.got()) >= 4 }, "four attempts")
	hooks := rc.got()
	for i, h := range hooks {
		if h.ID != hooks[0].ID || !strings.HasPrefix(h.ID, "dlv_") {
			t.Errorf("attempt %d: webhook-id %q, want the first's %q", i+1, h.ID, hooks[0].ID)
		}
		if h.Verified != nil {
			t.Errorf("attempt %d: signature does not verify with the official library: %v", i+1, h.Verified)
		}
		if h.Payload.Type != "token.created" || !strings.Contains(string(h.Payload.Data), tok.ID) {
			t.Errorf("attempt %d: payload %s", i+1, h.Body)
		}
		if strings.Contains(string(h.Body), "hash") {
			t.Errorf("attempt %d: payload leaks a hash: %s", i+1, h.Body)
		}
	}
	if d := hooks[1].At.Sub(hooks[0].At); d < 900*time.Millisecond {
		t.Errorf("second attempt came %s after the first, want about a second", d)
	}

	var got []deliveryOut
	tollgatetest.Eventually(t, 5*time.Second, func() bool {
		got = callbacks(t, tn.owner, "?subscription_id="+sub.ID)
		return len(got) == 1 && got[0].Status == "succeeded"
	}, "delivery recorded as succeeded")
	d := got[0]
	if d.ID != hooks[0].ID || d.Attempt != 4 || d.StatusCode == nil || *d.StatusCode != 204 || d.EventType != "token.created" || d.NextAttemptAt != nil {
		t.Fatalf("delivery %+v", d)
	}
	if time.Sleep(1500 * time.Millisecond); len(rc.got()) != 4 {
		t.Fatalf("%d requests after success, want 4", len(rc.got()))
	}
	errs := integrationErrors(t, tn.owner, "?kind=delivery_failed")
	if len(errs) != 3 {
		t.Fatalf("errors %+v, want three failed attempts", errs)
	}
	for _, e := range errs {
		if e.DeliveryID != d.ID || e.SubscriptionID != sub.ID || e.StatusCode != 503 {
			t.Errorf("error %+v", e)
		}
	}
}

// One that always fails ends dead in the poison queue, and shows in
// /callbacks and /errors.
func TestCallbackExhaustedGoesToPoisonQueue(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second, time.Second))
	tn := newTenant(t, n.URL())
	rc := newReceiver(t, func(int, hook, *http.Request) int { return http.StatusInternalServerError })
	sub := subscribe(t, tn.owner, rc.URL, "token.created")
	tn.token(t, map[string]any{})

	var dead []deliveryOut
	tollgatetest.Eventually(t, 20*time.Second, func() bool {
		dead = callbacks(t, tn.owner, "?status=dead")
		return len(dead) == 1
	}, "a dead delivery")
	if d := dead[0]; d.Attempt != 3 || d.SubscriptionID != sub.ID || *d.StatusCode != 500 || d.NextAttemptAt != nil {
		t.Fatalf("dead delivery %+v", d)
	}
	if got := len(rc.got()); got != 3 {
		t.Fatalf("%d attempts, want 3", got)
	}
	if others := callbacks(t, tn.owner, "?status=pending"); len(others) != 0 {
		t.Fatalf("pending: %+v", others)
	}
	errs := integrationErrors(t, tn.owner, "")
	if len(errs) != 3 || errs[0].Kind != "delivery_failed" || !strings.Contains(errs[0].Message, "poison") {
		t.Fatalf("errors %+v", errs)
	}

	js, err := jetstream.New(n.NATS())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var msg *jetstream.RawStreamMsg
	tollgatetest.Eventually(t, 5*time.Second, func() bool {
		msg, err = mustStream(t, js, workers.PoisonStream).GetLastMsgForSubject(ctx, workers.PoisonSubject)
		return err == nil
	}, "a message in the poison queue")
	if msg.Header.Get("Tollgate-Delivery-Id") != dead[0].ID || msg.Header.Get("Tollgate-Dead-Reason") != "exhausted" {
		t.Fatalf("poison message headers %v", msg.Header)
	}
}

func mustStream(t *testing.T, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A 410 Gone disables the subscription at once: nothing more is sent.
func TestCallbackGoneDisablesSubscription(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second))
	tn := newTenant(t, n.URL())
	rc := newReceiver(t, func(int, hook, *http.Request) int { return http.StatusGone })
	sub := subscribe(t, tn.owner, rc.URL, "token.created")
	tn.token(t, map[string]any{})

	var s subscriptionOut
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		tn.owner.Do(t, "GET", "/subscriptions/"+sub.ID, nil).JSON(t, &s)
		return s.Status == "disabled"
	}, "subscription disabled")
	if s.DisabledReason == nil || !strings.Contains(*s.DisabledReason, "410") {
		t.Fatalf("disabled: %+v", s)
	}
	tn.token(t, map[string]any{})
	time.Sleep(1500 * time.Millisecond)
	if got := rc.got(); len(got) != 1 {
		for _, h := range got {
			t.Logf("%s %s %s", h.At.Format(time.StampMilli), h.ID, h.Body)
		}
		t.Fatalf("%d requests, want only the one answered 410", len(got))
	}
	if d := callbacks(t, tn.owner, ""); len(d) != 1 || d[0].Status != "dead" {
		t.Fatalf("deliveries %+v", d)
	}
	if r := tn.owner.Do(t, "POST", "/callbacks/"+callbacks(t, tn.owner, "")[0].ID+"/retry", nil); r.Status != http.StatusConflict {
		t.Fatalf("retry to a disabled subscription: %d %s", r.Status, r.Body)
	}
}
