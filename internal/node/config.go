// Package node wires one Tollgate node: NATS (embedded or external), the
// event store, Pebble projections, the projector and the HTTP API. cmd and
// tests share it.
package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/workers"
)

// Config configures a node. Zero fields take their defaults.
type Config struct {
	// DataDir holds <data-dir>/nats and <data-dir>/projections. Default ./data.
	DataDir string
	// Listen is the HTTP address. Default 127.0.0.1:8080.
	Listen string
	// NATSURL joins an existing NATS server or cluster instead of starting
	// the embedded one (comma-separated URLs).
	NATSURL string
	// NATSListen is where the embedded NATS accepts downstream subscribers;
	// empty disables the listener.
	NATSListen string
	// StreamReplicas of every Tollgate stream and bucket. Default 1.
	StreamReplicas int
	// RootKey, at least 32 characters, is used verbatim as the root API key
	// on first start.
	RootKey string
	// TLSCert and TLSKey serve HTTPS.
	TLSCert, TLSKey string
	// TrustedProxies may forward plain HTTP.
	TrustedProxies []netip.Prefix
	// Issuer is the OAuth issuer URL. Default http://<listen> (with the
	// port the listener got when listen names port 0).
	Issuer string
	// KeyEncryptionKey (32 bytes) seals the private signing keys and the
	// webhook signing secrets in the event log. Every node of a cluster must
	// have the same one. Empty: the node keeps its own in <data-dir>/kek,
	// created on first start (fine for a single node only).
	KeyEncryptionKey []byte
	// MemoryProjections keeps Pebble in memory (tests).
	MemoryProjections bool
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Out receives the one-time root key line. Default io.Discard.
	Out io.Writer
	// ShutdownTimeout bounds a graceful stop. Default 10s.
	ShutdownTimeout time.Duration
	// AuthFailureLimit is how many failed client authentications per minute
	// one client_id or one IP may have on a node before the OAuth endpoints
	// answer it 429. Default 10.
	AuthFailureLimit int
	// RefreshTokenTTL is the absolute lifetime of the refresh tokens of an
	// authorization-code grant, from the code's redemption; rotation does
	// not extend it. Nodes of a cluster should agree on it. Default 720h
	// (30 days); negative is invalid.
	RefreshTokenTTL time.Duration
	// UsageFlushInterval is how often usage records are published (the most
	// a crash can lose). Default 250ms.
	UsageFlushInterval time.Duration
	// UsageMaxAge is how long the usage stream keeps records. Default 30 days.
	UsageMaxAge time.Duration
	// Clock is the time source. Default time.Now; tests move it.
	Clock func() time.Time
	// Callbacks configures webhook delivery; --callbacks-allow-loopback and
	// --callback-backoff set AllowLoopback and Backoff. Replicas and Logger
	// default to the node's.
	Callbacks workers.Config
}

// ErrInvalidConfig wraps every configuration problem.
var ErrInvalidConfig = errors.New("invalid configuration")

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.StreamReplicas == 0 {
		c.StreamReplicas = 1
	}
	if c.Issuer == "" {
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		c.Issuer = scheme + "://" + c.Listen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = domain.DefaultRefreshTokenTTL
	}
	if c.Callbacks.Replicas == 0 {
		c.Callbacks.Replicas = c.StreamReplicas
	}
	if c.Callbacks.Logger == nil {
		c.Callbacks.Logger = c.Logger
	}
	if c.Callbacks.Now == nil {
		c.Callbacks.Now = c.Clock
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.RootKey != "" && len(c.RootKey) < 32 {
		bad("root key must be at least 32 characters")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("stream replicas must be 1 to 5")
	}
	if !strings.HasPrefix(c.Issuer, "http://") && !strings.HasPrefix(c.Issuer, "https://") {
		bad("issuer must be an http:// or https:// URL")
	}
	if len(c.KeyEncryptionKey) != 0 && len(c.KeyEncryptionKey) != 32 {
		bad("key-encryption key must be 32 bytes (base64 in --key-encryption-key), not %d", len(c.KeyEncryptionKey))
	}
	if c.RefreshTokenTTL < 0 {
		bad("--refresh-token-ttl must be a positive duration, not %s", c.RefreshTokenTTL)
	}
	errs = append(errs, c.Callbacks.Validate())
	return errors.Join(errs...)
}

// ParseBackoff reads comma-separated delays ("1s,2s,4s") for
// --callback-backoff.
func ParseBackoff(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: callback backoff %q is not a positive duration", ErrInvalidConfig, part)
		}
		out = append(out, d)
	}
	return out, nil
}

// ParsePrefixes reads comma-separated IPs and CIDRs.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is neither an IP nor a CIDR", ErrInvalidConfig, part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
