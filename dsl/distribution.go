package dsl

import (
	"math"
	"slices"
)

// Distribution is one group's value counts as a sliding window keeps them:
// a step adds the entering buckets' counts and takes the leaving ones off
// in time that grows with the step's values, not with the window's, and a
// quantile is found by skipping whole chunks of values by their sums.
//
//   - vals is sorted by value. A value whose count drops to 0 stays, with
//     count 0, until the next compaction; the walk passes over it.
//   - sums holds the sum of counts of each chunk of distChunk values.
//   - extra holds, sorted, the values that are not in vals yet; it is
//     merged into vals when it grows past maxExtra, or when a share of
//     vals are zeros.
//
// Counts are whole numbers (of events), so every sum is exact and the
// quantile is ClickHouse's quantileExact over the window, as
// QuantileOfValues gives it from the merged counts.
type Distribution struct {
	vals  []ValueCount
	sums  []float64
	extra []ValueCount
	total float64
	zeros int
}

const (
	distChunk = 64
	maxExtra  = 256
)

// NewDistribution returns the distribution of value counts sorted by value
// (SortValues), which it keeps.
func NewDistribution(sorted []ValueCount) *Distribution {
	d := &Distribution{vals: sorted}
	d.index()
	return d
}

// index recomputes the chunk sums, the total and the zeros of vals.
func (d *Distribution) index() {
	d.sums = d.sums[:0]
	d.total, d.zeros = 0, 0
	for i, v := range d.vals {
		if i%distChunk == 0 {
			d.sums = append(d.sums, 0)
		}
		d.sums[len(d.sums)-1] += v.Count
		d.total += v.Count
		if v.Count == 0 {
			d.zeros++
		}
	}
	for _, v := range d.extra {
		d.total += v.Count
	}
}

// Apply adds delta, value counts sorted by value with one net count per
// value (SortValues), to the distribution: a negative count takes events
// off. A value whose count would drop below zero drops to zero, as
// MergeValues leaves it out.
func (d *Distribution) Apply(delta []ValueCount) { d.apply(delta, 1) }

// TakeOff takes counts (sorted, as Apply's delta) off the distribution.
func (d *Distribution) TakeOff(counts []ValueCount) { d.apply(counts, -1) }

// apply adds sign × delta.
func (d *Distribution) apply(delta []ValueCount, sign float64) {
	at, last := 0, math.Inf(-1)
	for _, dv := range delta {
		dv.Count *= sign
		if dv.Count == 0 {
			continue
		}
		if !(dv.Value >= last) {
			at = 0 // not sorted after all: search from the start
		}
		last = dv.Value
		i, ok := searchFrom(d.vals, at, dv.Value)
		at = i
		if ok {
			old := d.vals[i].Count
			c := max(old+dv.Count, 0)
			d.vals[i].Count = c
			d.sums[i/distChunk] += c - old
			d.total += c - old
			switch {
			case old > 0 && c == 0:
				d.zeros++
			case old == 0 && c > 0:
				d.zeros--
			}
			continue
		}
		j, ok := slices.BinarySearchFunc(d.extra, dv.Value, byValue)
		switch {
		case ok:
			old := d.extra[j].Count
			c := max(old+dv.Count, 0)
			d.total += c - old
			if c == 0 {
				d.extra = slices.Delete(d.extra, j, j+1)
			} else {
				d.extra[j].Count = c
			}
		case dv.Count > 0:
			d.extra = slices.Insert(d.extra, j, dv)
			d.total += dv.Count
		}
	}
	if len(d.extra) > maxExtra || d.zeros > len(d.vals)/8+distChunk {
		d.compact()
	}
}

// searchFrom returns where x is, or would be, in vs (sorted by value), at
// or after index from, below which every value is less than x: a galloping
// search, so a sorted delta costs about log(gap) per value, not log(len).
func searchFrom(vs []ValueCount, from int, x float64) (int, bool) {
	lo, hi, step := from, from, 1
	for hi < len(vs) && vs[hi].Value < x {
		lo = hi + 1
		hi += step
		step *= 2
	}
	i, ok := slices.BinarySearchFunc(vs[lo:min(hi+1, len(vs))], x, byValue)
	return lo + i, ok
}

func byValue(v ValueCount, x float64) int {
	switch {
	case v.Value < x:
		return -1
	case v.Value > x:
		return 1
	}
	return 0
}

// compact merges extra into vals and drops the zeros (MergeValuesInto
// keeps a value of vals that extra lacks as it is, zero or not).
func (d *Distribution) compact() {
	out := make([]ValueCount, 0, len(d.vals)-d.zeros+len(d.extra))
	live := slices.DeleteFunc(d.vals, func(v ValueCount) bool { return v.Count == 0 })
	d.vals = MergeValuesInto(out, live, d.extra, 1)
	d.extra = d.extra[:0]
	d.index()
}

// Count returns the number of events.
func (d *Distribution) Count() float64 { return d.total }

// Distinct returns the number of distinct values with events.
func (d *Distribution) Distinct() int { return len(d.vals) - d.zeros + len(d.extra) }

// Size returns the number of value counts held, zeros included: the
// memory it takes is 16 bytes each.
func (d *Distribution) Size() int { return cap(d.vals) + cap(d.extra) }

// Quantile is QuantileOfValues over the distribution: it skips whole chunks
// by their sums, and walks the chunk that holds the value with extra.
func (d *Distribution) Quantile(phi float64) float64 {
	n := d.total
	if n == 0 {
		return math.NaN()
	}
	k := math.Min(math.Floor(phi*n), n-1)
	small := d.extra
	var seen float64
	j := 0
	for c, sum := range d.sums {
		lo, hi := c*distChunk, min((c+1)*distChunk, len(d.vals))
		top := d.vals[hi-1].Value
		end := j
		for end < len(small) && small[end].Value <= top {
			sum += small[end].Count
			end++
		}
		if seen+sum <= k {
			seen += sum
			j = end
			continue
		}
		// The k-th value is in this chunk: walk it with extra's
		// values up to its top.
		i := lo
		for i < hi || j < end {
			var v, cnt float64
			switch {
			case j == end || (i < hi && d.vals[i].Value < small[j].Value):
				v, cnt = d.vals[i].Value, d.vals[i].Count
				i++
			case i == hi || small[j].Value < d.vals[i].Value:
				v, cnt = small[j].Value, small[j].Count
				j++
			default:
				v, cnt = d.vals[i].Value, d.vals[i].Count+small[j].Count
				i, j = i+1, j+1
			}
			if seen += cnt; seen > k {
				return v
			}
		}
	}
	for ; j < len(small); j++ {
		if seen += small[j].Count; seen > k {
			return small[j].Value
		}
	}
	return math.NaN() // not reached: seen reaches n > k
}
