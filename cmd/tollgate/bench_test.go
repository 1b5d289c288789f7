package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/bench"
)

// tollgate bench end to end with tiny sizes: every scenario runs without
// errors, and the JSON, Markdown and doc outputs hold what they should.
// Nothing here asserts a speed.
func TestBenchCommandEveryScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four nodes: skipped in -short")
	}
	dir := t.TempDir()
	jsonPath, mdPath, docPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md"), filepath.Join(dir, "perf.md")
	prose := "# Performance\n\nprose before\n\n" + bench.DocBegin + "\nstale table\n" + bench.DocEnd + "\n\nprose after, kept\n"
	if err := os.WriteFile(docPath, []byte(prose), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--duration", "300ms", "--warmup", "50ms", "--concurrency", "8",
		"--replay-events", "2000", "--memory-tokens", "2000", "--revoke-tokens", "5",
		"--json", jsonPath, "--markdown", mdPath, "--update-doc", docPath}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}

	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("JSON report: %v", err)
	}
	if rep.Machine.NumCPU == 0 || rep.Machine.GoVersion == "" || !strings.Contains(rep.Command, "bench --duration 300ms") {
		t.Errorf("machine %+v, command %q", rep.Machine, rep.Command)
	}
	if len(rep.Results) != len(bench.Scenarios) {
		t.Fatalf("%d results, want %d: %s", len(rep.Results), len(bench.Scenarios), stdout.String())
	}
	base, _ := rep.Result(bench.Baseline)
	for i, res := range rep.Results {
		if res.Scenario != bench.Scenarios[i] {
			t.Errorf("result %d is %s, want %s", i, res.Scenario, bench.Scenarios[i])
		}
		if res.Skipped != "" || res.Throughput <= 0 || res.Errors != 0 || res.Count == 0 {
			t.Errorf("%s: throughput %v, count %d, errors %d, skipped %q, first error %q", res.Scenario, res.Throughput, res.Count,
				res.Errors, res.Skipped, res.FirstError)
		}
		if res.Unit == "req/s" {
			if res.Ratio == nil || *res.Ratio != res.Throughput/base.Throughput {
				t.Errorf("%s: ratio %v is not against this run's baseline (%v ÷ %v)", res.Scenario, res.Ratio, res.Throughput, base.Throughput)
			}
			if res.P50Ms <= 0 || res.P50Ms > res.P90Ms || res.P90Ms > res.P99Ms {
				t.Errorf("%s: percentiles p50 %v p90 %v p99 %v", res.Scenario, res.P50Ms, res.P90Ms, res.P99Ms)
			}
		}
	}
	if res, _ := rep.Result(bench.Issue); res.Metrics["appended_per_token"] != 1 {
		t.Errorf("issue: %v events appended per token, want 1", res.Metrics["appended_per_token"])
	}
	for _, name := range []string{bench.RevokePropagation, bench.Memory, bench.Replay} {
		if res, _ := rep.Result(name); res.Pass == nil {
			t.Errorf("%s: budget not checked", name)
		}
	}

	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range bench.Scenarios {
		for what, text := range map[string][]byte{"markdown": md, "doc": doc, "table": stdout.Bytes()} {
			if !bytes.Contains(text, []byte("| "+name+" |")) && !(what == "table" && bytes.Contains(text, []byte(name+" "))) {
				t.Errorf("%s output lacks %s", what, name)
			}
		}
	}
	if !bytes.HasPrefix(doc, []byte("# Performance\n\nprose before\n\n"+bench.DocBegin+"\n")) ||
		!bytes.HasSuffix(doc, []byte("\n"+bench.DocEnd+"\n\nprose after, kept\n")) || bytes.Contains(doc, []byte("stale table")) {
		t.Errorf("--update-doc touched more than its region:\n%s", doc)
	}
	if !bytes.Contains(doc, []byte(rep.Command)) {
		t.Errorf("doc lacks the command line %q", rep.Command)
	}
}

func TestBenchCommandRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"bench", "--scenarios", "nope"},
		{"bench", "--url", "http://127.0.0.1:1"}, // no --key
		{"bench", "--concurrency", "0"},
		{"bench", "--memory-tokens", "0"},
		{"bench", "extra"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out, &out); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestCommandLineHidesKey(t *testing.T) {
	t.Parallel()
	got := strings.Join(commandLine([]string{"--url", "http://x", "--key", "secret", "--key=secret2", "--scenarios", "a b"}), " ")
	if strings.Contains(got, "secret") || !strings.Contains(got, "'a b'") {
		t.Errorf("command line %q", got)
	}
}
