package projections_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/projections"
)

func clientSettings(name string) events.ClientSettings {
	return events.ClientSettings{
		Name: name, GrantTypes: []string{"client_credentials"}, Scopes: []string{"vps:read", "vps:write"},
		DefaultScopes: []string{"vps:read"}, TokenEndpointAuthMethod: "client_secret_basic",
		RedirectURIs: []string{}, AccessTokenTTL: 3600, AccessTokenFormat: "opaque",
	}
}

// createClient appends client.created and the claim on clientID, as the API
// does, and returns the sequence of client.created.
func (l *eventLog) createClient(t *testing.T, id, clientID, account, env string) uint64 {
	t.Helper()
	seq := l.append(t, events.AggregateClient, id, account, events.ClientCreated{
		ID: id, ClientID: clientID, AccountID: account, Environment: env,
		ClientSettings: clientSettings("client " + id), SecretHash: "hash-" + id, CreatedAt: t0,
	})
	l.append(t, events.AggregateClientID, events.ClientIDKey(clientID), account, events.ClientIDClaimed{
		ClientID: clientID, Client: id, AccountID: account, ClaimedAt: t0,
	})
	return seq
}

func (l *eventLog) deleteClient(t *testing.T, id, clientID, account string) uint64 {
	t.Helper()
	l.append(t, events.AggregateClient, id, account, events.ClientDeleted{ID: id, AccountID: account, ClientID: clientID, DeletedAt: t0.Add(time.Hour)})
	return l.append(t, events.AggregateClientID, events.ClientIDKey(clientID), account, events.ClientIDReleased{
		ClientID: clientID, Client: id, AccountID: account, ReleasedAt: t0.Add(time.Hour),
	})
}

func TestClientsApply(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	clients := projections.NewClients(db)
	p := newProjector(t, db, projections.Config{}, clients)
	run(t, p, log.js)

	const clientID = "ops@example.com:billing 100%"
	created := log.createClient(t, "cli_1", clientID, "acc_1", "live")
	waitFor(t, p, created+1)

	rec, ok, err := clients.ByClientID(clientID)
	if err != nil || !ok {
		t.Fatalf("ByClientID = %v, %v", ok, err)
	}
	if rec.ID != "cli_1" || rec.ClientID != clientID || rec.AccountID != "acc_1" || rec.Environment != "live" ||
		rec.Name != "client cli_1" || !slices.Equal(rec.Scopes, []string{"vps:read", "vps:write"}) || rec.SecretHash != "hash-cli_1" ||
		!rec.CreatedAt.Equal(t0) || !rec.UpdatedAt.Equal(t0) || rec.Seq != created || rec.Version != created || rec.DeletedAt != nil {
		t.Fatalf("record %+v, want seq and version %d", rec, created)
	}
	claim, ok, err := clients.Claim(clientID)
	if err != nil || !ok || claim.Client != "cli_1" || claim.Released || claim.Version != created+1 {
		t.Fatalf("Claim = %+v, %v, %v", claim, ok, err)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatal(err)
	}
	want := []string{"access_token_format", "access_token_ttl", "account_id", "client_id", "created_at", "default_scopes", "environment",
		"grant_types", "id", "name", "redirect_uris", "refresh_token_grace_period", "scopes", "secret_hash", "seq", "token_endpoint_auth_method", "updated_at", "version"}
	if got := slices.Sorted(maps.Keys(shape)); !slices.Equal(got, want) {
		t.Fatalf("JSON fields %v\nwant %v", got, want)
	}

	later := t0.Add(time.Minute)
	settings := clientSettings("renamed")
	settings.JWKS = json.RawMessage(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}`)
	upd := log.append(t, events.AggregateClient, "cli_1", "acc_1", events.ClientUpdated{
		ID: "cli_1", AccountID: "acc_1", ClientSettings: settings, SecretHash: "hash-cli_1", UpdatedAt: later,
	})
	until := later.Add(time.Hour)
	rot := log.append(t, events.AggregateClient, "cli_1", "acc_1", events.ClientSecretRotated{
		ID: "cli_1", AccountID: "acc_1", SecretHash: "hash-2", PreviousSecretHash: "hash-cli_1", PreviousValidUntil: &until, RotatedAt: later,
	})
	waitFor(t, p, rot)
	rec, _, err = clients.Get("cli_1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Name != "renamed" || !strings.Contains(string(rec.JWKS), `"kid":"k1"`) || rec.SecretHash != "hash-2" ||
		rec.PreviousSecretHash != "hash-cli_1" || rec.PreviousValidUntil == nil || !rec.PreviousValidUntil.Equal(until) ||
		!rec.UpdatedAt.Equal(later) || rec.Version != rot || rec.Seq != created {
		t.Fatalf("after update %d and rotation %d: %+v", upd, rot, rec)
	}

	// Moving to a method without a secret drops the secret and its grace.
	settings.TokenEndpointAuthMethod = "private_key_jwt"
	noSecret := log.append(t, events.AggregateClient, "cli_1", "acc_1", events.ClientUpdated{
		ID: "cli_1", AccountID: "acc_1", ClientSettings: settings, UpdatedAt: later,
	})
	waitFor(t, p, noSecret)
	rec, _, _ = clients.Get("cli_1")
	if rec.SecretHash != "" || rec.PreviousSecretHash != "" || rec.PreviousValidUntil != nil || rec.TokenEndpointAuthMethod != "private_key_jwt" {
		t.Fatalf("after switching to private_key_jwt: %+v", rec)
	}

	log.createClient(t, "cli_2", "cli_2", "acc_1", "live")
	released := log.deleteClient(t, "cli_1", clientID, "acc_1")
	waitFor(t, p, released)
	if _, ok, err := clients.ByClientID(clientID); ok || err != nil {
		t.Fatalf("ByClientID after delete = %v, %v; want not found", ok, err)
	}
	rec, ok, _ = clients.Get("cli_1")
	if !ok || rec.DeletedAt == nil || !rec.DeletedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("deleted record %+v", rec)
	}
	claim, ok, _ = clients.Claim(clientID)
	if !ok || !claim.Released || claim.Version != released || claim.Client != "cli_1" {
		t.Fatalf("released claim %+v, want version %d", claim, released)
	}
	if got := clientIDs(t, clients, "acc_1", "live", 10); !slices.Equal(got, []string{"cli_2"}) {
		t.Fatalf("listing after delete %v", got)
	}

	// The released client_id is claimed again by another client.
	again := log.createClient(t, "cli_3", clientID, "acc_2", "test")
	waitFor(t, p, again+1)
	rec, ok, err = clients.ByClientID(clientID)
	if err != nil || !ok || rec.ID != "cli_3" || rec.AccountID != "acc_2" {
		t.Fatalf("ByClientID after reclaim = %+v, %v, %v", rec, ok, err)
	}
	if p.Skipped() != 0 {
		t.Fatalf("Skipped = %d", p.Skipped())
	}

	// A rebuild from the stream gives the same clients.
	fresh := openMem(t)
	rebuilt := newProjector(t, fresh, projections.Config{}, projections.NewClients(fresh))
	if err := rebuilt.CatchUp(testContext(t), log.js, nil); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"cli/", "clid/", "cliacc/"} {
		if got, want := contents(t, db, prefix, false), contents(t, fresh, prefix, false); len(got) == 0 || !maps.Equal(got, want) {
			t.Errorf("rebuilt %s differs:\nlive    %v\nrebuilt %v", prefix, got, want)
		}
	}
}

func TestClientsRefuseMisfiledClaim(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	clients := projections.NewClients(db)
	p := newProjector(t, db, projections.Config{}, clients)
	run(t, p, log.js)

	// A claim of "victim" filed under the key of "decoy" claims nothing.
	seq := log.append(t, events.AggregateClientID, events.ClientIDKey("decoy"), "acc_1", events.ClientIDClaimed{
		ClientID: "victim", Client: "cli_1", AccountID: "acc_1", ClaimedAt: t0,
	})
	waitFor(t, p, seq)
	if p.Skipped() != 1 {
		t.Fatalf("Skipped = %d, want 1", p.Skipped())
	}
	for _, id := range []string{"victim", "decoy"} {
		if _, ok, err := clients.Claim(id); ok || err != nil {
			t.Errorf("Claim(%q) = %v, %v; want none", id, ok, err)
		}
	}
}

// clientIDs lists an account's clients page by page.
func clientIDs(t *testing.T, clients *projections.Clients, account, env string, limit int) []string {
	t.Helper()
	var out []string
	cursor := ""
	for range 100 {
		page, err := clients.ListByAccount(account, env, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > max(limit, 1) {
			t.Fatalf("page of %d items, limit %d", len(page.Items), limit)
		}
		for _, r := range page.Items {
			out = append(out, r.ID)
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
	t.Fatal("pagination does not end")
	return nil
}

func TestClientsList(t *testing.T) {
	t.Parallel()
	log := startEventLog(t)
	db := openMem(t)
	clients := projections.NewClients(db)
	p := newProjector(t, db, projections.Config{}, clients)

	want := map[string][]string{}
	var last uint64
	for i := range 17 {
		account, env := []string{"acc_1", "acc_10", "acc_1"}[i%3], []string{"live", "live", "test"}[i%3]
		id := fmt.Sprintf("cli_%02d", i)
		log.createClient(t, id, "id "+id, account, env)
		want[account+"/"+env] = append(want[account+"/"+env], id)
	}
	// Deleting one leaves a gap the listing skips.
	last = log.deleteClient(t, "cli_03", "id cli_03", "acc_1")
	want["acc_1/live"] = slices.DeleteFunc(want["acc_1/live"], func(id string) bool { return id == "cli_03" })
	if err := p.CatchUp(testContext(t), log.js, nil); err != nil {
		t.Fatal(err)
	}
	if p.Applied() != last {
		t.Fatalf("Applied = %d, want %d", p.Applied(), last)
	}
	for key, ids := range want {
		account, env, _ := strings.Cut(key, "/")
		for _, limit := range []int{1, 2, 5, 100} {
			if got := clientIDs(t, clients, account, env, limit); !slices.Equal(got, ids) {
				t.Errorf("%s with limit %d lists %v, want %v", key, limit, got, ids)
			}
		}
	}
	// "acc_1" is no prefix match for "acc_10", and environments do not mix.
	for _, q := range [][2]string{{"acc_10", "test"}, {"acc_", "live"}, {"acc_2", "live"}} {
		if page, err := clients.ListByAccount(q[0], q[1], "", 10); err != nil || len(page.Items) != 0 || page.NextCursor != "" {
			t.Errorf("%v: %d items, cursor %q, err %v; want none", q, len(page.Items), page.NextCursor, err)
		}
	}
	for _, bad := range []string{"%%%", "not base64!", "AAAA", "__________8"} {
		if _, err := clients.ListByAccount("acc_1", "live", bad, 10); !errors.Is(err, projections.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", bad, err)
		}
	}
}
