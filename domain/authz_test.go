package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
)

// A grant refreshes until CreatedAt + MaxAge, however often it rotated;
// from then on its tokens, current or spent, are expired (not reuse), and
// a token that is not the grant's stays invalid.
func TestGrantRefreshAbsoluteLifetime(t *testing.T) {
	const maxAge = 720 * time.Hour
	created := now.Add(-maxAge + time.Minute)
	g := domain.Grant{ID: "grt_x", Client: "cli_1", Scopes: []string{"a", "b"}, RefreshHash: "h2",
		PreviousRefreshHash: "h1", Spent: []string{"h0"}, CreatedAt: created}
	refresh := func(hash string, at time.Time) error {
		_, err := g.Refresh(domain.Refresh{Client: "cli_1", Hash: hash, NewRefreshHash: "h3", MaxAge: maxAge, Now: at})
		return err
	}
	end := g.ExpiresAt(maxAge)
	if !end.Equal(created.Add(maxAge)) {
		t.Fatalf("ExpiresAt %s, want %s", end, created.Add(maxAge))
	}

	// Just before the end: the current token rotates, spent ones are reuse.
	ev, err := g.Refresh(domain.Refresh{Client: "cli_1", Hash: "h2", NewRefreshHash: "h3", MaxAge: maxAge, Now: end.Add(-time.Nanosecond)})
	if err != nil || ev.RefreshHash != "h3" || ev.SpentRefreshHash != "h2" {
		t.Fatalf("refresh before the end: %+v, %v", ev, err)
	}
	for _, h := range []string{"h0", "h1"} {
		if err := refresh(h, end.Add(-time.Nanosecond)); !errors.Is(err, domain.ErrRefreshReuse) {
			t.Fatalf("spent %s before the end: %v, want reuse", h, err)
		}
	}

	// At and after the end: expired, for every token of the grant.
	for _, at := range []time.Time{end, end.Add(time.Nanosecond), end.Add(24 * time.Hour)} {
		for _, h := range []string{"h2", "h1", "h0"} {
			if err := refresh(h, at); !errors.Is(err, domain.ErrRefreshTokenExpired) {
				t.Fatalf("%s at end%+v: %v, want expired", h, at.Sub(end), err)
			}
		}
		if err := refresh("unknown", at); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
			t.Fatalf("unknown token after the end: %v, want invalid", err)
		}
	}

	// Revoked or another client's: invalid, expired or not.
	if _, err := g.Refresh(domain.Refresh{Client: "cli_2", Hash: "h2", MaxAge: maxAge, Now: end}); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("another client's grant: %v", err)
	}
	revoked := g
	revoked.RevokedAt = &created
	if _, err := revoked.Refresh(domain.Refresh{Client: "cli_1", Hash: "h2", MaxAge: maxAge, Now: end}); !errors.Is(err, domain.ErrRefreshTokenInvalid) {
		t.Fatalf("revoked grant: %v", err)
	}

	// No lifetime given refreshes nothing (fail closed).
	if _, err := g.Refresh(domain.Refresh{Client: "cli_1", Hash: "h2", Now: created}); !errors.Is(err, domain.ErrRefreshTokenExpired) {
		t.Fatalf("zero MaxAge: %v, want expired", err)
	}
}
