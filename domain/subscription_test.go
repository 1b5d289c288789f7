package domain_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

func TestNewSubscription(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	valid := func() domain.CreateSubscription {
		return domain.CreateSubscription{ID: "sub_1", AccountID: "acc_1", Environment: "live", URL: " https://hooks.example.com/x ",
			EventTypes: []string{"wallet.low", "token.created", "wallet.low"}, Description: " billing "}
	}
	got, err := domain.NewSubscription(valid(), now)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "https://hooks.example.com/x" || strings.Join(got.EventTypes, ",") != "token.created,wallet.low" || got.Description != "billing" {
		t.Fatalf("normalized %+v", got)
	}
	for name, tc := range map[string]struct {
		change func(*domain.CreateSubscription)
		field  string
	}{
		"no url":         {func(c *domain.CreateSubscription) { c.URL = "" }, "url"},
		"ftp":            {func(c *domain.CreateSubscription) { c.URL = "ftp://x.example/" }, "url"},
		"credentials":    {func(c *domain.CreateSubscription) { c.URL = "https://u:p@x.example/" }, "url"},
		"fragment":       {func(c *domain.CreateSubscription) { c.URL = "https://x.example/#f" }, "url"},
		"no host":        {func(c *domain.CreateSubscription) { c.URL = "https:///path" }, "url"},
		"too long":       {func(c *domain.CreateSubscription) { c.URL = "https://x.example/" + strings.Repeat("a", 2000) }, "url"},
		"no types":       {func(c *domain.CreateSubscription) { c.EventTypes = nil }, "event_types"},
		"unknown type":   {func(c *domain.CreateSubscription) { c.EventTypes = []string{"token.exploded"} }, "event_types"},
		"internal event": {func(c *domain.CreateSubscription) { c.EventTypes = []string{"token.quota_leased"} }, "event_types"},
		"description":    {func(c *domain.CreateSubscription) { c.Description = strings.Repeat("é", 501) }, "description"},
	} {
		cmd := valid()
		tc.change(&cmd)
		_, err := domain.NewSubscription(cmd, now)
		var verr *domain.ValidationError
		if !errors.As(err, &verr) || verr.Problems[0].Field != tc.field {
			t.Errorf("%s: %v, want a problem with %s", name, err, tc.field)
		}
	}
}

func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	now := time.Now()
	s := domain.Subscription{ID: "sub_1", AccountID: "acc_1", Status: domain.SubscriptionActive}
	if r, err := s.RotateSecret(events.SealedSecret{}, time.Hour, now); err != nil || r.PreviousValidUntil == nil {
		t.Fatalf("rotate with grace: %+v %v", r, err)
	}
	if _, err := s.RotateSecret(events.SealedSecret{}, 25*time.Hour, now); err == nil {
		t.Fatal("a grace of 25 hours")
	}
	if _, err := s.Disable("gone", now); err != nil {
		t.Fatal(err)
	}
	s.Status = domain.SubscriptionDisabled
	if _, err := s.Disable("again", now); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("disabling twice: %v", err)
	}
	if _, err := s.Delete(now); err != nil {
		t.Fatal(err)
	}
	s.Status = domain.SubscriptionDeleted
	if _, err := s.Delete(now); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}

func TestFailurePolicy(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var p domain.FailurePolicy
	since := now.Add(-23 * time.Hour)
	if _, yes := p.ShouldDisable(4, &since, now); yes {
		t.Fatal("disabled after 4 dead and 23 hours")
	}
	if why, yes := p.ShouldDisable(5, nil, now); !yes || !strings.Contains(why, "5 deliveries") {
		t.Fatalf("5 dead: %q %v", why, yes)
	}
	since = now.Add(-24 * time.Hour)
	if _, yes := p.ShouldDisable(0, &since, now); !yes {
		t.Fatal("not disabled after 24 hours of failure")
	}
}

func TestSealedSecrets(t *testing.T) {
	t.Parallel()
	kek := make([]byte, domain.KEKSize)
	_, _ = rand.Read(kek)
	secret, err := domain.NewWebhookSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if key, err := domain.WebhookKey(secret); err != nil || len(key) != 32 || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q: key %d bytes, %v", secret, len(key), err)
	}
	sealed, err := domain.SealSecret(kek, "sub_1", secret, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed.Ciphertext, strings.TrimPrefix(secret, "whsec_")) {
		t.Fatal("the sealed form holds the secret")
	}
	if got, err := domain.OpenSecret(kek, "sub_1", sealed); err != nil || got != secret {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := domain.OpenSecret(kek, "sub_2", sealed); !errors.Is(err, domain.ErrBadSecret) {
		t.Fatalf("opened on another subscription: %v", err)
	}
	other := make([]byte, domain.KEKSize)
	if _, err := domain.OpenSecret(other, "sub_1", sealed); !errors.Is(err, domain.ErrWrongKEK) {
		t.Fatalf("opened with another key: %v", err)
	}
	tampered := sealed
	tampered.Ciphertext = "A" + sealed.Ciphertext[1:]
	if _, err := domain.OpenSecret(kek, "sub_1", tampered); !errors.Is(err, domain.ErrBadSecret) {
		t.Fatalf("tampered: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!", "sk_" + strings.Repeat("A", 44), "whsec_QUJD"} {
		if _, err := domain.WebhookKey(bad); err == nil {
			t.Errorf("%q accepted as a secret", bad)
		}
	}
}
