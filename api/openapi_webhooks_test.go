package api_test

import (
	"testing"
	"time"
)

// oaWebhookOps is a conforming request to every webhook operation, for the
// answers of the authentication middleware (401, 429, 503, https_required).
func oaWebhookOps() []oaOp {
	const sub, dlv = "sub_00000000000000000000", "dlv_00000000000000000000000000000000"
	return []oaOp{
		{"POST", "/subscriptions", map[string]any{"url": "https://203.0.113.10/hooks", "event_types": []string{"token.created"}}},
		{"GET", "/subscriptions", nil},
		{"GET", "/subscriptions/" + sub, nil},
		{"DELETE", "/subscriptions/" + sub, nil},
		{"POST", "/subscriptions/" + sub + "/secret", nil},
		{"GET", "/callbacks", nil},
		{"POST", "/callbacks/" + dlv + "/retry", nil},
		{"GET", "/errors", nil},
	}
}

// oaWebhooks exercises the webhook operations' answers: key holds every
// management scope of its account, reader none of the webhook ones, and
// other is an account key's stranger.
func oaWebhooks(t *testing.T, s *oaSuite, key, reader, other string) {
	k, r := oaAPIKey(key), oaAPIKey(reader)
	body := map[string]any{"url": "https://203.0.113.10/hooks", "event_types": []string{"token.created"}, "description": "openapi"}
	var sub struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	idem := oaHeader("Idempotency-Key", "oa-subscribe-1")
	s.send(t, 201, true, "POST", "/subscriptions", body, k, idem).json(t, &sub)
	s.send(t, 201, true, "POST", "/subscriptions", body, k, idem) // replayed
	s.send(t, 409, true, "POST", "/subscriptions", map[string]any{"url": "https://203.0.113.11/", "event_types": []string{"token.created"}}, k, idem)
	s.send(t, 400, true, "POST", "/subscriptions", map[string]any{"url": "http://10.0.0.1/", "event_types": []string{"token.created"}}, k)
	s.send(t, 403, true, "POST", "/subscriptions", body, r)
	s.send(t, 404, true, "POST", "/subscriptions?account_id="+other, body, k)

	s.send(t, 200, true, "GET", "/subscriptions", nil, k)
	s.send(t, 403, true, "GET", "/subscriptions", nil, r)
	s.send(t, 404, true, "GET", "/subscriptions?account_id="+other, nil, k)
	s.send(t, 200, true, "GET", "/subscriptions/"+sub.ID, nil, k)
	s.send(t, 403, true, "GET", "/subscriptions/"+sub.ID, nil, r)
	s.send(t, 404, true, "GET", "/subscriptions/sub_00000000000000000000", nil, k)

	idem = oaHeader("Idempotency-Key", "oa-rotate-1")
	s.send(t, 200, true, "POST", "/subscriptions/"+sub.ID+"/secret", map[string]any{"grace_period": 60}, k, idem)
	s.send(t, 409, true, "POST", "/subscriptions/"+sub.ID+"/secret", map[string]any{"grace_period": 61}, k, idem)
	s.send(t, 403, true, "POST", "/subscriptions/"+sub.ID+"/secret", nil, r)
	s.send(t, 404, true, "POST", "/subscriptions/sub_00000000000000000000/secret", nil, k)

	// A token.created event gives the subscription a delivery.
	s.send(t, 201, true, "POST", "/tokens", map[string]any{"name": "watched", "scopes": []string{"domains:read"}}, k)
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(page.Data) == 0 && time.Now().Before(deadline) {
		s.send(t, 200, true, "GET", "/callbacks?subscription_id="+sub.ID, nil, k).json(t, &page)
		time.Sleep(20 * time.Millisecond)
	}
	if len(page.Data) == 0 {
		t.Fatal("no delivery for the new token")
	}
	s.send(t, 200, true, "GET", "/callbacks?status=dead&limit=5", nil, k)
	s.send(t, 403, true, "GET", "/callbacks", nil, r)
	s.send(t, 404, true, "GET", "/callbacks?account_id="+other, nil, k)
	s.send(t, 202, true, "POST", "/callbacks/"+page.Data[0].ID+"/retry", nil, k)
	s.send(t, 403, true, "POST", "/callbacks/"+page.Data[0].ID+"/retry", nil, r)
	s.send(t, 404, true, "POST", "/callbacks/dlv_00000000000000000000000000000000/retry", nil, k)

	s.send(t, 200, true, "GET", "/errors?kind=delivery_failed", nil, k)
	s.send(t, 403, true, "GET", "/errors", nil, r)
	s.send(t, 404, true, "GET", "/errors?account_id="+other, nil, k)

	idem = oaHeader("Idempotency-Key", "oa-delete-1")
	s.send(t, 403, true, "DELETE", "/subscriptions/"+sub.ID, nil, r)
	s.send(t, 204, true, "DELETE", "/subscriptions/"+sub.ID, nil, k, idem)
	s.send(t, 409, true, "DELETE", "/subscriptions/sub_00000000000000000000", nil, k, idem)
	s.send(t, 404, true, "GET", "/subscriptions/"+sub.ID, nil, k)
	s.send(t, 404, true, "DELETE", "/subscriptions/"+sub.ID, nil, k)
	// Nothing can be delivered to a deleted subscription.
	s.send(t, 409, true, "POST", "/callbacks/"+page.Data[0].ID+"/retry", nil, k)
}
