package node

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// connTracker is the HTTP server's listener. It remembers every accepted
// connection and whether a byte of a request has arrived on it, so that a
// shutdown can close the connections that never sent anything at once:
// they have no request to finish. fasthttp closes keep-alive connections
// between requests itself, but counts a connection that never sent a byte
// as idle only five seconds after it was accepted (as net/http does), and
// clients open such connections in advance.
type connTracker struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newConnTracker(ln net.Listener) *connTracker {
	return &connTracker{Listener: ln, conns: map[*trackedConn]struct{}{}}
}

// Accept wraps the next connection. A TLS connection keeps the methods
// fasthttp uses to recognise it as one.
func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, tracker: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	if t, ok := c.(*tls.Conn); ok {
		return &trackedTLSConn{trackedConn: tc, tls: t}, nil
	}
	return tc, nil
}

// closeUnused closes the connections on which nothing has arrived yet and
// returns how many it closed.
func (l *connTracker) closeUnused() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.conns {
		if !c.used.Load() {
			_ = c.Conn.Close()
			delete(l.conns, c)
			n++
		}
	}
	return n
}

func (l *connTracker) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// trackedConn notes its first byte read (after TLS decryption for a TLS
// connection: a handshake alone is not a request).
type trackedConn struct {
	net.Conn
	tracker *connTracker
	used    atomic.Bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.used.Load() {
		c.used.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.tracker.forget(c)
	return c.Conn.Close()
}

type trackedTLSConn struct {
	*trackedConn
	tls *tls.Conn
}

func (c *trackedTLSConn) Handshake() error                     { return c.tls.Handshake() }
func (c *trackedTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }
