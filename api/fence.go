package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tollgate/tollgate/projections"
)

// ClusterFence lets a write answer only once the other live nodes of the
// cluster have applied it (OAuth revocations use it: introspection on any
// node says inactive as soon as the revocation is answered). Nodes announce
// themselves on a core NATS subject, not the stream (presence is not
// history), and answer a fence request once their projector has reached
// the requested sequence.
type ClusterFence struct {
	nc   *nats.Conn
	node string
	proj *projections.Projector
	log  *slog.Logger

	mu    sync.Mutex
	peers map[string]time.Time // other nodes by id, with when they were last heard
	subs  []*nats.Subscription
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// Subjects of the fence, outside the event stream's tollgate.events.>.
const (
	fenceSubject    = "tollgate.cluster.fence"
	presenceSubject = "tollgate.cluster.presence"
	heartbeatEvery  = 5 * time.Second
	// peerTTL is how long a node that fell silent (crashed) is waited for.
	peerTTL = 3 * heartbeatEvery
)

// presence is a node's announcement: hello when it starts (every node
// answers up), up as a heartbeat, down when it stops.
type presence struct {
	Node  string `json:"node"`
	State string `json:"state"`
}

// StartClusterFence joins the fence as node; Close leaves it.
func StartClusterFence(nc *nats.Conn, node string, proj *projections.Projector, log *slog.Logger) (*ClusterFence, error) {
	if log == nil {
		log = slog.Default()
	}
	f := &ClusterFence{nc: nc, node: node, proj: proj, log: log, peers: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	for subject, handler := range map[string]nats.MsgHandler{presenceSubject: f.onPresence, fenceSubject: f.onFence} {
		sub, err := nc.Subscribe(subject, handler)
		if err != nil {
			f.unsubscribe()
			return nil, fmt.Errorf("cluster fence: subscribe %s: %w", subject, err)
		}
		f.subs = append(f.subs, sub)
	}
	f.announce("hello")
	if err := nc.Flush(); err != nil {
		f.unsubscribe()
		return nil, fmt.Errorf("cluster fence: %w", err)
	}
	go f.heartbeat()
	return f, nil
}

func (f *ClusterFence) announce(state string) {
	raw, _ := json.Marshal(presence{Node: f.node, State: state})
	_ = f.nc.Publish(presenceSubject, raw)
}

func (f *ClusterFence) onPresence(m *nats.Msg) {
	var p presence
	if json.Unmarshal(m.Data, &p) != nil || p.Node == "" || p.Node == f.node {
		return
	}
	f.mu.Lock()
	if p.State == "down" {
		delete(f.peers, p.Node)
	} else {
		f.peers[p.Node] = time.Now()
	}
	f.mu.Unlock()
	if p.State == "hello" {
		f.announce("up")
	}
}

// onFence answers once this node has applied the requested sequence.
func (f *ClusterFence) onFence(m *nats.Msg) {
	seq, err := strconv.ParseUint(string(m.Data), 10, 64)
	if err != nil || m.Reply == "" {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*fenceTimeout)
		defer cancel()
		if f.proj.WaitFor(ctx, seq) == nil {
			_ = m.Respond([]byte(f.node))
		}
	}()
}

func (f *ClusterFence) heartbeat() {
	defer close(f.done)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			f.announce("up")
			f.mu.Lock()
			maps.DeleteFunc(f.peers, func(_ string, seen time.Time) bool { return time.Since(seen) > peerTTL })
			f.mu.Unlock()
		}
	}
}

// Peers lists the other live nodes.
func (f *ClusterFence) Peers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.peers))
}

// Wait returns once every other live node has applied seq, or fails with
// the nodes that have not confirmed when ctx ends.
func (f *ClusterFence) Wait(ctx context.Context, seq uint64) error {
	peers := f.Peers()
	if len(peers) == 0 {
		return nil
	}
	inbox := f.nc.NewInbox()
	sub, err := f.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := f.nc.PublishRequest(fenceSubject, inbox, []byte(strconv.FormatUint(seq, 10))); err != nil {
		return err
	}
	pending := make(map[string]bool, len(peers))
	for _, p := range peers {
		pending[p] = true
	}
	for len(pending) > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return fmt.Errorf("nodes %v have not confirmed sequence %d: %w", slices.Sorted(maps.Keys(pending)), seq, err)
		}
		delete(pending, string(m.Data))
	}
	return nil
}

// Close leaves the fence: the other nodes stop waiting for this one.
func (f *ClusterFence) Close() {
	f.once.Do(func() {
		close(f.stop)
		<-f.done
		if !f.nc.IsClosed() {
			f.announce("down")
			_ = f.nc.Flush()
		}
		f.unsubscribe()
	})
}

func (f *ClusterFence) unsubscribe() {
	for _, s := range f.subs {
		_ = s.Unsubscribe()
	}
}
