package bench

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// Histogram records durations in log-linear buckets, HDR style: exact below
// 256 ns, then 128 buckets per power of two, so a reported percentile is
// within 0.4% of the recorded value (half a bucket). The zero value is
// ready; it is not safe for concurrent use (one per worker, then Merge).
type Histogram struct {
	counts   []uint64
	n        uint64
	min, max time.Duration
}

const (
	subBits    = 7
	subBuckets = 1 << subBits // per power of two
	exactBelow = 2 * subBuckets
	numBuckets = exactBelow + (64-subBits-1)*subBuckets
)

func bucketOf(v uint64) int {
	if v < exactBelow {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1)
	return exactBelow + (shift-1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketValue is the middle of bucket i.
func bucketValue(i int) uint64 {
	if i < exactBelow {
		return uint64(i)
	}
	shift := (i-exactBelow)/subBuckets + 1
	top := uint64((i-exactBelow)%subBuckets + subBuckets)
	return top<<shift + (uint64(1)<<shift)/2
}

// Record adds one duration; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// Count is how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 < q ≤ 1): the smallest recorded value
// with at least q of all values at or below it, to within half a bucket.
// The extremes are exact.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	if rank == h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			v := time.Duration(bucketValue(i))
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Quantile is the q-quantile of samples by the same rank rule as
// [Histogram.Quantile], exactly. It sorts samples in place.
func Quantile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(math.Ceil(q * float64(len(samples))))
	rank = min(max(rank, 1), len(samples))
	return samples[rank-1]
}
