// Command tollgate is the single Tollgate binary.
//
//	tollgate [serve] [flags]   run the server (default)
//	tollgate rebuild [flags]   drop and replay every projection
//	tollgate bench [flags]     measure the hot paths (see internal/bench)
//
// Every flag is also an environment variable: TOLLGATE_ + the flag name in
// upper case with '-' as '_' (--data-dir is TOLLGATE_DATA_DIR). A flag on the
// command line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/internal/bench"
	"github.com/tollgate/tollgate/internal/node"
)

func main() {
	bench.RunNATSChildIfAsked() // the memory benchmark's NATS server process
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseFlags("serve", args, stderr)
		if err != nil {
			return err
		}
		cfg.Out = stdout
		return serve(ctx, cfg)
	case "rebuild":
		cfg, err := parseFlags("rebuild", args, stderr)
		if err != nil {
			return err
		}
		return rebuild(ctx, cfg, stderr)
	case "bench":
		return benchCmd(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: tollgate [serve|rebuild|bench] [flags]; tollgate serve -h (bench -h) lists the flags")
		return nil
	}
	return fmt.Errorf("unknown command %q (serve, rebuild, bench)", cmd)
}

// parseFlags reads flags, with TOLLGATE_* environment variables as defaults.
func parseFlags(name string, args []string, stderr io.Writer) (node.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.Config
	var proxies, logLevel, kek string
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "data directory (<data-dir>/nats, <data-dir>/projections)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "join an existing NATS server or cluster (comma-separated URLs) instead of the embedded one")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "address where the embedded NATS accepts downstream subscribers (empty: none)")
	fs.IntVar(&cfg.StreamReplicas, "stream-replicas", 1, "replicas of Tollgate's JetStream streams (3 on a cluster)")
	fs.StringVar(&cfg.RootKey, "root-key", "", "root API key on first start, used verbatim (at least 32 characters)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file")
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated IPs and CIDRs of trusted reverse proxies")
	fs.StringVar(&cfg.Issuer, "issuer", "", "OAuth issuer URL (default http://<listen>)")
	fs.StringVar(&kek, "key-encryption-key", "", "base64 of the 32-byte key that seals private signing keys and webhook signing secrets; every node of a cluster needs the same one (default: generated once in <data-dir>/kek, single node only)")
	fs.IntVar(&cfg.AuthFailureLimit, "auth-failure-limit", 10, "failed OAuth client authentications per minute per client_id and per IP before 429")
	fs.DurationVar(&cfg.RefreshTokenTTL, "refresh-token-ttl", domain.DefaultRefreshTokenTTL, "absolute lifetime of an authorization-code grant's refresh tokens, from the code's redemption (rotation does not extend it)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&cfg.UsageFlushInterval, "usage-flush-interval", 250*time.Millisecond, "how often usage records are published; a crash loses at most this much usage")
	fs.DurationVar(&cfg.UsageMaxAge, "usage-retention", 30*24*time.Hour, "how long the usage stream keeps records")
	var backoff string
	fs.BoolVar(&cfg.Callbacks.AllowLoopback, "callbacks-allow-loopback", false, "allow callback URLs that resolve to loopback (development and tests)")
	fs.StringVar(&backoff, "callback-backoff", "", "comma-separated delays between callback attempts, e.g. 1s,2s,4s (default 5s … 12h over about a day, 10 attempts)")

	if err := applyEnv(fs); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.RefreshTokenTTL <= 0 {
		return cfg, fmt.Errorf("--refresh-token-ttl (TOLLGATE_REFRESH_TOKEN_TTL) must be a positive duration such as 720h, not %s", cfg.RefreshTokenTTL)
	}
	var err error
	if cfg.TrustedProxies, err = node.ParsePrefixes(proxies); err != nil {
		return cfg, err
	}
	if cfg.Callbacks.Backoff, err = node.ParseBackoff(backoff); err != nil {
		return cfg, fmt.Errorf("--callback-backoff: %w", err)
	}
	if kek != "" {
		if cfg.KeyEncryptionKey, err = node.ParseKEK(kek); err != nil {
			return cfg, fmt.Errorf("--key-encryption-key: %w", err)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cfg, nil
}

// applyEnv sets every flag of fs that has a TOLLGATE_* environment variable.
func applyEnv(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		env := "TOLLGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", env, err))
			}
		}
	})
	return errors.Join(errs...)
}

func serve(ctx context.Context, cfg node.Config) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	return n.Close()
}
