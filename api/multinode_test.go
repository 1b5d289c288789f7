package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// paidSetup makes an account with credit, a customer token and a verifier
// key with room for load, through node 0.
func paidSetup(t *testing.T, nodes []*node.Node, credit int64) (tenant, tokenOut, []*tollgatetest.Client) {
	t.Helper()
	root := tollgatetest.NewClient(nodes[0].URL(), tollgatetest.RootKey)
	acc := newAccount(t, root, "payer")
	if r := root.Do(t, "POST", "/wallet/credits?account_id="+acc.ID, map[string]any{"amount": credit}); r.Status != 201 {
		t.Fatalf("credit: %d %s", r.Status, r.Body)
	}
	tn := tenant{acc: acc, owner: tollgatetest.NewClient(nodes[0].URL(), acc.APIKey.Token), base: nodes[0].URL()}
	tok := tn.token(t, map[string]any{"rate_limit": map[string]any{"limit": 1_000_000_000, "window": 60}})
	verifier := tn.token(t, map[string]any{"name": "verifier", "scopes": []string{"tokens:verify", "wallet:read"},
		"rate_limit": map[string]any{"limit": 1_000_000_000, "window": 60}})
	var clients []*tollgatetest.Client
	for _, n := range nodes {
		clients = append(clients, tollgatetest.NewClient(n.URL(), verifier.Token))
	}
	return tn, tok, clients
}

// Three Tollgate nodes on a three-node NATS cluster: 20,000 paid verifies
// spread over the nodes against a wallet covering 10,000 of them.
func TestPaidVerifiesExactAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster under load: skipped in -short")
	}
	c, err := embedded.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	var nodes []*node.Node
	for _, s := range c.Servers {
		nodes = append(nodes, tollgatetest.Start(t, tollgatetest.WithNATS(s.ClientURL(), 3)))
	}
	tn, tok, clients := paidSetup(t, nodes, 10_000)

	const total = 20_000
	var next, valid, funds atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 24; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				c := clients[i%int64(len(clients))]
				r := c.Do(t, "POST", "/verify", map[string]any{"token": tok.Token, "cost": 1})
				var v verdict
				r.JSON(t, &v)
				switch v.Code {
				case "VALID":
					valid.Add(1)
				case "INSUFFICIENT_FUNDS":
					funds.Add(1)
				default:
					t.Errorf("verdict %s (%d %s)", v.Code, r.Status, r.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	if valid.Load() != 10_000 || funds.Load() != 10_000 {
		t.Fatalf("%d VALID and %d INSUFFICIENT_FUNDS; want exactly 10000 each", valid.Load(), funds.Load())
	}
	// Settlements run every second; then every node sees balance 0 and a
	// ledger that sums to it.
	for i, c := range clients {
		var w walletOut
		tollgatetest.Eventually(t, 10*time.Second, func() bool {
			c.Do(t, "GET", "/wallet", nil).JSON(t, &w)
			return w.Balance == 0 && w.Reserved == 0
		}, fmt.Sprintf("node %d: balance and reservations reach 0", i))
		var sum int64
		for _, e := range ledger(t, c, "") {
			sum += e.Amount
			if e.BalanceAfter < 0 {
				t.Fatalf("node %d: ledger went negative: %+v", i, e)
			}
		}
		if sum != 0 {
			t.Fatalf("node %d: ledger sums to %d, balance 0", i, sum)
		}
	}
	_ = tn
}

// A node that dies holding a lease: the wallet never goes negative, and
// the credit it held comes back when it restarts.
func TestCrashedNodeGivesCreditBack(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	dirA := t.TempDir()
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithDataDir(dirA))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	_, tok, clients := paidSetup(t, []*node.Node{a, b}, 1000)

	for i := 0; i < 10; i++ { // node A leases a block and spends part of it
		if v := verifyWith(t, clients[0], tok.Token, 1); v.Code != "VALID" {
			t.Fatalf("%+v", v)
		}
	}
	var w walletOut
	clients[1].Do(t, "GET", "/wallet", nil).JSON(t, &w)
	if w.Reserved == 0 {
		t.Fatalf("node A holds no reservation: %+v", w)
	}
	// A dies mid-load: requests in flight on it fail, none succeed twice.
	var burst sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		burst.Add(1)
		go func() {
			defer burst.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", a.URL()+"/verify", strings.NewReader(`{"token":"`+tok.Token+`","cost":1}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-API-Key", clients[0].Key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	a.Crash()
	close(stop)
	burst.Wait()
	// Node B can spend only what A does not hold.
	spentOnB := 0
	for verifyWith(t, clients[1], tok.Token, 1).Code == "VALID" {
		spentOnB++
	}
	if spentOnB >= 990 {
		t.Fatalf("node B spent %d while A's lease was outstanding", spentOnB)
	}
	// A restarts on its data dir and gives its leases back.
	tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithDataDir(dirA))
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		clients[1].Do(t, "GET", "/wallet", nil).JSON(t, &w)
		return w.Reserved == 0
	}, "reservations released after the restart")
	spentBefore := spentOnB
	for verifyWith(t, clients[1], tok.Token, 1).Code == "VALID" {
		spentOnB++
	}
	if spentOnB == spentBefore {
		t.Fatal("the credit A held did not come back")
	}
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		clients[1].Do(t, "GET", "/wallet", nil).JSON(t, &w)
		return w.Reserved == 0
	}, "settled")
	// What A spent and settled before dying (a settlement runs every
	// second) was charged; what it had not settled was not. Either way all
	// the rest of the credit came back to B and the wallet ends at 0,
	// never below.
	var sum int64
	for _, e := range ledger(t, clients[1], "") {
		sum += e.Amount
		if e.BalanceAfter < 0 {
			t.Fatalf("ledger went negative: %+v", e)
		}
	}
	if w.Balance != 0 || sum != 0 || spentOnB > 1000 {
		t.Fatalf("balance %d, ledger sum %d, B spent %d; want 0, 0 and all A had not settled", w.Balance, sum, spentOnB)
	}
}

func verifyWith(t *testing.T, c *tollgatetest.Client, token string, cost int64) verdict {
	t.Helper()
	var v verdict
	c.Do(t, "POST", "/verify", map[string]any{"token": token, "cost": cost}).JSON(t, &v)
	return v
}

// A crashed node's quota lease on a token comes back when it restarts.
func TestCrashedNodeGivesQuotaBack(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	dirA := t.TempDir()
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithDataDir(dirA))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	tn, _, clients := paidSetup(t, []*node.Node{a, b}, 1)
	tok := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 100}})
	for i := 0; i < 3; i++ {
		if v := verifyWith(t, clients[0], tok.Token, 0); v.Code != "VALID" {
			t.Fatalf("%+v", v)
		}
	}
	a.Crash()
	owner := tollgatetest.NewClient(b.URL(), tn.acc.APIKey.Token)
	var got tokenOut
	owner.Do(t, "GET", "/tokens/"+tok.ID, nil).JSON(t, &got)
	if *got.Remaining.TotalRequests > 97 {
		t.Fatalf("remaining %d while A's lease is outstanding", *got.Remaining.TotalRequests)
	}
	tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithDataDir(dirA))
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		owner.Do(t, "GET", "/tokens/"+tok.ID, nil).JSON(t, &got)
		r := *got.Remaining.TotalRequests
		return r == 100 || r == 97 // unsettled use is given back with the lease
	}, "A's lease released on restart")
}

// A node that dies for good: once its leases expire, another node
// releases them and the credit and quota are usable again.
func TestAbandonedLeasesExpire(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1))
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), tollgatetest.WithClock(clock))
	tn, tok, clients := paidSetup(t, []*node.Node{a, b}, 100)
	limited := tn.token(t, map[string]any{"limits": map[string]any{"total_requests": 50}})
	if v := verifyWith(t, clients[0], tok.Token, 1); v.Code != "VALID" {
		t.Fatalf("%+v", v)
	}
	if v := verifyWith(t, clients[0], limited.Token, 0); v.Code != "VALID" {
		t.Fatalf("%+v", v)
	}
	a.Crash()
	var w walletOut
	clients[1].Do(t, "GET", "/wallet", nil).JSON(t, &w)
	if w.Reserved == 0 {
		t.Fatal("no reservation held by the dead node")
	}
	if err := b.API.ExpireLeases(t.Context()); err != nil {
		t.Fatal(err)
	}
	clients[1].Do(t, "GET", "/wallet", nil).JSON(t, &w)
	if w.Reserved == 0 {
		t.Fatal("a lease was released before it expired")
	}
	skew.Store(int64(10 * time.Minute))
	tollgatetest.Eventually(t, 10*time.Second, func() bool {
		if err := b.API.ExpireLeases(t.Context()); err != nil {
			t.Fatal(err)
		}
		clients[1].Do(t, "GET", "/wallet", nil).JSON(t, &w)
		var got tokenOut
		tollgatetest.NewClient(b.URL(), tn.acc.APIKey.Token).Do(t, "GET", "/tokens/"+limited.ID, nil).JSON(t, &got)
		return w.Reserved == 0 && *got.Remaining.TotalRequests == 50
	}, "expired leases released")
	if w.Balance != 100 {
		t.Fatalf("balance %d: the dead node's unsettled spend is not charged", w.Balance)
	}
}
