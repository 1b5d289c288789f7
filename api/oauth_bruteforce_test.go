package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// lockedBuffer is a log sink safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Repeated failed client authentications for one client_id, or from one
// IP, are answered 429 with Retry-After, whatever the credentials; no
// secret ever reaches the log.
func TestClientAuthBruteForce(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	n := tollgatetest.Start(t, func(c *node.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} // callers' IPs from X-Forwarded-For
	})
	tn := newTenant(t, n.URL())
	victim := createClient(t, tn.owner, map[string]any{"client_id": "victim:app@example 1%", "default_scopes": []string{"vps:read"}})
	bystander := createClient(t, tn.owner, map[string]any{"default_scopes": []string{"vps:read"}})
	grant := form("grant_type", "client_credentials")
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	var tried []string

	// One client_id, guessed from ten addresses.
	for i := 1; i <= 10; i++ {
		guess := fmt.Sprintf("tg_cs_guess%02dsecretvalue", i)
		tried = append(tried, guess)
		r := oauthPost(t, n.URL(), "/oauth2/token", grant, append(from("203.0.113."+strconv.Itoa(i)), "Authorization", basic(victim.ClientID, guess))...)
		wantOAuthError(t, r, 401, "invalid_client")
	}
	// The eleventh attempt is refused before its credentials are looked at,
	// right ones included, from a fresh address, over either method.
	r := oauthPost(t, n.URL(), "/oauth2/token", grant, append(from("203.0.113.99"), "Authorization", basic(victim.ClientID, victim.ClientSecret))...)
	wantOAuthError(t, r, 429, "slow_down")
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	r = oauthPost(t, n.URL(), "/oauth2/introspect", form("token", "tg_at_x"), append(from("203.0.113.98"), "Authorization", basic(victim.ClientID, victim.ClientSecret))...)
	wantOAuthError(t, r, 429, "slow_down")
	// Other clients are not affected.
	wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", grant, append(from("203.0.113.99"), "Authorization", basic(bystander.ClientID, bystander.ClientSecret))...))

	// One address guessing many client_ids (and sending a secret where the
	// client_id belongs).
	attacker := from("198.51.100.7")
	for i := 1; i <= 10; i++ {
		id := fmt.Sprintf("guess-%d", i)
		if i == 10 {
			id = "tg_cs_secretinthewrongplace0123456789"
			tried = append(tried, id)
		}
		r := oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials", "client_id", id, "client_secret", "pw-"+id), attacker...)
		tried = append(tried, "pw-"+id)
		wantOAuthError(t, r, 401, "invalid_client")
	}
	r = oauthPost(t, n.URL(), "/oauth2/token", grant, append(attacker, "Authorization", basic(bystander.ClientID, bystander.ClientSecret))...)
	wantOAuthError(t, r, 429, "slow_down")
	wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", grant, append(from("198.51.100.8"), "Authorization", basic(bystander.ClientID, bystander.ClientSecret))...))

	out := logs.String()
	if strings.Count(out, "client authentication failed") < 20 {
		t.Fatalf("failures are not logged:\n%s", out)
	}
	for _, secret := range append(tried, victim.ClientSecret, bystander.ClientSecret) {
		if strings.Contains(out, secret) {
			t.Fatalf("the log holds a secret %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "victim:app@example 1%") {
		t.Fatalf("the log does not name the client_id:\n%s", out)
	}
}
