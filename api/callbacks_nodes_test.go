package api_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/embedded"
	"github.com/tollgate/tollgate/internal/node"
	"github.com/tollgate/tollgate/internal/tollgatetest"
)

// Two nodes on one NATS share the delivery consumers: a subscription made
// on one node gets the events of the other, each delivered once, whichever
// node attempts it. The nodes share the key-encryption key, as a cluster's
// nodes must.
func TestCallbacksAcrossNodes(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	kek := func(c *node.Config) { c.KeyEncryptionKey = bytes.Repeat([]byte{42}, 32) }
	a := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), fastCallbacks(time.Second), kek)
	b := tollgatetest.Start(t, tollgatetest.WithNATS(srv.ClientURL(), 1), fastCallbacks(time.Second), kek)

	tn := newTenant(t, a.URL())
	rc := newReceiver(t, nil)
	sub := subscribe(t, tn.owner, rc.URL, "token.created")
	rc.verifyWith(sub.Secret)
	onB := tenant{acc: tn.acc, owner: tollgatetest.NewClient(b.URL(), tn.owner.Key), base: b.URL()}
	const tokens = 20
	for range tokens {
		onB.token(t, map[string]any{})
	}
	tollgatetest.Eventually(t, 20*time.Second, func() bool { return len(rc.acked()) == tokens }, "every token's delivery acknowledged")
	time.Sleep(time.Second)
	for id, n := range rc.acked() {
		if n != 1 {
			t.Errorf("%s acknowledged %d times", id, n)
		}
	}
	for _, h := range rc.got() {
		if h.Verified != nil || h.Answer != http.StatusOK {
			t.Errorf("%s: %d, signature %v", h.ID, h.Answer, h.Verified)
		}
	}
	for _, n := range []*node.Node{a, b} {
		c := tollgatetest.NewClient(n.URL(), tn.owner.Key)
		tollgatetest.Eventually(t, 5*time.Second, func() bool {
			return len(callbacks(t, c, "?status=succeeded&limit=100")) == tokens
		}, "every delivery succeeded, seen from "+n.URL())
	}
}
