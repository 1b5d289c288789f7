package projections

import (
	"strings"
	"sync"
)

// recordCache holds decoded records in memory in front of Pebble. The
// projector invalidates what a batch touched after committing it and before
// waking readers, so read-your-writes holds. A reader fills the cache only if
// no invalidation happened since it started reading, so a value read just
// before a commit can never be stored after it.
type recordCache[T any] struct {
	mu    sync.RWMutex
	items map[string]T
	epoch uint64
	max   int
}

func newRecordCache[T any](max int) *recordCache[T] {
	return &recordCache[T]{items: make(map[string]T), max: max}
}

// get returns the cached record and the epoch to pass to fill on a miss.
func (c *recordCache[T]) get(id string) (T, bool, uint64) {
	c.mu.RLock()
	v, ok := c.items[id]
	epoch := c.epoch
	c.mu.RUnlock()
	return v, ok, epoch
}

func (c *recordCache[T]) fill(id string, v T, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	if len(c.items) >= c.max {
		// Evict an arbitrary tenth; map iteration order is unspecified.
		n := c.max / 10
		for k := range c.items {
			if n--; n < 0 {
				break
			}
			delete(c.items, k)
		}
	}
	// The key may alias a request buffer (Fiber reuses them): own a copy.
	c.items[strings.Clone(id)] = v
}

// load returns the record under id, from the cache or else from db at key
// (filling the cache).
func (c *recordCache[T]) load(db kvGetter, key []byte, id string) (T, bool, error) {
	r, ok, epoch := c.get(id)
	if ok {
		return r, true, nil
	}
	ok, err := getJSON(db, key, &r)
	if ok && err == nil {
		c.fill(id, r, epoch)
	}
	return r, ok, err
}

func (c *recordCache[T]) invalidate(ids []string) {
	if len(ids) == 0 {
		return
	}
	c.mu.Lock()
	c.epoch++
	for _, id := range ids {
		delete(c.items, id)
	}
	c.mu.Unlock()
}

func (c *recordCache[T]) clear() {
	c.mu.Lock()
	c.epoch++
	c.items = make(map[string]T)
	c.mu.Unlock()
}

// Committer is implemented by projections that keep state outside the
// batch: the projector calls AfterCommit once a batch is durable and before
// readers waiting for it are woken, and AfterReset after a reset.
type Committer interface {
	AfterCommit()
	AfterReset()
}
