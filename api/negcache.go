package api

import (
	"strings"
	"sync"
	"time"
)

// negativeCache remembers ids known not to exist, for a short time. Token
// ids are random, so an id nobody has issued cannot start existing by
// guesswork; the TTL only bounds memory and staleness.
type negativeCache struct {
	mu    sync.Mutex
	items map[string]time.Time
	max   int
	ttl   time.Duration
}

func newNegativeCache(max int, ttl time.Duration) *negativeCache {
	return &negativeCache{items: make(map[string]time.Time), max: max, ttl: ttl}
}

func (n *negativeCache) has(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.items[id]
	if ok && time.Now().After(exp) {
		delete(n.items, id)
		return false
	}
	return ok
}

func (n *negativeCache) add(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.items) >= n.max {
		now := time.Now()
		for k, exp := range n.items {
			if now.After(exp) || len(n.items) >= n.max {
				delete(n.items, k)
			}
		}
	}
	n.items[strings.Clone(id)] = time.Now().Add(n.ttl) // id may alias a request buffer
}
