package bench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

func TestReplaceRegion(t *testing.T) {
	t.Parallel()
	doc := []byte("intro\n" + DocBegin + "\nold\nlines\n" + DocEnd + "\noutro " + DocBegin + "\n")
	got, err := ReplaceRegion(doc, []byte("\n\nnew table\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n" + DocBegin + "\nnew table\n" + DocEnd + "\noutro " + DocBegin + "\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"no markers", DocBegin + " only", DocEnd + " before " + DocBegin} {
		if _, err := ReplaceRegion([]byte(bad), nil); !errors.Is(err, ErrNoMarkers) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestFinishRatiosAndBudgets(t *testing.T) {
	t.Parallel()
	rep := &Report{Results: []Result{
		{Scenario: Baseline, Unit: "req/s", Throughput: 100_000, Count: 1},
		{Scenario: Verify, Unit: "req/s", Throughput: 85_000, Count: 1},
		{Scenario: Introspect, Unit: "req/s", Throughput: 60_000, Count: 1},
		{Scenario: Issue, Unit: "req/s", Throughput: 50_000, Count: 1, Metrics: map[string]float64{"appended_per_token": 1}},
		{Scenario: VerifyPaid, Unit: "req/s", Throughput: 70_000, Count: 1, Errors: 3},
		{Scenario: RevokePropagation, Unit: "revocations/s", Throughput: 10, Count: 5, P99Ms: 30},
		{Scenario: Replay, Unit: "events/s", Throughput: 330_000, Count: 10},
		{Scenario: Memory, Unit: "bytes/token", Throughput: 512, Count: 10},
	}}
	rep.finish()
	want := map[string]struct {
		ratio float64
		pass  string // "", "pass", "fail"
		short string
	}{
		Baseline:          {1, "", ""},
		Verify:            {0.85, "pass", ""},
		Introspect:        {0.6, "fail", "25% short"},
		Issue:             {0.5, "pass", ""},
		VerifyPaid:        {0.7, "", ""},
		RevokePropagation: {0, "fail", "20% over"},
		Replay:            {0, "pass", ""},
		Memory:            {0, "fail", "100% over"},
	}
	for _, res := range rep.Results {
		w := want[res.Scenario]
		if (res.Ratio == nil) != (w.ratio == 0) || res.Ratio != nil && *res.Ratio != w.ratio {
			t.Errorf("%s: ratio %v, want %v", res.Scenario, res.Ratio, w.ratio)
		}
		got := ""
		if res.Pass != nil {
			got = map[bool]string{true: "pass", false: "fail"}[*res.Pass]
		}
		if got != w.pass || !strings.Contains(res.Shortfall, w.short) {
			t.Errorf("%s: %q (%q), want %q (%q)", res.Scenario, got, res.Shortfall, w.pass, w.short)
		}
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| introspect | 60,000 req/s |") {
		t.Errorf("markdown:\n%s", md.String())
	}
}

// The baseline for --url runs uses a copy of api.New's Fiber settings; it
// must stay the same as the real app's.
func TestBaselineConfigMatchesApp(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	real, mirror := n.API.App.Config(), BaselineConfig()
	if real.BodyLimit != mirror.BodyLimit || real.ReadTimeout != mirror.ReadTimeout || real.WriteTimeout != mirror.WriteTimeout ||
		real.IdleTimeout != mirror.IdleTimeout || real.Immutable != mirror.Immutable || real.ProxyHeader != mirror.ProxyHeader ||
		real.Prefork != mirror.Prefork || real.Concurrency != mirror.Concurrency && mirror.Concurrency != 0 ||
		real.ReduceMemoryUsage != mirror.ReduceMemoryUsage || (real.JSONEncoder == nil) != (mirror.JSONEncoder == nil) {
		t.Errorf("api.New's fiber.Config changed; update BaselineConfig:\nreal   %+v\nmirror %+v", real, mirror)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{Scenarios: []string{"warp"}},
		{URL: "http://127.0.0.1:1"},
		{URLB: "http://127.0.0.1:2"},
		{Concurrency: -1},
	} {
		o.setDefaults()
		if err := o.Validate(); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	o := Options{Scenarios: []string{Verify, Replay}}
	o.setDefaults()
	if got := strings.Join(o.selected(), ","); got != "baseline,verify,replay" {
		t.Errorf("selected %s", got)
	}
}

// A closed-loop run against a bare handler with a fixed request count.
func TestRunLoadFixedCount(t *testing.T) {
	t.Parallel()
	s, err := Start(context.Background(), Options{Scenarios: []string{Replay}, Quiet: true, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Measure(context.Background(), Baseline, 500)
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 500 || res.Errors != 0 || res.Throughput <= 0 || res.P99Ms < res.P50Ms {
		t.Errorf("%+v", res)
	}
}
