package domain

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate/tollgate/events"
)

// Scope is one entry of the scope catalog: what a scope grants (endpoints),
// what it needs alongside it, and what a call under it costs.
type Scope struct {
	Name         string
	Description  string
	Domain       string
	Endpoints    []events.Endpoint
	Requirements events.ScopeRequirements
	// Price is the cost of one call in credits.
	Price     int64
	DefinedAt time.Time
	UpdatedAt time.Time
	// Version is the stream sequence of the scope's last event.
	Version uint64
}

// ScopeSpec is what an operator states about a scope: the command of both
// [DefineScope] and [Scope.Update].
type ScopeSpec struct {
	Name         string
	Description  string
	Domain       string
	Endpoints    []events.Endpoint
	Requirements events.ScopeRequirements
	Price        int64
}

// Catalog limits.
const (
	MaxScopeDescription = 500
	MaxScopeEndpoints   = 50
	// MaxScopeRequirements bounds requirements.scopes.
	MaxScopeRequirements = 50
	MaxEndpointPath      = 200
	MaxScopePrice        = 1_000_000_000
	maxScopeDomain       = 40
)

// DomainTollgate is the catalog domain of Tollgate's own management scopes.
const DomainTollgate = "tollgate"

var endpointMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"}

// DefineScope validates spec and returns the scope's first event.
func DefineScope(spec ScopeSpec, now time.Time) (events.ScopeDefined, error) {
	var v validation
	spec = checkScopeSpec(&v, spec)
	if err := v.err(); err != nil {
		return events.ScopeDefined{}, err
	}
	return events.ScopeDefined{
		Name: spec.Name, Description: spec.Description, Domain: spec.Domain, Endpoints: spec.Endpoints,
		Requirements: spec.Requirements, Price: spec.Price, DefinedAt: now.UTC(),
	}, nil
}

// Update validates spec, which replaces everything but the name, and
// returns scope.updated. A scope that was never defined is [ErrNotFound].
func (s *Scope) Update(spec ScopeSpec, now time.Time) (events.ScopeUpdated, error) {
	if s.Name == "" {
		return events.ScopeUpdated{}, ErrNotFound
	}
	var v validation
	if spec.Name != s.Name {
		v.add("name", "cannot be changed (is %q)", s.Name)
	}
	spec = checkScopeSpec(&v, spec)
	if err := v.err(); err != nil {
		return events.ScopeUpdated{}, err
	}
	return events.ScopeUpdated{
		Name: spec.Name, Description: spec.Description, Domain: spec.Domain, Endpoints: spec.Endpoints,
		Requirements: spec.Requirements, Price: spec.Price, UpdatedAt: now.UTC(),
	}, nil
}

// Spec is the scope's current specification, the starting point of a
// partial update.
func (s *Scope) Spec() ScopeSpec {
	return ScopeSpec{
		Name: s.Name, Description: s.Description, Domain: s.Domain,
		Endpoints: slices.Clone(s.Endpoints),
		Requirements: events.ScopeRequirements{
			Scopes: slices.Clone(s.Requirements.Scopes), Paid: s.Requirements.Paid,
		},
		Price: s.Price,
	}
}

// Apply folds one event into the scope, for rebuilding it from history.
func (s *Scope) Apply(ev events.Event) error {
	switch ev.Type {
	case events.TypeScopeDefined:
		p, err := events.Decode[events.ScopeDefined](ev)
		if err != nil {
			return err
		}
		*s = Scope{Name: p.Name, Description: p.Description, Domain: p.Domain, Endpoints: p.Endpoints,
			Requirements: p.Requirements, Price: p.Price, DefinedAt: p.DefinedAt, UpdatedAt: p.DefinedAt}
	case events.TypeScopeUpdated:
		p, err := events.Decode[events.ScopeUpdated](ev)
		if err != nil {
			return err
		}
		s.Description, s.Domain, s.Endpoints, s.Requirements, s.Price =
			p.Description, p.Domain, p.Endpoints, p.Requirements, p.Price
		s.UpdatedAt = p.UpdatedAt
	default:
		return nil
	}
	s.Version = ev.Sequence
	return nil
}

// ValidScopeDomain reports whether s can be a catalog domain: 1 to 40
// lower-case letters, digits, '_' or '-'.
func ValidScopeDomain(s string) bool {
	if s == "" || len(s) > maxScopeDomain {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkScopeSpec validates spec and returns it normalized: description
// trimmed, methods upper-case, requirement scopes sorted, no nil slices.
func checkScopeSpec(v *validation, spec ScopeSpec) ScopeSpec {
	switch {
	case !ValidScopeName(spec.Name):
		v.add("name", "must be lower-case segments of letters, digits, '_' or '-' joined by ':' (at most 100 characters)")
	case !events.ValidID(spec.Name):
		// ValidScopeName allows '.', but the name is the aggregate id and
		// so a token of the event subject.
		v.add("name", "must not contain '.'")
	case spec.Name != ScopeAdmin && !strings.Contains(spec.Name, ":"):
		v.add("name", "must have the form <domain>:<action>, e.g. vps:read")
	}

	spec.Description = strings.TrimSpace(spec.Description)
	switch d := spec.Description; {
	case d == "":
		v.add("description", "is required")
	case !utf8.ValidString(d):
		v.add("description", "must be valid UTF-8")
	case utf8.RuneCountInString(d) > MaxScopeDescription:
		v.add("description", "must be at most %d characters", MaxScopeDescription)
	case strings.IndexFunc(d, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) >= 0:
		v.add("description", "must not contain control characters other than newlines")
	}

	if !ValidScopeDomain(spec.Domain) {
		v.add("domain", "must be 1 to %d lower-case letters, digits, '_' or '-'", maxScopeDomain)
	}

	spec.Endpoints = checkEndpoints(v, spec.Endpoints)
	spec.Requirements.Scopes = checkRequiredScopes(v, spec.Name, spec.Requirements.Scopes)

	if spec.Price < 0 || spec.Price > MaxScopePrice {
		v.add("price", "must be from 0 to %d credits", MaxScopePrice)
	}
	switch {
	case spec.Price > 0 && !spec.Requirements.Paid:
		v.add("requirements.paid", "must be true: the price is %d credits, so calls under this scope are paid", spec.Price)
	case spec.Price == 0 && spec.Requirements.Paid:
		v.add("requirements.paid", "must be false: the price is 0, so calls under this scope are free (set a price to make them paid)")
	}
	return spec
}

func checkEndpoints(v *validation, in []events.Endpoint) []events.Endpoint {
	if len(in) > MaxScopeEndpoints {
		v.add("endpoints", "at most %d endpoints", MaxScopeEndpoints)
		return in
	}
	out := make([]events.Endpoint, 0, len(in))
	for i, e := range in {
		field := "endpoints[" + strconv.Itoa(i) + "]"
		e.Method = strings.ToUpper(e.Method)
		if !slices.Contains(endpointMethods, e.Method) {
			v.add(field+".method", "must be one of %s", strings.Join(endpointMethods, ", "))
		}
		switch {
		case !strings.HasPrefix(e.Path, "/"):
			v.add(field+".path", "must start with '/'")
		case len(e.Path) > MaxEndpointPath:
			v.add(field+".path", "must be at most %d characters", MaxEndpointPath)
		case strings.IndexFunc(e.Path, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
			v.add(field+".path", "must not contain spaces or control characters")
		}
		if slices.Contains(out, e) {
			v.add(field, "%s %s is listed twice", e.Method, e.Path)
		}
		out = append(out, e)
	}
	return out
}

func checkRequiredScopes(v *validation, name string, in []string) []string {
	if len(in) > MaxScopeRequirements {
		v.add("requirements.scopes", "at most %d scopes", MaxScopeRequirements)
		return in
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		switch {
		case !ValidScopeName(s):
			v.add("requirements.scopes", "%q is not a valid scope name", s)
		case s == name:
			v.add("requirements.scopes", "a scope cannot require itself")
		case slices.Contains(out, s):
			v.add("requirements.scopes", "%q is listed twice", s)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// DefaultCatalog is the catalog a new installation starts with: the
// product domains (domains, vps, email, billing), each with a free :read
// scope and a paid :write scope that requires it, and Tollgate's own
// management scopes, which are free.
func DefaultCatalog() []ScopeSpec {
	out := productScopes()
	for _, name := range append(ManagementScopes(), ScopeAdmin) {
		m, ok := managementCatalog[name]
		if !ok {
			// A management scope added without a catalog entry still gets
			// one, so every scope a key can hold is in the catalog.
			m = managementEntry{description: "Tollgate management scope " + name}
		}
		out = append(out, ScopeSpec{
			Name: name, Description: m.description, Domain: DomainTollgate,
			Endpoints: slices.Clone(m.endpoints), Requirements: events.ScopeRequirements{Scopes: []string{}},
		})
	}
	return out
}

// defaultWritePrice is what a call under a product :write scope costs.
const defaultWritePrice = 1

func productScopes() []ScopeSpec {
	domains := []struct {
		domain, read, write string
		reads, writes       []events.Endpoint
	}{
		{"domains", "Read domain registrations and DNS zones",
			"Register, renew and delete domains and edit their DNS zones",
			eps("GET /domains", "GET /domains/{domain}", "GET /domains/{domain}/dns"),
			eps("POST /domains", "PATCH /domains/{domain}", "DELETE /domains/{domain}",
				"POST /domains/{domain}/renew", "PUT /domains/{domain}/dns")},
		{"vps", "Read virtual private servers, their status and configuration",
			"Create, resize, restart and delete virtual private servers",
			eps("GET /vps", "GET /vps/{id}"),
			eps("POST /vps", "PATCH /vps/{id}", "POST /vps/{id}/actions", "DELETE /vps/{id}")},
		{"email", "Read mailboxes, aliases and mail settings",
			"Create, change and delete mailboxes and aliases",
			eps("GET /email/mailboxes", "GET /email/mailboxes/{id}", "GET /email/aliases"),
			eps("POST /email/mailboxes", "PATCH /email/mailboxes/{id}", "DELETE /email/mailboxes/{id}",
				"POST /email/aliases", "DELETE /email/aliases/{id}")},
		{"billing", "Read invoices, payment methods and usage charges",
			"Pay invoices and add or remove payment methods",
			eps("GET /billing/invoices", "GET /billing/invoices/{id}", "GET /billing/payment-methods", "GET /billing/usage"),
			eps("POST /billing/invoices/{id}/pay", "POST /billing/payment-methods", "DELETE /billing/payment-methods/{id}")},
	}
	var out []ScopeSpec
	for _, d := range domains {
		out = append(out,
			ScopeSpec{Name: d.domain + ":read", Description: d.read, Domain: d.domain, Endpoints: d.reads,
				Requirements: events.ScopeRequirements{Scopes: []string{}}},
			ScopeSpec{Name: d.domain + ":write", Description: d.write, Domain: d.domain, Endpoints: d.writes,
				Requirements: events.ScopeRequirements{Scopes: []string{d.domain + ":read"}, Paid: true},
				Price:        defaultWritePrice})
	}
	return out
}

type managementEntry struct {
	description string
	endpoints   []events.Endpoint
}

// managementCatalog describes Tollgate's own scopes and the routes they
// open. Scopes of features without routes of their own list none.
var managementCatalog = map[string]managementEntry{
	ScopeAdmin: {"Everything on every account: implies every other scope, and alone may create accounts and change the scope catalog",
		eps("* /*")},
	ScopeAccountsRead: {"Read the caller's account", eps("GET /accounts/me", "GET /accounts/{id}")},
	ScopeKeysRead:     {"List and read the account's API keys (never their secrets)", eps("GET /keys", "GET /keys/{id}")},
	ScopeKeysWrite:    {"Create and revoke the account's API keys", eps("POST /keys", "DELETE /keys/{id}")},
	ScopeTokensRead:   {"List and read the account's API tokens (never their secrets)", eps("GET /tokens", "GET /tokens/{id}")},
	ScopeTokensWrite: {"Issue, update, rotate and revoke the account's API tokens",
		eps("POST /tokens", "PATCH /tokens/{id}", "DELETE /tokens/{id}")},
	ScopeTokensVerify:     {"Verify tokens of the account and record their usage (for downstream services)", eps("POST /verify")},
	ScopeTokensIntrospect: {"Introspect OAuth access tokens (RFC 7662)", eps("POST /oauth2/introspect")},
	ScopeClientsRead:      {"List and read the account's OAuth clients", eps("GET /clients", "GET /clients/{id}")},
	ScopeClientsWrite: {"Create, change and delete OAuth clients and rotate their secrets",
		eps("POST /clients", "PATCH /clients/{id}", "DELETE /clients/{id}", "POST /clients/{id}/secret")},
	ScopeWalletRead:         {"Read the wallet balance and its transactions", eps("GET /wallet", "GET /wallet/transactions")},
	ScopeWalletWrite:        {"Add credits to the wallet", eps("POST /wallet/credits")},
	ScopeStatsRead:          {"Read usage statistics: totals, IPs, per-domain metrics and time series", eps("GET /stats")},
	ScopeSubscriptionsRead:  {"List and read webhook subscriptions", eps("GET /subscriptions", "GET /subscriptions/{id}")},
	ScopeSubscriptionsWrite: {"Create and delete webhook subscriptions", eps("POST /subscriptions", "DELETE /subscriptions/{id}")},
	ScopeCallbacksRead:      {"Read callback delivery attempts and their outcome", eps("GET /callbacks")},
	ScopeCallbacksWrite:     {"Retry callback deliveries", eps("POST /callbacks/{id}/retry")},
	ScopeErrorsRead:         {"Read the account's integration errors (failed requests and deliveries)", eps("GET /errors")},
	ScopeUsersRead:          {"Read the account's users, who sign in on the authorization page", nil},
	ScopeUsersWrite:         {"Create, change and remove the account's users", nil},
	ScopeScopesRead:         {"Read the scope catalog", eps("GET /scopes", "GET /scopes/{name}")},
}

// eps builds endpoints from "METHOD /path" strings.
func eps(list ...string) []events.Endpoint {
	out := make([]events.Endpoint, 0, len(list))
	for _, s := range list {
		method, path, _ := strings.Cut(s, " ")
		out = append(out, events.Endpoint{Method: method, Path: path})
	}
	return out
}
