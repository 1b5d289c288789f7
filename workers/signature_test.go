package workers

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// Signatures are checked with the official Standard Webhooks library.
func TestSignatureMatchesStandardWebhooks(t *testing.T) {
	t.Parallel()
	oldSecret, _ := domain.NewWebhookSecret(strings.NewReader(strings.Repeat("a", 64)))
	newSecret, _ := domain.NewWebhookSecret(strings.NewReader(strings.Repeat("b", 64)))
	oldKey, _ := domain.WebhookKey(oldSecret)
	newKey, _ := domain.WebhookKey(newSecret)
	body := []byte(`{"type":"token.revoked","timestamp":"2024-01-02T03:04:05Z","data":{"id":"tok_1"}}`)
	now := time.Now()

	hdr := http.Header{}
	hdr.Set(HeaderWebhookID, "dlv_1")
	hdr.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	hdr.Set(HeaderWebhookSignature, signatureHeader([][]byte{newKey, oldKey}, "dlv_1", now.Unix(), body))
	for _, secret := range []string{newSecret, oldSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, hdr); err != nil {
			t.Errorf("verify with one of the two secrets: %v", err)
		}
		want, _ := wh.Sign("dlv_1", now, body)
		if !strings.Contains(hdr.Get(HeaderWebhookSignature), want) {
			t.Errorf("the library signs %s; header %s", want, hdr.Get(HeaderWebhookSignature))
		}
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("A", 43) + "=")
	if err := other.Verify(body, hdr); err == nil {
		t.Error("a stranger's secret verifies")
	}
	hdr.Set(HeaderWebhookSignature, Sign(newKey, "dlv_1", now.Unix(), append(body, ' ')))
	if wh, _ := standardwebhooks.NewWebhook(newSecret); wh.Verify(body, hdr) == nil {
		t.Error("a signature of another body verifies")
	}
}

func TestRenderPayload(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	ev, err := events.New(events.Meta{ID: "evt_1", AggregateType: "token", AggregateID: "tok_1", AccountID: "acc_1", Time: at},
		events.TokenCreated{ID: "tok_1", AccountID: "acc_1", Name: "n", Scopes: []string{"a"}, Environment: "live",
			Hash: "deadbeef", RefreshHash: "cafe", CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	body, err := RenderPayload(ev)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"token.created","timestamp":"2024-01-02T03:04:05.000000006Z","data":{"account_id":"acc_1",` +
		`"created_at":"2024-01-02T03:04:05.000000006Z","environment":"live","id":"tok_1","name":"n","scopes":["a"]}}`
	if string(body) != want {
		t.Fatalf("payload\n%s\nwant\n%s", body, want)
	}
	again, _ := RenderPayload(ev)
	if string(again) != string(body) {
		t.Fatal("rendering is not deterministic")
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	var c Config
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxAttempts() != 10 {
		t.Fatalf("default attempts %d", c.MaxAttempts())
	}
	var total time.Duration
	for i := 1; i <= len(c.Backoff); i++ {
		d, more := c.nextDelay(i)
		base := c.Backoff[i-1]
		if !more || d < base*8/10 || d > base*12/10 {
			t.Errorf("delay after attempt %d: %s (base %s)", i, d, base)
		}
		total += base
	}
	if _, more := c.nextDelay(len(c.Backoff) + 1); more {
		t.Error("a delay after the last attempt")
	}
	if total < 20*time.Hour || total > 28*time.Hour {
		t.Errorf("default schedule spans %s, want about a day", total)
	}
	bad := Config{Backoff: []time.Duration{time.Second, -1}, Jitter: 1, AckWait: 5 * time.Second, RequestTimeout: 4 * time.Second,
		DeliveryWorkers: 10, MaxAckPending: 5}
	err := bad.Validate()
	for _, want := range []string{"backoff delay 2", "jitter", "ack wait", "max ack pending"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to mention %q", err, want)
		}
	}
}
