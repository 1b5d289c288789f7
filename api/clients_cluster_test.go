package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// Every /clients endpoint answers 404 for another account's client, by
// internal id and by client_id, and for a client of the other environment.
func TestClientTenantIsolation(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	alice, mallory := newTenant(t, n.URL()), newTenant(t, n.URL())
	const clientID = "alice:billing@prod"
	cl := createClient(t, alice.owner, map[string]any{"client_id": clientID})
	sandbox := tollgatetest.NewClient(n.URL(), alice.token(t, map[string]any{
		"environment": "test", "scopes": []string{"clients:read", "clients:write", "vps:read"},
	}).Token)

	for who, c := range map[string]*tollgatetest.Client{"another account": mallory.owner, "alice's sandbox key": sandbox} {
		for _, path := range []string{"/clients/" + cl.ID, clientPath(clientID)} {
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{"GET", path, nil},
				{"PATCH", path, map[string]any{"name": "pwned"}},
				{"POST", path + "/secret", map[string]any{"grace_period": 60}},
				{"DELETE", path, nil},
			} {
				r := c.Do(t, req.method, req.path, req.body)
				if e := wantError(t, r, http.StatusNotFound, "not_found"); e.Message != "client not found" {
					t.Errorf("%s: %s %s: %s", who, req.method, req.path, r.Body)
				}
			}
		}
		var list clientList
		c.Do(t, "GET", "/clients", nil).JSON(t, &list)
		if len(list.Data) != 0 {
			t.Errorf("%s lists %+v", who, list.Data)
		}
		// Naming the account is no way in either.
		r := c.Do(t, "GET", "/clients/"+cl.ID+"?account_id="+alice.acc.ID, nil)
		if r.Status != http.StatusNotFound {
			t.Errorf("%s with account_id: %d %s", who, r.Status, r.Body)
		}
	}

	// Untouched by all of that.
	r := alice.owner.Do(t, "GET", "/clients/"+cl.ID, nil)
	var got clientOut
	r.JSON(t, &got)
	if r.Status != http.StatusOK || got.Name != cl.Name || !got.UpdatedAt.Equal(cl.CreatedAt) || !secretWorks(t, n, clientID, cl.ClientSecret, time.Now()) {
		t.Fatalf("alice's client after the attempts: %d %s", r.Status, r.Body)
	}
	// The sandbox has clients of its own, which the live key does not see.
	sb := createClient(t, sandbox, map[string]any{})
	if sb.Environment != "test" {
		t.Fatalf("sandbox client %+v", sb)
	}
	wantError(t, alice.owner.Do(t, "GET", "/clients/"+sb.ID, nil), http.StatusNotFound, "not_found")

	// Admin reaches an account's clients with account_id, and only then.
	wantError(t, root.Do(t, "GET", "/clients/"+cl.ID, nil), http.StatusNotFound, "not_found")
	if r := root.Do(t, "GET", "/clients/"+cl.ID+"?account_id="+alice.acc.ID, nil); r.Status != http.StatusOK {
		t.Fatalf("admin with account_id: %d %s", r.Status, r.Body)
	}
	if r := root.Do(t, "GET", "/clients?account_id="+alice.acc.ID, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), cl.ID) {
		t.Fatalf("admin lists with account_id: %d %s", r.Status, r.Body)
	}
	admin := createClient(t, root, map[string]any{})
	if admin.AccountID == alice.acc.ID {
		t.Fatal("admin's client landed in alice's account")
	}
	onBehalf := root.Do(t, "POST", "/clients?account_id="+alice.acc.ID, map[string]any{"name": "by admin", "scopes": []string{"vps:read"}})
	var ob clientOut
	onBehalf.JSON(t, &ob)
	if onBehalf.Status != http.StatusCreated || ob.AccountID != alice.acc.ID {
		t.Fatalf("admin creates for alice: %d %s", onBehalf.Status, onBehalf.Body)
	}
}

// Two nodes on one event log race to create the same client_id: exactly
// one wins, everywhere. A client_id released on one node is free on the
// other at once, even before that node's projection has seen the release.
func TestClientIDUniqueAcrossNodes(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	acc := newAccount(t, tollgatetest.NewClient(a.URL(), tollgatetest.RootKey), "racer")
	other := newAccount(t, tollgatetest.NewClient(a.URL(), tollgatetest.RootKey), "rival")
	ownerA := tollgatetest.NewClient(a.URL(), acc.APIKey.Token)
	ownerB := tollgatetest.NewClient(b.URL(), acc.APIKey.Token)
	rivalB := tollgatetest.NewClient(b.URL(), other.APIKey.Token)

	for round := range 8 {
		clientID := fmt.Sprintf("race %d: shared@id", round)
		contenders := []*tollgatetest.Client{ownerA, ownerB, rivalB}
		replies := make([]tollgatetest.Response, len(contenders))
		var wg sync.WaitGroup
		for i, c := range contenders {
			wg.Go(func() {
				replies[i] = c.Do(t, "POST", "/clients", map[string]any{"client_id": clientID, "name": "racer", "scopes": []string{"vps:read"}})
			})
		}
		wg.Wait()
		winners := 0
		for _, r := range replies {
			switch r.Status {
			case http.StatusCreated:
				winners++
			case http.StatusConflict:
				if !strings.Contains(string(r.Body), "is taken") {
					t.Fatalf("round %d: loser's answer %s", round, r.Body)
				}
			default:
				t.Fatalf("round %d: %d %s", round, r.Status, r.Body)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners", round, winners)
		}
		for i, c := range contenders {
			if replies[i].Status != http.StatusCreated {
				continue
			}
			var won clientOut
			replies[i].JSON(t, &won)
			// Both nodes resolve the client_id to the winner at once.
			key := acc.APIKey.Token
			if won.AccountID == other.ID {
				key = other.APIKey.Token
			}
			for _, n := range []*node.Node{a, b} {
				r := tollgatetest.NewClient(n.URL(), key).Do(t, "GET", clientPath(clientID), nil)
				if r.Status != http.StatusOK || !strings.Contains(string(r.Body), won.ID) {
					t.Fatalf("round %d: node %s: %d %s", round, n.URL(), r.Status, r.Body)
				}
				if !secretWorks(t, n, clientID, won.ClientSecret, time.Now()) {
					t.Fatalf("round %d: the winner's secret does not work on node %s", round, n.URL())
				}
			}
			// Deleted through one node, claimed again at once through the other.
			claimer := ownerA
			if c == ownerA {
				claimer = ownerB
			}
			if r := c.Do(t, "DELETE", clientPath(clientID), nil); r.Status != http.StatusNoContent {
				t.Fatalf("round %d: delete: %d %s", round, r.Status, r.Body)
			}
			if reborn := createClient(t, claimer, map[string]any{"client_id": clientID}); reborn.ID == won.ID {
				t.Fatalf("round %d: same internal id after reuse", round)
			}
		}
	}
	// Each client_id was claimed twice (the race, the reuse) and released
	// once: the losers appended nothing.
	js, err := jetstream.New(a.NATS())
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(t.Context(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]uint64{events.TypeClientIDClaimed: 2, events.TypeClientIDReleased: 1} {
		info, err := str.Info(t.Context(), jetstream.WithSubjectFilter(events.SubjectPrefix+".clientid.*."+typ))
		if err != nil {
			t.Fatal(err)
		}
		if len(info.State.Subjects) != 8 {
			t.Fatalf("%d %s subjects, want 8", len(info.State.Subjects), typ)
		}
		for subject, count := range info.State.Subjects {
			if count != want {
				t.Errorf("%s holds %d events, want %d", subject, count, want)
			}
		}
	}
}
