package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/bench"
	"github.com/tollgate/tollgate/internal/tollgatetest"
	"github.com/tollgate/tollgate/projections"
)

// The test binary doubles as the tollgate binary, so crash tests can kill a
// real server process without building one.
func TestMain(m *testing.M) {
	bench.RunNATSChildIfAsked()
	if os.Getenv("TOLLGATE_TEST_EXEC") == "1" {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "tollgate:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd    *exec.Cmd
	stdout *bytes.Buffer
	url    string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func command(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TOLLGATE_TEST_EXEC=1")
	return cmd
}

// startServer runs `tollgate serve` in a child process and waits until it is ready.
func startServer(t *testing.T, dataDir, addr string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", addr, "--nats-listen", "", "--log-level", "warn"}, extra...)
	cmd := command(t, args...)
	out := &bytes.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stdout: out, url: "http://" + addr}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	tollgatetest.Eventually(t, 60*time.Second, func() bool {
		r, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	}, "server ready")
	return p
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}

// dumpProjections reads every projection key of a stopped node, leaving out
// the projector's own bookkeeping.
func dumpProjections(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	db, err := projections.Open(filepath.Join(dataDir, "projections"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for ok := it.First(); ok; ok = it.Next() {
		if !strings.HasPrefix(string(it.Key()), "m/") {
			out[string(it.Key())] = string(it.Value())
		}
	}
	return out
}

// kill -9 during a burst of account creations, then restart: every account
// whose creation answered 2xx exists, and the projections equal a rebuild.
func TestCrashDuringWritesLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dataDir, addr := filepath.Join(t.TempDir(), "data"), freeAddr(t)
	srv := startServer(t, dataDir, addr, "--root-key", tollgatetest.RootKey)
	root := tollgatetest.NewClient(srv.url, tollgatetest.RootKey)
	root.HTTP.Timeout = 10 * time.Second

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", srv.url+"/accounts", strings.NewReader(`{"name":"burst"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", tollgatetest.RootKey)
				resp, err := root.HTTP.Do(req)
				if err != nil {
					return // the server died mid-request
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					id := regexp.MustCompile(`"id":"(acc_[A-Za-z0-9]+)"`).FindSubmatch(body)
					mu.Lock()
					acked = append(acked, string(id[1]))
					mu.Unlock()
				}
			}
		}()
	}
	tollgatetest.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40
	}, "40 accounts created")
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.cmd.Wait()
	close(stop)
	wg.Wait()
	t.Logf("%d creations acknowledged before kill -9", len(acked))

	srv = startServer(t, dataDir, addr, "--root-key", tollgatetest.RootKey)
	for _, id := range acked {
		if r := root.Do(t, "GET", "/accounts/"+id, nil); r.Status != 200 {
			t.Fatalf("acknowledged account %s lost: %d %s", id, r.Status, r.Body)
		}
	}
	srv.stop(t)

	before := dumpProjections(t, dataDir)
	out, err := command(t, "rebuild", "--data-dir", dataDir, "--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "events/s") {
		t.Fatalf("rebuild printed no progress: %s", out)
	}
	after := dumpProjections(t, dataDir)
	if len(before) == 0 || len(before) != len(after) {
		t.Fatalf("projection has %d keys, rebuild %d", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("key %q differs after rebuild:\n%s\n%s", k, v, after[k])
		}
	}
}

// The first start prints the root key once; a restart prints none and the
// same key keeps working.
func TestBootstrapOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	dataDir, addr := filepath.Join(t.TempDir(), "data"), freeAddr(t)
	srv := startServer(t, dataDir, addr)
	line, _ := bufio.NewReader(bytes.NewReader(srv.stdout.Bytes())).ReadString('\n')
	m := regexp.MustCompile(`^root api key: (tg_live_[A-Za-z0-9]{54})\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("first start printed %q", srv.stdout.String())
	}
	key := m[1]
	srv.stop(t)

	srv = startServer(t, dataDir, addr)
	if strings.Contains(srv.stdout.String(), "root api key") {
		t.Fatalf("restart printed a key again: %q", srv.stdout.String())
	}
	r := tollgatetest.NewClient(srv.url, key).Do(t, "GET", "/accounts/me", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"root":true`) {
		t.Fatalf("root key after restart: %d %s", r.Status, r.Body)
	}
	srv.stop(t)

	if err := command(t, "serve", "--root-key", "short").Run(); err == nil {
		t.Fatal("a root key under 32 characters was accepted")
	}
}
