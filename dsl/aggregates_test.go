package dsl

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestEveryAggregateIsDescribedOnce: the table has one entry per Agg, at
// its index, each with a finish and the count among its partials, and every
// range function's aggregate is in it.
func TestEveryAggregateIsDescribedOnce(t *testing.T) {
	for i, a := range Aggregates() {
		if int(a.Agg) != i {
			t.Errorf("entry %d describes %s", i, a.Agg)
		}
		if a.Finish == nil || len(a.Partials) == 0 || a.Partials[0] != PartialCount {
			t.Errorf("%s: a finish and the count first are required", a.Agg)
		}
	}
	if len(Aggregates()) != len(aggNames) {
		t.Errorf("%d aggregates described, %d declared", len(Aggregates()), len(aggNames))
	}
	if err := CheckBackend("everything", func(Partial) bool { return true }); err != nil {
		t.Error(err)
	}
	if err := CheckBackend("nothing", func(p Partial) bool { return p != PartialValues }); err == nil {
		t.Error("a backend without value counts passed the check")
	}
}

// TestMergeAndRemoveAreInverse: merging the states of parts equals the
// state of the whole, and removing a part leaves the state of the rest, for
// every partial (moments within 1e-9 relative); quantiles read from value
// counts equal the element at ⌊φ·n⌋ of the sorted values.
func TestMergeAndRemoveAreInverse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	all := []Partial{PartialCount, PartialSum, PartialMoments, PartialMin, PartialMax, PartialValues, PartialAtOrBelow}
	const le = 10 // the threshold of PartialAtOrBelow: a value of 10 is at it
	for round := range 200 {
		n := 1 + rng.IntN(50)
		vals := make([]float64, n)
		for i := range vals {
			vals[i] = float64(rng.IntN(20)) + 1e6*float64(round%2)
		}
		cut := rng.IntN(n)
		var whole, a, b State
		for i, v := range vals {
			whole.Add(v, all, le)
			if i < cut {
				a.Add(v, all, le)
			} else {
				b.Add(v, all, le)
			}
		}
		whole.Values, a.Values, b.Values = SortValues(whole.Values), SortValues(a.Values), SortValues(b.Values)
		merged := a
		merged.Values = slices.Clone(a.Values)
		merged.Merge(&b, all)
		near := func(what string, x, y float64) {
			if math.Abs(x-y) > 1e-9*math.Max(1, math.Abs(y)) {
				t.Fatalf("round %d: %s = %v, want %v", round, what, x, y)
			}
		}
		// M2 is a difference of quantities of the order of mean²·n: its
		// error is float64's epsilon times that, not times M2.
		nearM2 := func(what string, x, y float64, st State) {
			if math.Abs(x-y) > 1e-9*math.Abs(y)+1e-14*st.Mean*st.Mean*st.Count {
				t.Fatalf("round %d: %s = %v, want %v", round, what, x, y)
			}
		}
		near("merged count", merged.Count, whole.Count)
		near("merged sum", merged.Sum, whole.Sum)
		near("merged mean", merged.Mean, whole.Mean)
		nearM2("merged M2", merged.M2, whole.M2, whole)
		near("merged min", merged.Min, whole.Min)
		near("merged max", merged.Max, whole.Max)
		near("merged count at or below", merged.AtOrBelow, whole.AtOrBelow)
		if !slices.Equal(merged.Values, whole.Values) {
			t.Fatalf("round %d: merged values %v, want %v", round, merged.Values, whole.Values)
		}
		rest := whole
		rest.Values = slices.Clone(whole.Values)
		rest.Remove(&a, all)
		if b.Count > 0 {
			near("rest count", rest.Count, b.Count)
			near("rest sum", rest.Sum, b.Sum)
			near("rest mean", rest.Mean, b.Mean)
			nearM2("rest M2", rest.M2, b.M2, whole)
			near("rest count at or below", rest.AtOrBelow, b.AtOrBelow)
			if !slices.Equal(rest.Values, b.Values) {
				t.Fatalf("round %d: rest values %v, want %v", round, rest.Values, b.Values)
			}
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		for _, phi := range []float64{0, 0.25, 0.5, 0.51, 0.75, 0.9, 0.95, 0.99, 0.999, 1} {
			want := sorted[min(int(math.Floor(phi*float64(n))), n-1)]
			if got := QuantileOfValues(phi, whole.Values); got != want {
				t.Fatalf("round %d: quantile %v = %v, want %v", round, phi, got, want)
			}
		}
	}
}

// TestStddevBelowResolutionIsZero: moments merged and taken apart leave
// float64 noise where the spread is 0; every path reads that as 0, and a
// real spread of 3e-7 of the mean (1e6 ± 0.29) is kept.
func TestStddevBelowResolutionIsZero(t *testing.T) {
	leaf := &Leaf{Agg: AggStddev}
	// The noise a merge leaves where the spread is 0: M2 of a few ε·mean²
	// per value (the 1.26e-6 a differential seed once found).
	merged := State{Count: 1000, Mean: 10000.1}
	merged.M2 = merged.Count * 16 * 0x1p-52 * merged.Mean * merged.Mean
	if got := Aggregates()[AggStddev].Finish(&merged, leaf); got != 0 {
		t.Errorf("stddev of one repeated value after merge and removal = %g, want 0", got)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var hard State
	for range 5000 {
		hard.Add(1e6+rng.Float64(), []Partial{PartialCount, PartialMoments}, 0)
	}
	if got := Aggregates()[AggStddev].Finish(&hard, leaf); math.Abs(got-0.2887) > 0.01 {
		t.Errorf("stddev of 1e6 + U(0,1) = %g, want about 0.2887", got)
	}
}

// TestStddevAfterRemovingTheSpreadIsZero: a window whose wide values left
// it, taken off a state read over the whole window, leaves M2 noise of ε
// times the moments taken off, far above ε·mean² (a differential seed
// found 0.00055 where the remaining values were all equal). The noise
// bound makes it 0, and a real spread left afterwards still shows.
func TestStddevAfterRemovingTheSpreadIsZero(t *testing.T) {
	ps := []Partial{PartialCount, PartialMoments}
	leaf := &Leaf{Agg: AggStddev}
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		var wide, flat, all State
		for range 1 + rng.IntN(50) {
			v := math.Round(rng.Float64() * 60000)
			wide.Add(v, ps, 0)
			all.Add(v, ps, 0)
		}
		flatValue := math.Round(rng.Float64() * 3000)
		for range 1 + rng.IntN(20) {
			flat.Add(flatValue, ps, 0)
			all.Add(flatValue, ps, 0)
		}
		all.Remove(&wide, ps)
		if got := leaf.Finish(&all); got != 0 {
			t.Fatalf("trial %d: stddev of %g repeated, after the wide values left = %g, want 0", trial, flatValue, got)
		}
		// Integer values that differ by 1 have a variance of at least
		// (n−1)/n², far above the noise: it must show.
		var spread State
		spread.Merge(&all, ps)
		spread.Add(flatValue+1, ps, 0)
		if got := leaf.Finish(&spread); got == 0 {
			t.Fatalf("trial %d: a spread of 1 after the removal reads as stddev 0", trial)
		}
	}
}

// TestCountAtOrBelowAndAbove: count_le_over_time counts the values at or
// below its threshold (the boundary included) and count_gt_over_time the
// others; a group whose values are all above reads 0, not absent; the
// threshold is part of the leaf's key, so two thresholds are two leaves.
func TestCountAtOrBelowAndAbove(t *testing.T) {
	e, err := Parse(`count_le_over_time(latency_ms[5m], 2000) + count_gt_over_time(latency_ms[5m], 2000) + count_le_over_time(latency_ms[5m], 2000.5) + count_le_over_time(latency_ms[5m], -1)`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Leaves) != 4 {
		t.Fatalf("%d leaves, want 4 (one per function and threshold)", len(e.Leaves))
	}
	le, gt, half, neg := e.Leaves[0], e.Leaves[1], e.Leaves[2], e.Leaves[3]
	if le.Agg != AggCountLE || gt.Agg != AggCountGT || le.Threshold != 2000 || half.Threshold != 2000.5 || neg.Threshold != -1 {
		t.Fatalf("leaves %+v %+v %+v %+v", le, gt, half, neg)
	}
	for _, tc := range []struct {
		values                     []float64
		le, gt, leHalf, leNegative float64
	}{
		{[]float64{0, 1999, 2000, 2000, 2000.5, 2001, 5000}, 4, 3, 5, 0},
		// Every value above the threshold: the group is there, with 0.
		{[]float64{2001, 9000}, 0, 2, 0, 0},
		// A missing number reads 0: at or below any threshold ≥ 0.
		{[]float64{0}, 1, 0, 1, 0},
	} {
		for _, c := range []struct {
			leaf *Leaf
			want float64
		}{{le, tc.le}, {gt, tc.gt}, {half, tc.leHalf}, {neg, tc.leNegative}} {
			var st State
			for _, v := range tc.values {
				st.Add(v, c.leaf.Partials(), c.leaf.Threshold)
			}
			if got := c.leaf.Finish(&st); got != c.want {
				t.Errorf("%s(%v) with threshold %v = %v, want %v", c.leaf.Func, tc.values, c.leaf.Threshold, got, c.want)
			}
		}
	}
}
