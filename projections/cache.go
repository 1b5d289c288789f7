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
	mu sync.RWMutex
	// items are shared: a record in the cache is never modified, a change
	// replaces it.
	items map[string]*T
	epoch uint64
	max   int
}

func newRecordCache[T any](max int) *recordCache[T] {
	return &recordCache[T]{items: make(map[string]*T), max: max}
}

// get returns a copy of the cached record and the epoch to pass to fill on
// a miss.
func (c *recordCache[T]) get(id string) (T, bool, uint64) {
	p, ok, epoch := c.getRef(id)
	if !ok {
		var zero T
		return zero, false, epoch
	}
	return *p, true, epoch
}

// getRef is get without the copy: the record must not be modified.
func (c *recordCache[T]) getRef(id string) (*T, bool, uint64) {
	c.mu.RLock()
	p, ok := c.items[id]
	epoch := c.epoch
	c.mu.RUnlock()
	return p, ok, epoch
}

func (c *recordCache[T]) fill(id string, v T, epoch uint64) { c.fillRef(id, &v, epoch) }

func (c *recordCache[T]) fillRef(id string, p *T, epoch uint64) {
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
	// The id may alias a request buffer (Fiber reuses them): own a copy.
	c.items[strings.Clone(id)] = p
}

// load returns the record under id, from the cache or else from db at key
// prefix+id (filling the cache).
func (c *recordCache[T]) load(db kvGetter, prefix, id string) (T, bool, error) {
	p, ok, err := c.loadRef(db, prefix, id)
	if !ok || err != nil {
		var zero T
		return zero, false, err
	}
	return *p, true, nil
}

// loadRef is load without a copy, for the request path: a hit allocates
// nothing. The record is shared and must not be modified.
func (c *recordCache[T]) loadRef(db kvGetter, prefix, id string) (*T, bool, error) {
	p, ok, epoch := c.getRef(id)
	if ok {
		return p, true, nil
	}
	p = new(T)
	ok, err := getJSON(db, []byte(prefix+id), p)
	if !ok || err != nil {
		return nil, false, err
	}
	c.fillRef(id, p, epoch)
	return p, true, nil
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
	c.items = make(map[string]*T)
	c.mu.Unlock()
}

// Committer is implemented by projections that keep state outside the
// batch: the projector calls AfterCommit once a batch is durable and before
// readers waiting for it are woken, and AfterReset after a reset.
type Committer interface {
	AfterCommit()
	AfterReset()
}
