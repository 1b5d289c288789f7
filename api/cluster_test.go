package api_test

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// Two Tollgate nodes on one NATS: what one node acknowledges, the other
// serves as soon as the response is received.
func TestTwoNodesReadYourWrites(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	rootA := tollgatetest.NewClient(a.URL(), tollgatetest.RootKey)
	rootB := tollgatetest.NewClient(b.URL(), tollgatetest.RootKey)

	for i := 0; i < 20; i++ {
		acc := newAccount(t, rootA, "acme")
		if r := rootB.Do(t, "GET", "/accounts/"+acc.ID, nil); r.Status != 200 {
			t.Fatalf("round %d: account from node A on node B: %d %s", i, r.Status, r.Body)
		}
		keyB := tollgatetest.NewClient(b.URL(), acc.APIKey.Token)
		if r := keyB.Do(t, "GET", "/accounts/me", nil); r.Status != 200 {
			t.Fatalf("round %d: key from node A on node B: %d %s", i, r.Status, r.Body)
		}
		// And back: a key made on B and revoked on A stops working on B as
		// soon as B has applied the revocation (propagation, not a round trip
		// per request).
		r := keyB.Do(t, "POST", "/keys", map[string]any{"name": "x", "scopes": []string{"keys:read"}})
		var k keyOut
		r.JSON(t, &k)
		ownerA := tollgatetest.NewClient(a.URL(), acc.APIKey.Token)
		if r := ownerA.Do(t, "DELETE", "/keys/"+k.ID, nil); r.Status != 204 {
			t.Fatalf("round %d: revoke on A: %d %s", i, r.Status, r.Body)
		}
		revokedOnB := tollgatetest.NewClient(b.URL(), k.Token)
		tollgatetest.Eventually(t, time.Second, func() bool {
			return revokedOnB.Do(t, "GET", "/accounts/me", nil).Status == 401
		}, "key revoked on A rejected on B")
	}
	// Both nodes bootstrapped against one log: one root account only.
	js, _ := jetstream.New(a.NATS())
	str, err := js.Stream(t.Context(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(t.Context(), jetstream.WithSubjectFilter(events.SubjectPrefix+".system.>"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 1 {
		t.Fatalf("system subjects: %v", info.State.Subjects)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	n := tollgatetest.Start(t)
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)

	first := root.Do(t, "POST", "/accounts", map[string]string{"name": "once"}, "Idempotency-Key", "create-once-1")
	if first.Status != 201 {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	// Sequential and concurrent repeats all answer the first response.
	var wg sync.WaitGroup
	replies := make([]tollgatetest.Response, 8)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = root.Do(t, "POST", "/accounts", map[string]string{"name": "once"}, "Idempotency-Key", "create-once-1")
		}()
	}
	wg.Wait()
	for i, r := range replies {
		if r.Status != first.Status || string(r.Body) != string(first.Body) {
			t.Fatalf("repeat %d: %d %s, want %d %s", i, r.Status, r.Body, first.Status, first.Body)
		}
		if r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("repeat %d not marked as replayed", i)
		}
	}
	var acc accountOut
	first.JSON(t, &acc)
	// The replayed key works: it is the one that was stored.
	if r := tollgatetest.NewClient(n.URL(), acc.APIKey.Token).Do(t, "GET", "/accounts/me", nil); r.Status != 200 {
		t.Fatalf("replayed key: %d", r.Status)
	}
	if got := countSubjects(t, n.NATS(), events.SubjectPrefix+".account.>"); got != 2 { // root + one
		t.Fatalf("%d accounts in the event log, want 2", got)
	}
	// Same key, different request: refused, nothing created.
	r := root.Do(t, "POST", "/accounts", map[string]string{"name": "different"}, "Idempotency-Key", "create-once-1")
	if r.Status != 409 || !strings.Contains(string(r.Body), "different request") {
		t.Fatalf("reuse with another body: %d %s", r.Status, r.Body)
	}
	// Another caller with the same key string is a different request.
	other := tollgatetest.NewClient(n.URL(), acc.APIKey.Token)
	r = other.Do(t, "POST", "/keys", map[string]any{"name": "k", "scopes": []string{"keys:read"}}, "Idempotency-Key", "create-once-1")
	if r.Status != 201 {
		t.Fatalf("same key string, other caller: %d %s", r.Status, r.Body)
	}
	if got := countSubjects(t, n.NATS(), events.SubjectPrefix+".account.>"); got != 2 {
		t.Fatalf("%d accounts after refused reuse, want 2", got)
	}
	// Nothing secret is stored in the clear in the bucket.
	js, _ := jetstream.New(n.NATS())
	kv, err := js.KeyValue(t.Context(), "TOLLGATE_IDEMPOTENCY")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		e, err := kv.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(e.Value()), "tg_live_") || strings.Contains(string(e.Value()), acc.ID) {
			t.Fatalf("idempotency record holds plaintext: %s", e.Value())
		}
	}
}

func countSubjects(t *testing.T, nc *nats.Conn, filter string) int {
	t.Helper()
	js, _ := jetstream.New(nc)
	str, err := js.Stream(t.Context(), events.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(t.Context(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	return len(info.State.Subjects)
}

// When NATS is gone, writes fail fast with 503 and a clear message, reads
// keep working from the projections, and writes resume when NATS is back.
func TestNATSUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{StoreDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	n := tollgatetest.Start(t, tollgatetest.WithNATS("nats://"+addr, 1))
	root := tollgatetest.NewClient(n.URL(), tollgatetest.RootKey)
	acc := newAccount(t, root, "before")
	srv.Stop()

	start := time.Now()
	r := root.Do(t, "POST", "/accounts", map[string]string{"name": "during"})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("write with NATS down: %d %s", r.Status, r.Body)
	}
	var e struct{ Error, Message string }
	_ = json.Unmarshal(r.Body, &e)
	if e.Error != "unavailable" || !strings.Contains(e.Message, "not accepted") {
		t.Fatalf("error body: %s", r.Body)
	}
	// At most one publish attempt plus the reconnect grace, not the whole
	// write timeout.
	if d := time.Since(start); d > 4500*time.Millisecond {
		t.Fatalf("503 took %s", d)
	}
	if r := tollgatetest.NewClient(n.URL(), acc.APIKey.Token).Do(t, "GET", "/accounts/me", nil); r.Status != 200 {
		t.Fatalf("read with NATS down: %d %s", r.Status, r.Body)
	}
	if r := root.Do(t, "GET", "/accounts/"+acc.ID, nil); r.Status != 200 {
		t.Fatalf("read with NATS down: %d %s", r.Status, r.Body)
	}

	srv, err = embedded.Start(embedded.Options{StoreDir: dir, Listen: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	tollgatetest.Eventually(t, 15*time.Second, func() bool {
		return root.Do(t, "POST", "/accounts", map[string]string{"name": "after"}).Status == 201
	}, "writes resume after NATS returns")
}
