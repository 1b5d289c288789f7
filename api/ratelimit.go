package api

import (
	"math"
	"sync"
	"time"
)

// rateLimiter enforces each token's requests-per-window on this node with a
// sliding window estimated from the current and previous fixed windows.
type rateLimiter struct {
	shards [64]rateShard
}

type rateShard struct {
	mu      sync.Mutex
	windows map[string]*rateWindow
}

// rateWindow is one token's state: kept for every active token, so small
// (times as Unix nanoseconds).
type rateWindow struct {
	start     int64
	cur, prev int64
	window    time.Duration
	lastSeen  int64
}

// rateState is what a caller is told about its rate limit.
type rateState struct {
	Limit     int64 `json:"limit"`
	Remaining int64 `json:"remaining"`
	// Reset is the number of seconds until the window frees capacity.
	Reset int64 `json:"reset"`
	// Window is the policy's window in seconds.
	Window int64 `json:"-"`
}

func newRateLimiter() *rateLimiter {
	r := &rateLimiter{}
	for i := range r.shards {
		r.shards[i].windows = make(map[string]*rateWindow)
	}
	return r
}

func (r *rateLimiter) shard(key string) *rateShard {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &r.shards[h%uint32(len(r.shards))]
}

// allow counts one request against key's limit per window and reports
// whether it may proceed.
func (r *rateLimiter) allow(key string, limit, windowSecs int64, now time.Time) (bool, rateState) {
	window := time.Duration(windowSecs) * time.Second
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[key]
	if w == nil || w.window != window {
		w = &rateWindow{start: now.Truncate(window).UnixNano(), window: window}
		s.windows[key] = w
		if len(s.windows) > 10_000 {
			s.evictLocked(now)
		}
	}
	w.lastSeen = now.UnixNano()
	start := time.Unix(0, w.start)
	switch elapsed := now.Sub(start); {
	case elapsed >= 2*window:
		start, w.cur, w.prev = now.Truncate(window), 0, 0
	case elapsed >= window:
		start, w.prev, w.cur = start.Add(window), w.cur, 0
	}
	w.start = start.UnixNano()
	// Weight of the previous window still inside the sliding window.
	frac := 1 - float64(now.Sub(start))/float64(window)
	used := w.cur + int64(math.Ceil(float64(w.prev)*frac))
	reset := int64(math.Ceil(start.Add(window).Sub(now).Seconds()))
	st := rateState{Limit: limit, Reset: max(reset, 1), Window: windowSecs}
	if used >= limit {
		return false, st
	}
	w.cur++
	st.Remaining = limit - used - 1
	return true, st
}

func (s *rateShard) evictLocked(now time.Time) {
	for k, w := range s.windows {
		if now.UnixNano()-w.lastSeen > int64(2*w.window) {
			delete(s.windows, k)
		}
	}
}

// exceeded reports, without counting anything, whether key has used up
// limit in the sliding window: what a throttle checks before it lets a
// request try.
func (r *rateLimiter) exceeded(key string, limit, windowSecs int64, now time.Time) (bool, rateState) {
	window := time.Duration(windowSecs) * time.Second
	s := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.windows[key]
	if w == nil || w.window != window {
		return false, rateState{Limit: limit, Remaining: limit, Reset: windowSecs, Window: windowSecs}
	}
	start, cur, prev := time.Unix(0, w.start), w.cur, w.prev
	switch elapsed := now.Sub(start); {
	case elapsed >= 2*window:
		start, cur, prev = now.Truncate(window), 0, 0
	case elapsed >= window:
		start, prev, cur = start.Add(window), cur, 0
	}
	frac := 1 - float64(now.Sub(start))/float64(window)
	used := cur + int64(math.Ceil(float64(prev)*frac))
	reset := max(int64(math.Ceil(start.Add(window).Sub(now).Seconds())), 1)
	return used >= limit, rateState{Limit: limit, Remaining: max(limit-used, 0), Reset: reset, Window: windowSecs}
}
