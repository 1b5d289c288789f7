// Package embedded starts nats-server with JetStream inside the process, for
// the single-binary mode and for tests (single node or a three-node cluster).
package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir holds JetStream's file store. Required.
	StoreDir string
	// Listen is host:port where downstream subscribers connect. Empty: no
	// network listener; Tollgate connects in-process. Port 0 or -1 picks a free port.
	Listen string
	// ServerName names the server; required (and unique) in a cluster.
	ServerName string
	// ClusterName, ClusterListen and Routes make the server a cluster member.
	ClusterName   string
	ClusterListen string
	Routes        []string
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	inProcess bool
}

// Start runs a server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded: StoreDir is required")
	}
	opts := &server.Options{
		ServerName:         o.ServerName,
		JetStream:          true,
		StoreDir:           o.StoreDir,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         4 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	if o.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded: listen %q: %w", o.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if o.ClusterName != "" {
		host, port, err := splitHostPort(o.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("embedded: cluster listen %q: %w", o.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: o.ClusterName, Host: host, Port: port}
		opts.Routes = server.RoutesFromStr(joinRoutes(o.Routes))
		if opts.DontListen {
			// Cluster members must be reachable by clients of every node.
			opts.DontListen = false
			opts.Host, opts.Port = "127.0.0.1", -1
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded: nats-server did not become ready within 10s")
	}
	return &Server{Server: ns, inProcess: opts.DontListen}, nil
}

// Connect opens a client connection: in-process when the server has no
// listener, over loopback otherwise.
func (s *Server) Connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, extra...)
	if s.inProcess {
		opts = append(opts, nats.InProcessServer(s.Server))
		return nats.Connect("", opts...)
	}
	return nats.Connect(s.ClientURL(), opts...)
}

// Stop shuts the server down and waits until it has.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

func joinRoutes(routes []string) string {
	out := ""
	for i, r := range routes {
		if i > 0 {
			out += ","
		}
		out += r
	}
	return out
}
