package domain_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
)

func TestParseScopeParam(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		param string
		given bool
		want  []string
		err   bool
	}{
		{"", false, nil, false},
		{"vps:read", true, []string{"vps:read"}, false},
		{"vps:write vps:read vps:write", true, []string{"vps:read", "vps:write"}, false},
		{"", true, nil, true},
		{"vps:read  vps:write", true, nil, true}, // two spaces: an empty scope
		{" vps:read", true, nil, true},
		{"vps:read\tvps:write", true, nil, true},
		{"VPS:READ", true, nil, true},
	} {
		got, err := domain.ParseScopeParam(tc.param, tc.given)
		if (err != nil) != tc.err || (err != nil && !errors.Is(err, domain.ErrInvalidScope)) || !slices.Equal(got, tc.want) {
			t.Errorf("ParseScopeParam(%q, %v) = %v, %v", tc.param, tc.given, got, err)
		}
	}
}

func clientWith(format string, ttl int64, grants ...string) domain.Client {
	cmd := newClientCmd()
	cmd.Spec.Scopes = []string{"vps:read", "vps:write"}
	cmd.Spec.DefaultScopes = []string{"vps:read"}
	cmd.Spec.AccessTokenFormat, cmd.Spec.AccessTokenTTL = format, ttl
	cmd.Spec.GrantTypes = grants
	if slices.Contains(grants, domain.GrantAuthorizationCode) {
		cmd.Spec.RedirectURIs = []string{"https://app.example/cb"}
	}
	created, _, err := domain.NewClient(cmd, now)
	if err != nil {
		panic(err)
	}
	return domain.Client{ID: created.ID, ClientID: created.ClientID, AccountID: created.AccountID,
		Environment: created.Environment, Settings: created.ClientSettings, SecretHash: created.SecretHash}
}

func TestGrantScopes(t *testing.T) {
	t.Parallel()
	c := clientWith("", 0)
	if got, err := c.GrantScopes(nil); err != nil || !slices.Equal(got, []string{"vps:read"}) {
		t.Fatalf("defaults: %v, %v", got, err)
	}
	if got, err := c.GrantScopes([]string{"vps:read", "vps:write"}); err != nil || len(got) != 2 {
		t.Fatalf("subset: %v, %v", got, err)
	}
	if _, err := c.GrantScopes([]string{"vps:read", "domains:read"}); !errors.Is(err, domain.ErrInvalidScope) {
		t.Fatalf("beyond the client's scopes: %v", err)
	}
	c.Settings.DefaultScopes = nil
	if _, err := c.GrantScopes(nil); !errors.Is(err, domain.ErrInvalidScope) {
		t.Fatalf("no request, no defaults: %v", err)
	}
}

func TestIssueAccessToken(t *testing.T) {
	t.Parallel()
	cmd := domain.IssueAccess{ID: "tok_0123456789abcdef", Hash: "h", Scopes: []string{"vps:read"},
		Audience: []string{"https://auth.example"}, KeyID: "sk_1", Now: now}
	ev, err := clientWith("", 600).IssueAccessToken(cmd)
	if err != nil {
		t.Fatal(err)
	}
	iat := now.UTC().Truncate(time.Second)
	if ev.ID != cmd.ID || ev.Hash != "h" || ev.Client != "cli_0123456789abcdefghij" || ev.ClientID != ev.Client || ev.Subject != ev.ClientID ||
		ev.AccountID != "acc_1" || ev.Environment != "live" || ev.Format != "opaque" || ev.JTI != "" || ev.KeyID != "" ||
		!ev.IssuedAt.Equal(iat) || !ev.ExpiresAt.Equal(iat.Add(600*time.Second)) {
		t.Fatalf("opaque %+v", ev)
	}
	ev, err = clientWith("jwt", 0).IssueAccessToken(cmd)
	if err != nil || ev.Format != "jwt" || ev.JTI != cmd.ID || ev.KeyID != "sk_1" || ev.ExpiresAt.Sub(ev.IssuedAt) != time.Hour {
		t.Fatalf("jwt %+v, %v", ev, err)
	}
	if _, err := clientWith("", 0, domain.GrantAuthorizationCode).IssueAccessToken(cmd); !errors.Is(err, domain.ErrGrantNotAllowed) {
		t.Fatalf("without the grant: %v", err)
	}
	deleted := clientWith("", 0)
	deleted.DeletedAt = &now
	if _, err := deleted.IssueAccessToken(cmd); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deleted client: %v", err)
	}
}

func TestAccessTokenStatusAndRevoke(t *testing.T) {
	t.Parallel()
	tok := domain.AccessToken{ID: "tok_1", AccountID: "acc_1", ExpiresAt: now.Add(time.Minute)}
	if tok.Status(now) != domain.StatusActive || tok.Status(now.Add(time.Minute)) != domain.StatusExpired {
		t.Fatal("status by expiry")
	}
	ev, err := tok.Revoke("r", now)
	if err != nil || ev.ID != "tok_1" || ev.AccountID != "acc_1" || ev.Reason != "r" || !ev.RevokedAt.Equal(now) {
		t.Fatalf("revoke %+v, %v", ev, err)
	}
	tok.RevokedAt = &ev.RevokedAt
	if tok.Status(now) != domain.StatusRevoked {
		t.Fatal("revoked status")
	}
	if _, err := tok.Revoke("again", now); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second revoke: %v", err)
	}
}
