package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tollgate/tollgate/events"
	"github.com/tollgate/tollgate/events/eventstest"
	"github.com/tollgate/tollgate/internal/embedded"
)

func TestJetStreamStoreSingleNode(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(embedded.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	nc, err := srv.Connect(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store := newStore(t, nc, 1)
	eventstest.Run(t, func(*testing.T) events.Store { return store })
}

func TestJetStreamStoreCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("three-node cluster: skipped in -short")
	}
	c, err := embedded.StartCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	// Each subtest talks to another node: appends, conflicts and loads must
	// behave the same whichever server a client is connected to.
	stores := make([]events.Store, len(c.Servers))
	for i, srv := range c.Servers {
		nc, err := srv.Connect(t.Name())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		stores[i] = newStore(t, nc, 3)
	}
	waitForCurrentReplicas(t, c)
	var next int
	eventstest.Run(t, func(*testing.T) events.Store {
		next++
		return stores[next%len(stores)]
	})
}

// waitForCurrentReplicas waits until the stream has a leader and every
// replica is current, so that the suite tests the store rather than a
// leader election on a machine busy with other tests.
func waitForCurrentReplicas(t *testing.T, c *embedded.Cluster) {
	t.Helper()
	nc, err := c.Servers[0].Connect("wait")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		str, err := js.Stream(ctx, events.DefaultStream)
		if err == nil {
			info, ierr := str.Info(ctx)
			cancel()
			if ierr == nil && info.Cluster != nil && info.Cluster.Leader != "" && len(info.Cluster.Replicas) == 2 &&
				info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
				return
			}
		} else {
			cancel()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("stream replicas not current within 20s")
}

func newStore(t *testing.T, nc *nats.Conn, replicas int) events.Store {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := events.DefaultStream
	if _, err := events.EnsureStream(context.Background(), js, events.StreamConfig{Name: name, Replicas: replicas}); err != nil {
		t.Fatal(err)
	}
	s, err := events.NewJetStreamStore(nc, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
