package projections_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

func (l *eventLog) defineScope(t *testing.T, name, domain string, price int64) uint64 {
	return l.append(t, events.AggregateScope, name, "", events.ScopeDefined{
		Name: name, Description: "about " + name, Domain: domain,
		Endpoints:    []events.Endpoint{{Method: "GET", Path: "/" + domain}},
		Requirements: events.ScopeRequirements{Scopes: []string{}, Paid: price > 0},
		Price:        price, DefinedAt: t0,
	})
}

func TestScopesApplyDefineAndUpdate(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	scopes := projections.NewScopes(db)
	p := newProjector(t, db, projections.Config{}, scopes)
	run(t, p, log.js)

	seq := log.append(t, events.AggregateScope, "vps:write", "", events.ScopeDefined{
		Name: "vps:write", Description: "Create servers", Domain: "vps",
		Endpoints:    []events.Endpoint{{Method: "POST", Path: "/vps"}},
		Requirements: events.ScopeRequirements{Scopes: []string{"vps:read"}, Paid: true},
		Price:        1, DefinedAt: t0,
	})
	bare := log.append(t, events.AggregateScope, "vps:read", "", events.ScopeDefined{
		Name: "vps:read", Description: "Read servers", Domain: "vps", DefinedAt: t0,
	})
	waitFor(t, p, bare)

	rec, ok, err := scopes.Get("vps:write")
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	if rec.Name != "vps:write" || rec.Description != "Create servers" || rec.Domain != "vps" || rec.Price != 1 ||
		!slices.Equal(rec.Endpoints, []events.Endpoint{{Method: "POST", Path: "/vps"}}) ||
		!slices.Equal(rec.Requirements.Scopes, []string{"vps:read"}) || !rec.Requirements.Paid ||
		!rec.DefinedAt.Equal(t0) || !rec.UpdatedAt.Equal(t0) || rec.Version != seq {
		t.Fatalf("record %+v, want version %d", rec, seq)
	}
	// Nil slices in an event still read as empty lists, never null.
	rec, _, _ = scopes.Get("vps:read")
	raw, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatal(err)
	}
	want := []string{"defined_at", "description", "domain", "endpoints", "name", "price", "requirements", "updated_at", "version"}
	if got := slices.Sorted(maps.Keys(shape)); !slices.Equal(got, want) {
		t.Fatalf("JSON fields %v, want %v", got, want)
	}
	if string(mustJSON(t, shape["endpoints"])) != "[]" || string(mustJSON(t, shape["requirements"])) != `{"paid":false,"scopes":[]}` {
		t.Fatalf("empty lists encode as %s", raw)
	}

	later := t0.Add(time.Hour)
	upd := log.append(t, events.AggregateScope, "vps:write", "", events.ScopeUpdated{
		Name: "vps:write", Description: "Create and delete servers", Domain: "compute",
		Endpoints:    []events.Endpoint{{Method: "POST", Path: "/vps"}, {Method: "DELETE", Path: "/vps/{id}"}},
		Requirements: events.ScopeRequirements{Scopes: []string{"vps:read"}, Paid: true},
		Price:        5, UpdatedAt: later,
	})
	// An update of a scope that was never defined changes nothing.
	stray := log.append(t, events.AggregateScope, "ghost:read", "", events.ScopeUpdated{
		Name: "ghost:read", Description: "boo", Domain: "ghost", UpdatedAt: later,
	})
	waitFor(t, p, stray)

	rec, _, err = scopes.Get("vps:write")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Description != "Create and delete servers" || rec.Domain != "compute" || rec.Price != 5 || len(rec.Endpoints) != 2 ||
		!rec.DefinedAt.Equal(t0) || !rec.UpdatedAt.Equal(later) || rec.Version != upd {
		t.Fatalf("updated record %+v, want defined_at kept and version %d", rec, upd)
	}
	if _, ok, err := scopes.Get("ghost:read"); ok || err != nil {
		t.Fatalf("Get(ghost:read) = %v, %v; want not found", ok, err)
	}
	if got := names(t, scopes, "vps"); !slices.Equal(got, []string{"vps:read"}) {
		t.Errorf("domain vps lists %v after vps:write moved to compute", got)
	}
	if got := names(t, scopes, "compute"); !slices.Equal(got, []string{"vps:write"}) {
		t.Errorf("domain compute lists %v", got)
	}
	if p.Skipped() != 0 {
		t.Fatalf("Skipped = %d", p.Skipped())
	}

	// A rebuild from the stream gives the same catalog.
	fresh := openMem(t)
	rebuilt := newProjector(t, fresh, projections.Config{}, projections.NewScopes(fresh))
	if err := rebuilt.CatchUp(testContext(t), log.js, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(t, db, "scp/", false), contents(t, fresh, "scp/", false); len(got) == 0 || !maps.Equal(got, want) {
		t.Fatalf("rebuilt catalog differs:\nlive    %v\nrebuilt %v", got, want)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// names lists every scope of domain, one page at a time.
func names(t *testing.T, scopes *projections.Scopes, domain string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 100 {
		page, err := scopes.List(domain, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Items {
			out = append(out, r.Name)
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	t.Fatal("pagination does not end")
	return nil
}

func TestScopesList(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	scopes := projections.NewScopes(db)
	p := newProjector(t, db, projections.Config{}, scopes)

	byDomain := map[string][]string{}
	var all []string
	var last uint64
	// Appended out of name order; names share prefixes across ':', '-' and '_'.
	for i := range 24 {
		domain := []string{"vps", "email", "vps-eu", "billing"}[i%4]
		name := fmt.Sprintf("%s:action%02d", domain, 23-i)
		last = log.defineScope(t, name, domain, int64(i%2))
		byDomain[domain] = append(byDomain[domain], name)
		all = append(all, name)
	}
	if err := p.CatchUp(testContext(t), log.js, nil); err != nil {
		t.Fatal(err)
	}
	if p.Applied() != last {
		t.Fatalf("Applied = %d, want %d", p.Applied(), last)
	}
	slices.Sort(all)

	var got []string
	var sizes []int
	cursor := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		res, err := scopes.List("", cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(res.Items))
		for _, r := range res.Items {
			got = append(got, r.Name)
		}
		if res.NextCursor == "" {
			break
		}
		cursor = res.NextCursor
	}
	if !slices.Equal(sizes, []int{10, 10, 4}) {
		t.Errorf("page sizes %v, want [10 10 4]", sizes)
	}
	if !slices.Equal(got, all) {
		t.Errorf("listed %v\nwant %v", got, all)
	}

	for domain, want := range byDomain {
		slices.Sort(want)
		if got := names(t, scopes, domain); !slices.Equal(got, want) {
			t.Errorf("domain %s lists %v, want %v", domain, got, want)
		}
	}
	// A domain lists only its own scopes: "vps-" is no prefix match for "vps-eu".
	for _, domain := range []string{"vps-", "v", "nope"} {
		if res, err := scopes.List(domain, "", 100); err != nil || len(res.Items) != 0 || res.NextCursor != "" {
			t.Errorf("domain %q: %d items, cursor %q, err %v; want none", domain, len(res.Items), res.NextCursor, err)
		}
	}

	res, err := scopes.List("", "", 0)
	if err != nil || len(res.Items) != 1 || res.Items[0].Name != all[0] || res.NextCursor == "" {
		t.Fatalf("limit 0: %d items, cursor %q, err %v; want the first scope and a cursor", len(res.Items), res.NextCursor, err)
	}
	res, err = scopes.List("", res.NextCursor, 1)
	if err != nil || len(res.Items) != 1 || res.Items[0].Name != all[1] {
		t.Fatalf("second page of one: %+v, %v", res.Items, err)
	}
	res, err = scopes.List("", "", 100)
	if err != nil || len(res.Items) != len(all) || res.NextCursor != "" {
		t.Fatalf("everything at once: %d items, cursor %q, err %v", len(res.Items), res.NextCursor, err)
	}

	for _, bad := range []string{"%%%", "not base64!", "Lw", "YS5i"} { // "/" and "a.b" are no scope names
		if _, err := scopes.List("", bad, 10); !errors.Is(err, projections.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", bad, err)
		}
	}
}
