package api_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

type statsTotals struct {
	Requests     int64 `json:"requests"`
	PaidRequests int64 `json:"paid_requests"`
	Errors       int64 `json:"errors"`
	CreditsSpent int64 `json:"credits_spent"`
}

type statsIP struct {
	IP       string `json:"ip"`
	Requests int64  `json:"requests"`
}

type statsDomain struct {
	Domain       string `json:"domain"`
	Requests     int64  `json:"requests"`
	PaidRequests int64  `json:"paid_requests"`
	Errors       int64  `json:"errors"`
}

type statsPoint struct {
	T            time.Time `json:"t"`
	Requests     int64     `json:"requests"`
	PaidRequests int64     `json:"paid_requests"`
	Errors       int64     `json:"errors"`
}

type statsOut struct {
	Totals  statsTotals   `json:"totals"`
	IPs     []statsIP     `json:"ips"`
	Domains []statsDomain `json:"domains"`
	Series  []statsPoint  `json:"series"`
}

// getStats calls GET /stats and decodes the answer strictly, so a field
// outside the documented shape fails the test.
func getStats(t *testing.T, c *tollgatetest.Client, query url.Values) statsOut {
	t.Helper()
	r := c.Do(t, "GET", "/stats?"+query.Encode(), nil)
	if r.Status != 200 {
		t.Fatalf("GET /stats?%s: %d %s", query.Encode(), r.Status, r.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	var out statsOut
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("GET /stats?%s: %v in %s", query.Encode(), err, r.Body)
	}
	if out.IPs == nil || out.Domains == nil || out.Series == nil {
		t.Fatalf("GET /stats?%s: lists must be [] when empty: %s", query.Encode(), r.Body)
	}
	return out
}

func statsQuery(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// checkStatsSeries: the workload ran between start and end, so its buckets are
// those holding start and end, in order, adding up to the totals.
func checkStatsSeries(t *testing.T, name string, got []statsPoint, width time.Duration, start, end time.Time, want statsTotals) {
	t.Helper()
	first, last := start.UTC().Truncate(width), end.UTC().Truncate(width)
	var sum statsTotals
	for i, p := range got {
		if p.T.Before(first) || p.T.After(last) || !p.T.Equal(p.T.Truncate(width)) || (i > 0 && !p.T.After(got[i-1].T)) {
			t.Errorf("%s: bucket %d at %s; want bucket starts from %s to %s in order", name, i, p.T, first, last)
		}
		sum.Requests, sum.PaidRequests, sum.Errors = sum.Requests+p.Requests, sum.PaidRequests+p.PaidRequests, sum.Errors+p.Errors
	}
	want.CreditsSpent = 0
	if sum != want || len(got) == 0 || (first.Equal(last) && len(got) != 1) {
		t.Errorf("%s: series %+v adds up to %+v; want %+v in the buckets from %s to %s", name, got, sum, want, first, last)
	}
}

func TestStatsThroughHTTP(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	web := tn.token(t, map[string]any{"name": "web", "scopes": []string{"domains:read"}})
	office := tn.token(t, map[string]any{"name": "office", "scopes": []string{"domains:read"},
		"limits": map[string]any{"ip_whitelist": []string{"203.0.113.0/24"}}})
	sandbox := tn.token(t, map[string]any{"name": "sandbox", "scopes": []string{"domains:read"}, "environment": "test"})
	other := newTenant(t, n.URL())
	stranger := other.token(t, map[string]any{})

	start := time.Now()
	for _, call := range []struct {
		token             tokenOut
		ip, domain, scope string
		times             int
		want              string
	}{
		{web, "198.51.100.1", "api.example.com", "domains:read", 3, "VALID"},
		{web, "198.51.100.2", "dns.example.com", "domains:read", 1, "VALID"},
		{web, "::ffff:198.51.100.2", "dns.example.com", "vps:write", 2, "INSUFFICIENT_SCOPE"}, // counted as 198.51.100.2
		{office, "203.0.113.5", "api.example.com", "domains:read", 2, "VALID"},
		{office, "192.0.2.9", "api.example.com", "domains:read", 1, "FORBIDDEN_IP"},
		{sandbox, "198.51.100.7", "api.example.com", "domains:read", 1, "VALID"},
	} {
		for range call.times {
			v := tn.verify(t, map[string]any{"token": call.token.Token, "scopes": []string{call.scope}, "cost": 0,
				"ip": call.ip, "domain": call.domain})
			if v.Code != call.want {
				t.Fatalf("verify %s from %s: %s, want %s", call.scope, call.ip, v.Code, call.want)
			}
		}
	}
	if v := other.verify(t, map[string]any{"token": stranger.Token, "cost": 0, "ip": "198.51.100.1", "domain": "api.example.com"}); v.Code != "VALID" {
		t.Fatalf("other account's verify: %s", v.Code)
	}
	end := time.Now()

	// Usage is flushed in batches and projected asynchronously.
	wantTotals := statsTotals{Requests: 9, Errors: 3}
	var got statsOut
	tollgatetest.Eventually(t, 15*time.Second, func() bool {
		got = getStats(t, tn.owner, nil)
		return got.Totals == wantTotals
	}, "account totals reach the workload's")
	tollgatetest.Eventually(t, 15*time.Second, func() bool {
		return getStats(t, other.owner, nil).Totals == statsTotals{Requests: 1}
	}, "the other account's totals")

	account := statsOut{
		Totals: wantTotals,
		IPs:    []statsIP{{"198.51.100.1", 3}, {"198.51.100.2", 3}, {"203.0.113.5", 2}, {"192.0.2.9", 1}},
		Domains: []statsDomain{{Domain: "api.example.com", Requests: 6, Errors: 1},
			{Domain: "dns.example.com", Requests: 3, Errors: 2}},
	}
	for _, tc := range []struct {
		name  string
		query url.Values
		want  statsOut
	}{
		{"account", nil, account},
		{"web token", statsQuery("token_id", web.ID), statsOut{
			Totals:  statsTotals{Requests: 6, Errors: 2},
			IPs:     []statsIP{{"198.51.100.1", 3}, {"198.51.100.2", 3}},
			Domains: []statsDomain{{Domain: "api.example.com", Requests: 3}, {Domain: "dns.example.com", Requests: 3, Errors: 2}},
		}},
		{"office token", statsQuery("token_id", office.ID), statsOut{
			Totals:  statsTotals{Requests: 3, Errors: 1},
			IPs:     []statsIP{{"203.0.113.5", 2}, {"192.0.2.9", 1}},
			Domains: []statsDomain{{Domain: "api.example.com", Requests: 3, Errors: 1}},
		}},
		{"sandbox", statsQuery("environment", "test"), statsOut{
			Totals:  statsTotals{Requests: 1},
			IPs:     []statsIP{{"198.51.100.7", 1}},
			Domains: []statsDomain{{Domain: "api.example.com", Requests: 1}},
		}},
	} {
		tollgatetest.Eventually(t, 15*time.Second, func() bool {
			got = getStats(t, tn.owner, tc.query)
			return got.Totals == tc.want.Totals
		}, tc.name+" totals")
		if !reflect.DeepEqual(got.IPs, tc.want.IPs) || !reflect.DeepEqual(got.Domains, tc.want.Domains) {
			t.Errorf("%s: ips %+v, domains %+v\nwant ips %+v, domains %+v", tc.name, got.IPs, got.Domains, tc.want.IPs, tc.want.Domains)
		}
		checkStatsSeries(t, tc.name, got.Series, time.Hour, start, end, tc.want.Totals)
	}

	for _, g := range []struct {
		name  string
		width time.Duration
	}{{"minute", time.Minute}, {"hour", time.Hour}, {"day", 24 * time.Hour}} {
		got := getStats(t, tn.owner, statsQuery("granularity", g.name))
		checkStatsSeries(t, "by "+g.name, got.Series, g.width, start, end, wantTotals)
		got = getStats(t, tn.owner, statsQuery("granularity", g.name, "token_id", office.ID,
			"from", start.Add(-time.Hour).Format(time.RFC3339), "to", end.Add(time.Hour).Format(time.RFC3339)))
		checkStatsSeries(t, "office by "+g.name, got.Series, g.width, start, end, statsTotals{Requests: 3, Errors: 1})
	}

	// Totals, IPs and domains are not limited by the range; the series is.
	later := getStats(t, tn.owner, statsQuery("granularity", "minute",
		"from", end.Add(2*time.Minute).Format(time.RFC3339), "to", end.Add(time.Hour).Format(time.RFC3339)))
	if len(later.Series) != 0 || !reflect.DeepEqual(later.Totals, account.Totals) || !reflect.DeepEqual(later.IPs, account.IPs) {
		t.Errorf("range after the workload: %+v", later)
	}
	if got := getStats(t, tn.owner, statsQuery("token_id", sandbox.ID)); got.Totals != (statsTotals{Requests: 1}) {
		t.Errorf("sandbox token without environment: totals %+v, want its own environment's", got.Totals)
	}
}

func TestStatsRejects(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	own := tn.token(t, map[string]any{"name": "own", "scopes": []string{"domains:read"}})
	sandboxKey := tn.token(t, map[string]any{"name": "sandbox key", "scopes": []string{"stats:read"}, "environment": "test"})
	other := newTenant(t, n.URL())
	stranger := other.token(t, map[string]any{})

	now := time.Now().UTC()
	rfc := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct {
		name   string
		key    string
		query  url.Values
		status int
		code   string
	}{
		{"another account's token", tn.acc.APIKey.Token, statsQuery("token_id", stranger.ID), 404, "not_found"},
		{"unknown token", tn.acc.APIKey.Token, statsQuery("token_id", "tok_doesnotexist"), 404, "not_found"},
		{"token of the other environment", tn.acc.APIKey.Token, statsQuery("token_id", own.ID, "environment", "test"), 404, "not_found"},
		{"another account", tn.acc.APIKey.Token, statsQuery("account_id", other.acc.ID), 404, "not_found"},
		{"granularity", tn.acc.APIKey.Token, statsQuery("granularity", "week"), 400, "invalid_request"},
		{"from", tn.acc.APIKey.Token, statsQuery("from", "yesterday"), 400, "invalid_request"},
		{"to", tn.acc.APIKey.Token, statsQuery("to", "2025-13-01T00:00:00Z"), 400, "invalid_request"},
		{"from after to", tn.acc.APIKey.Token, statsQuery("from", rfc(0), "to", rfc(-time.Hour)), 400, "invalid_request"},
		{"empty range", tn.acc.APIKey.Token, statsQuery("from", rfc(0), "to", rfc(0)), 400, "invalid_request"},
		{"too many buckets", tn.acc.APIKey.Token, statsQuery("granularity", "minute", "from", rfc(-7*24*time.Hour), "to", rfc(0)), 400, "invalid_request"},
		{"environment", tn.acc.APIKey.Token, statsQuery("environment", "prod"), 400, "invalid_request"},
		{"key without stats:read", own.Token, nil, 403, "forbidden"},
		{"sandbox key asking for live", sandboxKey.Token, statsQuery("environment", "live"), 403, "forbidden"},
		{"sandbox key naming a live token", sandboxKey.Token, statsQuery("token_id", own.ID), 404, "not_found"},
	} {
		r := tollgatetest.NewClient(n.URL(), tc.key).Do(t, "GET", "/stats?"+tc.query.Encode(), nil)
		var body struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != tc.status || body.Error != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
		}
	}

	// The largest ranges still allowed.
	for _, q := range []url.Values{
		statsQuery("granularity", "minute", "from", now.Truncate(time.Minute).Add(-9999*time.Minute).Format(time.RFC3339), "to", rfc(0)),
		statsQuery("granularity", "day", "from", "2000-01-01T00:00:00Z", "to", "2027-05-19T00:00:00Z"),
	} {
		getStats(t, tn.owner, q)
	}
	if got := getStats(t, tollgatetest.NewClient(n.URL(), sandboxKey.Token), nil); got.Totals != (statsTotals{}) {
		t.Errorf("sandbox key sees %+v", got.Totals)
	}
}
