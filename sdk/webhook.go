package tollgate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors of webhook verification, matched with errors.Is.
var (
	ErrWebhookHeaders   = errors.New("tollgate: webhook headers missing or malformed")
	ErrWebhookTimestamp = errors.New("tollgate: webhook timestamp outside the tolerance")
	ErrWebhookSignature = errors.New("tollgate: no webhook signature matches")
)

// WebhookVerifier checks Tollgate's webhook signatures (Standard Webhooks:
// "v1," + base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>").
// Give it every secret you accept: during a rotation Tollgate signs with the
// old and the new one.
type WebhookVerifier struct {
	keys [][]byte
	// Tolerance is how far webhook-timestamp may be from now, against
	// replays. Default 5 minutes.
	Tolerance time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// NewWebhookVerifier accepts signatures by any of the secrets ("whsec_…").
func NewWebhookVerifier(secrets ...string) (*WebhookVerifier, error) {
	v := &WebhookVerifier{}
	for _, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || len(key) == 0 {
			return nil, fmt.Errorf("tollgate: webhook secret is not whsec_ and base64")
		}
		v.keys = append(v.keys, key)
	}
	if len(v.keys) == 0 {
		return nil, errors.New("tollgate: a webhook verifier needs a secret")
	}
	return v, nil
}

// Verify checks a webhook's headers against its raw body and decodes the
// payload. The body must be the bytes received, unparsed.
func (v *WebhookVerifier) Verify(h http.Header, body []byte) (WebhookPayload, error) {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return WebhookPayload{}, ErrWebhookHeaders
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return WebhookPayload{}, ErrWebhookHeaders
	}
	now, tol := time.Now, v.Tolerance
	if v.Now != nil {
		now = v.Now
	}
	if tol <= 0 {
		tol = 5 * time.Minute
	}
	if d := now().Sub(time.Unix(sec, 0)); d > tol || d < -tol {
		return WebhookPayload{}, ErrWebhookTimestamp
	}
	if !v.matches(id, ts, body, sigs) {
		return WebhookPayload{}, ErrWebhookSignature
	}
	var p WebhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return WebhookPayload{}, fmt.Errorf("tollgate: webhook body: %w", err)
	}
	return p, nil
}

func (v *WebhookVerifier) matches(id, ts string, body []byte, header string) bool {
	for _, key := range v.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(header) {
			version, b64, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return true
			}
		}
	}
	return false
}
