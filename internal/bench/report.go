package bench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Result is one scenario's outcome.
type Result struct {
	Scenario string `json:"scenario"`
	// Unit of Throughput: req/s, revocations/s, events/s, bytes/token.
	Unit       string  `json:"unit"`
	Throughput float64 `json:"throughput"`
	// Count is how many operations were measured (requests, revocations,
	// events, tokens); Errors how many failed or got an unexpected answer.
	Count  int64 `json:"count"`
	Errors int64 `json:"errors"`
	// Latency percentiles in milliseconds (0 where latency is not measured).
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Ratio is Throughput ÷ the baseline's, for HTTP scenarios.
	Ratio *float64 `json:"ratio_to_baseline,omitempty"`
	// Budget is the target in words; Pass whether it was met (nil: no
	// budget); Shortfall by how much it was missed.
	Budget         string             `json:"budget,omitempty"`
	Pass           *bool              `json:"pass,omitempty"`
	Shortfall      string             `json:"shortfall,omitempty"`
	ElapsedSeconds float64            `json:"elapsed_seconds"`
	Settings       map[string]any     `json:"settings,omitempty"`
	Metrics        map[string]float64 `json:"metrics,omitempty"`
	Notes          []string           `json:"notes,omitempty"`
	FirstError     string             `json:"first_error,omitempty"`
	// Skipped says why the scenario did not run.
	Skipped string `json:"skipped,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPU        string `json:"cpu,omitempty"`
	GoVersion  string `json:"go_version"`
	Commit     string `json:"commit,omitempty"`
}

// Report is a whole run.
type Report struct {
	Started time.Time `json:"started"`
	Command string    `json:"command"`
	Machine Machine   `json:"machine"`
	// Target is "in-process" or the URL(s) measured.
	Target   string         `json:"target"`
	Settings map[string]any `json:"settings"`
	Results  []Result       `json:"results"`
}

func (s *Session) newReport() *Report {
	target := "in-process (embedded NATS, fresh data dir)"
	if s.opts.URL != "" {
		target = s.opts.URL
		if s.opts.URLB != "" {
			target += " and " + s.opts.URLB
		}
	}
	return &Report{
		Started: s.started.UTC(), Command: strings.Join(s.opts.Command, " "), Machine: machine(), Target: target,
		Settings: map[string]any{"scenarios": s.opts.selected(), "concurrency": s.opts.Concurrency, "duration": s.opts.Duration.String(),
			"warmup": s.opts.Warmup.String(), "replay_events": s.opts.ReplayEvents, "memory_tokens": s.opts.MemoryTokens,
			"revoke_tokens": s.opts.RevokeTokens},
	}
}

// Result returns the named scenario's result.
func (r *Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Scenario == name {
			return res, true
		}
	}
	return Result{}, false
}

// budget is a target from issue 8: a floor (min) or a ceiling.
type budget struct {
	text  string
	value func(Result) (float64, bool) // the measured figure, if measured
	limit float64
	floor bool
	unit  string
}

var budgets = map[string]budget{
	Issue:             {text: "≥ 0.40× baseline, 1 append per token", value: ratioOf, limit: 0.4, floor: true, unit: "×"},
	Introspect:        {text: "≥ 0.80× baseline", value: ratioOf, limit: 0.8, floor: true, unit: "×"},
	Verify:            {text: "≥ 0.80× baseline", value: ratioOf, limit: 0.8, floor: true, unit: "×"},
	RevokePropagation: {text: "p99 ≤ 25 ms", value: func(r Result) (float64, bool) { return r.P99Ms, r.Count > 0 }, limit: 25, unit: " ms"},
	Replay:            {text: "≥ 300,000 events/s", value: throughputOf, limit: 300_000, floor: true, unit: " events/s"},
	Memory:            {text: "≤ 256 bytes/token", value: throughputOf, limit: 256, unit: " bytes/token"},
}

func ratioOf(r Result) (float64, bool) {
	if r.Ratio == nil {
		return 0, false
	}
	return *r.Ratio, true
}

func throughputOf(r Result) (float64, bool) { return r.Throughput, r.Count > 0 }

// finish computes ratios to this run's baseline and checks the budgets.
func (r *Report) finish() {
	base, ok := r.Result(Baseline)
	for i := range r.Results {
		res := &r.Results[i]
		if res.Skipped != "" {
			continue
		}
		if ok && base.Throughput > 0 && res.Unit == "req/s" {
			ratio := res.Throughput / base.Throughput
			res.Ratio = &ratio
		}
		b, has := budgets[res.Scenario]
		if !has {
			continue
		}
		res.Budget = b.text
		v, measured := b.value(*res)
		if !measured {
			continue
		}
		pass := v <= b.limit
		if b.floor {
			pass = v >= b.limit
		}
		if res.Scenario == Issue {
			if appended, ok := res.Metrics["appended_per_token"]; ok && math.Abs(appended-1) > 0.001 {
				pass = false
				res.Shortfall = fmt.Sprintf("%.3f appends per token, want 1", appended)
			}
		}
		if res.Errors > 0 {
			pass = false
		}
		res.Pass = &pass
		if !pass && res.Shortfall == "" {
			switch {
			case res.Errors > 0 && (b.floor && v >= b.limit || !b.floor && v <= b.limit):
				res.Shortfall = fmt.Sprintf("%d errors", res.Errors)
			case b.floor:
				res.Shortfall = fmt.Sprintf("%s%s of %s%s: %.0f%% short", num(v), b.unit, num(b.limit), b.unit, (1-v/b.limit)*100)
			default:
				res.Shortfall = fmt.Sprintf("%s%s against %s%s: %.0f%% over", num(v), b.unit, num(b.limit), b.unit, (v/b.limit-1)*100)
			}
		}
	}
}

// num prints a figure with sensible precision: ratios with two decimals,
// large figures grouped.
func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return group(int64(v))
	case math.Abs(v) < 10:
		return fmt.Sprintf("%.2f", v)
	case math.Abs(v) < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return group(int64(math.Round(v)))
}

func machine() Machine {
	m := Machine{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), CPU: cpuModel()}
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, kv := range info.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				if kv.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			m.Commit = rev + dirty
		}
	}
	if m.Commit == "" { // go run and go test do not stamp the revision
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			m.Commit = strings.TrimSpace(string(out))
			if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
				m.Commit += "-dirty"
			}
		}
	}
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
