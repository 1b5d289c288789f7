package api_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// HTTP benchmarks: a Tollgate node and a bare Fiber app, both on loopback,
// driven by benchClients concurrent net/http clients in the same process.
// The load generator and the servers share the machine's cores. Run with
//
//	go test ./api/ -run '^$' -bench 'AuthRatio|BareFiber|AccountsMe' -benchtime 3s

// benchClients is how many requests are in flight at once.
const benchClients = 64

// benchTarget is one URL to load, with the headers every request carries.
type benchTarget struct {
	url    string
	header http.Header
	client *http.Client
	// method and body, for POST targets; GET without a body by default.
	method string
	body   []byte
}

// newBenchClient returns a client tuned for many concurrent keep-alive
// connections to one host. Its connections are closed before the servers
// stop (cleanups run last-in first-out): a graceful shutdown otherwise waits
// for open keep-alive connections until its timeout.
func newBenchClient(b *testing.B) *http.Client {
	c := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        2 * benchClients,
			MaxIdleConnsPerHost: 256,
			MaxConnsPerHost:     0,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
	}
	b.Cleanup(c.CloseIdleConnections)
	return c
}

// get sends one request and reads the whole answer, which must be 200.
func (t benchTarget) get() error {
	req, err := t.request()
	if err != nil {
		return err
	}
	req.Header = t.header
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: status %d", req.Method, t.url, resp.StatusCode)
	}
	return err
}

func (t benchTarget) request() (*http.Request, error) {
	if t.method == "" {
		return http.NewRequest(http.MethodGet, t.url, nil)
	}
	return http.NewRequest(t.method, t.url, bytes.NewReader(t.body))
}

// bodySize is the length of t's answer; the two servers' answers should be
// of similar size for the ratio to compare the work around them.
func bodySize(b *testing.B, t benchTarget) int {
	b.Helper()
	req, err := t.request()
	if err != nil {
		b.Fatal(err)
	}
	req.Header = t.header
	resp, err := t.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return len(body)
}

// warm opens benchClients keep-alive connections so that connection setup
// is not measured.
func (t benchTarget) warm(b *testing.B) {
	b.Helper()
	warmN(b, t.get, benchClients)
}

type benchKey struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	Name        string    `json:"name"`
	Scopes      []string  `json:"scopes"`
	Environment string    `json:"environment"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"created_at"`
}

type benchMe struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Key       benchKey  `json:"key"`
}

// meBody has the fields and lengths of GET /accounts/me's answer for a new
// account's first key (580 bytes), so both servers encode and send the same
// amount.
var meBody = benchMe{
	ID: "acc_0123456789abcdefghij", Name: "bench", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 709218987, time.UTC),
	Key: benchKey{
		ID: "tok_0123456789abcdef", AccountID: "acc_0123456789abcdefghij", Name: "default",
		Scopes: []string{"accounts:read", "callbacks:read", "callbacks:write", "clients:read", "clients:write",
			"errors:read", "keys:read", "keys:write", "scopes:read", "stats:read", "subscriptions:read",
			"subscriptions:write", "tokens:introspect", "tokens:read", "tokens:verify", "tokens:write",
			"users:read", "users:write", "wallet:read"},
		Environment: "live", Status: "active", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 709218987, time.UTC),
	},
}

// startBareFiber serves one JSON handler with Fiber's defaults and no
// middleware: the framework's floor for a small JSON read.
func startBareFiber(b *testing.B) benchTarget {
	b.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/me", func(c *fiber.Ctx) error { return c.JSON(meBody) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return benchTarget{url: "http://" + ln.Addr().String() + "/me", header: http.Header{}, client: newBenchClient(b)}
}

// startAccountsMe starts a node, opens an account with the root key and
// targets GET /accounts/me with that account's tg_live_ key.
func startAccountsMe(b *testing.B) benchTarget {
	b.Helper()
	n := tollgatetest.Start(b)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	resp := root.Do(b, http.MethodPost, "/accounts", map[string]string{"name": "bench"})
	if resp.Status != http.StatusCreated {
		b.Fatalf("POST /accounts: %d %s", resp.Status, resp.Body)
	}
	var created struct {
		APIKey struct {
			Token string `json:"token"`
		} `json:"api_key"`
	}
	resp.JSON(b, &created)
	if created.APIKey.Token == "" {
		b.Fatalf("POST /accounts returned no api_key.token: %s", resp.Body)
	}
	// A key with room for the load: the default rate limit is 10000/min.
	owner := tollgatetest.NewClient(n.URL(), created.APIKey.Token)
	resp = owner.Do(b, http.MethodPost, "/keys", map[string]any{"name": "bench", "scopes": []string{"accounts:read"},
		"rate_limit": map[string]any{"limit": 1_000_000_000, "window": 60}})
	var key struct {
		Token string `json:"token"`
	}
	resp.JSON(b, &key)
	h := http.Header{}
	h.Set("X-API-Key", key.Token)
	return benchTarget{url: n.URL() + "/accounts/me", header: h, client: newBenchClient(b)}
}

// latencies collects request durations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) p99us() float64 {
	if len(l.all) == 0 {
		return 0
	}
	slices.Sort(l.all)
	return float64(l.all[int(0.99*float64(len(l.all)-1))].Nanoseconds()) / 1e3
}

// runParallel loads t from benchClients goroutines for b.N requests and
// reports req/s and p99.
func runParallel(b *testing.B, t benchTarget) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((benchClients + procs - 1) / procs)
	var lat latencies
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			start := time.Now()
			if err := t.get(); err != nil {
				b.Error(err) // Fatal may not be called from RunParallel's goroutines
				return
			}
			mine = append(mine, time.Since(start))
		}
		lat.add(mine)
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(lat.p99us(), "p99_µs")
}

// BenchmarkBareFiber is the baseline: Fiber answering a constant JSON object.
func BenchmarkBareFiber(b *testing.B) {
	benchOnce(b, startBareFiber(b), runParallel)
}

// BenchmarkAccountsMe is an authenticated read through Tollgate's whole
// middleware chain: request id, metrics, HTTPS check, API key lookup in the
// tokens projection, account and key reads, JSON answer.
func BenchmarkAccountsMe(b *testing.B) {
	benchOnce(b, startAccountsMe(b), runParallel)
}

// benchOnce warms t and runs bench on it as a sub-benchmark, so the servers
// start once however often the harness calls the timed part.
func benchOnce(b *testing.B, t benchTarget, bench func(*testing.B, benchTarget)) {
	t.warm(b)
	b.Run(fmt.Sprintf("clients=%d", benchClients), func(b *testing.B) { bench(b, t) })
}

// ratioPhases is how many alternating phases BenchmarkAuthRatio splits its
// requests into: bare, me, bare, me, ... so that drift (GC of earlier
// phases, CPU frequency, background compaction) hits both sides alike.
const ratioPhases = 6

// BenchmarkAuthRatio measures the bare Fiber handler and GET /accounts/me in
// one run, in alternating phases with the same number of requests each, and
// reports ratio = accountsMe req/s ÷ bare req/s. ns/op is per request over
// both sides.
func BenchmarkAuthRatio(b *testing.B) {
	bare, me := startBareFiber(b), startAccountsMe(b)
	bare.warm(b)
	me.warm(b)
	b.Logf("response bodies: bare %d bytes, /accounts/me %d bytes", bodySize(b, bare), bodySize(b, me))
	b.Run(fmt.Sprintf("clients=%d", benchClients), func(b *testing.B) { sideBySide(b, bare, me, "me") })
}

// sideBySide loads bare and other in alternating phases of equal size from
// benchClients connections and reports both rates and p99s (µs) and
// ratio = other ÷ bare.
func sideBySide(b *testing.B, bare, other benchTarget, label string) {
	alternate(b, bare.get, other.get, benchClients, label, time.Microsecond)
}

// alternate sends b.N requests in ratioPhases alternating phases, bare
// first, from conns goroutines; p99s are reported in unit (µs or ms). It
// returns how many requests went to other.
func alternate(b *testing.B, bare, other func() error, conns int, label string, unit time.Duration) int {
	perPhase := (b.N + ratioPhases - 1) / ratioPhases
	var bareTime, otherTime time.Duration
	var bareLat, otherLat latencies
	b.ResetTimer()
	for phase := 0; phase < ratioPhases; phase++ {
		send, lat, total := bare, &bareLat, &bareTime
		if phase%2 == 1 {
			send, lat, total = other, &otherLat, &otherTime
		}
		took, err := loadPhase(send, perPhase, conns, lat)
		if err != nil {
			b.Fatal(err)
		}
		*total += took
	}
	b.StopTimer()
	perSide := perPhase * ratioPhases / 2
	bareRPS, otherRPS := float64(perSide)/bareTime.Seconds(), float64(perSide)/otherTime.Seconds()
	suffix, scale := "_p99_µs", 1.0
	if unit == time.Millisecond {
		suffix, scale = "_p99_ms", 1000
	}
	b.ReportMetric(bareRPS, "bare_req/s")
	b.ReportMetric(otherRPS, label+"_req/s")
	b.ReportMetric(bareLat.p99us()/scale, "bare"+suffix)
	b.ReportMetric(otherLat.p99us()/scale, label+suffix)
	b.ReportMetric(otherRPS/bareRPS, "ratio")
	return perSide
}

// loadPhase sends n requests from conns goroutines and returns the wall
// time they took.
func loadPhase(send func() error, n, conns int, lat *latencies) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conns)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, n/conns+1)
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := send(); err != nil {
					errs[w] = err
					return
				}
				mine = append(mine, time.Since(t0))
			}
			lat.add(mine)
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}
