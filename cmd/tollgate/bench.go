package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/internal/bench"
)

// benchCmd runs the benchmark suite and writes its report: a table on
// stdout, and on request JSON, Markdown and the generated region of a doc.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bench.Options
	var scenarios, jsonPath, mdPath, docPath, logLevel string
	names := strings.Join(bench.Scenarios, ",")
	fs.StringVar(&scenarios, "scenarios", "", "comma-separated scenarios to run (default all: "+names+")")
	fs.StringVar(&scenarios, "scenario", "", "alias of --scenarios")
	fs.IntVar(&o.Concurrency, "concurrency", 64, "requests in flight at once (HTTP scenarios)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measured time of each HTTP scenario")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unrecorded load before each HTTP scenario (0: none)")
	fs.StringVar(&o.URL, "url", "", "measure a running node at this URL instead of an in-process one")
	fs.StringVar(&o.Key, "key", "", "admin (root) API key of the node at --url")
	fs.StringVar(&o.URLB, "url-b", "", "second node of the same cluster, for revoke-propagation with --url")
	fs.IntVar(&o.ReplayEvents, "replay-events", 1_000_000, "events the replay scenario appends and rebuilds")
	fs.IntVar(&o.MemoryTokens, "memory-tokens", 1_000_000, "tokens the memory scenario loads and activates")
	fs.IntVar(&o.RevokeTokens, "revoke-tokens", 200, "tokens revoke-propagation revokes, one at a time")
	fs.StringVar(&o.ProfileDir, "cpuprofile-dir", "", "write <scenario>.cpu.pprof and heap profiles (<scenario>.heap-before.pprof, <scenario>.heap.pprof) here")
	fs.StringVar(&jsonPath, "json", "", "write the report as JSON to this file")
	fs.StringVar(&mdPath, "markdown", "", "write the report as a Markdown table to this file")
	fs.StringVar(&docPath, "update-doc", "", "replace the "+bench.DocBegin+" … "+bench.DocEnd+" region of this Markdown file with the report")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress lines")
	fs.StringVar(&logLevel, "log-level", "error", "log level of the in-process nodes")
	if err := applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	// Zero means "default" to bench.Options; on the command line it is a mistake.
	if o.Concurrency < 1 || o.Duration <= 0 || o.ReplayEvents < 1 || o.MemoryTokens < 1 || o.RevokeTokens < 1 {
		return fmt.Errorf("%w: --concurrency, --duration, --replay-events, --memory-tokens and --revoke-tokens must be positive", bench.ErrInvalidOption)
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.Progress = stderr
	o.Command = commandLine(args)

	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	write := func(path string, f func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := f(out); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	if err := write(jsonPath, rep.WriteJSON); err != nil {
		return err
	}
	if err := write(mdPath, rep.WriteMarkdown); err != nil {
		return err
	}
	if docPath != "" {
		return rep.UpdateDoc(docPath)
	}
	return nil
}

// commandLine is how to run this again: the binary's name (go run's when
// it was built by go run), "bench" and the arguments, quoted where needed.
// The --key value is not recorded.
func commandLine(args []string) []string {
	prog := "tollgate"
	if strings.Contains(os.Args[0], "go-build") {
		prog = "go run ./cmd/tollgate"
	}
	out := []string{prog, "bench"}
	hide := false
	for _, a := range args {
		switch {
		case hide:
			a, hide = "…", false
		case a == "--key" || a == "-key":
			hide = true
		case strings.HasPrefix(a, "--key=") || strings.HasPrefix(a, "-key="):
			a = a[:strings.Index(a, "=")+1] + "…"
		}
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return out
}
