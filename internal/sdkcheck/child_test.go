package sdkcheck_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	tollgate "github.com/tollgate/tollgate/sdk"
)

// The test binary doubles as a downstream service guarded by the SDK, so
// tests can run the middleware in a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("SDKCHECK_CHILD") == "1" {
		if err := serveProtected(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveProtected is the example service's wiring: a follower of Tollgate's
// revocations and a guard in front of GET /hello. It stops when its stdin
// closes.
func serveProtected() error {
	nc, err := nats.Connect(os.Getenv("SDKCHECK_NATS"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	f, err := tollgate.NewRevocationFollower(nc, tollgate.FollowerConfig{StatePath: os.Getenv("SDKCHECK_STATE")})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()
	<-f.CaughtUp()
	g := tollgate.NewGuard(tollgate.GuardConfig{Client: tollgate.NewClient(os.Getenv("SDKCHECK_TOLLGATE"), os.Getenv("SDKCHECK_KEY")),
		Follower: f, CacheTTL: time.Minute})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel(); ln.Close() }()
	return ignoreClosed(http.Serve(ln, g.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))))
}

func ignoreClosed(err error) error {
	if err != nil && strings.Contains(err.Error(), "use of closed network connection") {
		return nil
	}
	return err
}

// startChild runs serveProtected in a child process and returns its URL.
func startChild(t testing.TB, tollgateURL, natsURL, key string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SDKCHECK_CHILD=1", "SDKCHECK_TOLLGATE="+tollgateURL, "SDKCHECK_NATS="+natsURL,
		"SDKCHECK_KEY="+key, "SDKCHECK_STATE="+t.TempDir()+"/revocations.json")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "listening on ") {
		t.Fatalf("child: %q %v", line, err)
	}
	return "http://" + strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
}
