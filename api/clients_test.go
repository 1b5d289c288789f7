package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

type clientOut struct {
	ID                       string          `json:"id"`
	ClientID                 string          `json:"client_id"`
	ClientSecret             string          `json:"client_secret"`
	AccountID                string          `json:"account_id"`
	Environment              string          `json:"environment"`
	Name                     string          `json:"name"`
	GrantTypes               []string        `json:"grant_types"`
	Scopes                   []string        `json:"scopes"`
	DefaultScopes            []string        `json:"default_scopes"`
	TokenEndpointAuthMethod  string          `json:"token_endpoint_auth_method"`
	JWKS                     json.RawMessage `json:"jwks"`
	RedirectURIs             []string        `json:"redirect_uris"`
	AccessTokenTTL           int64           `json:"access_token_ttl"`
	AccessTokenFormat        string          `json:"access_token_format"`
	Status                   string          `json:"status"`
	PreviousSecretValidUntil *time.Time      `json:"previous_secret_valid_until"`
	CreatedAt                time.Time       `json:"created_at"`
	UpdatedAt                time.Time       `json:"updated_at"`
}

type clientList struct {
	Data       []clientOut `json:"data"`
	NextCursor *string     `json:"next_cursor"`
}

// createClient posts body and expects 201.
func createClient(t *testing.T, c *tollgatetest.Client, body map[string]any) clientOut {
	t.Helper()
	if body["name"] == nil {
		body["name"] = "backend"
	}
	if body["scopes"] == nil {
		body["scopes"] = []string{"vps:read"}
	}
	r := c.Do(t, "POST", "/clients", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /clients %v: %d %s", body, r.Status, r.Body)
	}
	var out clientOut
	r.JSON(t, &out)
	if r.Header.Get("Location") != "/clients/"+out.ID || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST /clients headers %v", r.Header)
	}
	return out
}

// clientPath is the path of a client named by its client_id.
func clientPath(clientID string) string { return "/clients/" + url.PathEscape(clientID) }

// secretWorks asks n, as its token endpoint will, whether secret
// authenticates clientID at at.
func secretWorks(t *testing.T, n *node.Node, clientID, secret string, at time.Time) bool {
	t.Helper()
	ok, err := n.API.CheckClientSecret(context.Background(), clientID, secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestClientLifecycle(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())

	var generated clientOut
	t.Run("create with a generated client_id", func(t *testing.T) {
		generated = createClient(t, tn.owner, map[string]any{})
		cred, err := domain.ParseCredential(generated.ClientSecret)
		if err != nil || cred.Prefix != domain.PrefixClientSecret {
			t.Fatalf("client_secret %q: %v", generated.ClientSecret, err)
		}
		g := generated
		if !strings.HasPrefix(g.ID, "cli_") || len(g.ID) != 24 || g.ClientID != g.ID || g.AccountID != tn.acc.ID || g.Environment != "live" ||
			!slices.Equal(g.GrantTypes, []string{"client_credentials"}) || !slices.Equal(g.Scopes, []string{"vps:read"}) ||
			g.DefaultScopes == nil || len(g.DefaultScopes) != 0 || g.TokenEndpointAuthMethod != "client_secret_basic" ||
			string(g.JWKS) != "null" || g.RedirectURIs == nil || len(g.RedirectURIs) != 0 || g.AccessTokenTTL != 3600 ||
			g.AccessTokenFormat != "opaque" || g.Status != "active" || g.PreviousSecretValidUntil != nil ||
			g.CreatedAt.IsZero() || !g.UpdatedAt.Equal(g.CreatedAt) {
			t.Fatalf("created %+v", g)
		}
		if !secretWorks(t, n, g.ClientID, g.ClientSecret, time.Now()) || secretWorks(t, n, g.ClientID, "tg_cs_wrong", time.Now()) {
			t.Fatal("the issued secret does not authenticate the client")
		}
	})

	t.Run("the secret is shown once", func(t *testing.T) {
		r := tn.owner.Do(t, "GET", "/clients/"+generated.ID, nil)
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), "secret\"") || strings.Contains(string(r.Body), "tg_cs_") ||
			strings.Contains(string(r.Body), "hash") {
			t.Fatalf("GET: %d %s", r.Status, r.Body)
		}
		var got clientOut
		r.JSON(t, &got)
		want := generated
		want.ClientSecret = ""
		if got.ID != want.ID || got.Name != want.Name || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Fatalf("GET %+v\nwant %+v", got, want)
		}
		r = tn.owner.Do(t, "GET", "/clients", nil)
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), "tg_cs_") || !strings.Contains(string(r.Body), generated.ID) {
			t.Fatalf("GET /clients: %d %s", r.Status, r.Body)
		}
	})

	const chosen = "ops@example.com:billing 100%"
	var named clientOut
	t.Run("create with a chosen client_id", func(t *testing.T) {
		named = createClient(t, tn.owner, map[string]any{"client_id": chosen, "token_endpoint_auth_method": "client_secret_post",
			"scopes": []string{"vps:read", "vps:write", "domains:read"}, "default_scopes": []string{"vps:read"},
			"grant_types":   []string{"client_credentials", "authorization_code", "refresh_token"},
			"redirect_uris": []string{"https://app.example/cb", "http://127.0.0.1:8123/cb"}, "access_token_ttl": 600, "access_token_format": "jwt"})
		if named.ClientID != chosen || named.ID == chosen || named.AccessTokenTTL != 600 || named.AccessTokenFormat != "jwt" ||
			!slices.Equal(named.GrantTypes, []string{"authorization_code", "client_credentials", "refresh_token"}) ||
			!slices.Equal(named.Scopes, []string{"domains:read", "vps:read", "vps:write"}) {
			t.Fatalf("created %+v", named)
		}
		for _, path := range []string{"/clients/" + named.ID, clientPath(chosen)} {
			var got clientOut
			r := tn.owner.Do(t, "GET", path, nil)
			r.JSON(t, &got)
			if r.Status != http.StatusOK || got.ID != named.ID {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}
		slash := createClient(t, tn.owner, map[string]any{"client_id": "team/a?b#c"})
		if r := tn.owner.Do(t, "GET", clientPath("team/a?b#c"), nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), slash.ID) {
			t.Fatalf("GET client_id with '/': %d %s", r.Status, r.Body)
		}
		if !secretWorks(t, n, chosen, named.ClientSecret, time.Now()) {
			t.Fatal("secret of the chosen client_id")
		}
	})

	t.Run("a client_id is taken once across accounts", func(t *testing.T) {
		for _, c := range []*tollgatetest.Client{tn.owner, newTenant(t, n.URL()).owner} {
			e := wantError(t, c.Do(t, "POST", "/clients", map[string]any{"client_id": chosen, "name": "x", "scopes": []string{"vps:read"}}),
				http.StatusConflict, "conflict")
			if !strings.Contains(e.Message, "is taken") {
				t.Fatalf("conflict message %q", e.Message)
			}
		}
		wantError(t, tn.owner.Do(t, "POST", "/clients", map[string]any{"client_id": generated.ID, "name": "x", "scopes": []string{"vps:read"}}),
			http.StatusConflict, "conflict")
	})

	t.Run("rotation with a grace period", func(t *testing.T) {
		r := tn.owner.Do(t, "POST", clientPath(chosen)+"/secret", map[string]any{"grace_period": 60})
		if r.Status != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		var rotated clientOut
		r.JSON(t, &rotated)
		now := time.Now()
		if rotated.ClientSecret == named.ClientSecret || !strings.HasPrefix(rotated.ClientSecret, "tg_cs_") ||
			rotated.PreviousSecretValidUntil == nil || rotated.PreviousSecretValidUntil.Sub(now) > 61*time.Second ||
			rotated.PreviousSecretValidUntil.Sub(now) < 50*time.Second {
			t.Fatalf("rotated %+v", rotated)
		}
		for _, tc := range []struct {
			secret string
			at     time.Time
			want   bool
		}{
			{rotated.ClientSecret, now, true},
			{named.ClientSecret, now, true},
			{named.ClientSecret, now.Add(61 * time.Second), false},
			{rotated.ClientSecret, now.Add(61 * time.Second), true},
		} {
			if got := secretWorks(t, n, chosen, tc.secret, tc.at); got != tc.want {
				t.Errorf("secret %s… at +%s: %v, want %v", tc.secret[:10], tc.at.Sub(now).Round(time.Second), got, tc.want)
			}
		}
		if r := tn.owner.Do(t, "GET", clientPath(chosen), nil); strings.Contains(string(r.Body), "tg_cs_") ||
			!strings.Contains(string(r.Body), `"previous_secret_valid_until":"`) {
			t.Fatalf("GET after rotation: %s", r.Body)
		}

		// Without a body: no grace, both older secrets stop at once.
		r = tn.owner.Do(t, "POST", clientPath(chosen)+"/secret", nil)
		var again clientOut
		r.JSON(t, &again)
		if r.Status != http.StatusOK || again.PreviousSecretValidUntil != nil || !strings.Contains(string(r.Body), `"previous_secret_valid_until":null`) {
			t.Fatalf("rotate without grace: %d %s", r.Status, r.Body)
		}
		for secret, want := range map[string]bool{again.ClientSecret: true, rotated.ClientSecret: false, named.ClientSecret: false} {
			if got := secretWorks(t, n, chosen, secret, time.Now()); got != want {
				t.Errorf("after a rotation without grace, secret %s…: %v, want %v", secret[:10], got, want)
			}
		}
		for _, body := range []any{map[string]any{"grace_period": 86401}, map[string]any{"grace_period": -1},
			map[string]any{"grace": 5}, map[string]any{"grace_period": "60"}, map[string]any{"grace_period": 1 << 62}} {
			wantError(t, tn.owner.Do(t, "POST", clientPath(chosen)+"/secret", body), http.StatusBadRequest, "invalid_request")
		}
		if r := tn.owner.Do(t, "POST", clientPath(chosen)+"/secret", map[string]any{"grace_period": 86400}); r.Status != http.StatusOK {
			t.Fatalf("grace of a day: %d %s", r.Status, r.Body)
		}
	})

	t.Run("patch", func(t *testing.T) {
		r := tn.owner.Do(t, "PATCH", "/clients/"+generated.ID, map[string]any{"name": "renamed", "scopes": []string{"vps:read", "email:read"}})
		var got clientOut
		r.JSON(t, &got)
		if r.Status != http.StatusOK || got.Name != "renamed" || !slices.Equal(got.Scopes, []string{"email:read", "vps:read"}) ||
			got.ClientSecret != "" || !got.UpdatedAt.After(got.CreatedAt) || got.AccessTokenTTL != 3600 {
			t.Fatalf("PATCH: %d %s", r.Status, r.Body)
		}
		if same := tn.owner.Do(t, "PATCH", "/clients/"+generated.ID, map[string]any{}); same.Status != http.StatusOK || string(same.Body) != string(r.Body) {
			t.Fatalf("empty PATCH: %d %s\nwant %s", same.Status, same.Body, r.Body)
		}
		for name, body := range map[string]any{
			"client_id":           map[string]any{"client_id": "other"},
			"unknown scope":       map[string]any{"scopes": []string{"nope:read"}},
			"public with cc":      map[string]any{"token_endpoint_auth_method": "none"},
			"ttl 0":               map[string]any{"access_token_ttl": 0},
			"unknown field":       map[string]any{"colour": "blue"},
			"default not allowed": map[string]any{"default_scopes": []string{"vps:write"}},
		} {
			if r := tn.owner.Do(t, "PATCH", "/clients/"+generated.ID, body); r.Status != http.StatusBadRequest {
				t.Errorf("PATCH %s: %d %s", name, r.Status, r.Body)
			}
		}

		// A public client has no secret; back to a secret method, it gets one.
		r = tn.owner.Do(t, "PATCH", "/clients/"+generated.ID, map[string]any{"token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code"}, "redirect_uris": []string{"http://localhost:9000/cb"}})
		if r.Status != http.StatusOK || strings.Contains(string(r.Body), "client_secret\"") {
			t.Fatalf("PATCH to public: %d %s", r.Status, r.Body)
		}
		if secretWorks(t, n, generated.ClientID, generated.ClientSecret, time.Now()) {
			t.Fatal("a public client still takes its old secret")
		}
		wantError(t, tn.owner.Do(t, "POST", "/clients/"+generated.ID+"/secret", nil), http.StatusConflict, "conflict")
		r = tn.owner.Do(t, "PATCH", "/clients/"+generated.ID, map[string]any{"token_endpoint_auth_method": "client_secret_basic"})
		r.JSON(t, &got)
		if r.Status != http.StatusOK || !strings.HasPrefix(got.ClientSecret, "tg_cs_") || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("PATCH back to client_secret_basic: %d %s", r.Status, r.Body)
		}
		if !secretWorks(t, n, generated.ClientID, got.ClientSecret, time.Now()) {
			t.Fatal("the secret issued by PATCH does not work")
		}
		generated.ClientSecret = got.ClientSecret
	})

	t.Run("delete, then the client_id is free again", func(t *testing.T) {
		if r := tn.owner.Do(t, "DELETE", clientPath(chosen), nil); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		for _, path := range []string{clientPath(chosen), "/clients/" + named.ID} {
			wantError(t, tn.owner.Do(t, "GET", path, nil), http.StatusNotFound, "not_found")
			wantError(t, tn.owner.Do(t, "DELETE", path, nil), http.StatusNotFound, "not_found")
		}
		if secretWorks(t, n, chosen, named.ClientSecret, time.Now()) {
			t.Fatal("a deleted client authenticates")
		}
		var list clientList
		tn.owner.Do(t, "GET", "/clients", nil).JSON(t, &list)
		for _, c := range list.Data {
			if c.ID == named.ID {
				t.Fatal("deleted client listed")
			}
		}
		reborn := createClient(t, tn.owner, map[string]any{"client_id": chosen})
		if reborn.ID == named.ID || reborn.ClientID != chosen {
			t.Fatalf("reused client_id: %+v", reborn)
		}
		if !secretWorks(t, n, chosen, reborn.ClientSecret, time.Now()) || secretWorks(t, n, chosen, named.ClientSecret, time.Now()) {
			t.Fatal("the client_id authenticates the wrong client")
		}
		// And once more: a claim released twice is claimed with the right expectation.
		if r := tn.owner.Do(t, "DELETE", "/clients/"+reborn.ID, nil); r.Status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", r.Status, r.Body)
		}
		createClient(t, tn.owner, map[string]any{"client_id": chosen})
	})

	t.Run("idempotent create", func(t *testing.T) {
		body := map[string]any{"client_id": "idem-client", "name": "once", "scopes": []string{"vps:read"}}
		first := tn.owner.Do(t, "POST", "/clients", body, "Idempotency-Key", "client-once")
		second := tn.owner.Do(t, "POST", "/clients", body, "Idempotency-Key", "client-once")
		if first.Status != http.StatusCreated || second.Status != first.Status || string(second.Body) != string(first.Body) {
			t.Fatalf("replay: %d %s\nfirst %d %s", second.Status, second.Body, first.Status, first.Body)
		}
	})

	t.Run("list pages", func(t *testing.T) {
		other := newTenant(t, n.URL())
		var want []string
		for range 5 {
			want = append(want, createClient(t, other.owner, map[string]any{}).ID)
		}
		var got []string
		cursor := ""
		for range 10 {
			r := other.owner.Do(t, "GET", "/clients?limit=2&cursor="+cursor, nil)
			var page clientList
			r.JSON(t, &page)
			if r.Status != http.StatusOK || len(page.Data) > 2 {
				t.Fatalf("GET /clients: %d %s", r.Status, r.Body)
			}
			for _, c := range page.Data {
				got = append(got, c.ID)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v", got, want)
		}
		for _, q := range []string{"limit=0", "limit=501", "cursor=%21%21"} {
			wantError(t, other.owner.Do(t, "GET", "/clients?"+q, nil), http.StatusBadRequest, "invalid_request")
		}
	})
}

func TestClientBadInput(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	tn := newTenant(t, n.URL())
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := func(key any, kid string) map[string]any {
		raw, err := jose.JSONWebKey{Key: key, KeyID: kid}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m
	}
	good := map[string]any{"keys": []any{jwk(&ec.PublicKey, "k1")}}

	r := tn.owner.Do(t, "POST", "/clients", map[string]any{"name": "signer", "scopes": []string{"vps:read"},
		"token_endpoint_auth_method": "private_key_jwt", "jwks": good})
	var signer clientOut
	r.JSON(t, &signer)
	if r.Status != http.StatusCreated || signer.ClientSecret != "" || strings.Contains(string(r.Body), "client_secret\"") ||
		!strings.Contains(string(signer.JWKS), `"kid":"k1"`) || strings.Contains(string(signer.JWKS), `"d"`) {
		t.Fatalf("private_key_jwt client: %d %s", r.Status, r.Body)
	}
	wantError(t, tn.owner.Do(t, "POST", "/clients/"+signer.ID+"/secret", nil), http.StatusConflict, "conflict")
	if r := tn.owner.Do(t, "PATCH", "/clients/"+signer.ID, map[string]any{"jwks": nil}); r.Status != http.StatusBadRequest {
		t.Fatalf("removing the keys of a private_key_jwt client: %d %s", r.Status, r.Body)
	}

	with := func(key string, value any) map[string]any {
		body := map[string]any{"name": "x", "scopes": []string{"vps:read"}}
		if value == nil {
			delete(body, key)
		} else {
			body[key] = value
		}
		return body
	}
	for name, body := range map[string]any{
		"unknown field":         with("colour", "blue"),
		"empty client_id":       with("client_id", ""),
		"client_id too long":    with("client_id", strings.Repeat("x", 201)),
		"control in client_id":  with("client_id", "a\tb"),
		"no name":               with("name", nil),
		"no scopes":             with("scopes", nil),
		"unknown scope":         with("scopes", []string{"weather:read"}),
		"bad scope name":        with("scopes", []string{"VPS"}),
		"default not allowed":   with("default_scopes", []string{"vps:write"}),
		"unknown grant":         with("grant_types", []string{"password"}),
		"unknown method":        with("token_endpoint_auth_method", "tls_client_auth"),
		"jwt without keys":      with("token_endpoint_auth_method", "private_key_jwt"),
		"private key in jwks":   map[string]any{"name": "x", "scopes": []string{"vps:read"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{jwk(ec, "k1")}}},
		"jwks not a set":        with("jwks", []any{jwk(&ec.PublicKey, "k1")}),
		"code without redirect": with("grant_types", []string{"authorization_code"}),
		"http redirect":         map[string]any{"name": "x", "scopes": []string{"vps:read"}, "grant_types": []string{"authorization_code"}, "redirect_uris": []string{"http://app.example/cb"}},
		"relative redirect":     with("redirect_uris", []string{"/cb"}),
		"public with cc":        map[string]any{"name": "x", "scopes": []string{"vps:read"}, "token_endpoint_auth_method": "none"},
		"ttl 0":                 with("access_token_ttl", 0),
		"ttl 59":                with("access_token_ttl", 59),
		"ttl a day and more":    with("access_token_ttl", 86401),
		"ttl as string":         with("access_token_ttl", "3600"),
		"format":                with("access_token_format", "paseto"),
		"not JSON":              []byte(`{"name":`),
		"array":                 []byte(`[]`),
	} {
		r := tn.owner.Do(t, "POST", "/clients", body)
		var e errorOut
		r.JSON(t, &e)
		if r.Status != http.StatusBadRequest || e.Error != "invalid_request" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	var list clientList
	tn.owner.Do(t, "GET", "/clients", nil).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != signer.ID {
		t.Fatalf("rejected requests created clients: %+v", list.Data)
	}

	t.Run("scopes", func(t *testing.T) {
		k := tn.token(t, map[string]any{"scopes": []string{"clients:write", "vps:read"}})
		narrow := tollgatetest.NewClient(n.URL(), k.Token)
		if r := narrow.Do(t, "POST", "/clients", map[string]any{"name": "x", "scopes": []string{"vps:read", "email:read"}}); r.Status != http.StatusForbidden || string(r.Body) != bodyForbidden {
			t.Errorf("client allowed a scope its creator lacks: %d %s", r.Status, r.Body)
		}
		if r := narrow.Do(t, "POST", "/clients", map[string]any{"name": "x", "scopes": []string{"vps:read"}}); r.Status != http.StatusCreated {
			t.Errorf("POST with clients:write: %d %s", r.Status, r.Body)
		}
		for _, path := range []string{"/clients", "/clients/" + signer.ID} {
			if r := narrow.Do(t, "GET", path, nil); r.Status != http.StatusForbidden || string(r.Body) != bodyForbidden {
				t.Errorf("GET %s without clients:read: %d %s", path, r.Status, r.Body)
			}
		}
		k = tn.token(t, map[string]any{"scopes": []string{"clients:read"}})
		reader := tollgatetest.NewClient(n.URL(), k.Token)
		if r := reader.Do(t, "GET", "/clients/"+signer.ID, nil); r.Status != http.StatusOK {
			t.Errorf("GET with clients:read: %d %s", r.Status, r.Body)
		}
		for _, req := range [][2]string{{"POST", "/clients"}, {"PATCH", "/clients/" + signer.ID}, {"DELETE", "/clients/" + signer.ID}, {"POST", "/clients/" + signer.ID + "/secret"}} {
			if r := reader.Do(t, req[0], req[1], map[string]any{}); r.Status != http.StatusForbidden || string(r.Body) != bodyForbidden {
				t.Errorf("%s %s without clients:write: %d %s", req[0], req[1], r.Status, r.Body)
			}
		}
		if r := tollgatetest.NewClient(n.URL(), "").Do(t, "GET", "/clients", nil); r.Status != http.StatusUnauthorized || string(r.Body) != bodyUnauthorized {
			t.Errorf("GET /clients without a key: %d %s", r.Status, r.Body)
		}
	})
}
