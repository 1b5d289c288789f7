package domain_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

var scopeNow = time.Date(2025, 6, 7, 8, 9, 10, 0, time.FixedZone("CEST", 2*3600))

func validSpec() domain.ScopeSpec {
	return domain.ScopeSpec{
		Name: "weather:write", Description: "  Change forecasts  ", Domain: "weather",
		Endpoints:    []events.Endpoint{{Method: "post", Path: "/forecasts"}, {Method: "DELETE", Path: "/forecasts/{id}"}},
		Requirements: events.ScopeRequirements{Scopes: []string{"weather:read", "geo:read"}, Paid: true},
		Price:        3,
	}
}

func TestDefineScope(t *testing.T) {
	t.Parallel()
	ev, err := domain.DefineScope(validSpec(), scopeNow)
	if err != nil {
		t.Fatal(err)
	}
	want := events.ScopeDefined{
		Name: "weather:write", Description: "Change forecasts", Domain: "weather",
		Endpoints:    []events.Endpoint{{Method: "POST", Path: "/forecasts"}, {Method: "DELETE", Path: "/forecasts/{id}"}},
		Requirements: events.ScopeRequirements{Scopes: []string{"geo:read", "weather:read"}, Paid: true},
		Price:        3, DefinedAt: scopeNow.UTC(),
	}
	if !equalDefined(ev, want) || ev.DefinedAt.Location() != time.UTC {
		t.Fatalf("event %+v\nwant  %+v", ev, want)
	}

	free, err := domain.DefineScope(domain.ScopeSpec{Name: "weather:read", Description: "d", Domain: "weather"}, scopeNow)
	if err != nil {
		t.Fatal(err)
	}
	if free.Endpoints == nil || free.Requirements.Scopes == nil {
		t.Fatalf("nil slices in %+v: they would encode as null", free)
	}
}

func equalDefined(a, b events.ScopeDefined) bool {
	return a.Name == b.Name && a.Description == b.Description && a.Domain == b.Domain &&
		slices.Equal(a.Endpoints, b.Endpoints) && slices.Equal(a.Requirements.Scopes, b.Requirements.Scopes) &&
		a.Requirements.Paid == b.Requirements.Paid && a.Price == b.Price && a.DefinedAt.Equal(b.DefinedAt)
}

func TestDefineScopeValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*domain.ScopeSpec)
		fields []string
	}{
		{"empty name", func(s *domain.ScopeSpec) { s.Name = "" }, []string{"name"}},
		{"no colon", func(s *domain.ScopeSpec) { s.Name = "weather" }, []string{"name"}},
		{"upper case", func(s *domain.ScopeSpec) { s.Name = "Weather:write" }, []string{"name"}},
		{"empty segment", func(s *domain.ScopeSpec) { s.Name = "weather::write" }, []string{"name"}},
		{"dot (not a subject token)", func(s *domain.ScopeSpec) { s.Name = "weather.v2:write" }, []string{"name"}},
		{"space", func(s *domain.ScopeSpec) { s.Name = "weather: write" }, []string{"name"}},
		{"101 characters", func(s *domain.ScopeSpec) { s.Name = "a:" + strings.Repeat("b", 99) }, []string{"name"}},
		{"blank description", func(s *domain.ScopeSpec) { s.Description = " \n\t " }, []string{"description"}},
		{"501 characters", func(s *domain.ScopeSpec) { s.Description = strings.Repeat("é", 501) }, []string{"description"}},
		{"control character", func(s *domain.ScopeSpec) { s.Description = "a\x00b" }, []string{"description"}},
		{"invalid UTF-8", func(s *domain.ScopeSpec) { s.Description = "a\xffb" }, []string{"description"}},
		{"empty domain", func(s *domain.ScopeSpec) { s.Domain = "" }, []string{"domain"}},
		{"upper-case domain", func(s *domain.ScopeSpec) { s.Domain = "Weather" }, []string{"domain"}},
		{"domain with colon", func(s *domain.ScopeSpec) { s.Domain = "a:b" }, []string{"domain"}},
		{"41-character domain", func(s *domain.ScopeSpec) { s.Domain = strings.Repeat("d", 41) }, []string{"domain"}},
		{"unknown method", func(s *domain.ScopeSpec) { s.Endpoints[0].Method = "FETCH" }, []string{"endpoints[0].method"}},
		{"empty method", func(s *domain.ScopeSpec) { s.Endpoints[1].Method = "" }, []string{"endpoints[1].method"}},
		{"relative path", func(s *domain.ScopeSpec) { s.Endpoints[0].Path = "forecasts" }, []string{"endpoints[0].path"}},
		{"empty path", func(s *domain.ScopeSpec) { s.Endpoints[0].Path = "" }, []string{"endpoints[0].path"}},
		{"201-character path", func(s *domain.ScopeSpec) { s.Endpoints[0].Path = "/" + strings.Repeat("p", 200) }, []string{"endpoints[0].path"}},
		{"space in path", func(s *domain.ScopeSpec) { s.Endpoints[0].Path = "/a b" }, []string{"endpoints[0].path"}},
		{"endpoint twice", func(s *domain.ScopeSpec) { s.Endpoints[1] = events.Endpoint{Method: "POST", Path: "/forecasts"} }, []string{"endpoints[1]"}},
		{"51 endpoints", func(s *domain.ScopeSpec) {
			s.Endpoints = nil
			for i := range 51 {
				s.Endpoints = append(s.Endpoints, events.Endpoint{Method: "GET", Path: "/f/" + strings.Repeat("x", i)})
			}
		}, []string{"endpoints"}},
		{"requires 51 scopes", func(s *domain.ScopeSpec) {
			s.Requirements.Scopes = nil
			for i := range 51 {
				s.Requirements.Scopes = append(s.Requirements.Scopes, "geo:r"+strings.Repeat("x", i))
			}
		}, []string{"requirements.scopes"}},
		{"requires an invalid name", func(s *domain.ScopeSpec) { s.Requirements.Scopes = []string{"Nope"} }, []string{"requirements.scopes"}},
		{"requires itself", func(s *domain.ScopeSpec) { s.Requirements.Scopes = []string{"weather:write"} }, []string{"requirements.scopes"}},
		{"requires twice", func(s *domain.ScopeSpec) { s.Requirements.Scopes = []string{"geo:read", "geo:read"} }, []string{"requirements.scopes"}},
		{"negative price", func(s *domain.ScopeSpec) { s.Price, s.Requirements.Paid = -1, false }, []string{"price"}},
		{"price over a billion", func(s *domain.ScopeSpec) { s.Price = 1_000_000_001 }, []string{"price"}},
		{"priced but not paid", func(s *domain.ScopeSpec) { s.Requirements.Paid = false }, []string{"requirements.paid"}},
		{"paid but free", func(s *domain.ScopeSpec) { s.Price = 0 }, []string{"requirements.paid"}},
		{"everything wrong", func(s *domain.ScopeSpec) {
			*s = domain.ScopeSpec{Name: "x", Endpoints: []events.Endpoint{{}}, Price: 5}
		}, []string{"name", "description", "domain", "endpoints[0].method", "endpoints[0].path", "requirements.paid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := validSpec()
			tt.change(&spec)
			_, err := domain.DefineScope(spec, scopeNow)
			if got := problemFields(t, err); !slices.Equal(got, tt.fields) {
				t.Fatalf("problems on %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestDefineScopeAccepts(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(*domain.ScopeSpec){
		"admin without a colon":  func(s *domain.ScopeSpec) { s.Name = domain.ScopeAdmin },
		"three segments":         func(s *domain.ScopeSpec) { s.Name = "vps:snapshots:write" },
		"500 characters":         func(s *domain.ScopeSpec) { s.Description = strings.Repeat("é", 500) },
		"newline in description": func(s *domain.ScopeSpec) { s.Description = "line one\nline two" },
		"wildcard endpoint":      func(s *domain.ScopeSpec) { s.Endpoints = []events.Endpoint{{Method: "*", Path: "/*"}} },
		"every method": func(s *domain.ScopeSpec) {
			s.Endpoints = nil
			for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
				s.Endpoints = append(s.Endpoints, events.Endpoint{Method: m, Path: "/x"})
			}
		},
		"no endpoints":           func(s *domain.ScopeSpec) { s.Endpoints = nil },
		"50 endpoints":           func(s *domain.ScopeSpec) { s.Endpoints = make50() },
		"200-character path":     func(s *domain.ScopeSpec) { s.Endpoints[0].Path = "/" + strings.Repeat("p", 199) },
		"free":                   func(s *domain.ScopeSpec) { s.Price, s.Requirements.Paid = 0, false },
		"price of a billion":     func(s *domain.ScopeSpec) { s.Price = 1_000_000_000 },
		"40-character domain":    func(s *domain.ScopeSpec) { s.Domain = strings.Repeat("d", 40) },
		"domain with _ and -":    func(s *domain.ScopeSpec) { s.Domain = "cloud_dns-2" },
		"requirement with a dot": func(s *domain.ScopeSpec) { s.Requirements.Scopes = []string{"legacy.v1:read"} },
	} {
		spec := validSpec()
		change(&spec)
		if _, err := domain.DefineScope(spec, scopeNow); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func make50() []events.Endpoint {
	out := make([]events.Endpoint, 50)
	for i := range out {
		out[i] = events.Endpoint{Method: "GET", Path: "/f/" + strings.Repeat("x", i)}
	}
	return out
}

func problemFields(t *testing.T, err error) []string {
	t.Helper()
	var verr *domain.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	var got []string
	for _, p := range verr.Problems {
		got = append(got, p.Field)
	}
	return got
}

func TestPaidMismatchExplains(t *testing.T) {
	t.Parallel()
	spec := validSpec()
	spec.Requirements.Paid = false
	_, err := domain.DefineScope(spec, scopeNow)
	if err == nil || !strings.Contains(err.Error(), "price is 3 credits") {
		t.Fatalf("err = %v, want it to explain that a price makes calls paid", err)
	}
}

func TestDefaultCatalog(t *testing.T) {
	t.Parallel()
	catalog := domain.DefaultCatalog()
	byName := map[string]domain.ScopeSpec{}
	for _, spec := range catalog {
		if _, dup := byName[spec.Name]; dup {
			t.Errorf("%s listed twice", spec.Name)
		}
		byName[spec.Name] = spec
		ev, err := domain.DefineScope(spec, scopeNow)
		if err != nil {
			t.Errorf("%s does not validate: %v", spec.Name, err)
			continue
		}
		if ev.Description != spec.Description || strings.HasPrefix(ev.Description, "Tollgate management scope") {
			t.Errorf("%s: description %q", spec.Name, ev.Description)
		}
	}

	for _, d := range []string{"domains", "vps", "email", "billing"} {
		read, write := byName[d+":read"], byName[d+":write"]
		if read.Domain != d || read.Price != 0 || read.Requirements.Paid || len(read.Requirements.Scopes) != 0 {
			t.Errorf("%s:read = %+v, want a free scope of domain %s", d, read, d)
		}
		if write.Domain != d || write.Price != 1 || !write.Requirements.Paid ||
			!slices.Equal(write.Requirements.Scopes, []string{d + ":read"}) {
			t.Errorf("%s:write = %+v, want 1 credit, paid, requiring %s:read", d, write, d)
		}
		for _, e := range read.Endpoints {
			if e.Method != "GET" {
				t.Errorf("%s:read grants %s %s", d, e.Method, e.Path)
			}
		}
		for _, e := range write.Endpoints {
			if !slices.Contains([]string{"POST", "PUT", "PATCH", "DELETE"}, e.Method) {
				t.Errorf("%s:write grants %s %s", d, e.Method, e.Path)
			}
		}
		if len(read.Endpoints) == 0 || len(write.Endpoints) == 0 {
			t.Errorf("%s: scopes without endpoints", d)
		}
	}
	if e := byName["domains:read"].Endpoints; !slices.Contains(e, events.Endpoint{Method: "GET", Path: "/domains"}) ||
		!slices.Contains(e, events.Endpoint{Method: "GET", Path: "/domains/{domain}"}) {
		t.Errorf("domains:read endpoints %v", e)
	}
	if e := byName["vps:write"].Endpoints; !slices.Contains(e, events.Endpoint{Method: "POST", Path: "/vps"}) ||
		!slices.Contains(e, events.Endpoint{Method: "DELETE", Path: "/vps/{id}"}) {
		t.Errorf("vps:write endpoints %v", e)
	}

	for _, name := range append(domain.ManagementScopes(), domain.ScopeAdmin) {
		spec, ok := byName[name]
		if !ok {
			t.Errorf("management scope %s missing from the catalog", name)
			continue
		}
		if spec.Domain != domain.DomainTollgate || spec.Price != 0 || spec.Requirements.Paid {
			t.Errorf("%s = %+v, want a free scope of domain tollgate", name, spec)
		}
	}
	checks := map[string]events.Endpoint{
		domain.ScopeAdmin:        {Method: "*", Path: "/*"},
		domain.ScopeKeysRead:     {Method: "GET", Path: "/keys/{id}"},
		domain.ScopeTokensVerify: {Method: "POST", Path: "/verify"},
		domain.ScopeAccountsRead: {Method: "GET", Path: "/accounts/me"},
		domain.ScopeScopesRead:   {Method: "GET", Path: "/scopes/{name}"},
	}
	for name, e := range checks {
		if !slices.Contains(byName[name].Endpoints, e) {
			t.Errorf("%s endpoints %v lack %v", name, byName[name].Endpoints, e)
		}
	}

	// Callers get their own copy.
	first, last := catalog[0], catalog[len(catalog)-1]
	first.Endpoints[0].Path, last.Endpoints[0].Path = "/changed", "/changed"
	again := domain.DefaultCatalog()
	if again[0].Endpoints[0].Path == "/changed" || again[len(again)-1].Endpoints[0].Path == "/changed" {
		t.Error("DefaultCatalog shares its slices between calls")
	}
}

func TestScopeUpdateAndApply(t *testing.T) {
	t.Parallel()
	defined, err := domain.DefineScope(validSpec(), scopeNow)
	if err != nil {
		t.Fatal(err)
	}
	var s domain.Scope
	if err := s.Apply(scopeEvent(t, defined, 7)); err != nil {
		t.Fatal(err)
	}
	if s.Name != "weather:write" || s.Price != 3 || !s.DefinedAt.Equal(scopeNow) || !s.UpdatedAt.Equal(scopeNow) || s.Version != 7 {
		t.Fatalf("after scope.defined: %+v", s)
	}

	spec := s.Spec()
	spec.Description = "Change and delete forecasts"
	spec.Price, spec.Requirements.Paid = 0, false
	spec.Requirements.Scopes = []string{"weather:read"}
	later := scopeNow.Add(time.Hour)
	updated, err := s.Update(spec, later)
	if err != nil {
		t.Fatal(err)
	}
	if updated.Name != s.Name || updated.Description != spec.Description || updated.Price != 0 ||
		!slices.Equal(updated.Requirements.Scopes, []string{"weather:read"}) || !updated.UpdatedAt.Equal(later) {
		t.Fatalf("update %+v", updated)
	}
	if s.Description == spec.Description {
		t.Fatal("Update changed the scope itself: only Apply may")
	}
	if err := s.Apply(scopeEvent(t, updated, 9)); err != nil {
		t.Fatal(err)
	}
	if s.Description != "Change and delete forecasts" || s.Price != 0 || s.Requirements.Paid ||
		!s.DefinedAt.Equal(scopeNow) || !s.UpdatedAt.Equal(later) || s.Version != 9 {
		t.Fatalf("after scope.updated: %+v", s)
	}

	other := s.Spec()
	other.Name = "weather:admin"
	other.Domain = "BAD"
	_, err = s.Update(other, later)
	if got := problemFields(t, err); !slices.Equal(got, []string{"name", "domain"}) {
		t.Fatalf("renaming update: problems on %v (%v)", got, err)
	}

	var missing domain.Scope
	if _, err := missing.Update(validSpec(), later); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("update of an undefined scope: %v, want ErrNotFound", err)
	}

	// Spec hands out copies.
	spec = s.Spec()
	spec.Endpoints[0].Path = "/changed"
	if s.Endpoints[0].Path == "/changed" {
		t.Fatal("Spec shares the scope's endpoints")
	}
}

func scopeEvent(t *testing.T, p events.Payload, seq uint64) events.Event {
	t.Helper()
	ev, err := events.New(events.Meta{ID: "evt_1", AggregateType: events.AggregateScope, AggregateID: "weather:write", Time: scopeNow}, p)
	if err != nil {
		t.Fatal(err)
	}
	ev.Sequence = seq
	return ev
}
