package tollgate_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	tollgate "github.com/tollgate/tollgate/sdk"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// signed signs body with the official Standard Webhooks library.
func signed(t *testing.T, secret, id string, at time.Time, body []byte) http.Header {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign(id, at, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestWebhookVerifier(t *testing.T) {
	t.Parallel()
	body := []byte(`{"type":"token.revoked","timestamp":"2025-01-02T03:04:05Z","data":{"id":"tok_1","account_id":"acc_1","revoked_at":"2025-01-02T03:04:05Z"}}`)
	v, err := tollgate.NewWebhookVerifier(secretB, secretA)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p, err := v.Verify(signed(t, secretA, "dlv_1", now, body), body)
	if err != nil || p.Type != tollgate.TypeTokenRevoked {
		t.Fatalf("verify: %+v %v", p, err)
	}
	revoked, err := tollgate.Decode[tollgate.TokenRevoked](p.Type, p.Data)
	if err != nil || revoked.ID != "tok_1" {
		t.Fatalf("decode: %+v %v", revoked, err)
	}
	if _, err := tollgate.Decode[tollgate.WalletLow](p.Type, p.Data); err == nil {
		t.Fatal("a token.revoked decoded as wallet.low")
	}
	// Two signatures in one header (a rotation): either secret verifies.
	h := signed(t, secretB, "dlv_1", now, body)
	h.Set("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl "+h.Get("webhook-signature"))
	if _, err := v.Verify(h, body); err != nil {
		t.Fatalf("two signatures: %v", err)
	}
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
		want error
	}{
		"other body":   {signed(t, secretA, "dlv_1", now, body), append([]byte(" "), body...), tollgate.ErrWebhookSignature},
		"other secret": {signed(t, "whsec_"+"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", "dlv_1", now, body), body, tollgate.ErrWebhookSignature},
		"old":          {signed(t, secretA, "dlv_1", now.Add(-10*time.Minute), body), body, tollgate.ErrWebhookTimestamp},
		"no headers":   {http.Header{}, body, tollgate.ErrWebhookHeaders},
	} {
		if _, err := v.Verify(tc.h, tc.body); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := tollgate.NewWebhookVerifier(); err == nil {
		t.Error("a verifier without secrets")
	}
}
