package domain_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// newClientCmd is a valid command; each test case changes a fresh copy.
func newClientCmd() domain.CreateClient {
	return domain.CreateClient{
		ID: "cli_0123456789abcdefghij", AccountID: "acc_1", Environment: domain.EnvLive,
		Spec:       domain.ClientSpec{Name: "billing sync", Scopes: []string{"vps:read"}},
		SecretHash: domain.HashSecret("s3cret"),
	}
}

func wantProblem(t *testing.T, err error, field string) {
	t.Helper()
	var verr *domain.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError on %s", err, field)
	}
	if !slices.ContainsFunc(verr.Problems, func(p domain.FieldProblem) bool { return p.Field == field }) {
		t.Fatalf("problems %+v, want one on %s", verr.Problems, field)
	}
}

func TestNewClientDefaults(t *testing.T) {
	t.Parallel()
	cmd := newClientCmd()
	cmd.Spec.Scopes = []string{"vps:write", "vps:read", "vps:write"}
	created, claimed, err := domain.NewClient(cmd, now)
	if err != nil {
		t.Fatal(err)
	}
	s := created.ClientSettings
	if created.ID != cmd.ID || created.ClientID != cmd.ID || created.AccountID != "acc_1" || created.Environment != domain.EnvLive ||
		created.SecretHash != cmd.SecretHash || !created.CreatedAt.Equal(now) || created.CreatedAt.Location() != time.UTC {
		t.Fatalf("created %+v", created)
	}
	if s.Name != "billing sync" || !slices.Equal(s.GrantTypes, []string{domain.GrantClientCredentials}) ||
		!slices.Equal(s.Scopes, []string{"vps:read", "vps:write"}) || s.DefaultScopes == nil || len(s.DefaultScopes) != 0 ||
		s.TokenEndpointAuthMethod != domain.AuthClientSecretBasic || s.JWKS != nil || s.RedirectURIs == nil ||
		s.AccessTokenTTL != 3600 || s.AccessTokenFormat != domain.AccessTokenOpaque {
		t.Fatalf("settings %+v", s)
	}
	if claimed.ClientID != cmd.ID || claimed.Client != cmd.ID || claimed.AccountID != "acc_1" || !claimed.ClaimedAt.Equal(now) {
		t.Fatalf("claim %+v", claimed)
	}

	public := newClientCmd()
	public.SecretHash = ""
	public.Spec.TokenEndpointAuthMethod = domain.AuthNone
	public.Spec.RedirectURIs = []string{"http://127.0.0.1:8123/callback"}
	created, _, err = domain.NewClient(public, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created.GrantTypes, []string{domain.GrantAuthorizationCode}) || created.SecretHash != "" {
		t.Fatalf("public client %+v", created)
	}
}

func TestNewClientChosenClientID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{
		"svc:billing", "ops@example.com", "100%", "my client", "a", "Zürich app", "%2F/../\\?#&=+",
		strings.Repeat("x", 200), strings.Repeat("é", 200), "cli_0123456789abcdefghij",
	} {
		cmd := newClientCmd()
		cmd.ClientID = id
		created, claimed, err := domain.NewClient(cmd, now)
		if err != nil {
			t.Errorf("client_id %q: %v", id, err)
			continue
		}
		if created.ClientID != id || claimed.ClientID != id || created.ID != cmd.ID {
			t.Errorf("client_id %q: created %q, claimed %q", id, created.ClientID, claimed.ClientID)
		}
		if key := events.ClientIDKey(id); len(key) != 64 || !events.ValidID(key) {
			t.Errorf("client_id %q: claim key %q", id, key)
		}
	}
	for _, id := range []string{strings.Repeat("x", 201), strings.Repeat("é", 201), "tab\there", "new\nline", "nul\x00", "\xff\xfe", "del\x7f", "nbsp\u00a0"} {
		cmd := newClientCmd()
		cmd.ClientID = id
		_, _, err := domain.NewClient(cmd, now)
		wantProblem(t, err, "client_id")
	}
}

func TestNewClientValidation(t *testing.T) {
	t.Parallel()
	public := func(c *domain.CreateClient) {
		c.SecretHash = ""
		c.Spec.TokenEndpointAuthMethod = domain.AuthNone
		c.Spec.RedirectURIs = []string{"https://app.example/cb"}
	}
	tests := []struct {
		name   string
		change func(*domain.CreateClient)
		field  string
	}{
		{"bad internal id", func(c *domain.CreateClient) { c.ID = "client 1" }, "id"},
		{"internal id without prefix", func(c *domain.CreateClient) { c.ID = "tok_1" }, "id"},
		{"bad account", func(c *domain.CreateClient) { c.AccountID = "" }, "account_id"},
		{"bad environment", func(c *domain.CreateClient) { c.Environment = "prod" }, "environment"},
		{"missing name", func(c *domain.CreateClient) { c.Spec.Name = "  " }, "name"},
		{"name over 200 characters", func(c *domain.CreateClient) { c.Spec.Name = strings.Repeat("n", 201) }, "name"},
		{"unknown auth method", func(c *domain.CreateClient) { c.Spec.TokenEndpointAuthMethod = "tls_client_auth" }, "token_endpoint_auth_method"},
		{"unknown grant type", func(c *domain.CreateClient) { c.Spec.GrantTypes = []string{"password"} }, "grant_types"},
		{"implicit grant", func(c *domain.CreateClient) { c.Spec.GrantTypes = []string{"implicit"} }, "grant_types"},
		{"public client with client_credentials", func(c *domain.CreateClient) {
			public(c)
			c.Spec.GrantTypes = []string{domain.GrantAuthorizationCode, domain.GrantClientCredentials}
		}, "grant_types"},
		{"refresh_token alone", func(c *domain.CreateClient) {
			c.Spec.GrantTypes = []string{domain.GrantClientCredentials, domain.GrantRefreshToken}
		}, "grant_types"},
		{"no scopes", func(c *domain.CreateClient) { c.Spec.Scopes = nil }, "scopes"},
		{"bad scope name", func(c *domain.CreateClient) { c.Spec.Scopes = []string{"VPS:read"} }, "scopes"},
		{"too many scopes", func(c *domain.CreateClient) {
			c.Spec.Scopes = nil
			for i := range 101 {
				c.Spec.Scopes = append(c.Spec.Scopes, fmt.Sprintf("s:%d", i))
			}
		}, "scopes"},
		{"default scope not allowed", func(c *domain.CreateClient) { c.Spec.DefaultScopes = []string{"vps:write"} }, "default_scopes"},
		{"private_key_jwt without jwks", func(c *domain.CreateClient) {
			c.SecretHash = ""
			c.Spec.TokenEndpointAuthMethod = domain.AuthPrivateKeyJWT
		}, "jwks"},
		{"private_key_jwt with null jwks", func(c *domain.CreateClient) {
			c.SecretHash = ""
			c.Spec.TokenEndpointAuthMethod = domain.AuthPrivateKeyJWT
			c.Spec.JWKS = []byte("null")
		}, "jwks"},
		{"jwks that is no set", func(c *domain.CreateClient) { c.Spec.JWKS = []byte(`[{"kty":"OKP"}]`) }, "jwks"},
		{"authorization_code without redirect URI", func(c *domain.CreateClient) {
			c.Spec.GrantTypes = []string{domain.GrantAuthorizationCode}
		}, "redirect_uris"},
		{"relative redirect URI", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"/callback"} }, "redirect_uris[0]"},
		{"redirect URI without host", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"https:///cb"} }, "redirect_uris[0]"},
		{"http redirect URI", func(c *domain.CreateClient) {
			c.Spec.RedirectURIs = []string{"https://ok.example/cb", "http://app.example/cb"}
		}, "redirect_uris[1]"},
		{"http on a private address", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"http://10.0.0.1/cb"} }, "redirect_uris[0]"},
		{"http on a localhost look-alike", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"http://localhost.evil.example/cb"} }, "redirect_uris[0]"},
		{"custom scheme", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"com.example.app:/cb"} }, "redirect_uris[0]"},
		{"javascript scheme", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"javascript://x/%0aalert(1)"} }, "redirect_uris[0]"},
		{"fragment", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"https://app.example/cb#x"} }, "redirect_uris[0]"},
		{"user info", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"https://u:p@app.example/cb"} }, "redirect_uris[0]"},
		{"space", func(c *domain.CreateClient) { c.Spec.RedirectURIs = []string{"https://app.example/c b"} }, "redirect_uris[0]"},
		{"listed twice", func(c *domain.CreateClient) {
			c.Spec.RedirectURIs = []string{"https://app.example/cb", "https://app.example/cb"}
		}, "redirect_uris[1]"},
		{"too many redirect URIs", func(c *domain.CreateClient) {
			for i := range 21 {
				c.Spec.RedirectURIs = append(c.Spec.RedirectURIs, fmt.Sprintf("https://app.example/%d", i))
			}
		}, "redirect_uris"},
		{"redirect URI too long", func(c *domain.CreateClient) {
			c.Spec.RedirectURIs = []string{"https://app.example/" + strings.Repeat("a", 2000)}
		}, "redirect_uris[0]"},
		{"ttl under a minute", func(c *domain.CreateClient) { c.Spec.AccessTokenTTL = 59 }, "access_token_ttl"},
		{"ttl over a day", func(c *domain.CreateClient) { c.Spec.AccessTokenTTL = 86401 }, "access_token_ttl"},
		{"negative ttl", func(c *domain.CreateClient) { c.Spec.AccessTokenTTL = -1 }, "access_token_ttl"},
		{"unknown format", func(c *domain.CreateClient) { c.Spec.AccessTokenFormat = "paseto" }, "access_token_format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := newClientCmd()
			tt.change(&cmd)
			created, _, err := domain.NewClient(cmd, now)
			wantProblem(t, err, tt.field)
			if created.ID != "" {
				t.Fatalf("event %+v returned with an error", created)
			}
		})
	}
}

func TestNewClientAccepts(t *testing.T) {
	t.Parallel()
	cmd := newClientCmd()
	cmd.Spec.GrantTypes = []string{domain.GrantRefreshToken, domain.GrantAuthorizationCode, domain.GrantClientCredentials}
	cmd.Spec.Scopes = []string{"vps:read", "email:read"}
	cmd.Spec.DefaultScopes = []string{"vps:read"}
	cmd.Spec.RedirectURIs = []string{
		"https://app.example/cb?x=1", "http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost:3000/cb", "http://LOCALHOST/cb",
	}
	cmd.Spec.AccessTokenTTL, cmd.Spec.AccessTokenFormat = 60, domain.AccessTokenJWT
	created, _, err := domain.NewClient(cmd, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(created.GrantTypes, []string{"authorization_code", "client_credentials", "refresh_token"}) ||
		!slices.Equal(created.RedirectURIs, cmd.Spec.RedirectURIs) || created.AccessTokenTTL != 60 || created.AccessTokenFormat != "jwt" ||
		!slices.Equal(created.DefaultScopes, []string{"vps:read"}) {
		t.Fatalf("created %+v", created)
	}
	cmd.Spec.AccessTokenTTL = 86400
	if _, _, err := domain.NewClient(cmd, now); err != nil {
		t.Fatalf("ttl of a day: %v", err)
	}
}

func TestNewClientSecretAndGrantor(t *testing.T) {
	t.Parallel()
	noSecret := newClientCmd()
	noSecret.SecretHash = ""
	if _, _, err := domain.NewClient(noSecret, now); err == nil {
		t.Error("client_secret_basic without a secret hash accepted")
	}
	public := newClientCmd()
	public.Spec.TokenEndpointAuthMethod = domain.AuthNone
	public.Spec.RedirectURIs = []string{"https://app.example/cb"}
	if _, _, err := domain.NewClient(public, now); err == nil {
		t.Error("public client with a secret hash accepted")
	}

	narrow := newClientCmd()
	narrow.GrantorScopes = []string{domain.ScopeClientsWrite, "vps:read"}
	narrow.Spec.Scopes = []string{"vps:read", "vps:write"}
	if _, _, err := domain.NewClient(narrow, now); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("client allowed a scope its grantor lacks: err = %v", err)
	}
	narrow.Spec.Scopes = []string{"vps:read"}
	if _, _, err := domain.NewClient(narrow, now); err != nil {
		t.Errorf("grantor holds the scope: %v", err)
	}
	admin := newClientCmd()
	admin.GrantorScopes = []string{domain.ScopeAdmin}
	admin.Spec.Scopes = []string{"anything:goes", domain.ScopeAdmin}
	if _, _, err := domain.NewClient(admin, now); err != nil {
		t.Errorf("admin grantor: %v", err)
	}
}

// clientEvent wraps a payload as the event at stream sequence seq.
func clientEvent(t *testing.T, seq uint64, p events.Payload) events.Event {
	t.Helper()
	ev, err := events.New(events.Meta{
		ID: fmt.Sprintf("evt_%d", seq), AggregateType: events.AggregateClient, AggregateID: "cli_0123456789abcdefghij",
		AccountID: "acc_1", Time: now,
	}, p)
	if err != nil {
		t.Fatal(err)
	}
	ev.Sequence = seq
	return ev
}

// newClient registers cmd and folds the event into a Client.
func newClient(t *testing.T, cmd domain.CreateClient) domain.Client {
	t.Helper()
	created, _, err := domain.NewClient(cmd, now)
	if err != nil {
		t.Fatal(err)
	}
	var c domain.Client
	if err := c.Apply(clientEvent(t, 7, created)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientSecretRotationGrace(t *testing.T) {
	t.Parallel()
	c := newClient(t, newClientCmd())
	if c.Version != 7 || c.Status() != domain.ClientActive || !c.CheckSecret("s3cret", now) {
		t.Fatalf("new client %+v", c)
	}
	for _, wrong := range []string{"", "s3cre", "s3cret ", domain.HashSecret("s3cret")} {
		if c.CheckSecret(wrong, now) {
			t.Errorf("CheckSecret(%q) accepted", wrong)
		}
	}

	at := now.Add(time.Hour)
	rotated, err := c.RotateSecret(domain.HashSecret("second"), 10*time.Minute, at)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.PreviousSecretHash != domain.HashSecret("s3cret") || rotated.PreviousValidUntil == nil ||
		!rotated.PreviousValidUntil.Equal(at.Add(10*time.Minute)) || !rotated.RotatedAt.Equal(at) {
		t.Fatalf("rotation %+v", rotated)
	}
	if err := c.Apply(clientEvent(t, 9, rotated)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		secret string
		at     time.Time
		want   bool
	}{
		{"second", at, true},
		{"second", at.Add(48 * time.Hour), true},
		{"s3cret", at, true},
		{"s3cret", at.Add(10*time.Minute - time.Nanosecond), true},
		{"s3cret", at.Add(10 * time.Minute), false},
		{"s3cret", at.Add(time.Hour), false},
		{"third", at, false},
	} {
		if got := c.CheckSecret(tc.secret, tc.at); got != tc.want {
			t.Errorf("CheckSecret(%q) at +%s = %v, want %v", tc.secret, tc.at.Sub(at), got, tc.want)
		}
	}

	// Without a grace period the old secret stops at once, and the grace of
	// an earlier rotation ends with it.
	rotated, err = c.RotateSecret(domain.HashSecret("third"), 0, at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if rotated.PreviousSecretHash != "" || rotated.PreviousValidUntil != nil {
		t.Fatalf("rotation without grace %+v", rotated)
	}
	if err := c.Apply(clientEvent(t, 10, rotated)); err != nil {
		t.Fatal(err)
	}
	for secret, want := range map[string]bool{"third": true, "second": false, "s3cret": false} {
		if got := c.CheckSecret(secret, at.Add(2*time.Minute)); got != want {
			t.Errorf("after a second rotation, CheckSecret(%q) = %v, want %v", secret, got, want)
		}
	}

	for _, grace := range []time.Duration{-time.Second, 24*time.Hour + time.Second} {
		_, err := c.RotateSecret(domain.HashSecret("x"), grace, at)
		wantProblem(t, err, "grace_period")
	}
	if _, err := c.RotateSecret(domain.HashSecret("x"), 24*time.Hour, at); err != nil {
		t.Errorf("grace of 24h: %v", err)
	}

	public := newClientCmd()
	public.SecretHash, public.Spec.TokenEndpointAuthMethod, public.Spec.RedirectURIs = "", domain.AuthNone, []string{"https://a.example/cb"}
	pc := newClient(t, public)
	if _, err := pc.RotateSecret(domain.HashSecret("x"), 0, at); !errors.Is(err, domain.ErrNoClientSecret) {
		t.Errorf("rotating a public client: %v", err)
	}
	if pc.CheckSecret("", at) || pc.CheckSecret("anything", at) {
		t.Error("a public client accepted a secret")
	}
}

func TestClientUpdate(t *testing.T) {
	t.Parallel()
	c := newClient(t, newClientCmd())
	later := now.Add(time.Minute)

	upd, changed, err := c.Update(domain.UpdateClient{Spec: c.Spec()}, later)
	if err != nil || changed || upd.SecretHash != c.SecretHash {
		t.Fatalf("unchanged spec: changed %v, err %v, %+v", changed, err, upd)
	}

	spec := c.Spec()
	spec.Name, spec.AccessTokenTTL = "renamed", 600
	upd, changed, err = c.Update(domain.UpdateClient{Spec: spec}, later)
	if err != nil || !changed || upd.Name != "renamed" || upd.AccessTokenTTL != 600 || upd.SecretHash != c.SecretHash ||
		!upd.UpdatedAt.Equal(later) {
		t.Fatalf("rename: changed %v, err %v, %+v", changed, err, upd)
	}

	spec = c.Spec()
	spec.Scopes = []string{"vps:read", "vps:write"}
	narrow := []string{domain.ScopeClientsWrite}
	if _, _, err := c.Update(domain.UpdateClient{Spec: spec, GrantorScopes: narrow}, later); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("adding a scope the grantor lacks: %v", err)
	}
	spec = c.Spec()
	spec.Name = "kept scopes"
	if _, _, err := c.Update(domain.UpdateClient{Spec: spec, GrantorScopes: narrow}, later); err != nil {
		t.Errorf("keeping a scope the grantor lacks: %v", err)
	}

	// To a public client: the secret goes, and with it the grace of the old one.
	rotated, _ := c.RotateSecret(domain.HashSecret("second"), time.Hour, now)
	if err := c.Apply(clientEvent(t, 8, rotated)); err != nil {
		t.Fatal(err)
	}
	spec = c.Spec()
	spec.TokenEndpointAuthMethod, spec.GrantTypes, spec.RedirectURIs = domain.AuthNone, nil, []string{"https://a.example/cb"}
	upd, changed, err = c.Update(domain.UpdateClient{Spec: spec, NewSecretHash: domain.HashSecret("unused")}, later)
	if err != nil || !changed || upd.SecretHash != "" {
		t.Fatalf("to public: changed %v, err %v, %+v", changed, err, upd)
	}
	if err := c.Apply(clientEvent(t, 11, upd)); err != nil {
		t.Fatal(err)
	}
	if c.CheckSecret("second", later) || c.CheckSecret("s3cret", later) || c.Version != 11 {
		t.Fatalf("public client still takes a secret: %+v", c)
	}

	// And back: only with a new secret.
	spec = c.Spec()
	spec.TokenEndpointAuthMethod, spec.GrantTypes = domain.AuthClientSecretPost, []string{domain.GrantClientCredentials}
	if _, _, err := c.Update(domain.UpdateClient{Spec: spec}, later); err == nil {
		t.Fatal("switched to client_secret_post without a secret")
	}
	upd, changed, err = c.Update(domain.UpdateClient{Spec: spec, NewSecretHash: domain.HashSecret("fresh")}, later)
	if err != nil || !changed || upd.SecretHash != domain.HashSecret("fresh") {
		t.Fatalf("to confidential: changed %v, err %v, %+v", changed, err, upd)
	}
	if err := c.Apply(clientEvent(t, 12, upd)); err != nil {
		t.Fatal(err)
	}
	if !c.CheckSecret("fresh", later) {
		t.Fatal("new secret not accepted")
	}

	spec = c.Spec()
	spec.TokenEndpointAuthMethod = "magic"
	_, _, err = c.Update(domain.UpdateClient{Spec: spec}, later)
	wantProblem(t, err, "token_endpoint_auth_method")
}

func TestClientDelete(t *testing.T) {
	t.Parallel()
	cmd := newClientCmd()
	cmd.ClientID = "ops@example.com"
	c := newClient(t, cmd)
	deleted, released, err := c.Delete(now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if deleted.ID != c.ID || deleted.ClientID != "ops@example.com" || released.ClientID != "ops@example.com" ||
		released.Client != c.ID || released.AccountID != "acc_1" || !released.ReleasedAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("delete: %+v %+v", deleted, released)
	}
	if err := c.Apply(clientEvent(t, 8, deleted)); err != nil {
		t.Fatal(err)
	}
	if c.Status() != domain.ClientDeleted || c.CheckSecret("s3cret", now) {
		t.Fatalf("deleted client %+v still works", c)
	}
	if _, _, err := c.Delete(now); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, _, err := c.Update(domain.UpdateClient{Spec: c.Spec()}, now); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("update after delete: %v", err)
	}
	if _, err := c.RotateSecret(domain.HashSecret("x"), 0, now); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("rotation after delete: %v", err)
	}
}

// testKeys are generated once: RSA key generation is slow.
var testKeys = sync.OnceValue(func() map[string]any {
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]any{"rsa2048": rsa2048, "rsa1024": rsa1024, "p256": p256, "p384": p384, "ed25519": ed}
})

// jwk encodes a key as go-jose does.
func jwk(t *testing.T, key any, kid, alg, use string) json.RawMessage {
	t.Helper()
	raw, err := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func jwks(keys ...json.RawMessage) []byte {
	raw, _ := json.Marshal(map[string]any{"keys": keys})
	return raw
}

func TestClientJWKS(t *testing.T) {
	t.Parallel()
	k := testKeys()
	pub := func(name string) any {
		switch key := k[name].(type) {
		case *rsa.PrivateKey:
			return &key.PublicKey
		case *ecdsa.PrivateKey:
			return &key.PublicKey
		case ed25519.PrivateKey:
			return key.Public()
		}
		panic(name)
	}
	withJWKS := func(set []byte) domain.CreateClient {
		cmd := newClientCmd()
		cmd.SecretHash, cmd.Spec.TokenEndpointAuthMethod, cmd.Spec.JWKS = "", domain.AuthPrivateKeyJWT, set
		return cmd
	}

	good := jwks(
		jwk(t, pub("rsa2048"), "rsa-1", "RS256", "sig"),
		jwk(t, pub("p256"), "ec-1", "ES256", ""),
		jwk(t, pub("ed25519"), "ed-1", "", "sig"),
		jwk(t, pub("rsa2048"), "rsa-ps", "PS256", ""),
	)
	created, _, err := domain.NewClient(withJWKS(good), now)
	if err != nil {
		t.Fatal(err)
	}
	var stored jose.JSONWebKeySet
	if err := json.Unmarshal(created.JWKS, &stored); err != nil {
		t.Fatalf("stored JWKS %s: %v", created.JWKS, err)
	}
	if len(stored.Keys) != 4 || len(stored.Key("ec-1")) != 1 || !stored.Keys[0].IsPublic() {
		t.Fatalf("stored JWKS %s", created.JWKS)
	}
	// Stored normalized: the same set encodes the same bytes again.
	again, _, _ := domain.NewClient(withJWKS(created.JWKS), now)
	if string(again.JWKS) != string(created.JWKS) {
		t.Fatalf("normalization is not stable:\n%s\n%s", created.JWKS, again.JWKS)
	}

	privateJWK := jwk(t, k["p256"], "priv", "", "")
	symmetric := jwk(t, []byte("0123456789abcdef0123456789abcdef"), "hmac", "", "")
	var eleven []json.RawMessage
	for i := range 11 {
		eleven = append(eleven, jwk(t, pub("ed25519"), fmt.Sprintf("k%d", i), "", ""))
	}
	tests := []struct {
		name  string
		set   []byte
		field string
		text  string
	}{
		{"not JSON", []byte(`{"keys":`), "jwks", "JWK Set"},
		{"a bare key", jwk(t, pub("p256"), "k", "", ""), "jwks", "JWK Set"},
		{"no keys member", []byte(`{}`), "jwks", "JWK Set"},
		{"unknown member", []byte(`{"keys":[],"extra":1}`), "jwks", "JWK Set"},
		{"empty set", []byte(`{"keys":[]}`), "jwks.keys", "at least one"},
		{"eleven keys", jwks(eleven...), "jwks.keys", "at most 10"},
		{"private key", jwks(privateJWK), "jwks.keys[0]", "public key"},
		{"symmetric key", jwks(symmetric), "jwks.keys[0]", "public key"},
		{"RSA 1024", jwks(jwk(t, pub("rsa1024"), "small", "", "")), "jwks.keys[0]", "2048"},
		{"P-384", jwks(jwk(t, pub("p384"), "p384", "", "")), "jwks.keys[0]", "P-256"},
		{"X25519", jwks([]byte(`{"kty":"OKP","crv":"X25519","x":"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo","kid":"x"}`)), "jwks.keys[0]", "RSA, EC P-256 or Ed25519"},
		{"unknown kty", jwks([]byte(`{"kty":"XYZ","kid":"x"}`)), "jwks.keys[0]", "RSA, EC P-256 or Ed25519"},
		{"broken EC point", jwks([]byte(`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","kid":"x"}`)), "jwks.keys[0]", "valid JWK"},
		{"no kid", jwks(jwk(t, pub("ed25519"), "", "", "")), "jwks.keys[0]", "kid"},
		{"kid twice", jwks(jwk(t, pub("ed25519"), "same", "", ""), jwk(t, pub("p256"), "same", "", "")), "jwks.keys[1].kid", "another key"},
		{"encryption key", jwks(jwk(t, pub("p256"), "enc", "", "enc")), "jwks.keys[0]", "sig"},
		{"alg of another key type", jwks(jwk(t, pub("p256"), "k", "RS256", "")), "jwks.keys[0]", "ES256"},
		{"HMAC alg on RSA", jwks(jwk(t, pub("rsa2048"), "k", "HS256", "")), "jwks.keys[0]", "RS256"},
		{"second key bad", jwks(jwk(t, pub("p256"), "ok", "", ""), privateJWK), "jwks.keys[1]", "public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := domain.NewClient(withJWKS(tt.set), now)
			wantProblem(t, err, tt.field)
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.text)
			}
			if strings.Contains(err.Error(), `"d"`) {
				t.Fatalf("error echoes key material: %v", err)
			}
		})
	}

	// A secret-based client may carry keys too; they are validated the same.
	cmd := newClientCmd()
	cmd.Spec.JWKS = good
	if _, _, err := domain.NewClient(cmd, now); err != nil {
		t.Errorf("client_secret_basic with jwks: %v", err)
	}
	cmd.Spec.JWKS = jwks(privateJWK)
	_, _, err = domain.NewClient(cmd, now)
	wantProblem(t, err, "jwks.keys[0]")
}
