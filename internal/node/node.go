package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/projections"
	"github.com/tollgate/tollgate/workers"
)

// Node is one running Tollgate.
type Node struct {
	cfg       Config
	ns        *embedded.Server
	nc        *nats.Conn
	js        jetstream.JetStream
	db        *pebble.DB
	Store     *events.JetStreamStore
	Projector *projections.Projector
	// UsageProjector feeds the statistics from the usage stream.
	UsageProjector *projections.Projector
	API            *api.API
	ln             net.Listener
	conns          *connTracker

	cancel context.CancelFunc
	wg     sync.WaitGroup

	fence     *api.ClusterFence
	usage     *api.UsageRecorder
	workers   *workers.Workers
	stopUsage context.CancelFunc
	usageDone chan struct{}
	stopOnce  sync.Once
	stopErr   error
}

// Storage is the shared part of serve and rebuild: NATS, the stream and Pebble.
type Storage struct {
	NS       *embedded.Server
	NC       *nats.Conn
	JS       jetstream.JetStream
	DB       *pebble.DB
	Store    *events.JetStreamStore
	Accounts *projections.Accounts
	Tokens   *projections.Tokens
	Scopes   *projections.Scopes
	Wallets  *projections.Wallets
	Stats    *projections.Stats
	Clients  *projections.Clients
	Access   *projections.Access
	// SigningKeys holds the keys that sign JWT access tokens.
	SigningKeys *projections.SigningKeys
	// Subscriptions and Deliveries are the webhook read models; Errors reads
	// the integration errors of both streams.
	Subscriptions *projections.Subscriptions
	Deliveries    *projections.Deliveries
	Errors        *projections.Errors
	// Users, Consents and Grants serve the authorization code flow.
	Users    *projections.Users
	Consents *projections.Consents
	Grants   *projections.Grants
}

// openProjections makes every projection on s.DB.
func (s *Storage) openProjections() {
	s.Accounts = projections.NewAccounts(s.DB)
	s.Tokens = projections.NewTokens(s.DB)
	s.Scopes = projections.NewScopes(s.DB)
	s.Wallets = projections.NewWallets(s.DB)
	s.Stats = projections.NewStats(s.DB)
	s.Clients = projections.NewClients(s.DB)
	s.Access = projections.NewAccess(s.DB)
	s.SigningKeys = projections.NewSigningKeys(s.DB)
	s.Subscriptions = projections.NewSubscriptions(s.DB)
	s.Deliveries = projections.NewDeliveries(s.DB)
	s.Errors = projections.NewErrors(s.DB)
	s.Users = projections.NewUsers(s.DB)
	s.Consents = projections.NewConsents(s.DB)
	s.Grants = projections.NewGrants(s.DB)
}

// EventProjections is every projection of the event stream on db, as a node
// has them: what a rebuild, or a benchmark of one, replays into.
func EventProjections(db *pebble.DB) []projections.Projection {
	s := &Storage{DB: db}
	s.openProjections()
	return s.Projections()
}

// Projections lists every projection of the event stream.
func (s *Storage) Projections() []projections.Projection {
	return []projections.Projection{s.Accounts, s.Tokens, s.Scopes, s.Clients, s.Wallets, s.Access, s.SigningKeys,
		s.Subscriptions, s.Deliveries, projections.DeliveryErrors{}, s.Users, s.Consents, s.Grants}
}

// UsageProjections lists every projection of the usage stream.
func (s *Storage) UsageProjections() []projections.Projection {
	return []projections.Projection{s.Stats, projections.UsageErrors{}}
}

// connect opens another connection to the node's NATS.
func (s *Storage) connect(cfg Config) func(name string) (*nats.Conn, error) {
	return func(name string) (*nats.Conn, error) {
		if s.NS != nil {
			return s.NS.Connect(name)
		}
		return nats.Connect(cfg.NATSURL, nats.Name(name), nats.MaxReconnects(-1))
	}
}

// OpenStorage connects to (or starts) NATS, ensures the stream and opens Pebble.
func OpenStorage(ctx context.Context, cfg Config) (*Storage, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Storage{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	var err error
	if cfg.NATSURL == "" {
		s.NS, err = embedded.Start(embedded.Options{StoreDir: filepath.Join(cfg.DataDir, "nats"), Listen: cfg.NATSListen, ServerName: "tollgate"})
		if err != nil {
			return nil, err
		}
		s.NC, err = s.NS.Connect("tollgate")
	} else {
		s.NC, err = nats.Connect(cfg.NATSURL, nats.Name("tollgate"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	if s.JS, err = jetstream.New(s.NC); err != nil {
		return nil, err
	}
	if _, err := events.EnsureStream(ctx, s.JS, events.StreamConfig{Replicas: cfg.StreamReplicas}); err != nil {
		return nil, err
	}
	if _, err := events.EnsureUsageStream(ctx, s.JS, cfg.StreamReplicas, cfg.UsageMaxAge); err != nil {
		return nil, err
	}
	if s.Store, err = events.NewJetStreamStore(s.NC, events.DefaultStream); err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.DataDir, "projections")
	if s.DB, err = projections.Open(dir, cfg.MemoryProjections); err != nil {
		if errors.Is(err, os.ErrExist) || isLocked(err) {
			return nil, fmt.Errorf("projections at %s are in use by another tollgate process: %w", dir, err)
		}
		return nil, err
	}
	s.openProjections()
	ok = true
	return s, nil
}

func isLocked(err error) bool {
	return err != nil && (errors.Is(err, os.ErrPermission) || strings.Contains(err.Error(), "lock") ||
		strings.Contains(err.Error(), "resource temporarily unavailable"))
}

// Close releases everything in reverse order.
func (s *Storage) Close() {
	if s.DB != nil {
		_ = s.DB.Flush()
		_ = s.DB.Close()
	}
	if s.NC != nil {
		_ = s.NC.Drain()
		s.NC.Close()
	}
	if s.NS != nil {
		s.NS.Stop()
	}
}

// Start runs a node until Close.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	// An issuer derived from a listen address with port 0 follows the port
	// the listener gets.
	issuerFollowsPort := cfg.Issuer == "" && strings.HasSuffix(cfg.Listen, ":0")
	cfg.setDefaults()
	st, err := OpenStorage(ctx, cfg)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, ns: st.NS, nc: st.NC, js: st.JS, db: st.DB, Store: st.Store}
	fail := func(err error) (*Node, error) {
		st.Close()
		return nil, err
	}
	n.Projector, err = projections.NewProjector(st.DB, projections.Config{Logger: cfg.Logger}, st.Projections()...)
	if err != nil {
		return fail(err)
	}
	n.UsageProjector, err = projections.NewProjector(st.DB, UsageProjectorConfig(cfg), st.UsageProjections()...)
	if err != nil {
		return fail(err)
	}
	kek, err := loadKEK(cfg.DataDir, cfg.KeyEncryptionKey)
	if err != nil {
		return fail(err)
	}
	guard := workers.Guard{AllowLoopback: cfg.Callbacks.AllowLoopback}
	idem, err := api.EnsureIdempotencyStore(ctx, st.JS, cfg.StreamReplicas)
	if err != nil {
		return fail(err)
	}
	assertions, err := api.EnsureAssertionStore(ctx, st.JS, cfg.StreamReplicas)
	if err != nil {
		return fail(err)
	}
	nodeID, err := loadNodeID(cfg.DataDir)
	if err != nil {
		return fail(err)
	}
	if n.fence, err = api.StartClusterFence(st.NC, nodeID, n.Projector, cfg.Logger); err != nil {
		return fail(err)
	}
	fail = func(err error) (*Node, error) {
		n.fence.Close()
		st.Close()
		return nil, err
	}
	n.usage = api.NewUsageRecorder(st.NC, api.UsageConfig{Node: nodeID, FlushInterval: cfg.UsageFlushInterval, Logger: cfg.Logger})
	n.API, err = api.New(api.Deps{
		Store: st.Store, Projector: n.Projector, Accounts: st.Accounts, Tokens: st.Tokens, Scopes: st.Scopes, Wallets: st.Wallets, Stats: st.Stats,
		Clients: st.Clients, Access: st.Access, SigningKeys: st.SigningKeys, Idempotency: idem, Assertions: assertions, Fence: n.fence,
		Usage: n.usage, Logger: cfg.Logger, Ready: n.ready, Now: cfg.Clock,
		Subscriptions: st.Subscriptions, Deliveries: st.Deliveries, Errors: st.Errors, CheckCallbackURL: guard.CheckURL,
		Users: st.Users, Consents: st.Consents, Grants: st.Grants,
	}, api.Config{TrustedProxies: cfg.TrustedProxies, TLS: cfg.TLSCert != "", NodeID: nodeID, Issuer: cfg.Issuer, KeyEncryptionKey: kek,
		AuthFailureLimit: cfg.AuthFailureLimit, RefreshTokenTTL: cfg.RefreshTokenTTL})
	if err != nil {
		return fail(err)
	}
	n.workers, err = workers.New(workers.Deps{Connect: st.connect(cfg), JS: st.JS, NC: st.NC, Store: st.Store,
		Projector: n.Projector, Subscriptions: st.Subscriptions, Deliveries: st.Deliveries, KEK: kek}, cfg.Callbacks)
	if err != nil {
		return fail(err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	usageCtx, stopUsage := context.WithCancel(context.Background())
	n.cancel, n.stopUsage, n.usageDone = cancel, stopUsage, make(chan struct{})
	abort := func(err error) (*Node, error) {
		n.workers.Abort()
		stopUsage()
		<-n.usageDone
		cancel()
		n.wg.Wait()
		return fail(err)
	}
	n.wg.Add(2)
	go n.runProjector(runCtx, n.Projector)
	go n.runProjector(runCtx, n.UsageProjector)
	go func() {
		defer close(n.usageDone)
		n.usage.Run(usageCtx)
	}()

	bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
	res, err := n.API.Bootstrap(bctx, cfg.RootKey)
	bcancel()
	if err != nil {
		return abort(fmt.Errorf("bootstrap: %w", err))
	}
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	err = n.API.EnsureDefaultScopes(sctx)
	if err == nil {
		if err = n.API.EnsureSigningKey(sctx); err != nil {
			err = fmt.Errorf("signing key: %w", err)
		}
	}
	if err == nil {
		err = errors.Join(n.API.ReleaseOwnWalletLeases(sctx), n.API.ReleaseOwnTokenLeases(sctx))
	}
	scancel()
	if err != nil {
		return abort(fmt.Errorf("startup: %w", err))
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		workers.Housekeeping(runCtx, n.API, workers.HousekeepingConfig{Logger: cfg.Logger})
	}()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	err = n.workers.Start(wctx)
	wcancel()
	if err != nil {
		return abort(fmt.Errorf("callback workers: %w", err))
	}
	switch {
	case res.Key != "":
		fmt.Fprintf(cfg.Out, "root api key: %s\n", res.Key)
	case res.KeyMismatch:
		cfg.Logger.Warn("--root-key differs from the stored root key and was ignored: the store is already bootstrapped")
	}

	if n.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return abort(fmt.Errorf("listen %s: %w", cfg.Listen, err))
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			n.ln.Close()
			return abort(fmt.Errorf("load TLS key pair: %w", err))
		}
		n.ln = tls.NewListener(n.ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	n.conns = newConnTracker(n.ln)
	n.ln = n.conns
	if issuerFollowsPort {
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		cfg.Issuer = scheme + "://" + n.ln.Addr().String()
		n.cfg.Issuer = cfg.Issuer
		n.API.SetIssuer(cfg.Issuer)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.API.App.Listener(n.ln); err != nil {
			cfg.Logger.Error("http server stopped", "err", err)
		}
	}()
	cfg.Logger.Info("tollgate serving", "listen", n.ln.Addr().String(), "issuer", cfg.Issuer, "embedded_nats", n.ns != nil)
	return n, nil
}

// runProjector keeps the projector running, restarting it after errors
// (NATS unreachable, consumer lost) until the node stops.
func (n *Node) runProjector(ctx context.Context, p *projections.Projector) {
	defer n.wg.Done()
	for {
		err := p.Run(ctx, n.js)
		if ctx.Err() != nil {
			return
		}
		n.cfg.Logger.Warn("projector stopped; restarting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) ready() error {
	if !n.nc.IsConnected() {
		return errors.New("NATS is not connected")
	}
	if !n.Projector.CaughtUp() {
		return errors.New("projections are catching up")
	}
	return nil
}

// Addr is the HTTP listener's address.
func (n *Node) Addr() string { return n.ln.Addr().String() }

// URL is the base URL of the HTTP API.
func (n *Node) URL() string {
	if n.cfg.TLSCert != "" {
		return "https://" + n.Addr()
	}
	return "http://" + n.Addr()
}

// NATSURL is where downstream subscribers reach this node's NATS: the
// embedded server's listener, or the cluster it joined. Empty when the
// embedded server listens on no port.
func (n *Node) NATSURL() string {
	if n.ns != nil {
		if n.cfg.NATSListen == "" {
			return ""
		}
		return n.ns.ClientURL()
	}
	return n.cfg.NATSURL
}

// NATS is the node's connection (tests use it to subscribe).
func (n *Node) NATS() *nats.Conn { return n.nc }

// Close stops gracefully: no new connections, in-flight requests finish,
// the projector stops after its current batch, Pebble is flushed and
// closed, NATS is drained.
func (n *Node) Close() error {
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		defer cancel()
		// While the server waits for requests under way, connections that
		// never sent one are closed as they are found.
		stopSweep := make(chan struct{})
		swept := make(chan struct{})
		go func() {
			defer close(swept)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				n.conns.closeUnused()
				select {
				case <-stopSweep:
					return
				case <-tick.C:
				}
			}
		}()
		n.stopErr = n.API.App.ShutdownWithContext(ctx)
		close(stopSweep)
		<-swept
		_ = n.ln.Close() // in case the server did not own it any more
		if err := n.API.ReturnLeases(ctx); err != nil {
			n.cfg.Logger.Warn("quota leases not returned; they come back when they expire", "err", err)
		}
		n.stopUsage() // flushes what is buffered
		<-n.usageDone
		// Attempts under way finish within what is left of the timeout.
		if err := n.workers.Close(ctx); err != nil {
			n.cfg.Logger.Warn("callback workers did not stop cleanly", "err", err)
		}
		n.fence.Close()
		n.cancel()
		n.wg.Wait()
		(&Storage{NS: n.ns, NC: n.nc, DB: n.db}).Close()
	})
	return n.stopErr
}

// loadNodeID reads this node's stable id from the data dir, creating it on
// first start. Quota leases name the node that holds them.
func loadNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "node-id")
	raw, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(raw))) > 0 {
		return strings.TrimSpace(string(raw)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	id, err := domain.NewID(rand.Reader, "node_", 16)
	if err != nil {
		return "", err
	}
	return id, os.WriteFile(path, []byte(id+"\n"), 0o600)
}

// UsageProjectorConfig is the projector of the usage stream (statistics).
func UsageProjectorConfig(cfg Config) projections.Config {
	return projections.Config{Name: "usage", Stream: events.UsageStream, Decode: projections.DecodeUsageBatch, Logger: cfg.Logger}
}

// Crash stops the node the way a killed process would look to the rest of
// the cluster: the NATS connection drops first, so no lease is returned,
// nothing is settled or flushed. Tests use it; the data dir stays as it is.
func (n *Node) Crash() {
	n.stopOnce.Do(func() {
		n.nc.Close()
		n.workers.Abort()
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		defer cancel()
		_ = n.API.App.ShutdownWithContext(ctx)
		_ = n.ln.Close()
		n.stopUsage()
		<-n.usageDone
		n.fence.Close()
		n.cancel()
		n.wg.Wait()
		(&Storage{NS: n.ns, DB: n.db}).Close()
	})
}
