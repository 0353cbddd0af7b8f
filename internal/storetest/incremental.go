package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/storetest/gen"
)

// IncrementalStepAfterStep runs, for each seed, the differential suite's
// events and expressions through the incremental path, step after step,
// while events arrive — some of them late, within the late-arrival window —
// and compares every leaf with the memory evaluator over the events that
// have arrived. Each step evaluates a random subset of the leaves in two
// calls (two rule groups at the same time), so columns appear, go unused
// and come back. A second Source with a budget of 4 distinct values per
// field sends some quantiles to the full path and keeps others on value
// counts, and agrees too. Steady steps must read only the new and the late
// buckets of each grouping. groupings, when not nil, counts the groupings a Source
// keeps partial aggregates for; without it the bound counts every grouping
// of the leaves, which is looser.
func IncrementalStepAfterStep(t *testing.T, conn clickhouse.ExecQuerier, db string, seeds []uint64, groupings func(*clickhouse.Source) int) {
	forEachSeed(t, seeds, func(t *testing.T, seed uint64) { incrementalSteps(t, conn, db, seed, groupings) })
}

func incrementalSteps(t *testing.T, conn clickhouse.ExecQuerier, db string, seed uint64, groupings func(*clickhouse.Source) int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x51ed2701))
	schema := dsl.DefaultSchema()
	data := gen.NewData(rng, schema)
	const (
		bucket = 10 * time.Second
		late   = 2 * time.Minute
	)
	// Arrival: most events at their time, a third up to the late window
	// after it.
	type arriving struct {
		ev memory.Event
		at time.Time
	}
	var pending []arriving
	for _, ev := range data.Events {
		at := ev.Time
		if rng.IntN(3) == 0 {
			at = at.Add(time.Duration(rng.Int64N(int64(late))))
		}
		pending = append(pending, arriving{ev, at})
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].at.Before(pending[j].at) })

	tb := newEventsTable(t, conn, fmt.Sprintf("%s.inc_events_%d", db, seed), nil)
	var now time.Time
	inc := tb.source(t, &clickhouse.Incremental{Bucket: bucket, LateWindow: late, Now: func() time.Time { return now }, FillSettle: -1})
	// tight keeps at most 4 distinct values of a field per group: most
	// quantile families go over it and take the full path, some stay. It
	// keeps its cold states (no background read of their buckets), so the
	// paths that take leaving buckets off and query extremes again run too.
	tight := tb.source(t, &clickhouse.Incremental{Bucket: bucket, LateWindow: late, Now: func() time.Time { return now }, MaxDistinctValues: 4, FillSettle: -1, KeepColdStates: true})
	overflowed := 0

	// The leaves of the generated expressions, deduplicated.
	// Extremes over windows longer than a first evaluation's catch-up and
	// shorter than the steps: their cold state's extreme leaves the window.
	// Threshold counts over windows that slide by taking leaving buckets
	// off, on the boundary value of many latencies.
	leaves := generatedLeaves(rng, schema, exprsFor(conn, diffExprs/2), "max_over_time(latency_ms[10m])", "min_over_time(latency_ms[15m])",
		"sum by (tenant_id) (count_le_over_time(latency_ms[10m], 1000))", "count_gt_over_time(cost{status=\"ok\"}[15m], 0.5)",
		// Windows of more than maxFillBuckets buckets (8h of 10s): their
		// cold state absorbs each final bucket and the grid keeps only
		// the recent ones (an SLO's 30 days at 1m buckets).
		"sum by (tenant_id) (count_over_time(events{status=\"error\"}[9h]))", "sum by (model) (sum_over_time(cost[10h] offset 20m))",
		"stddev_over_time(latency_ms{tenant_id=\"acme\"}[9h])", "count_gt_over_time(latency_ms[12h], 2000)",
		// A quantile whose groups (every label, 10s) hold a few events
		// each: it stays within tight's budget of 4 distinct values
		// whatever the seed's expressions are.
		"max by (tenant_id, app_code, model, provider, status, error_code) (quantile_over_time(0.5, latency_ms[10s]))")

	// Steps: every 30s over the second hour, then jumps (a restart, a
	// backtest) and one time that is not on a bucket edge (full path).
	base := time.Date(2025, 11, 24, 15, 0, 0, 0, time.UTC)
	var steps []time.Time
	for k := range 40 {
		steps = append(steps, base.Add(time.Duration(k)*30*time.Second))
	}
	steps = append(steps, base.Add(40*time.Minute), base.Add(40*time.Minute+250*time.Millisecond), base.Add(70*time.Minute), base.Add(2*time.Hour+10*time.Minute))

	arrived := 0
	var steadyReads []int
	for n, ts := range steps {
		now = ts.Add(time.Duration(rng.Int64N(int64(5 * time.Second))))
		var batch []memory.Event
		for arrived < len(pending) && !pending[arrived].at.After(now) {
			batch = append(batch, pending[arrived].ev)
			arrived++
		}
		tb.add(t, batch...)
		var subset []*dsl.Leaf
		for _, l := range leaves {
			if n == 0 || rng.IntN(10) < 7 { // all of them first: the rest is steady
				subset = append(subset, l)
			}
		}
		before := inc.IncrementalStats()
		half := len(subset) / 2
		for _, part := range [][]*dsl.Leaf{subset[:half], subset[half:]} {
			m, merr := tb.mem.EvalLeaves(context.Background(), ts, part)
			c, cerr := inc.EvalLeaves(context.Background(), ts, part)
			if merr != nil || cerr != nil {
				t.Fatalf("seed %d, step %d at %s: memory error %v, incremental error %v", seed, n, ts.Format(time.RFC3339Nano), merr, cerr)
			}
			for i, l := range part {
				if p := compareVectors(leafExact(l), exprTolerance, m.Vectors[i], c.Vectors[i]); p != "" {
					t.Fatalf("seed %d, step %d at %s (now %s): leaf %s differs: %s\nSQL:\n%s", seed, n, ts.Format(time.RFC3339Nano), now.Format(time.RFC3339), leafString(l), p, c.Statements)
				}
			}
			c, cerr = tight.EvalLeaves(context.Background(), ts, part)
			if cerr != nil {
				t.Fatalf("seed %d, step %d: with a tight distinct-value budget: %v", seed, n, cerr)
			}
			for i, l := range part {
				if p := compareVectors(leafExact(l), exprTolerance, m.Vectors[i], c.Vectors[i]); p != "" {
					t.Fatalf("seed %d, step %d at %s: leaf %s differs with a tight distinct-value budget (path %+v): %s", seed, n, ts.Format(time.RFC3339Nano), leafString(l), c.Paths[i], p)
				}
				if strings.Contains(c.Paths[i].Reason, "max_distinct_values (4)") {
					overflowed++
				}
			}
		}
		// The value counts of long windows are read in the background
		// after their first evaluation: the next steps slide on them.
		inc.WaitFills()
		tight.WaitFills()
		after := inc.IncrementalStats()
		if n > 0 && n < 40 {
			steadyReads = append(steadyReads, after.BucketsRead-before.BucketsRead)
		}
	}
	st := inc.IncrementalStats()
	if st.Leaves == 0 || st.FullLeaves == 0 || st.Fills == 0 || st.QuantileLeaves == 0 || st.CoSteps == 0 {
		t.Errorf("want leaves on both paths, quantiles from value counts, buckets read in the background, families stepped together, got %+v", st)
	}
	if st.Absorbed == 0 {
		t.Errorf("want the cold states of windows over 8h to absorb their final buckets, got %+v", st)
	}
	if ts := tight.IncrementalStats(); ts.Requeries == 0 {
		t.Errorf("keeping cold states, want extremes queried again when they leave the window, got %+v", ts)
	}
	if ts := tight.IncrementalStats(); overflowed == 0 || ts.QuantileLeaves == 0 {
		t.Errorf("a budget of 4 distinct values should send some quantiles to the full path and keep others: %d overflowed, %+v", overflowed, ts)
	}
	// A 30s step re-reads the late window and the new buckets of each
	// grouping, nothing older: at most (late+step)/bucket + 2 per grouping
	// and read, where the leaves of a grouping need at most two disjoint
	// reads (offsets reach into the late window of an earlier time).
	grids := 0
	if groupings != nil {
		grids = groupings(inc)
	} else {
		by := map[string]bool{}
		for _, l := range leaves {
			by[strings.Join(l.By, ",")] = true
		}
		grids = len(by)
	}
	limit := grids * 2 * int((late+30*time.Second)/bucket+2)
	for k, r := range steadyReads {
		if r > limit {
			t.Errorf("step %d read %d buckets, more than %d (%d groupings): steady steps must read only new and late buckets", k+1, r, limit, grids)
		}
	}
	t.Logf("seed %d: %d events, %d leaves, %d steps; %d leaves incremental, %d quantiles from value counts (%d reads, %d rows, %d families stepped along), %d full; %d reads of %d buckets; steady steps read %v buckets (%d groupings); %d quantiles over a budget of 4",
		seed, len(data.Events), len(leaves), len(steps), st.Leaves, st.QuantileLeaves, st.ValueQueries, st.ValueRows, st.CoSteps, st.FullLeaves, st.Queries, st.BucketsRead, steadyReads, grids, overflowed)
}

// generatedLeaves returns the distinct leaves of the pinned expressions,
// extra, and n generated ones.
func generatedLeaves(rng *rand.Rand, schema dsl.Schema, n int, extra ...string) []*dsl.Leaf {
	g := gen.NewExprs(gen.Options{Rand: rng, Schema: schema, Exact: leafExact})
	inputs := append(slices.Clone(gen.Pinned), extra...)
	for range n {
		inputs = append(inputs, g.Expr())
	}
	var leaves []*dsl.Leaf
	seen := map[string]bool{}
	for _, in := range inputs {
		e, err := dsl.Parse(in, dsl.Options{Schema: schema})
		if err != nil {
			continue
		}
		for _, l := range e.Leaves {
			if !seen[l.Key()] {
				seen[l.Key()] = true
				leaves = append(leaves, l)
			}
		}
	}
	return leaves
}

// IncrementalConcurrent evaluates two halves of the leaves at the same
// times from two goroutines, as the rule groups of serve do, while the
// background reads of value counts and cold parts run between and during
// the evaluations (never waited for until the end), and compares every leaf
// with the memory evaluator. Run under -race it checks the locking of the
// grids, the families stepped together and the fills.
func IncrementalConcurrent(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	rng := rand.New(rand.NewPCG(5, 6))
	schema := dsl.DefaultSchema()
	data := gen.NewData(rng, schema)
	tb := newEventsTable(t, conn, db+".concurrent_events", data.Events)
	var now time.Time
	var nowMu sync.Mutex
	clock := func() time.Time { nowMu.Lock(); defer nowMu.Unlock(); return now }
	inc := tb.source(t, &clickhouse.Incremental{Bucket: 10 * time.Second, LateWindow: time.Minute, Now: clock, FillSettle: -1})
	leaves := generatedLeaves(rng, schema, diffExprs/4, "p95(latency_ms[10m])", "max by (tenant_id) (p99(latency_ms[30m]))", "sum by (tenant_id) (count_over_time(events[20m]))")
	half := len(leaves) / 2
	base := time.Date(2025, 11, 24, 15, 0, 0, 0, time.UTC)
	for k := range 12 {
		ts := base.Add(time.Duration(k) * 30 * time.Second)
		nowMu.Lock()
		now = ts.Add(2 * time.Hour) // every bucket final: the events are all in
		nowMu.Unlock()
		var wg sync.WaitGroup
		errs := make([]string, 2)
		for i, part := range [][]*dsl.Leaf{leaves[:half], leaves[half:]} {
			wg.Go(func() {
				got, err := inc.EvalLeaves(context.Background(), ts, part)
				if err != nil {
					errs[i] = err.Error()
					return
				}
				want, err := tb.mem.EvalLeaves(context.Background(), ts, part)
				if err != nil {
					errs[i] = err.Error()
					return
				}
				for j, l := range part {
					if p := compareVectors(leafExact(l), exprTolerance, want.Vectors[j], got.Vectors[j]); p != "" {
						errs[i] = fmt.Sprintf("leaf %s differs: %s (path %+v)", leafString(l), p, got.Paths[j])
						return
					}
				}
			})
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				t.Fatalf("step %d at %s: %s", k, ts.Format(time.RFC3339), e)
			}
		}
	}
	inc.WaitFills()
	if st := inc.IncrementalStats(); st.QuantileLeaves == 0 || st.Fills == 0 {
		t.Errorf("want quantiles from value counts and background reads, got %+v", st)
	}
}
