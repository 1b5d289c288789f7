package api_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	c := tollgatetest.NewClient(n.URL(), "")
	if r := c.Do(t, "GET", "/healthz", nil); r.Status != 200 {
		t.Fatalf("healthz: %d", r.Status)
	}
	tollgatetest.Eventually(t, 5e9, func() bool { return c.Do(t, "GET", "/readyz", nil).Status == 200 }, "ready")
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	root.Do(t, "GET", "/accounts/me", nil)
	c.Do(t, "GET", "/accounts/me", nil)
	r := c.Do(t, "GET", "/metrics", nil)
	body := string(r.Body)
	for _, want := range []string{
		`tollgate_http_requests_total{method="GET",route="/accounts/me",status="200"} 1`,
		`tollgate_http_requests_total{method="GET",route="/accounts/me",status="401"} 1`,
		`tollgate_http_request_duration_seconds_bucket`,
		`tollgate_projection_applied_sequence 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, tollgatetest.RootKey) {
		t.Fatal("/metrics shows a credential")
	}
}

// Plain HTTP from anywhere but loopback or a trusted proxy is refused. The
// in-memory transport of app.Test has a non-loopback peer address.
func TestHTTPSRequiredOffLoopback(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	req := httptest.NewRequest("GET", "/accounts/me", nil)
	req.Header.Set("X-API-Key", tollgatetest.RootKey)
	resp, err := n.API.App.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"error":"https_required"`) {
		t.Fatalf("plain HTTP off loopback: %d %s", resp.StatusCode, body)
	}
}
