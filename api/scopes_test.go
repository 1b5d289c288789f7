package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

type endpointOut struct {
	Method string `json:"method"`
	Path   string `json:"path"`
}

type scopeOut struct {
	Name         string        `json:"name"`
	Description  string        `json:"description"`
	Domain       string        `json:"domain"`
	Endpoints    []endpointOut `json:"endpoints"`
	Requirements struct {
		Scopes []string `json:"scopes"`
		Paid   bool     `json:"paid"`
	} `json:"requirements"`
	Price     int64     `json:"price"`
	DefinedAt time.Time `json:"defined_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

type scopeList struct {
	Data       []scopeOut `json:"data"`
	NextCursor *string    `json:"next_cursor"`
}

type errorOut struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Details []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"details"`
}

// listAllScopes walks GET /scopes page by page.
func listAllScopes(t *testing.T, c *tollgatetest.Client, query string) []scopeOut {
	t.Helper()
	var out []scopeOut
	cursor := ""
	for range 100 {
		path := "/scopes?limit=7" + query
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := c.Do(t, "GET", path, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		var page scopeList
		r.JSON(t, &page)
		if len(page.Data) > 7 {
			t.Fatalf("GET %s: %d items", path, len(page.Data))
		}
		out = append(out, page.Data...)
		if page.NextCursor == nil {
			return out
		}
		cursor = *page.NextCursor
	}
	t.Fatal("pagination does not end")
	return nil
}

func scopeNames(scopes []scopeOut) []string {
	var out []string
	for _, s := range scopes {
		out = append(out, s.Name)
	}
	return out
}

func wantError(t *testing.T, r tollgatetest.Response, status int, code string) errorOut {
	t.Helper()
	var e errorOut
	r.JSON(t, &e)
	if r.Status != status || e.Error != code || e.Message == "" {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	return e
}

func TestScopeCatalog(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	acc := newAccount(t, root, "acme")
	user := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)

	t.Run("lists the default catalog in name order", func(t *testing.T) {
		got := scopeNames(listAllScopes(t, user, ""))
		var want []string
		for _, spec := range domain.DefaultCatalog() {
			want = append(want, spec.Name)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("GET /scopes lists %v\nwant %v", got, want)
		}
		r := user.Do(t, "GET", "/scopes?limit=500", nil)
		var all scopeList
		r.JSON(t, &all)
		if r.Status != http.StatusOK || len(all.Data) != len(want) || all.NextCursor != nil ||
			!strings.Contains(string(r.Body), `"next_cursor":null`) {
			t.Fatalf("one page of everything: %d, %d items, cursor %v", r.Status, len(all.Data), all.NextCursor)
		}
	})

	t.Run("filters by domain", func(t *testing.T) {
		if got := scopeNames(listAllScopes(t, user, "&domain=vps")); !slices.Equal(got, []string{"vps:read", "vps:write"}) {
			t.Fatalf("domain=vps lists %v", got)
		}
		tollgate := listAllScopes(t, user, "&domain=tollgate")
		if len(tollgate) != len(domain.ManagementScopes())+1 {
			t.Fatalf("domain=tollgate lists %v", scopeNames(tollgate))
		}
		r := user.Do(t, "GET", "/scopes?domain=nothing-here", nil)
		if r.Status != http.StatusOK || string(r.Body) != `{"data":[],"next_cursor":null}` {
			t.Fatalf("empty domain: %d %s", r.Status, r.Body)
		}
		for _, q := range []string{"domain=VPS", "domain=a%2Fb", "cursor=%21%21", "cursor=YS5i", "limit=0", "limit=x"} {
			wantError(t, user.Do(t, "GET", "/scopes?"+q, nil), http.StatusBadRequest, "invalid_request")
		}
	})

	t.Run("reads one scope", func(t *testing.T) {
		for _, path := range []string{"/scopes/domains:read", "/scopes/domains%3Aread"} {
			r := user.Do(t, "GET", path, nil)
			if r.Status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
			}
			var s scopeOut
			r.JSON(t, &s)
			if s.Name != "domains:read" || s.Description != "Read domain registrations and DNS zones" || s.Domain != "domains" ||
				!slices.Contains(s.Endpoints, endpointOut{"GET", "/domains"}) || !slices.Contains(s.Endpoints, endpointOut{"GET", "/domains/{domain}"}) ||
				s.Requirements.Scopes == nil || len(s.Requirements.Scopes) != 0 || s.Requirements.Paid || s.Price != 0 ||
				s.DefinedAt.IsZero() || !s.UpdatedAt.Equal(s.DefinedAt) {
				t.Fatalf("GET %s: %s", path, r.Body)
			}
		}
		var w scopeOut
		r := user.Do(t, "GET", "/scopes/domains:write", nil)
		r.JSON(t, &w)
		if w.Price != 1 || !w.Requirements.Paid || !slices.Equal(w.Requirements.Scopes, []string{"domains:read"}) {
			t.Fatalf("domains:write: %s", r.Body)
		}
		r = user.Do(t, "GET", "/scopes/admin", nil)
		r.JSON(t, &w)
		if w.Domain != "tollgate" || !slices.Equal(w.Endpoints, []endpointOut{{"*", "/*"}}) {
			t.Fatalf("admin: %s", r.Body)
		}
	})

	t.Run("unknown scope is 404", func(t *testing.T) {
		for _, name := range []string{"nope:read", "Not%20A%20Name", "a.b:c"} {
			wantError(t, user.Do(t, "GET", "/scopes/"+name, nil), http.StatusNotFound, "not_found")
		}
	})

	t.Run("reading needs scopes:read", func(t *testing.T) {
		r := user.Do(t, "POST", "/keys", map[string]any{"name": "keys only", "scopes": []string{"keys:read"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("POST /keys: %d %s", r.Status, r.Body)
		}
		var k keyOut
		r.JSON(t, &k)
		narrow := tollgatetest.NewClient(n.URL(), k.Token)
		for _, path := range []string{"/scopes", "/scopes/vps:read"} {
			if r := narrow.Do(t, "GET", path, nil); r.Status != http.StatusForbidden || string(r.Body) != bodyForbidden {
				t.Errorf("GET %s without scopes:read: %d %s", path, r.Status, r.Body)
			}
		}
		if r := tollgatetest.NewClient(n.URL(), "").Do(t, "GET", "/scopes", nil); r.Status != http.StatusUnauthorized || string(r.Body) != bodyUnauthorized {
			t.Errorf("GET /scopes without a key: %d %s", r.Status, r.Body)
		}
	})

	weather := map[string]any{
		"name": "weather:write", "description": "Change forecasts", "domain": "weather",
		"endpoints":    []map[string]string{{"method": "POST", "path": "/forecasts"}, {"method": "DELETE", "path": "/forecasts/{id}"}},
		"requirements": map[string]any{"scopes": []string{"weather:read"}, "paid": false},
		"price":        0,
	}

	t.Run("only admin defines and changes scopes", func(t *testing.T) {
		if r := user.Do(t, "POST", "/scopes", weather); r.Status != http.StatusForbidden || string(r.Body) != bodyForbidden {
			t.Errorf("POST /scopes as a non-admin: %d %s", r.Status, r.Body)
		}
		if r := user.Do(t, "PATCH", "/scopes/vps:read", map[string]any{"price": 0}); r.Status != http.StatusForbidden || string(r.Body) != bodyForbidden {
			t.Errorf("PATCH /scopes/vps:read as a non-admin: %d %s", r.Status, r.Body)
		}
	})

	var created scopeOut
	t.Run("admin defines a scope once", func(t *testing.T) {
		r := root.Do(t, "POST", "/scopes", weather)
		if r.Status != http.StatusCreated || r.Header.Get("Location") != "/scopes/weather:write" {
			t.Fatalf("POST /scopes: %d %v %s", r.Status, r.Header, r.Body)
		}
		r.JSON(t, &created)
		if created.Name != "weather:write" || created.Domain != "weather" || len(created.Endpoints) != 2 ||
			!slices.Equal(created.Requirements.Scopes, []string{"weather:read"}) || created.DefinedAt.IsZero() {
			t.Fatalf("created %s", r.Body)
		}
		if got := user.Do(t, "GET", "/scopes/weather:write", nil); got.Status != http.StatusOK || string(got.Body) != string(r.Body) {
			t.Fatalf("GET after POST: %d %s\nwant %s", got.Status, got.Body, r.Body)
		}
		wantError(t, root.Do(t, "POST", "/scopes", weather), http.StatusConflict, "conflict")
	})

	t.Run("admin changes price and description", func(t *testing.T) {
		r := root.Do(t, "PATCH", "/scopes/weather:write", map[string]any{"price": 5, "description": "Change and delete forecasts"})
		if r.Status != http.StatusOK {
			t.Fatalf("PATCH: %d %s", r.Status, r.Body)
		}
		var s scopeOut
		r.JSON(t, &s)
		if s.Price != 5 || !s.Requirements.Paid || s.Description != "Change and delete forecasts" || s.Domain != "weather" ||
			len(s.Endpoints) != 2 || !s.DefinedAt.Equal(created.DefinedAt) || s.UpdatedAt.Before(s.DefinedAt) {
			t.Fatalf("after PATCH: %s", r.Body)
		}
		if got := user.Do(t, "GET", "/scopes/weather:write", nil); string(got.Body) != string(r.Body) {
			t.Fatalf("GET after PATCH: %s\nwant %s", got.Body, r.Body)
		}
		if r := root.Do(t, "PATCH", "/scopes/weather:write", map[string]any{}); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"price":5`) {
			t.Fatalf("empty PATCH: %d %s", r.Status, r.Body)
		}
		r = root.Do(t, "PATCH", "/scopes/weather:write", map[string]any{"requirements": map[string]any{"scopes": []string{}}, "price": 0})
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"requirements":{"scopes":[],"paid":false},"price":0`) {
			t.Fatalf("PATCH back to free: %d %s", r.Status, r.Body)
		}
		wantError(t, root.Do(t, "PATCH", "/scopes/nope:write", map[string]any{"price": 1}), http.StatusNotFound, "not_found")
	})

	t.Run("invalid bodies are 400", func(t *testing.T) {
		with := func(key string, value any) map[string]any {
			out := map[string]any{}
			for k, v := range weather {
				out[k] = v
			}
			out["name"] = "weather:other"
			if value == nil {
				delete(out, key)
			} else {
				out[key] = value
			}
			return out
		}
		for name, body := range map[string]any{
			"unknown field":           with("color", "blue"),
			"unknown nested field":    with("requirements", map[string]any{"scopes": []string{}, "paid": false, "x": 1}),
			"priced but not paid":     with("price", 3),
			"no description":          with("description", nil),
			"bad name":                with("name", "Weather"),
			"name without action":     with("name", "weather"),
			"bad method":              with("endpoints", []map[string]string{{"method": "FETCH", "path": "/x"}}),
			"relative path":           with("endpoints", []map[string]string{{"method": "GET", "path": "x"}}),
			"price as string":         with("price", "3"),
			"fractional price":        with("price", 1.5),
			"requires itself":         with("requirements", map[string]any{"scopes": []string{"weather:other"}, "paid": false}),
			"not JSON":                []byte(`{"name":`),
			"two objects":             []byte(`{} {}`),
			"array":                   []byte(`[]`),
			"upper-case domain":       with("domain", "Weather"),
			"price over one billion":  with("price", 1_000_000_001),
			"endpoint with no method": with("endpoints", []map[string]string{{"path": "/x"}}),
		} {
			r := root.Do(t, "POST", "/scopes", body)
			var e errorOut
			r.JSON(t, &e)
			if r.Status != http.StatusBadRequest || e.Error != "invalid_request" {
				t.Errorf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		r := root.Do(t, "POST", "/scopes", with("price", 3))
		if e := wantError(t, r, http.StatusBadRequest, "invalid_request"); len(e.Details) != 1 || e.Details[0].Field != "requirements.paid" ||
			!strings.Contains(e.Details[0].Message, "paid") {
			t.Errorf("paid mismatch: %s", r.Body)
		}

		for name, body := range map[string]any{
			"rename":            map[string]any{"name": "weather:renamed"},
			"negative price":    map[string]any{"price": -1},
			"bad method":        map[string]any{"endpoints": []map[string]string{{"method": "FETCH", "path": "/x"}}},
			"unknown field":     map[string]any{"colour": "blue"},
			"paid but free":     map[string]any{"requirements": map[string]any{"paid": true}},
			"blank description": map[string]any{"description": "   "},
		} {
			r := root.Do(t, "PATCH", "/scopes/weather:write", body)
			var e errorOut
			r.JSON(t, &e)
			if r.Status != http.StatusBadRequest || e.Error != "invalid_request" {
				t.Errorf("PATCH %s: %d %s", name, r.Status, r.Body)
			}
		}
		if r := root.Do(t, "GET", "/scopes/weather:other", nil); r.Status != http.StatusNotFound {
			t.Errorf("a rejected POST defined the scope: %d %s", r.Status, r.Body)
		}
	})

	t.Run("tokens may hold catalog scopes only", func(t *testing.T) {
		r := root.Do(t, "POST", "/keys", map[string]any{"name": "k", "scopes": []string{"nope:read", "vps:read", "zzz:write"}})
		e := wantError(t, r, http.StatusBadRequest, "invalid_request")
		if !strings.Contains(e.Message, `"nope:read"`) || !strings.Contains(e.Message, `"zzz:write"`) || strings.Contains(e.Message, `"vps:read"`) {
			t.Fatalf("unknown scopes: %s", r.Body)
		}
		r = root.Do(t, "POST", "/keys", map[string]any{"name": "k", "scopes": []string{"weather:write"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("a scope defined through POST /scopes: %d %s", r.Status, r.Body)
		}
	})
}

// Nodes starting together on one event log define the default catalog
// once, and a scope defined on one node is served by the other at once.
func TestScopeCatalogAcrossNodes(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfgs := []node.Config{
		tollgatetest.Config(t, tollgatetest.WithNATS(srv.ClientURL(), 1)),
		tollgatetest.Config(t, tollgatetest.WithNATS(srv.ClientURL(), 1)),
	}
	nodes := make([]*node.Node, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Go(func() { nodes[i], errs[i] = node.Start(ctx, cfgs[i]) })
	}
	wg.Wait()
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("start node %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = n.Close() })
	}
	rootA := tollgatetest.NewClient(nodes[0].URL(), tollgatetest.RootKey)
	rootB := tollgatetest.NewClient(nodes[1].URL(), tollgatetest.RootKey)

	js, err := jetstream.New(nodes[0].NATS())
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(ctx, events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(events.SubjectPrefix+".scope.>"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != len(domain.DefaultCatalog()) {
		t.Fatalf("%d scope subjects for %d default scopes", len(info.State.Subjects), len(domain.DefaultCatalog()))
	}
	for subject, count := range info.State.Subjects {
		if count != 1 {
			t.Errorf("%s holds %d events, want 1", subject, count)
		}
	}
	if got, want := scopeNames(listAllScopes(t, rootB, "")), scopeNames(listAllScopes(t, rootA, "")); !slices.Equal(got, want) {
		t.Fatalf("node B lists %v\nnode A lists %v", got, want)
	}

	r := rootA.Do(t, "POST", "/scopes", map[string]any{
		"name": "dns:read", "description": "Read zones", "domain": "dns", "endpoints": []any{},
		"requirements": map[string]any{"scopes": []string{}, "paid": false}, "price": 0,
	})
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /scopes on A: %d %s", r.Status, r.Body)
	}
	if r := rootB.Do(t, "GET", "/scopes/dns:read", nil); r.Status != http.StatusOK {
		t.Fatalf("GET on B right after POST on A: %d %s", r.Status, r.Body)
	}
	if r := rootB.Do(t, "PATCH", "/scopes/dns:read", map[string]any{"description": "Read DNS zones"}); r.Status != http.StatusOK {
		t.Fatalf("PATCH on B: %d %s", r.Status, r.Body)
	}
	// A change (unlike a new scope) reaches the other node when its
	// projector applies it.
	tollgatetest.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(string(rootA.Do(t, "GET", "/scopes/dns:read", nil).Body), "Read DNS zones")
	}, "PATCH on B seen on A")
}
