package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

func TestSubscriptionsAPI(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t, fastCallbacks(time.Second))
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	tn := newTenant(t, n.URL())
	other := newTenant(t, n.URL())
	rc := newReceiver(t, nil)

	sub := subscribe(t, tn.owner, rc.URL+"/a", "wallet.credited", "token.created", "token.created")
	if len(sub.Secret) < 40 || sub.Status != "active" || len(sub.EventTypes) != 2 || sub.Description != "test" {
		t.Fatalf("created %+v", sub)
	}
	if _, err := standardwebhooks.NewWebhook(sub.Secret); err != nil {
		t.Fatalf("the official library refuses the secret: %v", err)
	}

	t.Run("read back without the secret", func(t *testing.T) {
		r := tn.owner.Do(t, "GET", "/subscriptions/"+sub.ID, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), "whsec_") || strings.Contains(string(r.Body), "sealed") {
			t.Fatalf("GET: %d %s", r.Status, r.Body)
		}
		second := subscribe(t, tn.owner, rc.URL+"/b", "client.created")
		var page struct {
			Data       []subscriptionOut `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		tn.owner.Do(t, "GET", "/subscriptions?limit=1", nil).JSON(t, &page)
		if len(page.Data) != 1 || page.Data[0].ID != sub.ID || page.NextCursor == nil || page.Data[0].Secret != "" {
			t.Fatalf("page 1 %+v", page)
		}
		tn.owner.Do(t, "GET", "/subscriptions?limit=1&cursor="+*page.NextCursor, nil).JSON(t, &page)
		if len(page.Data) != 1 || page.Data[0].ID != second.ID || page.NextCursor != nil {
			t.Fatalf("page 2 %+v", page)
		}
	})
	t.Run("other accounts see nothing", func(t *testing.T) {
		for _, r := range []tollgatetest.Response{
			other.owner.Do(t, "GET", "/subscriptions/"+sub.ID, nil),
			other.owner.Do(t, "DELETE", "/subscriptions/"+sub.ID, nil),
			other.owner.Do(t, "POST", "/subscriptions/"+sub.ID+"/secret", nil),
		} {
			if r.Status != 404 {
				t.Fatalf("another account: %d %s", r.Status, r.Body)
			}
		}
		if r := root.Do(t, "GET", "/subscriptions/"+sub.ID+"?account_id="+tn.acc.ID, nil); r.Status != 200 {
			t.Fatalf("admin: %d", r.Status)
		}
	})
	t.Run("scopes", func(t *testing.T) {
		r := tn.owner.Do(t, "POST", "/keys", map[string]any{"name": "reader", "scopes": []string{"subscriptions:read"}})
		var key tokenOut
		r.JSON(t, &key)
		reader := tollgatetest.NewClient(n.URL(), key.Token)
		if r := reader.Do(t, "GET", "/subscriptions", nil); r.Status != 200 {
			t.Fatalf("read: %d", r.Status)
		}
		if r := reader.Do(t, "POST", "/subscriptions", map[string]any{"url": rc.URL, "event_types": []string{"token.created"}}); r.Status != 403 {
			t.Fatalf("write with subscriptions:read: %d", r.Status)
		}
		for _, path := range []string{"/callbacks", "/errors"} {
			if r := reader.Do(t, "GET", path, nil); r.Status != 403 {
				t.Fatalf("%s with subscriptions:read: %d", path, r.Status)
			}
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, body := range []map[string]any{
			{"url": "ftp://example.com/x", "event_types": []string{"token.created"}},
			{"url": "https://user:pw@example.com/x", "event_types": []string{"token.created"}},
			{"url": "https://example.com/x", "event_types": []string{"token.exploded"}},
			{"url": "https://example.com/x", "event_types": []string{}},
			{"url": "", "event_types": []string{"token.created"}},
			{"url": "https://example.com/x", "event_types": []string{"token.created"}, "secret": "mine"},
			{"url": "https://example.com/x", "event_types": []string{"token.created"}, "description": strings.Repeat("x", 501)},
		} {
			if r := tn.owner.Do(t, "POST", "/subscriptions", body); r.Status != 400 {
				t.Errorf("%v: %d %s", body, r.Status, r.Body)
			}
		}
	})
	t.Run("internal addresses are refused", func(t *testing.T) {
		for _, u := range []string{"http://10.1.2.3/x", "http://192.168.0.1/", "http://172.16.5.4/", "http://169.254.169.254/latest/meta-data",
			"http://[fd00:ec2::254]/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0:80/", "http://100.64.0.1/", "http://[fe80::1]/",
			"http://localhost.invalid/"} {
			r := tn.owner.Do(t, "POST", "/subscriptions", map[string]any{"url": u, "event_types": []string{"token.created"}})
			if r.Status != 400 || !strings.Contains(string(r.Body), "url") {
				t.Errorf("%s: %d %s", u, r.Status, r.Body)
			}
		}
	})
	t.Run("secret rotation with grace signs with both", func(t *testing.T) {
		old := sub.Secret
		r := tn.owner.Do(t, "POST", "/subscriptions/"+sub.ID+"/secret", map[string]any{"grace_period": 3600})
		var rotated subscriptionOut
		r.JSON(t, &rotated)
		if r.Status != 200 || rotated.Secret == "" || rotated.Secret == old || rotated.PreviousSecretValidUntil == nil {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		if r := tn.owner.Do(t, "POST", "/subscriptions/"+sub.ID+"/secret", map[string]any{"grace_period": 86401}); r.Status != 400 {
			t.Fatalf("grace too long: %d", r.Status)
		}
		before := len(rc.got())
		if r := root.Do(t, "POST", "/wallet/credits?account_id="+tn.acc.ID, map[string]any{"amount": 7, "reason": "hook"}); r.Status != 201 {
			t.Fatalf("credit: %d %s", r.Status, r.Body)
		}
		// Deliveries of earlier events may still arrive: look for this one.
		var h hook
		tollgatetest.Eventually(t, 10*time.Second, func() bool {
			for _, got := range rc.got()[before:] {
				if got.Payload.Type == "wallet.credited" {
					h = got
					return true
				}
			}
			return false
		}, "wallet.credited delivered")
		if !strings.Contains(string(h.Payload.Data), `"amount":7`) {
			t.Fatalf("payload %s", h.Body)
		}
		for _, secret := range []string{old, rotated.Secret} {
			wh, _ := standardwebhooks.NewWebhook(secret)
			hdr := http.Header{}
			hdr.Set("webhook-id", h.ID)
			hdr.Set("webhook-timestamp", h.Timestamp)
			hdr.Set("webhook-signature", h.Signature)
			if err := wh.Verify(h.Body, hdr); err != nil {
				t.Errorf("signature with %s…: %v", secret[:10], err)
			}
		}
	})
	t.Run("delete", func(t *testing.T) {
		if r := tn.owner.Do(t, "DELETE", "/subscriptions/"+sub.ID, nil); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		for _, r := range []tollgatetest.Response{
			tn.owner.Do(t, "GET", "/subscriptions/"+sub.ID, nil),
			tn.owner.Do(t, "DELETE", "/subscriptions/"+sub.ID, nil),
		} {
			if r.Status != 404 {
				t.Fatalf("after delete: %d", r.Status)
			}
		}
		before := len(rc.got())
		tn.token(t, map[string]any{})
		time.Sleep(time.Second)
		if len(rc.got()) != before {
			t.Fatal("a deleted subscription was delivered to")
		}
	})
}

// Without --callbacks-allow-loopback, loopback callback URLs are refused
// when subscribing.
func TestSubscriptionRefusesLoopbackByDefault(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	for _, u := range []string{"http://127.0.0.1:9/hook", "http://localhost:9/", "http://[::1]/", "http://127.9.9.9/"} {
		r := tn.owner.Do(t, "POST", "/subscriptions", map[string]any{"url": u, "event_types": []string{"token.created"}})
		if r.Status != 400 || !strings.Contains(string(r.Body), "loopback") {
			t.Errorf("%s: %d %s", u, r.Status, r.Body)
		}
	}
}
