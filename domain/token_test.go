package domain_test

import (
	"errors"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

var now = time.Date(2025, 3, 14, 15, 9, 26, 535_000_000, time.FixedZone("CET", 3600))

func credential(t *testing.T, prefix string) domain.Credential {
	t.Helper()
	_, c, err := domain.NewCredential(mrand.NewChaCha8([32]byte{1}), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issue is a valid command; each test case changes a fresh copy.
func issue(t *testing.T) domain.IssueToken {
	return domain.IssueToken{
		Credential:  credential(t, domain.PrefixLive),
		Hash:        "hash",
		AccountID:   "acc_1",
		Name:        "ci",
		Scopes:      []string{domain.ScopeTokensRead},
		Environment: domain.EnvLive,
	}
}

func ptr[T any](v T) *T { return &v }

func TestNewTokenValidation(t *testing.T) {
	t.Parallel()
	testCred, accessCred := credential(t, domain.PrefixTest), credential(t, domain.PrefixAccessToken)
	tests := []struct {
		name   string
		change func(*domain.IssueToken)
		field  string
	}{
		{"missing name", func(c *domain.IssueToken) { c.Name = "" }, "name"},
		{"name with control character", func(c *domain.IssueToken) { c.Name = "a\x07b" }, "name"},
		{"bad environment", func(c *domain.IssueToken) { c.Environment = "prod" }, "environment"},
		{"empty environment", func(c *domain.IssueToken) { c.Environment = "" }, "environment"},
		{"test environment, live credential", func(c *domain.IssueToken) { c.Environment = domain.EnvTest }, "environment"},
		{"live environment, test credential", func(c *domain.IssueToken) { c.Credential = testCred }, "environment"},
		{"access-token credential", func(c *domain.IssueToken) { c.Credential = accessCred }, "environment"},
		{"no scopes", func(c *domain.IssueToken) { c.Scopes = nil }, "scopes"},
		{"empty scope list", func(c *domain.IssueToken) { c.Scopes = []string{} }, "scopes"},
		{"empty scope name", func(c *domain.IssueToken) { c.Scopes = []string{""} }, "scopes"},
		{"upper-case scope", func(c *domain.IssueToken) { c.Scopes = []string{"Tokens:read"} }, "scopes"},
		{"empty scope segment", func(c *domain.IssueToken) { c.Scopes = []string{"tokens::read"} }, "scopes"},
		{"trailing colon", func(c *domain.IssueToken) { c.Scopes = []string{"tokens:"} }, "scopes"},
		{"space in scope", func(c *domain.IssueToken) { c.Scopes = []string{"tokens read"} }, "scopes"},
		{"scope too long", func(c *domain.IssueToken) { c.Scopes = []string{strings.Repeat("a", 101)} }, "scopes"},
		{"ttl and expires_at", func(c *domain.IssueToken) { c.TTL = time.Hour; c.ExpiresAt = ptr(now.Add(time.Hour)) }, "ttl"},
		{"negative ttl", func(c *domain.IssueToken) { c.TTL = -time.Second }, "ttl"},
		{"ttl over ten years", func(c *domain.IssueToken) { c.TTL = 10*365*24*time.Hour + time.Second }, "ttl"},
		{"expires_at in the past", func(c *domain.IssueToken) { c.ExpiresAt = ptr(now.Add(-time.Second)) }, "expires_at"},
		{"expires_at now", func(c *domain.IssueToken) { c.ExpiresAt = ptr(now) }, "expires_at"},
		{"expires_at over ten years", func(c *domain.IssueToken) { c.ExpiresAt = ptr(now.AddDate(11, 0, 0)) }, "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := issue(t)
			tt.change(&cmd)
			ev, err := domain.NewToken(cmd, now)
			var verr *domain.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError on %s", err, tt.field)
			}
			if !slices.ContainsFunc(verr.Problems, func(p domain.FieldProblem) bool { return p.Field == tt.field }) {
				t.Fatalf("problems %+v, want one on %s", verr.Problems, tt.field)
			}
			if ev.ID != "" {
				t.Fatalf("event %+v returned with an error", ev)
			}
		})
	}
}

func TestNewTokenReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cmd := issue(t)
	cmd.Name, cmd.Environment, cmd.Scopes, cmd.TTL = "", "x", nil, -1
	_, err := domain.NewToken(cmd, now)
	var verr *domain.ValidationError
	if !errors.As(err, &verr) || len(verr.Problems) != 4 {
		t.Fatalf("err = %v, want four problems", err)
	}
}

func TestNewTokenGrantor(t *testing.T) {
	t.Parallel()
	nonAdmin := append(domain.ManagementScopes(), "weather:read")
	tests := []struct {
		name    string
		grantor []string
		scopes  []string
		wantErr error
	}{
		{"system (nil grantor) grants anything", nil, []string{domain.ScopeAdmin, "weather:read"}, nil},
		{"grantor holds exactly the scopes", []string{"weather:read", domain.ScopeTokensRead}, []string{domain.ScopeTokensRead}, nil},
		{"grantor lacks a scope", []string{domain.ScopeTokensRead}, []string{domain.ScopeTokensRead, domain.ScopeTokensWrite}, domain.ErrForbidden},
		{"empty grantor", []string{}, []string{domain.ScopeTokensRead}, domain.ErrForbidden},
		{"non-admin grants admin", nonAdmin, []string{domain.ScopeAdmin}, domain.ErrForbidden},
		{"non-admin grants admin among others", nonAdmin, []string{domain.ScopeTokensRead, domain.ScopeAdmin}, domain.ErrForbidden},
		{"admin grants a management scope", []string{domain.ScopeAdmin}, []string{domain.ScopeWalletWrite}, nil},
		{"admin grants a catalog scope", []string{domain.ScopeAdmin}, []string{"weather:read"}, nil},
		{"admin grants admin", []string{domain.ScopeAdmin}, []string{domain.ScopeAdmin, domain.ScopeTokensRead}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := issue(t)
			cmd.GrantorScopes, cmd.Scopes = tt.grantor, tt.scopes
			_, err := domain.NewToken(cmd, now)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewTokenEvent(t *testing.T) {
	t.Parallel()
	cmd := issue(t)
	cmd.Scopes = []string{"weather:read", domain.ScopeTokensRead, "weather:read"}
	cmd.TTL = 90 * time.Minute
	ev, err := domain.NewToken(cmd, now)
	if err != nil {
		t.Fatal(err)
	}
	want := events.TokenCreated{
		ID:          cmd.Credential.TokenID(),
		AccountID:   "acc_1",
		Name:        "ci",
		Scopes:      []string{domain.ScopeTokensRead, "weather:read"},
		Environment: domain.EnvLive,
		Hash:        "hash",
		CreatedAt:   now.UTC(),
		ExpiresAt:   ptr(now.Add(90 * time.Minute).UTC().Truncate(time.Second)),
	}
	if ev.ID != want.ID || ev.AccountID != want.AccountID || ev.Name != want.Name || ev.Environment != want.Environment ||
		ev.Hash != want.Hash || !slices.Equal(ev.Scopes, want.Scopes) || !ev.CreatedAt.Equal(want.CreatedAt) ||
		ev.ExpiresAt == nil || !ev.ExpiresAt.Equal(*want.ExpiresAt) {
		t.Fatalf("event\n%+v\nwant\n%+v", ev, want)
	}
	if ev.CreatedAt.Location() != time.UTC || ev.ExpiresAt.Location() != time.UTC {
		t.Errorf("times not in UTC: %v %v", ev.CreatedAt, ev.ExpiresAt)
	}

	cmd = issue(t)
	cmd.ExpiresAt = ptr(now.Add(48 * time.Hour))
	ev, err = domain.NewToken(cmd, now)
	if err != nil {
		t.Fatal(err)
	}
	if !ev.ExpiresAt.Equal(*cmd.ExpiresAt) || ev.ExpiresAt.Location() != time.UTC {
		t.Errorf("ExpiresAt = %v, want %v in UTC", ev.ExpiresAt, cmd.ExpiresAt)
	}

	ev, err = domain.NewToken(issue(t), now)
	if err != nil || ev.ExpiresAt != nil {
		t.Errorf("no ttl: ExpiresAt = %v, err = %v; want nil, nil", ev.ExpiresAt, err)
	}
}

func TestTokenStatus(t *testing.T) {
	t.Parallel()
	expiry := now.Add(time.Hour)
	tests := []struct {
		name  string
		token domain.Token
		at    time.Time
		want  string
	}{
		{"no expiry", domain.Token{}, now, domain.StatusActive},
		{"before expiry", domain.Token{ExpiresAt: &expiry}, expiry.Add(-time.Nanosecond), domain.StatusActive},
		{"at expiry", domain.Token{ExpiresAt: &expiry}, expiry, domain.StatusExpired},
		{"after expiry", domain.Token{ExpiresAt: &expiry}, expiry.Add(time.Hour), domain.StatusExpired},
		{"revoked", domain.Token{RevokedAt: &now}, now, domain.StatusRevoked},
		{"revoked and expired", domain.Token{RevokedAt: &now, ExpiresAt: &expiry}, expiry.Add(time.Hour), domain.StatusRevoked},
	}
	for _, tt := range tests {
		if got := tt.token.Status(tt.at); got != tt.want {
			t.Errorf("%s: Status = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestTokenRevoke(t *testing.T) {
	t.Parallel()
	tok := domain.Token{ID: "tok_1", AccountID: "acc_1"}
	if got := tok.Status(now); got != domain.StatusActive {
		t.Fatalf("Status = %q, want active", got)
	}
	later := now.Add(time.Minute)
	revoked, err := tok.Revoke("leaked", later)
	if err != nil {
		t.Fatal(err)
	}
	if revoked.ID != tok.ID || revoked.AccountID != "acc_1" || revoked.Reason != "leaked" || !revoked.RevokedAt.Equal(later) {
		t.Fatalf("revocation %+v", revoked)
	}
	tok.RevokedAt = &revoked.RevokedAt
	if tok.Status(later) != domain.StatusRevoked {
		t.Fatalf("after revocation: %+v", tok)
	}
	if _, err := tok.Revoke("again", later); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second Revoke err = %v, want ErrConflict", err)
	}
}
