package dsl

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDistributionSlidesLikeMergedCounts steps a Distribution through
// thousands of random deltas — values entering and leaving, new values,
// counts taken below zero, compactions — and checks at every step that its
// count, its distinct values and its quantiles (p999 included, with and
// without a second run) are exactly those of the counts merged plainly
// (MergeValues, QuantileOfValues).
func TestDistributionSlidesLikeMergedCounts(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		rng := rand.New(rand.NewPCG(seed, seed))
		value := func() float64 {
			if rng.IntN(4) == 0 {
				return math.Round(rng.Float64()*1e6) / 1e3 // a float field
			}
			return math.Round(math.Exp(rng.NormFloat64()*1.2 + 6)) // latency_ms
		}
		var ref []ValueCount
		d := NewDistribution(nil)
		compactions := 0
		for step := 0; step < 1500; step++ {
			var delta []ValueCount
			for range rng.IntN(40) {
				delta = append(delta, ValueCount{Value: value(), Count: float64(1 + rng.IntN(3))})
			}
			// Take off some of what is there, and now and then more.
			for range rng.IntN(40) {
				if len(ref) == 0 {
					break
				}
				v := ref[rng.IntN(len(ref))]
				c := math.Ceil(v.Count * rng.Float64())
				if rng.IntN(20) == 0 {
					c = v.Count + 2
				}
				delta = append(delta, ValueCount{Value: v.Value, Count: -c})
			}
			delta = SortValues(delta)
			ref = MergeValues(ref, delta, 1)
			before := len(d.extra)
			d.Apply(delta)
			if len(d.extra) < before {
				compactions++
			}

			var n float64
			for _, v := range ref {
				n += v.Count
			}
			if d.Count() != n || d.Distinct() != len(ref) {
				t.Fatalf("seed %d step %d: count %v distinct %d, want %v and %d", seed, step, d.Count(), d.Distinct(), n, len(ref))
			}
			for _, phi := range []float64{0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				got, want := d.Quantile(phi), QuantileOfValues(phi, ref)
				if got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
					t.Fatalf("seed %d step %d: quantile %v = %v, want %v", seed, step, phi, got, want)
				}
			}
		}
		if compactions == 0 {
			t.Fatalf("seed %d: no compaction happened; the test does not reach it", seed)
		}
	}
}

// TestQuantileFinishesADistribution checks that the quantile aggregate
// reads a State's Dist when it is set.
func TestQuantileFinishesADistribution(t *testing.T) {
	l := &Leaf{Agg: AggQuantile, Quantile: 0.5}
	st := State{Count: 4, Dist: NewDistribution([]ValueCount{{1, 1}, {5, 2}, {9, 1}})}
	if got := l.Finish(&st); got != 5 {
		t.Fatalf("median = %v, want 5", got)
	}
}

// TestDistributionCompactionDropsZeros slides a window over values that
// are new at every step (a floating-point cost): the values that left the
// window must be dropped when the distribution compacts, so it holds the
// window's values, not every value the window ever held, and a step does
// not compact a growing array again and again.
func TestDistributionCompactionDropsZeros(t *testing.T) {
	const window, perStep, steps = 1000, 50, 400
	d := NewDistribution(nil)
	var in []ValueCount // the window's values, oldest first
	next, compactions := 0.0, 0
	for range steps {
		var delta []ValueCount
		for range perStep {
			next++
			delta = append(delta, ValueCount{Value: next, Count: 1})
		}
		in = append(in, delta...)
		if len(in) > window {
			for _, v := range in[:len(in)-window] {
				delta = append(delta, ValueCount{Value: v.Value, Count: -1})
			}
			in = in[len(in)-window:]
		}
		d.Apply(SortValues(delta))
		if len(d.extra) == 0 { // each step brings new values: extra is empty only after a compaction
			compactions++
		}
	}
	if d.Distinct() != window || d.Count() != window {
		t.Fatalf("distinct %d, count %v; want %d", d.Distinct(), d.Count(), window)
	}
	if held := len(d.vals) + len(d.extra); held > 2*window {
		t.Errorf("the distribution holds %d value counts (%d zeros) for %d distinct values: the values that left are never dropped", held, d.zeros, window)
	}
	if compactions > steps/4 {
		t.Errorf("%d compactions in %d steps: each step compacts", compactions, steps)
	}
	if got, want := d.Quantile(0.5), QuantileOfValues(0.5, in); got != want {
		t.Errorf("median %v, want %v", got, want)
	}
}
