package api

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestRateLimiterSlidingWindow(t *testing.T) {
	r := newRateLimiter()
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		if ok, st := r.allow("tok_a", 10, 60, t0.Add(time.Duration(i)*time.Second)); !ok || st.Remaining != int64(9-i) {
			t.Fatalf("request %d: allowed %v, remaining %d", i+1, ok, st.Remaining)
		}
	}
	if over, _ := r.exceeded("tok_a", 10, 60, t0.Add(20*time.Second)); !over {
		t.Fatal("exceeded says there is room after 10 of 10")
	}
	// The fixed window ends in 40 s, but then its 10 requests still weigh
	// fully; 6 s into the next window they weigh 9.
	if ok, st := r.allow("tok_a", 10, 60, t0.Add(20*time.Second)); ok || st.Reset != 46 {
		t.Fatalf("11th request: allowed %v, reset %d (want refused, 46 s)", ok, st.Reset)
	}
	if ok, _ := r.allow("tok_b", 10, 60, t0.Add(20*time.Second)); !ok {
		t.Fatal("another key shares the window")
	}
	// Halfway into the next window half of the previous one still counts.
	if ok, st := r.allow("tok_a", 10, 60, t0.Add(90*time.Second)); !ok || st.Remaining != 4 {
		t.Fatalf("next window: allowed %v, remaining %d (want 4)", ok, st.Remaining)
	}
	// exceeded counts nothing.
	for i := 0; i < 100; i++ {
		r.exceeded("tok_c", 1, 60, t0)
	}
	if ok, _ := r.allow("tok_c", 1, 60, t0); !ok {
		t.Fatal("exceeded counted requests")
	}
	// A changed policy starts a new window.
	if ok, st := r.allow("tok_a", 1000, 3600, t0.Add(91*time.Second)); !ok || st.Remaining != 999 {
		t.Fatalf("new policy: allowed %v, remaining %d", ok, st.Remaining)
	}
}

// A refused caller that waits what Reset says is let in, and not a second
// earlier.
func TestRateLimiterResetIsWhenRoomFrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	refused := 0
	for round := 0; round < 300; round++ {
		r := newRateLimiter()
		limit, window := int64(1+rng.IntN(20)), int64(1+rng.IntN(120))
		now := t0.Add(time.Duration(rng.IntN(3600)) * time.Second)
		for i := 0; i < 100; i++ {
			now = now.Add(time.Duration(rng.Int64N(int64(window) * int64(time.Second) / max(limit/2, 1))))
			ok, st := r.allow("k", limit, window, now)
			if ok {
				continue
			}
			refused++
			after := now.Add(time.Duration(st.Reset) * time.Second)
			if over, _ := r.exceeded("k", limit, window, after); over {
				t.Fatalf("round %d (limit %d per %d s): refused at %s with reset %d, still full then", round, limit, window, now, st.Reset)
			}
			if st.Reset > 1 {
				if over, _ := r.exceeded("k", limit, window, after.Add(-time.Second)); !over {
					t.Fatalf("round %d (limit %d per %d s): refused at %s with reset %d, room a second earlier", round, limit, window, now, st.Reset)
				}
			}
			if over, st2 := r.exceeded("k", limit, window, now); !over || st2.Reset != st.Reset {
				t.Fatalf("exceeded disagrees: %v, reset %d vs %d", over, st2.Reset, st.Reset)
			}
		}
	}
	if refused < 1000 {
		t.Fatalf("only %d refusals: the workload does not exercise the limit", refused)
	}
	t.Logf("%d refusals checked", refused)
}

func TestRateLimiterSweepsOnlyIdleWindows(t *testing.T) {
	r := newRateLimiter()
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const n = 400_000 // twice that crosses a shard's sweep threshold of 10,000 on every shard
	for i := 0; i < n; i++ {
		r.allow(keyN(i), 1, 60, t0)
	}
	total := 0
	for i := range r.shards {
		total += len(r.shards[i].windows)
	}
	if total != n {
		t.Fatalf("%d windows kept of %d active keys", total, n)
	}
	for i := 0; i < n; i++ {
		if ok, _ := r.allow(keyN(i), 1, 60, t0.Add(time.Second)); ok {
			t.Fatalf("key %d lost its window", i)
		}
	}
	// Much later, new keys sweep the idle ones away.
	later := t0.Add(time.Hour)
	for i := n; i < 2*n; i++ {
		r.allow(keyN(i), 1, 60, later)
	}
	total = 0
	for i := range r.shards {
		total += len(r.shards[i].windows)
	}
	if total >= 2*n {
		t.Fatalf("idle windows never swept: %d kept", total)
	}
}

func keyN(i int) string { return "tok_" + itoa36(uint64(i)) }
