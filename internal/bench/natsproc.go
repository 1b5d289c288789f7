package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/embedded"
)

// natsChildEnv, when set, names the JetStream store directory of a process
// started to run only a NATS server (see RunNATSChildIfAsked).
const natsChildEnv = "TOLLGATE_BENCH_NATS_DIR"

// RunNATSChildIfAsked makes this process a NATS server, if it was started
// as one by the memory scenario: it serves JetStream on a free loopback
// port, prints the client URL, and exits when its stdin closes. Otherwise
// it returns at once. The tollgate binary's main and the test binaries
// that run the memory scenario call it first.
//
// The memory scenario measures Tollgate's own memory per token, as in a
// deployment on a NATS cluster: a NATS server in the same process would
// mix its caches (message blocks, subject index) into the figure.
func RunNATSChildIfAsked() {
	dir := os.Getenv(natsChildEnv)
	if dir == "" {
		return
	}
	srv, err := embedded.Start(embedded.Options{StoreDir: dir, Listen: "127.0.0.1:0", ServerName: "bench-nats"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench nats:", err)
		os.Exit(1)
	}
	fmt.Println(srv.ClientURL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	srv.WaitForShutdown()
	os.Exit(0)
}

// natsProcess is a NATS server in a child process.
type natsProcess struct {
	url   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startNATSProcess(ctx context.Context, dir string) (*natsProcess, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), natsChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nats process: %w", err)
	}
	p := &natsProcess{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- strings.TrimSpace(sc.Text())
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case url, ok := <-line:
		if !ok || !strings.HasPrefix(url, "nats://") {
			p.stop()
			return nil, errors.New("nats process printed no client URL (does this binary call bench.RunNATSChildIfAsked?)")
		}
		p.url = url
		return p, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	p.stop()
	return nil, errors.New("nats process did not start within 30s")
}

// rss is the child's resident memory in bytes (0 where /proc is missing).
func (p *natsProcess) rss() uint64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	return parseVmRSS(string(raw))
}

func (p *natsProcess) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
