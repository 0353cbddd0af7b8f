package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/memory"
)

// TestIncrementalAgreesWithFullEvaluationStepAfterStep runs the
// differential test's events and expressions through the incremental path,
// step after step, while events arrive — some of them late, within the
// late-arrival window — and compares every leaf with the memory evaluator
// over the events that have arrived. Each step evaluates a random subset of
// the leaves in two calls (two rule groups at the same time), so columns
// appear, go unused and come back. A failure prints the seed.
func TestIncrementalAgreesWithFullEvaluationStepAfterStep(t *testing.T) {
	for _, seed := range differentialSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with: go test ./engine/clickhouse -run 'TestIncremental' -v -seed=%d", seed)
				}
			}()
			runIncremental(t, seed)
		})
	}
}

func runIncremental(t *testing.T, seed uint64) {
	srv := server.Get(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x51ed2701))
	schema := dsl.DefaultSchema()
	data := newDiffData(rng, schema)
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
	for _, ev := range data.events {
		at := ev.Time
		if rng.IntN(3) == 0 {
			at = at.Add(time.Duration(rng.Int64N(int64(late))))
		}
		pending = append(pending, arriving{ev, at})
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].at.Before(pending[j].at) })

	db := srv.NewDatabase(t)
	srv.Exec(t, EventsDDL(db+".events", schema))
	conn := NewNativeConn(srv.Conn(t, db))
	var now time.Time
	inc, err := New(Options{Conn: conn, Table: "events", Schema: schema, Incremental: &Incremental{
		Bucket: bucket, LateWindow: late, Now: func() time.Time { return now },
	}})
	if err != nil {
		t.Fatal(err)
	}
	// tight keeps at most 4 distinct values of a field per group: most
	// quantile families go over it and take the full path, some stay.
	tight, err := New(Options{Conn: conn, Table: "events", Schema: schema, Incremental: &Incremental{
		Bucket: bucket, LateWindow: late, Now: func() time.Time { return now }, MaxDistinctValues: 4,
	}})
	if err != nil {
		t.Fatal(err)
	}
	overflowed := 0
	mem := memory.New(schema)

	// The leaves of the generated expressions, deduplicated.
	g := newExprGen(rng, schema)
	var leaves []*dsl.Leaf
	seen := map[string]bool{}
	inputs := slices.Clone(diffPinned)
	for range diffExprs / 2 {
		inputs = append(inputs, g.expr())
	}
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
		var batch []map[string]any
		var evs []memory.Event
		for arrived < len(pending) && !pending[arrived].at.After(now) {
			ev := pending[arrived].ev
			r := map[string]any{schema.Time: ev.Time}
			for j, l := range schema.Labels {
				r[l] = ev.Labels[j]
			}
			for c, v := range ev.Nums {
				r[c] = v
			}
			batch = append(batch, r)
			evs = append(evs, ev)
			arrived++
		}
		if len(batch) > 0 {
			srv.InsertJSONEachRow(t, db, "events", batch)
			mem.Add(evs...)
		}
		var subset []*dsl.Leaf
		for _, l := range leaves {
			if n == 0 || rng.IntN(10) < 7 { // all of them first: the rest is steady
				subset = append(subset, l)
			}
		}
		before := inc.IncrementalStats()
		half := len(subset) / 2
		for _, part := range [][]*dsl.Leaf{subset[:half], subset[half:]} {
			m, merr := mem.EvalLeaves(context.Background(), ts, part)
			c, cerr := inc.EvalLeaves(context.Background(), ts, part)
			if merr != nil || cerr != nil {
				t.Fatalf("seed %d, step %d at %s: memory error %v, incremental error %v", seed, n, ts.Format(time.RFC3339Nano), merr, cerr)
			}
			for i, l := range part {
				if p := compareVectors(leafExact(l), m.Vectors[i], c.Vectors[i]); p != "" {
					t.Fatalf("seed %d, step %d at %s (now %s): leaf %s differs: %s\nSQL:\n%s", seed, n, ts.Format(time.RFC3339Nano), now.Format(time.RFC3339), leafString(l), p, c.Statements)
				}
			}
			c, cerr = tight.EvalLeaves(context.Background(), ts, part)
			if cerr != nil {
				t.Fatalf("seed %d, step %d: with a tight distinct-value budget: %v", seed, n, cerr)
			}
			for i, l := range part {
				if p := compareVectors(leafExact(l), m.Vectors[i], c.Vectors[i]); p != "" {
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
	if st.Leaves == 0 || st.FullLeaves == 0 || st.Requeries == 0 || st.QuantileLeaves == 0 {
		t.Errorf("want leaves on both paths, quantiles from value counts, got %+v", st)
	}
	if ts := tight.IncrementalStats(); overflowed == 0 || ts.QuantileLeaves == 0 {
		t.Errorf("a budget of 4 distinct values should send some quantiles to the full path and keep others: %d overflowed, %+v", overflowed, ts)
	}
	// A 30s step re-reads the late window and the new buckets of each
	// grouping, nothing older: at most (late+step)/bucket + 2 per grouping
	// and read, where the leaves of a grouping need at most two disjoint
	// reads (offsets reach into the late window of an earlier time).
	grids := len(inc.inc.grids)
	limit := grids * 2 * int((late+30*time.Second)/bucket+2)
	for k, r := range steadyReads {
		if r > limit {
			t.Errorf("step %d read %d buckets, more than %d (%d groupings): steady steps must read only new and late buckets", k+1, r, limit, grids)
		}
	}
	t.Logf("seed %d: %d events, %d leaves, %d steps; %d leaves incremental, %d quantiles from value counts (%d reads, %d rows), %d full; %d reads of %d buckets; steady steps read %v buckets (%d groupings); %d quantiles over a budget of 4",
		seed, len(data.events), len(leaves), len(steps), st.Leaves, st.QuantileLeaves, st.ValueQueries, st.ValueRows, st.FullLeaves, st.Queries, st.BucketsRead, steadyReads, grids, overflowed)
}

// TestIncrementalLateRows pins the late-arrival contract: a row that lands
// within the late window after its bucket's end is counted, one that lands
// later is not counted by windows already read (its bucket was final), and
// a fresh Source counts it again.
func TestIncrementalLateRows(t *testing.T) {
	srv := server.Get(t)
	db := srv.NewDatabase(t)
	schema := dsl.DefaultSchema()
	srv.Exec(t, EventsDDL(db+".events", schema))
	conn := NewNativeConn(srv.Conn(t, db))
	t0 := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	now := t0
	opts := Options{Conn: conn, Table: "events", Schema: schema, Incremental: &Incremental{Now: func() time.Time { return now }}}
	inc, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e, err := dsl.Parse(`count_over_time(events[1h])`, dsl.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	insert := func(at time.Time) {
		srv.InsertJSONEachRow(t, db, "events", []map[string]any{{"created_at": at, "tenant_id": "acme", "status": "ok"}})
	}
	count := func(src *Source, ts time.Time) float64 {
		t.Helper()
		r, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Vectors[0]) == 0 {
			return 0
		}
		return r.Vectors[0][0].Value
	}
	insert(t0.Add(-30 * time.Minute))
	if got := count(inc, t0); got != 1 {
		t.Fatalf("at t0: got %v, want 1", got)
	}
	// 90s late: within the 2m window, counted.
	now = t0.Add(time.Minute)
	insert(t0.Add(-30 * time.Second))
	if got := count(inc, now); got != 2 {
		t.Fatalf("a row 90s late: got %v, want 2", got)
	}
	// 10 minutes late, into a bucket that was final: not counted.
	now = t0.Add(2 * time.Minute)
	insert(t0.Add(-8 * time.Minute))
	if got := count(inc, now); got != 2 {
		t.Fatalf("a row 10m late: got %v, want 2 (its bucket was final)", got)
	}
	full, err := New(Options{Conn: conn, Table: "events", Schema: schema, Incremental: &Incremental{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	if got := count(full, now); got != 3 {
		t.Fatalf("a fresh source: got %v, want 3", got)
	}
}
