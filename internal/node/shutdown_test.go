package node_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// A graceful stop finishes the request under way and does not wait for
// connections that never sent one: clients open those in advance, and
// they used to hold the stop until its timeout.
func TestCloseFinishesRequestsAndDropsUnusedConnections(t *testing.T) {
	t.Parallel()
	const timeout = 30 * time.Second
	n := tollgatetest.Start(t, func(c *node.Config) { c.ShutdownTimeout = timeout })
	addr := n.Addr()

	// Keep-alive connections that served a request and wait for the next.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	for i := 0; i < 8; i++ {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Connections that never send a byte.
	var unused []net.Conn
	for i := 0; i < 8; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		unused = append(unused, c)
	}
	// A request under way: its headers are in, half its body is not.
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := `{"name":"late"}`
	head := "POST /accounts HTTP/1.1\r\nHost: " + addr + "\r\nX-API-Key: " + tollgatetest.RootKey +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(slow, head+body[:5]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server has read the headers

	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- n.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("stopped with a request under way (after %s): %v", time.Since(start), err)
	case <-time.After(500 * time.Millisecond):
	}
	// While it waits for that request, the connections that sent nothing
	// are closed already.
	for _, c := range unused {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("a connection that sent nothing is still open while the stop waits")
		}
	}
	if _, err := io.WriteString(slow, body[5:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("the request under way got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the request under way: %d", resp.StatusCode)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
		if took := time.Since(start); took > timeout/2 {
			t.Fatalf("the stop took %s: it waited for connections that sent nothing", took)
		}
	case <-time.After(timeout):
		t.Fatal("the stop did not end")
	}
}

// A node serves HTTPS with --tls-cert and --tls-key, and a connection that
// completed its handshake but sent no request does not hold a stop either.
func TestServesTLSAndStopsWithIdleHandshakes(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSignedCert(t)
	n := tollgatetest.Start(t, func(c *node.Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.ShutdownTimeout = 30 * time.Second
	})
	if !strings.HasPrefix(n.URL(), "https://") {
		t.Fatalf("URL %s", n.URL())
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, n.URL()+"/accounts/me", nil)
	req.Header.Set("X-API-Key", tollgatetest.RootKey)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /accounts/me over TLS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	hs, err := tls.Dial("tcp", n.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	_ = hs.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := hs.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the handshaken connection is still open after the stop (%s)", time.Since(start))
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns their files and a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tollgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
