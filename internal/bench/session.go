package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/internal/node"
)

// Session holds what scenarios share: the node under test (started here or
// reached by URL), the HTTP client, the tenant, the baseline's rate.
type Session struct {
	opts   Options
	prog   *progress
	client *client
	dir    string // temp data dir of in-process nodes, removed by Close
	// base and rootKey reach node A; node is nil with --url.
	base    string
	rootKey string
	node    *node.Node
	kek     []byte
	closers []func()
	tenant  *tenant
	started time.Time
	runs    int // memory runs so far, naming their data dirs
}

// Start opens a session: with Options.URL it targets that node,
// otherwise it starts an in-process node with embedded NATS in a fresh
// temporary data dir.
func Start(ctx context.Context, o Options) (*Session, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Session{opts: o, prog: newProgress(o.Progress, o.Quiet), client: newClient(o.Concurrency), started: time.Now()}
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	if o.URL != "" {
		s.base, s.rootKey = o.URL, o.Key
		return s, nil
	}
	dir, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return nil, err
	}
	s.dir = dir
	s.kek = make([]byte, domain.KEKSize)
	rootKey, err := domain.NewID(rand.Reader, "bench-root-", 32)
	if err == nil {
		_, err = rand.Read(s.kek)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.rootKey = rootKey
	if !needsNode(o.selected()) {
		return s, nil
	}
	s.prog.logf("starting an in-process node (embedded NATS, data in %s)", dir)
	n, err := s.startNode(ctx, "a", "")
	if err != nil {
		s.Close()
		return nil, err
	}
	s.node, s.base = n, n.URL()
	return s, nil
}

func needsNode(names []string) bool {
	for _, n := range names {
		if n != Replay && n != Memory && n != RevokePropagation {
			return true
		}
	}
	return false
}

// startNode starts a node storing under the session's dir/name; natsURL
// joins a NATS server instead of embedding one. Close stops it.
func (s *Session) startNode(ctx context.Context, name, natsURL string) (*node.Node, error) {
	cfg := node.Config{
		DataDir: filepath.Join(s.dir, name), Listen: "127.0.0.1:0", NATSURL: natsURL, NATSListen: "",
		RootKey: s.rootKey, KeyEncryptionKey: s.kek, Logger: s.opts.Logger, ShutdownTimeout: 5 * time.Second,
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	n, err := node.Start(sctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start node %s: %w", name, err)
	}
	s.closers = append(s.closers, func() { _ = n.Close() })
	return n, nil
}

// stopAll stops every node and server the session started so far.
func (s *Session) stopAll() {
	s.client.close()
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
	s.node = nil
}

// Close stops everything the session started and removes its data.
func (s *Session) Close() {
	s.stopAll()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}

// api calls the management API of base with key; out, if not nil, receives
// the JSON answer, which must have status want.
func (s *Session) api(base, key, method, path string, body any, want int, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return err
		}
	}
	status, answer, err := s.client.do(method, base+path, raw, [2]string{"X-API-Key", key}, [2]string{"Content-Type", "application/json"})
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: status %d, want %d: %.300s", method, path, status, want, answer)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// tenant is an account made for the run, with its owner key and a verifier
// key (tokens:verify, tokens:introspect) with room for any load.
type tenant struct {
	accountID, owner, verifier string
}

// unlimited is a rate limit no benchmark reaches.
var unlimited = map[string]any{"limit": 1_000_000_000, "window": 60}

// newTenant opens an account on base with the root key.
func (s *Session) newTenant(base, name string) (*tenant, error) {
	var acc struct {
		ID     string `json:"id"`
		APIKey struct {
			Token string `json:"token"`
		} `json:"api_key"`
	}
	if err := s.api(base, s.rootKey, "POST", "/accounts", map[string]string{"name": name}, 201, &acc); err != nil {
		return nil, err
	}
	t := &tenant{accountID: acc.ID, owner: acc.APIKey.Token}
	var key struct {
		Token string `json:"token"`
	}
	if err := s.api(base, t.owner, "POST", "/tokens", map[string]any{"name": "bench-verifier",
		"scopes": []string{"tokens:verify", "tokens:introspect"}, "rate_limit": unlimited}, 201, &key); err != nil {
		return nil, err
	}
	t.verifier = key.Token
	return t, nil
}

// mainTenant is the tenant on node A, made once.
func (s *Session) mainTenant() (*tenant, error) {
	if s.tenant != nil {
		return s.tenant, nil
	}
	t, err := s.newTenant(s.base, "bench")
	if err != nil {
		return nil, err
	}
	s.tenant = t
	return t, nil
}

// profiled runs f under a CPU profile and writes heap profiles before and
// after, when a profile directory is set. The server runs in this process,
// so the profiles hold it as well as the load generator.
func (s *Session) profiled(name string, f func()) {
	dir := s.opts.ProfileDir
	if dir == "" {
		f()
		return
	}
	writeHeap := func(path string) {
		if fh, err := os.Create(path); err == nil {
			runtime.GC() // up-to-date in-use figures
			_ = pprof.Lookup("heap").WriteTo(fh, 0)
			_ = fh.Close()
		}
	}
	writeHeap(filepath.Join(dir, name+".heap-before.pprof"))
	cpu, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
	started := err == nil && pprof.StartCPUProfile(cpu) == nil
	if err != nil || !started {
		s.prog.logf("%s: CPU profile not written (another profile running?)", name)
	}
	f()
	if started {
		pprof.StopCPUProfile()
	}
	if cpu != nil {
		_ = cpu.Close()
	}
	writeHeap(filepath.Join(dir, name+".heap.pprof"))
}
