package workers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestGuardAllowed(t *testing.T) {
	t.Parallel()
	refused := []string{
		"127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.0.1", "169.254.169.254", "fe80::1", "fd00:ec2::254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3",
		"224.0.0.1", "ff02::1", "::", "255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.0.8",
		"::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a00:1", "64:ff9b::7f00:1",
	}
	allowed := []string{"8.8.8.8", "1.1.1.1", "203.0.113.10", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "64:ff9b::808:808"}
	for _, s := range refused {
		if err := (Guard{}).Allowed(netip.MustParseAddr(s)); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: %v, want refused", s, err)
		}
	}
	for _, s := range allowed {
		if err := (Guard{}).Allowed(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
	// The loopback switch opens loopback, nothing else.
	loop := Guard{AllowLoopback: true}
	for _, s := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1"} {
		if err := loop.Allowed(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s with loopback allowed: %v", s, err)
		}
	}
	for _, s := range []string{"10.0.0.1", "169.254.169.254", "0.0.0.0", "fd00:ec2::254"} {
		if err := loop.Allowed(netip.MustParseAddr(s)); err == nil {
			t.Errorf("%s with loopback allowed: not refused", s)
		}
	}
}

// fakeResolver answers from a table.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range f[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestGuardCheckURL(t *testing.T) {
	t.Parallel()
	g := Guard{Resolver: fakeResolver{
		"hooks.example.com":    {"93.184.216.34"},
		"internal.example.com": {"10.1.2.3"},
		"mixed.example.com":    {"93.184.216.34", "192.168.0.7"},
		"metadata.example.com": {"169.254.169.254"},
	}}
	for url, ok := range map[string]bool{
		"https://hooks.example.com/x":     true,
		"https://93.184.216.34:8443/x":    true,
		"https://internal.example.com/x":  false,
		"https://mixed.example.com/x":     false, // every address must be public
		"http://metadata.example.com/":    false,
		"http://[::1]:8080/":              false,
		"https://nowhere.example.com/":    false,
		"http://169.254.169.254/latest/":  false,
		"http://[fe80::1%25eth0]/":        false,
		"https://[2606:4700:4700::1111]/": true,
	} {
		err := g.CheckURL(context.Background(), url)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", url, err, ok)
		}
	}
}

// The delivery client checks the address it dials, after resolution: a
// name that resolves to loopback is refused even though the URL passed
// every check before.
func TestClientRefusesWhatItDials(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	_, err := Guard{}.Client(time.Second, 1).Get(srv.URL)
	var aerr *AddressError
	if !errors.As(err, &aerr) || !aerr.Addr.IsLoopback() {
		t.Fatalf("loopback dial: %v, want an AddressError", err)
	}
	// localhost resolves at dial time; the check runs on what it resolved to.
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if _, err := (Guard{}).Client(time.Second, 1).Get("http://localhost:" + port); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("localhost: %v", err)
	}
	resp, err := Guard{AllowLoopback: true}.Client(time.Second, 1).Get(srv.URL)
	if err != nil {
		t.Fatalf("with loopback allowed: %v", err)
	}
	resp.Body.Close()
	if err := (Guard{}).Control("tcp", "10.0.0.1:443", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Control: %v", err)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/", http.StatusFound))
	defer srv.Close()
	resp, err := Guard{AllowLoopback: true}.Client(time.Second, 1).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the redirect itself", resp.StatusCode)
	}
}
