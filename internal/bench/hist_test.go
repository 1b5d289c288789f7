package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestQuantileExact(t *testing.T) {
	t.Parallel()
	samples := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- {
		samples = append(samples, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := Quantile(samples, tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := Quantile(nil, 0.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
	if got := Quantile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("one sample: %v", got)
	}
}

func TestBucketsRoundTrip(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 123456789, 1 << 40, 1<<63 - 1} {
		i := bucketOf(v)
		if i < prev || i >= numBuckets {
			t.Fatalf("bucket of %d = %d (previous %d, %d buckets)", v, i, prev, numBuckets)
		}
		prev = i
		mid := bucketValue(i)
		if diff := float64(mid) - float64(v); diff > float64(v)/200+0.5 || -diff > float64(v)/200+0.5 {
			t.Errorf("value %d in bucket %d reads back as %d", v, i, mid)
		}
	}
}

// The histogram's percentiles stay within 1% of the exact ones.
func TestHistogramMatchesExactQuantiles(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		draw func() time.Duration
	}{
		{"uniform 0-10ms", func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) }},
		{"exponential 200µs", func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(200*time.Microsecond)) }},
		{"bimodal", func() time.Duration {
			if rng.IntN(10) == 0 {
				return 50*time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
			}
			return 300*time.Microsecond + time.Duration(rng.Int64N(int64(50*time.Microsecond)))
		}},
		{"tiny", func() time.Duration { return time.Duration(rng.Int64N(600)) }},
	} {
		var parts [4]Histogram
		samples := make([]time.Duration, 20000)
		for i := range samples {
			samples[i] = dist.draw()
			parts[i%4].Record(samples[i])
		}
		var h Histogram
		for i := range parts {
			h.Merge(&parts[i])
		}
		if h.Count() != uint64(len(samples)) {
			t.Fatalf("%s: count %d", dist.name, h.Count())
		}
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
			exact, got := Quantile(samples, q), h.Quantile(q)
			if d := float64(got - exact); d > float64(exact)*0.01+1 || -d > float64(exact)*0.01+1 {
				t.Errorf("%s q%v: histogram %v, exact %v", dist.name, q, got, exact)
			}
		}
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Error("empty histogram")
	}
}
