package clickhouse

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/testrules"
)

// TestSlideTakesOffWhatItAdded: a row lands in a bucket after the bucket
// became final (later than the late window), and a read of other columns
// over that bucket (a leaf new in the grid) reads it along. The window sum
// that slides took the bucket's old counts in; when the bucket leaves the
// window it must take those off, not the counts read since: the group,
// which still has an event in the window, stays, with its count.
func TestSlideTakesOffWhatItAdded(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	row := func(at time.Time) map[string]any {
		return map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": "acme", "status": "ok", "latency_ms": 100}
	}
	// One event in bucket ts−3m … and one in the bucket after it; both
	// final at the first evaluation (late window 2m).
	now := ts.Add(5 * time.Second)
	src, insert := liveSource(t, &Incremental{Now: func() time.Time { return now }}, row(ts.Add(-230*time.Second)), row(ts.Add(-170*time.Second)))
	leaf := func(q string) *dsl.Leaf {
		t.Helper()
		e := testrules.Expr(t, q)
		return e.Leaves[0]
	}
	count := leaf(`count_over_time(events[5m])`)
	other := leaf(`count_over_time(events{status="error"}[5m])`)
	eval := func(at time.Time, leaves ...*dsl.Leaf) float64 {
		t.Helper()
		res, err := src.EvalLeaves(context.Background(), at, leaves)
		if err != nil {
			t.Fatal(err)
		}
		if p := res.Paths[0]; p.Path != "incremental" {
			t.Fatalf("at %s: path %+v, want incremental", at.Format(time.TimeOnly), p)
		}
		if v := res.Vectors[0]; len(v) == 1 {
			return v[0].Value
		}
		return 0
	}
	if got := eval(ts, count); got != 2 {
		t.Fatalf("first evaluation: %v events, want 2", got)
	}
	// A row of the first bucket, 4m after its end: the bucket was final.
	insert(row(ts.Add(-229 * time.Second)))
	now = ts.Add(65 * time.Second)
	if got := eval(ts.Add(time.Minute), count, other); got < 2 || got > 3 {
		t.Fatalf("second evaluation: %v events, want 2 (or 3 with the late row)", got)
	}
	// The first bucket leaves the window; the event of the second is in it.
	now = ts.Add(125 * time.Second)
	if got := eval(ts.Add(2*time.Minute), count); got != 1 {
		t.Fatalf("third evaluation: %v events, want 1 (the group's events left, not the one still in the window)", got)
	}
}

// liveSource creates an events table with rows on the shared server and
// returns an incremental source over it, and a function that adds rows.
func liveSource(t *testing.T, inc *Incremental, rows ...map[string]any) (*Source, func(rows ...map[string]any)) {
	t.Helper()
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", dsl.DefaultSchema()))
	insert := func(rows ...map[string]any) {
		t.Helper()
		s.InsertJSONEachRow(t, db, "events", rows)
	}
	if len(rows) > 0 {
		insert(rows...)
	}
	if inc.FillSettle == 0 {
		inc.FillSettle = -1
	}
	src, err := New(Options{Conn: NewNativeConn(s.Conn(t, db)), Table: db + ".events", Columns: EventsColumns(dsl.DefaultSchema()), Incremental: inc})
	if err != nil {
		t.Fatal(err)
	}
	return src, insert
}

// TestRunSumOverflowsLikeTheWindowSum: finite bucket sums whose total is
// beyond float64 make the window's sum +Inf, as summing its buckets does,
// not NaN (a compensation of ∞ − ∞); and the run is summed again from the
// grid at the next evaluation, so the sum is finite again once the bucket
// leaves, not +Inf until the run's 60th step.
func TestRunSumOverflowsLikeTheWindowSum(t *testing.T) {
	e := testrules.Expr(t, `sum_over_time(cost[5m])`)
	il := incLeaf{l: e.Leaves[0], parts: []leafSlots{{dsl.PartialCount, []int{0}}, {dsl.PartialSum, []int{1}}}, count: 0}
	b := &gridBucket{groups: map[string]*gridGroup{"": {v: []float64{1, math.MaxFloat64}}}}
	r := &runState{groups: map[string]*runGroup{}}
	for range 2 {
		r.fold(b, &il, il.l.Partials(), 1)
	}
	rg := r.groups[""]
	if got := rg.st.Sum + rg.comp; !math.IsInf(got, 1) {
		t.Fatalf("sum %v, want +Inf", got)
	}
	if r.steps < maxRunSteps {
		t.Fatalf("steps %d: the run is not summed again after it overflowed", r.steps)
	}
}

// TestSlideEqualsFoldingTheWindow steps the running sums of three leaves
// (a count, a sum of large values that cancel, exact in float64, and a
// count at or below a threshold), and a maximum, which folds the grid's
// hour and ten-bucket blocks instead of sliding, through a random walk of evaluation times — steps of one
// bucket, gaps, steps back, jumps past the window, buckets that become
// final late, groups that come and go, buckets evicted and read again —
// and checks at every step that each leaf's window equals its buckets
// folded one by one.
func TestSlideEqualsFoldingTheWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const window = 90 // buckets
	var leaves []incLeaf
	for _, q := range []string{`sum by (tenant_id) (count_over_time(events[90m]))`, `sum by (tenant_id) (sum_over_time(cost[90m]))`,
		`sum by (tenant_id) (count_le_over_time(latency_ms[90m], 100))`, `max by (tenant_id) (max_over_time(latency_ms[90m]))`} {
		e := testrules.Expr(t, q)
		l := e.Leaves[0]
		if slides(l) != (l.Agg != dsl.AggMax) {
			t.Fatalf("%s: slides is %v", q, slides(l))
		}
		il := incLeaf{l: l, key: l.Key(), count: 0}
		for _, p := range l.Partials() {
			il.parts = append(il.parts, leafSlots{p, []int{map[dsl.Partial]int{dsl.PartialCount: 0, dsl.PartialSum: 1, dsl.PartialAtOrBelow: 2, dsl.PartialMax: 3}[p]}})
		}
		leaves = append(leaves, il)
	}
	g := &grid{width: 60, cols: make([]gridColumn, 4), buckets: map[int64]*gridBucket{}, blocks: newBlocks(),
		cold: map[string]*coldState{}, runs: map[string]*runState{}, span: window + 1}
	// truth holds each bucket as a read gives it: a final bucket's never
	// changes.
	truth := map[int64]map[string][]float64{}
	final := map[int64]bool{}
	bucket := func(k int64) map[string][]float64 {
		if b, ok := truth[k]; ok && final[k] {
			return b
		}
		b := map[string][]float64{}
		for _, tenant := range []string{"a", "b", "c"} {
			if rng.IntN(3) == 0 {
				continue
			}
			n := float64(1 + rng.IntN(3))
			sum := 0.0
			for range int(n) {
				sum += []float64{1e12, -1e12, 0.5, 0.75, 3}[rng.IntN(5)] // sums exact in float64: the window's too
			}
			b[tenant] = []float64{n, sum, float64(rng.IntN(int(n) + 1)), float64(rng.IntN(1000))}
		}
		truth[k] = b
		return b
	}
	read := func(k int64, isFinal bool) {
		if b := g.buckets[k]; b.finalFor([]int{0, 1, 2, 3}) {
			return
		}
		gb := &gridBucket{groups: map[string]*gridGroup{}}
		gb.grow(4)
		for key, v := range bucket(k) {
			gb.groups[key] = &gridGroup{values: []string{key}, v: slices.Clone(v)}
		}
		isFinal = isFinal || final[k] // read again after it was evicted
		for sl := range 4 {
			gb.final[sl] = isFinal
		}
		final[k] = isFinal
		g.buckets[k] = gb
	}
	last := int64(1000)
	for step := range 3000 {
		switch rng.IntN(20) {
		case 0:
			last -= int64(1 + rng.IntN(5)) // back
		case 1:
			last += int64(2 + rng.IntN(10)) // a gap
		case 2:
			last += int64(window + rng.IntN(100)) // past the window
		default:
			last++
		}
		finalUpTo := last - 2
		if rng.IntN(10) == 0 {
			finalUpTo -= int64(rng.IntN(5)) // a slow read: buckets final late
		}
		for k := last - window + 1; k <= last; k++ {
			read(k, k <= finalUpTo)
		}
		g.last = max(g.last, last)
		for _, il := range leaves {
			il.first, il.lastBucket = last-window+1, last
			got := map[string]float64{}
			for _, s := range g.merge(il) {
				got[s.Labels.String()] = s.Value
			}
			acc := windowAcc{}
			for k := il.first; k <= il.lastBucket; k++ {
				acc.fold(g.buckets[k], &il, il.l.Partials())
			}
			want := map[string]float64{}
			for _, s := range acc.samples(il.l) {
				want[s.Labels.String()] = s.Value
			}
			if len(got) != len(want) {
				t.Fatalf("step %d (last %d), %s: %v, want %v", step, last, il.l.Func, got, want)
			}
			for k, w := range want {
				if v, ok := got[k]; !ok || v != w || math.Signbit(v) != math.Signbit(w) {
					t.Fatalf("step %d (last %d), %s: %v, want %v", step, last, il.l.Func, got, want)
				}
			}
		}
		g.evict()
	}
}
