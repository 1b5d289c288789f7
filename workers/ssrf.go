package workers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrForbiddenAddress: a callback URL resolves to an address Tollgate must
// not call (loopback, private, link-local, cloud metadata, …).
var ErrForbiddenAddress = errors.New("callback address not allowed")

// AddressError is the refusal of one address.
type AddressError struct {
	Addr netip.Addr
	// Reason says what kind of address it is ("a private address").
	Reason string
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("%v: %s is %s", ErrForbiddenAddress, e.Addr, e.Reason)
}

// Is makes errors.Is(err, ErrForbiddenAddress) hold.
func (e *AddressError) Is(target error) bool { return target == ErrForbiddenAddress }

// blockedPrefixes are refused beyond what netip's predicates catch.
var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, broadcast
	netip.MustParsePrefix("169.254.169.254/32"), // cloud metadata (also link-local)
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6 (also private)
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
}

// nat64 embeds IPv4 addresses in IPv6 (RFC 6052); the embedded address is
// what gets reached, so it is what is checked.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Guard keeps callbacks away from internal addresses (SSRF). The API asks
// it when a subscription is made; the delivery client asks it again for
// every connection it dials, after DNS resolution, so a name that resolves
// to a public address at subscribe time and to an internal one later (DNS
// rebinding) is still refused.
type Guard struct {
	// AllowLoopback lets 127.0.0.0/8 and ::1 through (development, tests).
	AllowLoopback bool
	// Resolver looks host names up. Default net.DefaultResolver.
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
}

// Allowed reports why ip may not be called, or nil.
func (g Guard) Allowed(ip netip.Addr) error {
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if ip.IsLoopback() {
		if g.AllowLoopback {
			return nil
		}
		return &AddressError{Addr: ip, Reason: "a loopback address"}
	}
	kind := ""
	switch {
	case !ip.IsValid():
		kind = "an invalid address"
	case ip.IsUnspecified():
		kind = "unspecified"
	case ip.IsPrivate():
		kind = "a private address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		kind = "link-local"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		kind = "multicast"
	}
	for _, p := range blockedPrefixes {
		if kind == "" && p.Contains(ip) {
			kind = "reserved (" + p.String() + ")"
		}
	}
	if kind != "" {
		return &AddressError{Addr: ip, Reason: kind}
	}
	return nil
}

// CheckURL resolves the URL's host and refuses it unless every address it
// resolves to is allowed.
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("%w: not a URL with a host", ErrForbiddenAddress)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.Allowed(ip)
	}
	res := g.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: %s does not resolve", ErrForbiddenAddress, host)
	}
	for _, a := range addrs {
		if err := g.Allowed(a); err != nil {
			return fmt.Errorf("%s resolves to a refused address: %w", host, err)
		}
	}
	return nil
}

// Control is a net.Dialer Control function: it runs once the address to
// dial is resolved and refuses forbidden ones before connecting.
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrForbiddenAddress, address, err)
	}
	return g.Allowed(ap.Addr())
}

// Client returns the HTTP client deliveries use: every dialed address
// passes the guard, proxies from the environment are ignored (a proxy would
// dial on Tollgate's behalf, unchecked), redirects are not followed (a
// redirect is the endpoint's answer), and each attempt is bounded by timeout.
func (g Guard) Client(timeout time.Duration, perHost int) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.Control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   perHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
