package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
)

func TestNewAccount(t *testing.T) {
	t.Parallel()
	ev, err := domain.NewAccount(domain.CreateAccount{ID: "acc_Ab-9", Name: "  Ünïcode Ltd  ", Root: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "acc_Ab-9" || ev.Name != "Ünïcode Ltd" || !ev.Root || !ev.CreatedAt.Equal(now) || ev.CreatedAt.Location() != time.UTC {
		t.Fatalf("event %+v", ev)
	}
	if _, err := domain.NewAccount(domain.CreateAccount{ID: "a", Name: strings.Repeat("é", 200)}, now); err != nil {
		t.Fatalf("200 characters (400 bytes) rejected: %v", err)
	}
}

func TestNewAccountValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cmd    domain.CreateAccount
		fields []string
	}{
		{"empty name", domain.CreateAccount{ID: "acc_1"}, []string{"name"}},
		{"blank name", domain.CreateAccount{ID: "acc_1", Name: " \t\n "}, []string{"name"}},
		{"NUL in name", domain.CreateAccount{ID: "acc_1", Name: "a\x00b"}, []string{"name"}},
		{"newline in name", domain.CreateAccount{ID: "acc_1", Name: "a\nb"}, []string{"name"}},
		{"tab in name", domain.CreateAccount{ID: "acc_1", Name: "a\tb"}, []string{"name"}},
		{"DEL in name", domain.CreateAccount{ID: "acc_1", Name: "a\x7fb"}, []string{"name"}},
		{"C1 control in name", domain.CreateAccount{ID: "acc_1", Name: "a\u0085b"}, []string{"name"}},
		{"201 characters", domain.CreateAccount{ID: "acc_1", Name: strings.Repeat("x", 201)}, []string{"name"}},
		{"empty id", domain.CreateAccount{Name: "n"}, []string{"id"}},
		{"space in id", domain.CreateAccount{ID: "acc 1", Name: "n"}, []string{"id"}},
		{"dot in id", domain.CreateAccount{ID: "acc.1", Name: "n"}, []string{"id"}},
		{"wildcard id", domain.CreateAccount{ID: "*", Name: "n"}, []string{"id"}},
		{"slash in id", domain.CreateAccount{ID: "acc/1", Name: "n"}, []string{"id"}},
		{"non-ASCII id", domain.CreateAccount{ID: "accü", Name: "n"}, []string{"id"}},
		{"id over 128 characters", domain.CreateAccount{ID: strings.Repeat("a", 129), Name: "n"}, []string{"id"}},
		{"both bad", domain.CreateAccount{ID: "", Name: ""}, []string{"name", "id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.NewAccount(tt.cmd, now)
			var verr *domain.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			var got []string
			for _, p := range verr.Problems {
				got = append(got, p.Field)
			}
			if !slices.Equal(got, tt.fields) {
				t.Fatalf("problems on %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestHasScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		held     []string
		required string
		want     bool
	}{
		{nil, domain.ScopeTokensRead, false},
		{[]string{domain.ScopeTokensRead}, domain.ScopeTokensRead, true},
		{[]string{domain.ScopeTokensRead}, domain.ScopeTokensWrite, false},
		{[]string{"tokens"}, domain.ScopeTokensRead, false},
		{[]string{domain.ScopeAdmin}, domain.ScopeWalletWrite, true},
		{[]string{domain.ScopeAdmin}, "weather:read", true},
		{[]string{domain.ScopeAdmin}, domain.ScopeAdmin, true},
		{domain.ManagementScopes(), domain.ScopeAdmin, false},
	}
	for _, tt := range tests {
		if got := domain.HasScope(tt.held, tt.required); got != tt.want {
			t.Errorf("HasScope(%v, %q) = %v, want %v", tt.held, tt.required, got, tt.want)
		}
	}
}

func TestFirstKeyScopes(t *testing.T) {
	t.Parallel()
	got := domain.FirstKeyScopes("weather:read", domain.ScopeAdmin, domain.ScopeWalletWrite, "weather:read", domain.ScopeTokensRead)
	if !slices.IsSorted(got) {
		t.Errorf("not sorted: %v", got)
	}
	if len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("duplicates: %v", got)
	}
	for _, s := range []string{domain.ScopeAdmin, domain.ScopeWalletWrite} {
		if slices.Contains(got, s) {
			t.Errorf("%v holds %s", got, s)
		}
	}
	want := []string{"weather:read"}
	for _, s := range domain.ManagementScopes() {
		if s != domain.ScopeWalletWrite {
			want = append(want, s)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("FirstKeyScopes = %v\nwant %v", got, want)
	}
	for _, s := range got {
		if !domain.ValidScopeName(s) {
			t.Errorf("%q is not a valid scope name", s)
		}
	}
	if plain := domain.FirstKeyScopes(); !slices.Equal(plain, slices.DeleteFunc(want, func(s string) bool { return s == "weather:read" })) {
		t.Errorf("FirstKeyScopes() = %v", plain)
	}
}
