package api_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientKey is a client's signing key made with go-jose's types.
type clientKey struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
	kid  string
}

func newClientKeys(t *testing.T) []clientKey {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []clientKey{{jose.RS256, rsaKey, "rsa-1"}, {jose.ES256, ecKey, "ec-1"}, {jose.EdDSA, edKey, "ed-1"}}
}

// jwks is the public JWK Set of keys, as go-jose encodes it.
func jwks(t *testing.T, keys ...clientKey) json.RawMessage {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertion signs an RFC 7523 client assertion; adjust changes the claims.
func assertion(t *testing.T, k clientKey, clientID, aud string, adjust func(*jwt.Claims)) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: randomJTI(t),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}
	if adjust != nil {
		adjust(&c)
	}
	s, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomJTI(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func assertionForm(clientID, a string, extra ...string) []byte {
	kv := append([]string{"grant_type", "client_credentials", "client_assertion_type", jwtBearer, "client_assertion", a}, extra...)
	if clientID != "" {
		kv = append(kv, "client_id", clientID)
	}
	return form(kv...)
}

// private_key_jwt with RS256, ES256 and EdDSA keys made by go-jose; the
// same assertion replayed on a second node of the cluster is refused.
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	// The nodes of a cluster share the issuer (a load balancer's name).
	const issuer = "https://auth.tollgate.test"
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithIssuer(issuer), tollgatetest.WithAuthFailureLimit(100))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithIssuer(issuer))
	tn := newTenant(t, a.URL())
	keys := newClientKeys(t)
	const clientID = "signer:jwt@example 100%"
	createClient(t, tn.owner, map[string]any{"client_id": clientID, "token_endpoint_auth_method": "private_key_jwt",
		"jwks": jwks(t, keys...), "default_scopes": []string{"vps:read"}})
	tokenURL := issuer + "/oauth2/token"

	for _, k := range keys {
		t.Run(string(k.alg), func(t *testing.T) {
			as := assertion(t, k, clientID, tokenURL, nil)
			tok := wantToken(t, oauthPost(t, a.URL(), "/oauth2/token", assertionForm(clientID, as)))
			if tok.Scope != "vps:read" {
				t.Fatalf("token %+v", tok)
			}
			// Replayed on node B: the jti was used, cluster-wide.
			r := oauthPost(t, b.URL(), "/oauth2/token", assertionForm("", as))
			if e := wantOAuthError(t, r, 401, "invalid_client"); !strings.Contains(e.Description, "already used") {
				t.Fatalf("replay on B: %s", r.Body)
			}
			// And on A again.
			wantOAuthError(t, oauthPost(t, a.URL(), "/oauth2/token", assertionForm(clientID, as)), 401, "invalid_client")
		})
	}

	t.Run("audiences", func(t *testing.T) {
		for _, aud := range []string{issuer, issuer + "/oauth/token", issuer + "/v1/oauth/token"} {
			wantToken(t, oauthPost(t, a.URL(), "/oauth2/token", assertionForm("", assertion(t, keys[1], clientID, aud, nil))))
		}
	})

	stranger := newClientKeys(t)[1]
	stranger.kid = keys[1].kid
	for _, tc := range []struct {
		name   string
		key    clientKey
		adjust func(*jwt.Claims)
		aud    string
	}{
		{"another key with a known kid", stranger, nil, tokenURL},
		{"wrong audience", keys[0], nil, "https://elsewhere.example/token"},
		{"expired", keys[0], func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }, tokenURL},
		{"no exp", keys[0], func(c *jwt.Claims) { c.Expiry = nil }, tokenURL},
		{"exp too far ahead", keys[0], func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(time.Now().Add(time.Hour)) }, tokenURL},
		{"no jti", keys[0], func(c *jwt.Claims) { c.ID = "" }, tokenURL},
		{"iss is not sub", keys[0], func(c *jwt.Claims) { c.Issuer = "someone-else" }, tokenURL},
		{"not valid yet", keys[2], func(c *jwt.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }, tokenURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := oauthPost(t, a.URL(), "/oauth2/token", assertionForm("", assertion(t, tc.key, clientID, tc.aud, tc.adjust)))
			wantOAuthError(t, r, 401, "invalid_client")
		})
	}
	t.Run("wrong assertion type", func(t *testing.T) {
		r := oauthPost(t, a.URL(), "/oauth2/token", form("grant_type", "client_credentials",
			"client_assertion_type", "urn:other", "client_assertion", assertion(t, keys[0], clientID, tokenURL, nil)))
		wantOAuthError(t, r, 401, "invalid_client")
	})
	t.Run("HS256 is refused", func(t *testing.T) {
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
		s, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{tokenURL},
			ID: "x", Expiry: jwt.NewNumericDate(time.Now().Add(time.Minute))}).Serialize()
		wantOAuthError(t, oauthPost(t, a.URL(), "/oauth2/token", assertionForm("", s)), 401, "invalid_client")
	})
	t.Run("client_id that disagrees with the assertion", func(t *testing.T) {
		r := oauthPost(t, a.URL(), "/oauth2/token", assertionForm("other", assertion(t, keys[0], clientID, tokenURL, nil)))
		wantOAuthError(t, r, 400, "invalid_request")
	})
}

// fetchJWKS reads the node's published keys with go-jose.
func fetchJWKS(t *testing.T, base string) jose.JSONWebKeySet {
	t.Helper()
	r := tollgatetest.NewClient(base, "").Do(t, "GET", "/.well-known/jwks.json", nil)
	var set jose.JSONWebKeySet
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &set) != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %d %s", r.Status, r.Body)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || k.Algorithm != "ES256" || k.Use != "sig" || k.KeyID == "" {
			t.Fatalf("jwks key %+v", k)
		}
	}
	return set
}

// verifyAccessJWT checks an RFC 9068 token against the JWKS with go-jose.
func verifyAccessJWT(t *testing.T, token string, set jose.JSONWebKeySet, iss, clientID string) (string, map[string]any) {
	t.Helper()
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	h := parsed.Headers[0]
	if h.ExtraHeaders["typ"] != "at+jwt" {
		t.Fatalf("typ = %v", h.ExtraHeaders["typ"])
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", h.KeyID)
	}
	var std jwt.Claims
	var all map[string]any
	if err := parsed.Claims(keys[0].Key, &std, &all); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if err := std.Validate(jwt.Expected{Issuer: iss, Subject: clientID, AnyAudience: jwt.Audience{iss}, Time: time.Now()}); err != nil {
		t.Fatalf("claims %v: %v", all, err)
	}
	for _, k := range []string{"client_id", "scope", "iat", "exp", "jti"} {
		if all[k] == nil || all[k] == "" {
			t.Fatalf("claim %s missing: %v", k, all)
		}
	}
	if all["client_id"] != clientID || !strings.HasPrefix(std.ID, "tok_") {
		t.Fatalf("claims %v", all)
	}
	return h.KeyID, all
}

// JWT access tokens verify against the JWKS before and after a rotation;
// the retired key stays published for the tokens it signed.
func TestJWTAccessTokensAndKeyRotation(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	tn := newTenant(t, n.URL())
	cl := createClient(t, tn.owner, map[string]any{"access_token_format": "jwt", "access_token_ttl": 600,
		"scopes": []string{"vps:read", "vps:write"}, "default_scopes": []string{"vps:read"}})
	issue := func() tokenOK {
		return wantToken(t, oauthPost(t, n.URL(), "/oauth2/token", form("grant_type", "client_credentials", "scope", "vps:write vps:read"),
			"Authorization", basic(cl.ClientID, cl.ClientSecret)))
	}
	before := issue()
	if before.ExpiresIn != 600 || before.Scope != "vps:read vps:write" {
		t.Fatalf("token %+v", before)
	}
	kid1, claims := verifyAccessJWT(t, before.AccessToken, fetchJWKS(t, n.URL()), n.URL(), cl.ClientID)
	if claims["scope"] != "vps:read vps:write" || claims["exp"].(float64)-claims["iat"].(float64) != 600 {
		t.Fatalf("claims %v", claims)
	}
	// Introspection knows the JWT by its jti.
	in := introspect(t, n.URL(), before.AccessToken, "Authorization", basic(cl.ClientID, cl.ClientSecret))
	if !in.Active || in.JTI != claims["jti"] || in.Scope != "vps:read vps:write" {
		t.Fatalf("introspection %+v", in)
	}

	// Only admin may rotate or list.
	wantError(t, tn.owner.Do(t, "POST", "/signing-keys/rotate", nil), http.StatusForbidden, "forbidden")
	wantError(t, tn.owner.Do(t, "GET", "/signing-keys", nil), http.StatusForbidden, "forbidden")
	r := root.Do(t, "POST", "/signing-keys/rotate", nil)
	var rotated signingKeyOut
	r.JSON(t, &rotated)
	if r.Status != http.StatusCreated || rotated.KID == kid1 || rotated.Status != "active" {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}

	after := issue()
	set := fetchJWKS(t, n.URL())
	kid2, _ := verifyAccessJWT(t, after.AccessToken, set, n.URL(), cl.ClientID)
	if kid2 != rotated.KID {
		t.Fatalf("signed with %s after rotating to %s", kid2, rotated.KID)
	}
	// The token signed before the rotation still verifies: the retired key
	// is published until its last token has expired.
	verifyAccessJWT(t, before.AccessToken, set, n.URL(), cl.ClientID)

	r = root.Do(t, "GET", "/signing-keys", nil)
	var list struct {
		Data []signingKeyOut `json:"data"`
	}
	r.JSON(t, &list)
	if r.Status != 200 || len(list.Data) != 2 || strings.Contains(string(r.Body), "private") || strings.Contains(string(r.Body), `"d":`) {
		t.Fatalf("signing keys: %d %s", r.Status, r.Body)
	}
	old := list.Data[0]
	if old.KID != kid1 || old.Status != "retired" || !old.Published || old.RetiredAt == nil || old.PublishUntil == nil ||
		old.PublishUntil.Sub(*old.RetiredAt) != 24*time.Hour+time.Minute || list.Data[1].KID != kid2 {
		t.Fatalf("signing keys %+v", list.Data)
	}
}

type signingKeyOut struct {
	KID          string          `json:"kid"`
	Alg          string          `json:"alg"`
	Status       string          `json:"status"`
	Published    bool            `json:"published"`
	PublicJWK    json.RawMessage `json:"public_jwk"`
	CreatedAt    time.Time       `json:"created_at"`
	RetiredAt    *time.Time      `json:"retired_at"`
	PublishUntil *time.Time      `json:"publish_until"`
}

// Nodes of one cluster must share the key-encryption key: a node whose
// key cannot open the signing key refuses to start. A node given none
// keeps its own in <data-dir>/kek.
func TestKeyEncryptionKey(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))

	cfg := tollgatetest.Config(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	cfg.KeyEncryptionKey = []byte("another-key-encryption-key-32byt")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := node.Start(ctx, cfg); err == nil || !strings.Contains(err.Error(), "key-encryption-key") {
		if n != nil {
			n.Close()
		}
		t.Fatalf("a node with another KEK started: %v", err)
	}

	var dataDir string
	single := tollgatetest.Start(t, func(c *node.Config) { c.KeyEncryptionKey, dataDir = nil, c.DataDir })
	st, err := os.Stat(filepath.Join(dataDir, "kek"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("kek file: %v %v", st, err)
	}
	fetchJWKS(t, single.URL())
}
