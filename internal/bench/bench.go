// Package bench is Tollgate's load generator and benchmark suite: it
// measures every hot path (token issuance, introspection, verify, revocation
// propagation, projection replay, memory per token) beside a bare Fiber
// handler in the same run, against nodes it starts in-process or against
// running servers. `tollgate bench` and the Go benchmarks in this package
// both drive it, so they measure the same thing.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order they run.
const (
	Baseline          = "baseline"
	Issue             = "issue"
	Introspect        = "introspect"
	Verify            = "verify"
	VerifyPaid        = "verify-paid"
	RevokePropagation = "revoke-propagation"
	Replay            = "replay"
	Memory            = "memory"
)

// Scenarios lists every scenario in running order.
var Scenarios = []string{Baseline, Issue, Introspect, Verify, VerifyPaid, RevokePropagation, Replay, Memory}

// httpScenarios are compared with the baseline.
var httpScenarios = []string{Issue, Introspect, Verify, VerifyPaid}

// ErrInvalidOption wraps every problem with [Options].
var ErrInvalidOption = errors.New("bench: invalid option")

// Options configures a run. Zero fields take their defaults.
type Options struct {
	// Scenarios to run, by name; empty runs them all. The baseline runs
	// whenever an HTTP scenario does (their ratios need it).
	Scenarios []string
	// Concurrency is how many requests are in flight at once. Default 64.
	Concurrency int
	// Duration of each HTTP scenario's measured phase. Default 10s.
	Duration time.Duration
	// Warmup before each HTTP scenario (not recorded). Default 2s; negative: none.
	Warmup time.Duration
	// URL targets a running node instead of starting one; Key is an admin
	// (root) key on it. URLB is a second node of the same cluster for
	// revoke-propagation.
	URL, URLB, Key string
	// ReplayEvents is how many events replay appends and rebuilds. Default 1,000,000.
	ReplayEvents int
	// MemoryTokens is how many tokens memory loads and activates. Default 1,000,000.
	MemoryTokens int
	// RevokeTokens is how many tokens revoke-propagation revokes. Default 200.
	RevokeTokens int
	// ProfileDir, if set, receives per-scenario CPU and heap profiles.
	ProfileDir string
	// Progress receives live progress (default: none); Quiet silences it.
	Progress io.Writer
	Quiet    bool
	// Logger receives the in-process nodes' logs. Default: errors to stderr.
	Logger *slog.Logger
	// Command is the command line, recorded in the report.
	Command []string
}

func (o *Options) setDefaults() {
	if len(o.Scenarios) == 0 {
		o.Scenarios = slices.Clone(Scenarios)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 64
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	o.Warmup = max(o.Warmup, 0)
	if o.ReplayEvents == 0 {
		o.ReplayEvents = 1_000_000
	}
	if o.MemoryTokens == 0 {
		o.MemoryTokens = 1_000_000
	}
	if o.RevokeTokens == 0 {
		o.RevokeTokens = 200
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(Scenarios, s) {
			bad("unknown scenario %q (known: %s)", s, strings.Join(Scenarios, ", "))
		}
	}
	if o.Concurrency < 1 {
		bad("concurrency must be at least 1")
	}
	if o.Duration <= 0 {
		bad("duration must be > 0")
	}
	if o.ReplayEvents < 6 || o.MemoryTokens < 1 || o.RevokeTokens < 1 {
		bad("replay events (at least 6), memory tokens and revoke tokens must be positive")
	}
	if o.URL != "" && o.Key == "" {
		bad("--url needs --key, an admin (root) API key of that node")
	}
	if o.URLB != "" && o.URL == "" {
		bad("--url-b needs --url")
	}
	return errors.Join(errs...)
}

// selected returns the scenarios to run, in running order, with the
// baseline added when an HTTP scenario needs it.
func (o Options) selected() []string {
	want := map[string]bool{}
	for _, s := range o.Scenarios {
		want[s] = true
		if slices.Contains(httpScenarios, s) {
			want[Baseline] = true
		}
	}
	var out []string
	for _, s := range Scenarios {
		if want[s] {
			out = append(out, s)
		}
	}
	return out
}

// Run measures the selected scenarios and returns the report. A scenario
// that fails to set up is reported with its error; Run fails only when
// nothing could run.
func Run(ctx context.Context, o Options) (*Report, error) {
	s, err := Start(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rep := s.newReport()
	for _, name := range s.opts.selected() {
		s.prog.logf("== %s", name)
		switch {
		case name == Memory || name == Replay:
			// They measure this machine on nodes of their own: what earlier
			// scenarios started (and their backlogs) would only blur them.
			s.stopAll()
		case s.node != nil && s.opts.URL == "":
			// The usage and projections the previous scenario left behind
			// are its cost, not the next one's.
			quiesce(ctx, s.node, 2*time.Minute)
		}
		res, err := s.Measure(ctx, name, 0)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res = Result{Scenario: name, Skipped: err.Error()}
			s.prog.logf("%s: %v", name, err)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.finish()
	return rep, nil
}

// Measure prepares and runs one scenario. n > 0 fixes the amount of work
// (requests, revocations, replays) instead of the duration, for Go
// benchmarks; memory ignores it.
func (s *Session) Measure(ctx context.Context, name string, n int) (Result, error) {
	p, err := s.Prepare(ctx, name)
	if err != nil {
		return Result{}, err
	}
	return p.Run(ctx, n)
}

// Prepared is a scenario whose setup is done: Run measures it.
type Prepared struct {
	name string
	s    *Session
	run  func(ctx context.Context, n int) (Result, error)
}

// Run measures the scenario; see [Session.Measure] for n.
func (p *Prepared) Run(ctx context.Context, n int) (Result, error) {
	start := time.Now()
	res, err := p.run(ctx, n)
	if err != nil {
		return res, err
	}
	res.Scenario = p.name
	res.ElapsedSeconds = time.Since(start).Seconds()
	return res, nil
}

// Prepare sets a scenario up (nodes, accounts, clients, tokens, events)
// without measuring anything.
func (s *Session) Prepare(ctx context.Context, name string) (*Prepared, error) {
	var run func(context.Context, int) (Result, error)
	var err error
	switch name {
	case Baseline:
		run, err = s.prepareBaseline(ctx)
	case Issue:
		run, err = s.prepareIssue(ctx)
	case Introspect:
		run, err = s.prepareIntrospect(ctx)
	case Verify:
		run, err = s.prepareVerify(ctx, false)
	case VerifyPaid:
		run, err = s.prepareVerify(ctx, true)
	case RevokePropagation:
		run, err = s.prepareRevoke(ctx)
	case Replay:
		run, err = s.prepareReplay(ctx)
	case Memory:
		run, err = s.prepareMemory(ctx)
	default:
		return nil, fmt.Errorf("%w: unknown scenario %q", ErrInvalidOption, name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &Prepared{name: name, s: s, run: run}, nil
}

// loadConfig is the closed-loop configuration for n requests (0: the
// configured duration).
func (s *Session) loadConfig(n int) loadConfig {
	lc := loadConfig{workers: s.opts.Concurrency, duration: s.opts.Duration, warmup: s.opts.Warmup, requests: int64(n)}
	if n > 0 {
		lc.warmup = 0 // Go benchmarks warm up in their untimed setup
	}
	return lc
}

// httpResult turns a closed-loop run into a result.
func (s *Session) httpResult(lr loadResult) Result {
	res := Result{Unit: "req/s", Throughput: lr.rate(), Count: lr.count, Errors: lr.errors,
		P50Ms: ms(lr.hist.Quantile(0.5)), P90Ms: ms(lr.hist.Quantile(0.9)), P99Ms: ms(lr.hist.Quantile(0.99)), MaxMs: ms(lr.hist.Quantile(1)),
		Settings: map[string]any{"concurrency": s.opts.Concurrency, "duration": s.opts.Duration.String(), "warmup": s.opts.Warmup.String(),
			"client": "fasthttp, keep-alive"}}
	if lr.firstErr != nil {
		res.FirstError = lr.firstErr.Error()
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// runHTTP warms up and loads req, profiling the measured phase; around, if
// not nil, runs around the measured phase (inside the profile).
func (s *Session) runHTTP(ctx context.Context, name string, req *Request, n int, around func(measure func())) Result {
	if around == nil {
		around = func(measure func()) { measure() }
	}
	lr := runLoad(ctx, s.loadConfig(n), func() func() error { return s.client.sender(req).send }, s.prog, name,
		func(f func()) { s.profiled(name, func() { around(f) }) })
	return s.httpResult(lr)
}
