package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/node"
)

// memSample is the process's memory at one point, after a full GC with
// freed memory returned to the OS.
type memSample struct {
	rss, heap uint64 // bytes; rss 0 where /proc is missing
}

func sampleMemory() memSample {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{rss: vmRSS(), heap: ms.HeapInuse}
}

// quiesce waits until the node has applied everything in the event and
// usage streams (its projectors read with ordered consumers, which
// acknowledge nothing) and every durable consumer (webhook fan-out) has
// read and acknowledged everything, or limit passes.
func quiesce(ctx context.Context, n *node.Node, limit time.Duration) {
	js, err := jetstream.New(n.NATS())
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for ctx.Err() == nil {
		idle := true
		for _, c := range []struct {
			stream string
			p      interface{ Applied() uint64 }
		}{{events.DefaultStream, n.Projector}, {events.UsageStream, n.UsageProjector}} {
			str, err := js.Stream(ctx, c.stream)
			if err != nil {
				continue
			}
			if info, err := str.Info(ctx); err == nil && c.p.Applied() < info.State.LastSeq {
				idle = false
			}
			for info := range str.ListConsumers(ctx).Info() {
				if info.Config.Durable != "" && (info.NumPending > 0 || info.NumAckPending > 0) {
					idle = false
				}
			}
		}
		if idle {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// settledMemory samples until the heap stops shrinking: work the load
// left behind (usage batches, projections, webhook fan-out of a million
// events, NATS buffers) drains first, so what is measured is what the
// node keeps, not what is in flight. It gives up after limit.
func settledMemory(ctx context.Context, limit time.Duration) memSample {
	deadline := time.Now().Add(limit)
	prev := sampleMemory()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Second)
		cur := sampleMemory()
		if cur.heap+cur.heap/100 >= prev.heap { // within 1%, or growing
			return cur
		}
		prev = cur
	}
	return prev
}

// vmRSS reads VmRSS from /proc/self/status (Linux), 0 elsewhere.
func vmRSS() uint64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return parseVmRSS(string(raw))
}

// parseVmRSS finds VmRSS in a /proc/<pid>/status text, in bytes.
func parseVmRSS(status string) uint64 {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func perToken(after, before uint64, n int) float64 {
	return (float64(after) - float64(before)) / float64(n)
}

// memoryToken is the i-th token string of a run, the same every time it is
// derived (so a million of them need not be kept in memory while measured).
func memoryToken(seed uint64, i int) (string, domain.Credential, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(i))
	return domain.NewCredential(rand.NewChaCha8(key), domain.PrefixLive)
}

// prepareMemory needs an in-process node of its own: it measures this
// process's memory.
func (s *Session) prepareMemory(ctx context.Context) (func(context.Context, int) (Result, error), error) {
	if s.opts.URL != "" {
		return nil, errors.New("measures the memory of an in-process node; not available with --url")
	}
	return func(ctx context.Context, _ int) (Result, error) { return s.runMemory(ctx) }, nil
}

// runMemory loads M tokens into a fresh node through the event stream (one
// token.created each, as POST /tokens appends it), waits for the
// projector, then verifies every token once through the node's own HTTP
// handler (in-process, no socket), so everything a verify loads for a
// token is loaded. Memory is sampled idle, loaded and active.
func (s *Session) runMemory(ctx context.Context) (Result, error) {
	m := s.opts.MemoryTokens
	s.runs++
	// NATS runs in a process of its own, as in a deployment on a NATS
	// cluster: its caches are not Tollgate's memory (reported apart).
	natsProc, err := startNATSProcess(ctx, filepath.Join(s.dir, fmt.Sprintf("memory-nats-%d", s.runs)))
	if err != nil {
		return Result{}, err
	}
	defer natsProc.stop()
	natsIdle := natsProc.rss()
	n, err := s.startNode(ctx, fmt.Sprintf("memory-%d", s.runs), natsProc.url)
	if err != nil {
		return Result{}, err
	}
	defer n.Close() // its memory must not count in the next run's idle sample
	t, err := s.newTenant(n.URL(), "bench-memory")
	if err != nil {
		return Result{}, err
	}
	seed := uint64(time.Now().UnixNano())
	idle := settledMemory(ctx, 30*time.Second)

	setup := time.Now()
	var appended atomic.Int64
	stop := s.prog.track(Memory, countStatus("appending token.created", appended.Load, int64(m)))
	last, err := appendTokens(ctx, n.NATS(), t.accountID, seed, m, &appended)
	stop()
	if err != nil {
		return Result{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = n.Projector.WaitFor(wctx, last)
	cancel()
	if err != nil {
		return Result{}, fmt.Errorf("projector catching up with %d tokens: %w", m, err)
	}
	loadTook := time.Since(setup)
	quiesce(ctx, n, 5*time.Minute)
	loaded := settledMemory(ctx, 2*time.Minute)

	var verified, failed atomic.Int64
	var firstErr firstError
	stop = s.prog.track(Memory, countStatus("verifying each token once", verified.Load, int64(m)))
	activateStart := time.Now()
	s.profiled(Memory, func() { activate(ctx, n, t.verifier, seed, m, &verified, &failed, &firstErr) })
	activateTook := time.Since(activateStart)
	stop()
	time.Sleep(600 * time.Millisecond) // let the usage batches (every 250 ms) go out
	quiesce(ctx, n, 5*time.Minute)
	active := settledMemory(ctx, 2*time.Minute)
	natsActive := natsProc.rss()
	if s.opts.ProfileDir != "" { // what the node keeps, once settled
		if fh, err := os.Create(filepath.Join(s.opts.ProfileDir, Memory+".heap-settled.pprof")); err == nil {
			_ = pprof.Lookup("heap").WriteTo(fh, 0)
			_ = fh.Close()
		}
	}

	res := Result{Unit: "bytes/token", Count: int64(m), Errors: failed.Load(),
		Throughput: perToken(active.rss, loaded.rss, m),
		Metrics: map[string]float64{
			"rss_active_bytes_per_token":  perToken(active.rss, loaded.rss, m),
			"heap_active_bytes_per_token": perToken(active.heap, loaded.heap, m),
			"rss_loaded_bytes_per_token":  perToken(loaded.rss, idle.rss, m),
			"heap_loaded_bytes_per_token": perToken(loaded.heap, idle.heap, m),
			"rss_total_bytes_per_token":   perToken(active.rss, idle.rss, m),
			"heap_total_bytes_per_token":  perToken(active.heap, idle.heap, m),
			"rss_idle_mb":                 float64(idle.rss) / (1 << 20),
			"nats_rss_bytes_per_token":    perToken(natsActive, natsIdle, m),
			"rss_active_mb":               float64(active.rss) / (1 << 20),
			"load_seconds":                loadTook.Seconds(),
			"activate_seconds":            activateTook.Seconds(),
		},
		Settings: map[string]any{"tokens": m, "load": "token.created published asynchronously in the event store's message format",
			"activate": "one POST /verify per token through the node's Fiber handler, in-process"}}
	if err := firstErr.get(); err != nil {
		res.FirstError = err.Error()
	}
	if active.rss == 0 {
		res.Throughput = perToken(active.heap, loaded.heap, m)
		res.Notes = append(res.Notes, "no /proc/self/status here: the figure is Go heap in use, not RSS")
	}
	res.Notes = append(res.Notes,
		fmt.Sprintf("figure = (RSS after verifying every token once − RSS with the %s tokens loaded but unused) ÷ tokens; after GC and FreeOSMemory", group(int64(m))),
		fmt.Sprintf("Go heap in use: %.0f bytes/token active, %.0f loaded; RSS loaded %.0f, total %.0f bytes/token (idle node %.0f MB, active %.0f MB)",
			res.Metrics["heap_active_bytes_per_token"], res.Metrics["heap_loaded_bytes_per_token"], res.Metrics["rss_loaded_bytes_per_token"],
			res.Metrics["rss_total_bytes_per_token"], res.Metrics["rss_idle_mb"], res.Metrics["rss_active_mb"]),
		fmt.Sprintf("setup: loading %.1f s, verifying %.1f s", loadTook.Seconds(), activateTook.Seconds()))
	return res, nil
}

// appendTokens publishes one token.created per token asynchronously, each
// message as the event store writes it (subject per aggregate, event id as
// Nats-Msg-Id, expected stream), and returns the stream's last sequence. The
// store's synchronous Append manages about 10k events/s here; a million
// tokens would take minutes.
func appendTokens(ctx context.Context, nc *nats.Conn, account string, seed uint64, m int, appended *atomic.Int64) (uint64, error) {
	pub, err := newAsyncPublisher(nc, map[string]string{jetstream.ExpectedStreamHeader: events.DefaultStream})
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	for i := 0; i < m && ctx.Err() == nil; i++ {
		tok, cred, err := memoryToken(seed, i)
		if err != nil {
			return 0, err
		}
		id := cred.TokenID()
		ev, err := events.New(events.Meta{ID: fmt.Sprintf("evt_mem%x_%d", seed, i), AggregateType: events.AggregateToken, AggregateID: id,
			AccountID: account, Environment: domain.EnvLive, Time: now, Actor: "bench"},
			events.TokenCreated{ID: id, AccountID: account, Name: "bench-" + strconv.Itoa(i), Scopes: []string{"domains:read"},
				Environment: domain.EnvLive, Hash: domain.HashSecret(tok), CreatedAt: now})
		if err != nil {
			return 0, err
		}
		if err := pub.publish(ev); err != nil {
			return 0, err
		}
		appended.Add(1)
	}
	return pub.finish(ctx)
}

// activate verifies every token once through the app's handler, from as
// many goroutines as there are cores.
func activate(ctx context.Context, n *node.Node, verifier string, seed uint64, m int, done, failed *atomic.Int64, firstErr *firstError) {
	handler := n.API.App.Handler()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 2*runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req fasthttp.Request
			var rc fasthttp.RequestCtx
			req.Header.SetMethod("POST")
			req.SetRequestURI("http://" + n.Addr() + "/verify")
			req.Header.SetContentType("application/json")
			req.Header.Set("X-API-Key", verifier)
			body := make([]byte, 0, 256)
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= m {
					return
				}
				tok, _, err := memoryToken(seed, i)
				if err == nil {
					body = append(append(append(body[:0], `{"token":"`...), tok...), `","scopes":["domains:read"],"cost":0}`...)
					req.SetBody(body)
					rc.Init(&req, remote, nil)
					handler(&rc)
					if rc.Response.StatusCode() != 200 || !bytes.Contains(rc.Response.Body(), []byte(`"valid":true`)) {
						err = fmt.Errorf("verify token %d: status %d: %.200s", i, rc.Response.StatusCode(), rc.Response.Body())
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.set(err)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
}
