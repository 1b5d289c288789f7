package embedded

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is an in-process NATS cluster with JetStream on every node.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts n clustered servers storing under dir and waits until
// JetStream has a meta leader.
func StartCluster(dir string, n int) (*Cluster, error) {
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", p)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		s, err := Start(Options{
			StoreDir:      filepath.Join(dir, fmt.Sprintf("n%d", i)),
			Listen:        "127.0.0.1:-1",
			ServerName:    fmt.Sprintf("tollgate-test-%d", i),
			ClusterName:   "tollgate-test",
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]),
			Routes:        routes,
		})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Servers = append(c.Servers, s)
	}
	if err := c.waitForJetStream(20 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// URLs lists every node's client URL, for a client that fails over.
func (c *Cluster) URLs() string {
	out := ""
	for i, s := range c.Servers {
		if i > 0 {
			out += ","
		}
		out += s.ClientURL()
	}
	return out
}

// Stop shuts every node down.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

func (c *Cluster) waitForJetStream(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(c.URLs())
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("embedded: cluster JetStream not ready within %s", timeout)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
