package domain

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate/tollgate/events"
)

// Subscription statuses.
const (
	SubscriptionActive   = "active"
	SubscriptionDisabled = "disabled"
	SubscriptionDeleted  = "deleted"
)

// Subscription limits.
const (
	// SubscriptionIDPrefix starts every subscription id.
	SubscriptionIDPrefix     = "sub_"
	MaxSubscriptionURLLength = 2000
	MaxSubscriptionDesc      = 500
	// MaxWebhookSecretGrace bounds how long a rotated-away signing secret
	// keeps signing deliveries beside the new one.
	MaxWebhookSecretGrace = 24 * time.Hour
)

// Subscription is a webhook endpoint of one account and environment.
type Subscription struct {
	ID          string
	AccountID   string
	Environment string
	Status      string
	// Version is the stream sequence of the subscription's last event.
	Version uint64
}

// CreateSubscription registers an endpoint. The secret is generated and
// sealed outside (see [NewWebhookSecret] and [SealSecret]).
type CreateSubscription struct {
	ID          string
	AccountID   string
	Environment string
	URL         string
	EventTypes  []string
	Description string
	Secret      events.SealedSecret
}

// NewSubscription validates the command. Event types are stored sorted and
// without repeats. Whether the URL's host may be called at all (the SSRF
// guard) is checked by the caller, which can resolve names.
func NewSubscription(cmd CreateSubscription, now time.Time) (events.SubscriptionCreated, error) {
	var v validation
	cmd.URL = strings.TrimSpace(cmd.URL)
	if problem := checkCallbackURL(cmd.URL); problem != "" {
		v.add("url", "%s", problem)
	}
	types := normalizeScopes(cmd.EventTypes)
	if len(types) == 0 {
		v.add("event_types", "must name at least one event type")
	}
	known := events.SubscribableTypes()
	for _, t := range types {
		if !slices.Contains(known, t) {
			v.add("event_types", "unknown event type %q (known: %s)", t, strings.Join(known, ", "))
		}
	}
	desc := strings.TrimSpace(cmd.Description)
	if utf8.RuneCountInString(desc) > MaxSubscriptionDesc {
		v.add("description", "must be at most %d characters", MaxSubscriptionDesc)
	}
	if err := v.err(); err != nil {
		return events.SubscriptionCreated{}, err
	}
	return events.SubscriptionCreated{
		ID: cmd.ID, AccountID: cmd.AccountID, Environment: cmd.Environment, URL: cmd.URL,
		EventTypes: types, Description: desc, Secret: cmd.Secret, CreatedAt: now.UTC(),
	}, nil
}

// checkCallbackURL describes what is wrong with a callback URL's form, or
// returns "".
func checkCallbackURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > MaxSubscriptionURLLength {
		return "must be at most 2000 characters"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "https" && u.Scheme != "http":
		return "must be an http:// or https:// URL"
	case u.Host == "" || u.Hostname() == "":
		return "must name a host"
	case u.User != nil:
		return "must not hold credentials"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not have a fragment"
	}
	return ""
}

// RotateSecret gives the subscription a new sealed secret; the previous one
// keeps signing for grace.
func (s Subscription) RotateSecret(sealed events.SealedSecret, grace time.Duration, now time.Time) (events.SubscriptionSecretRotated, error) {
	if s.Status == SubscriptionDeleted {
		return events.SubscriptionSecretRotated{}, ErrNotFound
	}
	if grace < 0 || grace > MaxWebhookSecretGrace {
		var v validation
		v.add("grace_period", "must be from 0 to %d seconds", int64(MaxWebhookSecretGrace/time.Second))
		return events.SubscriptionSecretRotated{}, v.err()
	}
	out := events.SubscriptionSecretRotated{ID: s.ID, AccountID: s.AccountID, Secret: sealed, RotatedAt: now.UTC()}
	if grace > 0 {
		until := now.Add(grace).UTC()
		out.PreviousValidUntil = &until
	}
	return out, nil
}

// Disable stops deliveries; disabling a subscription that is not active is
// ErrConflict.
func (s Subscription) Disable(reason string, now time.Time) (events.SubscriptionDisabled, error) {
	if s.Status != SubscriptionActive {
		return events.SubscriptionDisabled{}, ErrConflict
	}
	return events.SubscriptionDisabled{ID: s.ID, AccountID: s.AccountID, Reason: reason, DisabledAt: now.UTC()}, nil
}

// Delete ends the subscription; a deleted one is not found.
func (s Subscription) Delete(now time.Time) (events.SubscriptionDeleted, error) {
	if s.Status == SubscriptionDeleted {
		return events.SubscriptionDeleted{}, ErrNotFound
	}
	return events.SubscriptionDeleted{ID: s.ID, AccountID: s.AccountID, DeletedAt: now.UTC()}, nil
}

// FailurePolicy decides when an endpoint has failed for long enough to be
// disabled. Zero fields take their defaults.
type FailurePolicy struct {
	// MaxConsecutiveDead deliveries, with no success between, disable the
	// endpoint. Default 5.
	MaxConsecutiveDead int
	// MaxFailingFor is how long an endpoint may fail without a single
	// success. Default 24 hours.
	MaxFailingFor time.Duration
}

// ShouldDisable reports whether an endpoint with this record must be
// disabled, and why.
func (p FailurePolicy) ShouldDisable(consecutiveDead int, failingSince *time.Time, now time.Time) (string, bool) {
	if p.MaxConsecutiveDead <= 0 {
		p.MaxConsecutiveDead = 5
	}
	if p.MaxFailingFor <= 0 {
		p.MaxFailingFor = 24 * time.Hour
	}
	switch {
	case consecutiveDead >= p.MaxConsecutiveDead:
		return "sustained failure: " + strconv.Itoa(consecutiveDead) + " deliveries in a row exhausted their attempts", true
	case failingSince != nil && now.Sub(*failingSince) >= p.MaxFailingFor:
		return "sustained failure: no successful delivery since " + failingSince.UTC().Format(time.RFC3339), true
	}
	return "", false
}
