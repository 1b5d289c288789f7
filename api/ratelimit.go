package api

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// rateLimiter enforces each token's requests-per-window on this node with a
// sliding window estimated from the current and previous fixed windows.
// Its state is kept for every active token, so it is small: windows are
// stored by value under a 64-bit hash of the key (seeded per process; two
// keys sharing a window is a 2^-64 event per pair).
type rateLimiter struct {
	seed   maphash.Seed
	shards [64]rateShard
}

type rateShard struct {
	mu      sync.Mutex
	windows map[uint64]rateWindow
	// sweepAt is the size at which idle windows are swept next: twice what
	// the last sweep left, so sweeping stays linear however many tokens
	// are active.
	sweepAt int
}

// rateWindow is 16 bytes: the current window's start (seconds since
// rateEpoch; windows are whole seconds), the counts of the current and
// previous windows (limits are at most 10^9) and the window in seconds (at
// most 86400).
type rateWindow struct {
	start           uint32
	cur, prev, secs int32
}

// rateEpoch is 2020-01-01T00:00:00Z: window starts fit 32 bits until 2156.
// A clock before it (never a real one) counts as that instant.
const rateEpoch = 1577836800

func rateStart(t time.Time) uint32 { return uint32(max(t.Unix()-rateEpoch, 0)) }

func (w *rateWindow) startTime() time.Time { return time.Unix(int64(w.start)+rateEpoch, 0) }

// rateState is what a caller is told about its rate limit.
type rateState struct {
	Limit     int64 `json:"limit"`
	Remaining int64 `json:"remaining"`
	// Reset is the number of seconds until the window frees capacity: for
	// a refused request, until one more would be let in.
	Reset int64 `json:"reset"`
	// Window is the policy's window in seconds.
	Window int64 `json:"-"`
}

func newRateLimiter() *rateLimiter {
	r := &rateLimiter{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].windows = make(map[uint64]rateWindow)
	}
	return r
}

func (r *rateLimiter) shard(key string) (*rateShard, uint64) {
	h := maphash.String(r.seed, key)
	return &r.shards[h>>58], h
}

// roll moves w to the window holding now and returns the requests counted
// in the sliding window ending at now and the seconds until it frees
// capacity.
func (w *rateWindow) roll(now time.Time) (used, reset int64) {
	window := time.Duration(w.secs) * time.Second
	start := w.startTime()
	switch elapsed := now.Sub(start); {
	case elapsed >= 2*window:
		start, w.cur, w.prev = now.Truncate(window), 0, 0
	case elapsed >= window:
		start, w.prev, w.cur = start.Add(window), w.cur, 0
	}
	w.start = rateStart(start)
	// Weight of the previous window still inside the sliding window.
	frac := 1 - float64(now.Sub(start))/float64(window)
	used = int64(w.cur) + int64(math.Ceil(float64(w.prev)*frac))
	reset = max(int64(math.Ceil(start.Add(window).Sub(now).Seconds())), 1)
	return used, reset
}

// freesIn is how many seconds from now pass, if nothing more is counted,
// until the sliding window has room for a request: the previous window's
// weight fades as time passes, and at the next boundary the current window
// becomes the previous one. A client that waits this long is let in; the
// end of the fixed window can be too early. w must be rolled to now.
func (w *rateWindow) freesIn(now time.Time, limit int64) int64 {
	window := time.Duration(w.secs) * time.Second
	start := w.startTime()
	cur, prev := int64(w.cur), int64(w.prev)
	// Room needs ceil(n·f) ≤ k, i.e. f ≤ k/n, where f is the weight left to
	// the older window: in this window n = prev, k = limit-cur-1; in the
	// next one n = cur, k = limit-1.
	at := start.Add(2 * window)
	switch {
	case cur < limit && prev > 0:
		at = start.Add(time.Duration((1 - float64(limit-cur-1)/float64(prev)) * float64(window)))
	case cur > 0:
		at = start.Add(window).Add(time.Duration((1 - float64(limit-1)/float64(cur)) * float64(window)))
	}
	secs := max(int64(math.Ceil(at.Sub(now).Seconds())), 1)
	// Rounding of the fractions must not make the answer one second early.
	for range 2 {
		c := *w
		if used, _ := c.roll(now.Add(time.Duration(secs) * time.Second)); used < limit {
			break
		}
		secs++
	}
	return secs
}

// allow counts one request against key's limit per window and reports
// whether it may proceed.
func (r *rateLimiter) allow(key string, limit, windowSecs int64, now time.Time) (bool, rateState) {
	s, h := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.windows[h]
	if !ok || int64(w.secs) != windowSecs {
		w = rateWindow{start: rateStart(now.Truncate(time.Duration(windowSecs) * time.Second)), secs: int32(windowSecs)}
		if len(s.windows) >= max(s.sweepAt, 10_000) {
			s.evictLocked(now)
			s.sweepAt = 2 * len(s.windows)
		}
	}
	used, reset := w.roll(now)
	st := rateState{Limit: limit, Reset: reset, Window: windowSecs}
	if used < limit {
		w.cur++
		st.Remaining = limit - used - 1
	} else {
		st.Reset = w.freesIn(now, limit)
	}
	s.windows[h] = w
	return used < limit, st
}

// evictLocked drops windows unused for two windows: their counts are 0.
func (s *rateShard) evictLocked(now time.Time) {
	for k, w := range s.windows {
		if now.Unix()-(int64(w.start)+rateEpoch) > 3*int64(w.secs) {
			delete(s.windows, k)
		}
	}
}

// exceeded reports, without counting anything, whether key has used up
// limit in the sliding window: what a throttle checks before it lets a
// request try.
func (r *rateLimiter) exceeded(key string, limit, windowSecs int64, now time.Time) (bool, rateState) {
	s, h := r.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.windows[h]
	if !ok || int64(w.secs) != windowSecs {
		return false, rateState{Limit: limit, Remaining: limit, Reset: windowSecs, Window: windowSecs}
	}
	used, reset := w.roll(now) // on a copy: nothing is counted
	if used >= limit {
		reset = w.freesIn(now, limit)
	}
	return used >= limit, rateState{Limit: limit, Remaining: max(limit-used, 0), Reset: reset, Window: windowSecs}
}
