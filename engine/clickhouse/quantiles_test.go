package clickhouse

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/testrules"
)

// TestSharedFamilyStepsWhileAnotherEvaluationReadsIt: two rule groups
// evaluate the same quantiles at the same time, so they share their value
// counts (a vcFamily), and the clock moves on between their evaluations,
// so each step adds the buckets that became final to the window's
// distributions in place. One group's quantiles must not be read from the
// distributions while the other's step changes them (go test -race sees
// it too): every answer is the quantile of the window's events, which do
// not change. Many quantiles of many groups make reading them take longer
// than the other group's read.
func TestSharedFamilyStepsWhileAnotherEvaluationReadsIt(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	const tenants = 300
	var rows []map[string]any
	values := map[string][]dsl.ValueCount{}
	for i := range 6000 {
		at := ts.Add(-time.Duration(i%1800) * time.Second)
		tenant := fmt.Sprintf("t%03d", i%tenants)
		v := float64((i*7919)%997 + i%5)
		rows = append(rows, map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": tenant, "status": "ok", "latency_ms": v})
		values[tenant] = append(values[tenant], dsl.ValueCount{Value: v, Count: 1})
	}
	for k, vs := range values {
		values[k] = dsl.SortValues(vs)
	}
	var mu sync.Mutex
	now := ts.Add(-2 * time.Minute) // the last 18 buckets of the window are not final yet
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(5 * time.Second) // a bucket (10s) becomes final every other reading
		return now
	}
	src, _ := liveSource(t, &Incremental{Bucket: 10 * time.Second, LateWindow: time.Minute, Reuse: -1, Now: clock}, rows...)
	var leaves []*dsl.Leaf
	for q := 1; q < 100; q++ {
		e := testrules.Expr(t, fmt.Sprintf(`max by (tenant_id) (quantile_over_time(0.%02d, latency_ms[30m]))`, q))
		if l := e.Leaves[0]; len(l.By) != 1 {
			t.Fatalf("leaf %s is not grouped by tenant", l.Func)
		}
		leaves = append(leaves, e.Leaves[0])
	}
	// The first evaluation reads the window's final part in the
	// background; the steps start from it.
	if _, err := src.EvalLeaves(context.Background(), ts, leaves); err != nil {
		t.Fatal(err)
	}
	src.WaitFills()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for g := range 2 {
		wg.Go(func() {
			for step := range 20 {
				res, err := src.EvalLeaves(context.Background(), ts, leaves)
				if err != nil {
					errs[g] = err
					return
				}
				for i, v := range res.Vectors {
					if len(v) != tenants {
						errs[g] = fmt.Errorf("step %d: leaf %d has %d groups, want %d (path %+v)", step, i, len(v), tenants, res.Paths[i])
						return
					}
					for _, s := range v {
						tenant := s.Labels.Get("tenant_id")
						if want := dsl.QuantileOfValues(leaves[i].Quantile, values[tenant]); s.Value != want {
							errs[g] = fmt.Errorf("step %d: quantile %v of %s = %v, want %v (path %+v)", step, leaves[i].Quantile, tenant, s.Value, want, res.Paths[i])
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	var failed []string
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		t.Fatal(strings.Join(failed, "\n"))
	}
	if st := src.IncrementalStats(); st.QuantileLeaves == 0 {
		t.Fatalf("no quantile from value counts: %+v", st)
	}
}

// TestQuantileWindowFarAheadReadsAgain: a day-long quantile window
// evaluated again two hours later steps on its value counts (122 buckets
// in and out); five hours later (300 in and 300 out, more than
// maxCatchUp, and later than its 2h rhythm said) it takes a full query and reads its value counts again in
// the background, instead of reading a row per event of ten hours in the
// foreground. Every value equals the quantile of the window's events.
func TestQuantileWindowFarAheadReadsAgain(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	eval := dayQuantileSource(t, ts, 700)
	for k, at := range []time.Time{ts, ts.Add(2 * time.Hour), ts.Add(7 * time.Hour), ts.Add(7*time.Hour + time.Minute)} {
		p, _ := eval(at)
		switch k {
		case 1, 3:
			if p.Path != "incremental" {
				t.Errorf("step %d: path %+v, want incremental (value counts)", k, p)
			}
		case 2:
			if p.Path != "full" || !strings.Contains(p.Reason, "more than 240 buckets entered and left the window") {
				t.Errorf("five hours later: path %+v, want full, the window having moved on", p)
			}
		}
	}
}

// dayQuantileSource loads n events of tenant acme, one every 3 minutes from
// 26 hours before ts, with latencies spread over 100…1099, into an
// incremental source. Its eval evaluates p95(latency_ms[1d]) at a time (the
// clock 3 minutes later), waits for the background reads, checks the value
// against quantileExact's (index ⌊φ·n⌋ of the window's sorted latencies) and
// returns the leaf's path and the source's counters of this evaluation
// (IncrementalStats.since), its background reads included.
func dayQuantileSource(t *testing.T, ts time.Time, n int) (eval func(at time.Time) (engine.LeafPath, IncrementalStats)) {
	t.Helper()
	var rows []map[string]any
	var lats []float64
	var ats []time.Time
	for i := range n {
		at := ts.Add(-26*time.Hour + time.Duration(i)*3*time.Minute)
		lat := float64(100 + (i*7919)%1000)
		ats, lats = append(ats, at), append(lats, lat)
		rows = append(rows, map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": "acme", "status": "ok", "latency_ms": lat})
	}
	now := ts
	src := incrementalSource(t, rows, func() time.Time { return now })
	e := testrules.Expr(t, `p95(latency_ms[1d])`)
	return func(at time.Time) (engine.LeafPath, IncrementalStats) {
		t.Helper()
		now = at.Add(3 * time.Minute)
		before := src.IncrementalStats()
		res, err := src.EvalLeaves(context.Background(), at, e.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		src.WaitFills()
		var in []float64
		for j, x := range ats {
			if x.After(at.Add(-24*time.Hour)) && !x.After(at) {
				in = append(in, lats[j])
			}
		}
		sort.Float64s(in)
		want := in[int(math.Floor(0.95*float64(len(in))))]
		if got := res.Vectors[0]; len(got) != 1 || got[0].Value != want {
			t.Fatalf("at %s: %v, want %v", at.Format(time.RFC3339), got, want)
		}
		return res.Paths[0], src.IncrementalStats().since(before)
	}
}

// since returns the counters of s that grew after b.
func (s IncrementalStats) since(b IncrementalStats) IncrementalStats {
	return IncrementalStats{
		Fills: s.Fills - b.Fills, ValueQueries: s.ValueQueries - b.ValueQueries,
		AheadReads: s.AheadReads - b.AheadReads, AheadUsed: s.AheadUsed - b.AheadUsed,
		BucketCounts: s.BucketCounts - b.BucketCounts, Rereads: s.Rereads - b.Rereads,
		Queries: s.Queries - b.Queries, FoldedReads: s.FoldedReads - b.FoldedReads,
	}
}

// TestQuantileLeavingBucketsAreReadAhead: a day-long quantile window
// evaluated every minute reads, in the background after a step, the
// buckets that leave it at the next evaluation; from its third evaluation
// on (its rhythm is known from the second), each step takes them from that
// read and reads only its new and open buckets. Each value equals the
// quantile of the window's events, so the counts read ahead are taken off
// right. An evaluation off the rhythm leaves what was read ahead for
// another time alone and reads its leaving buckets itself.
func TestQuantileLeavingBucketsAreReadAhead(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	eval := dayQuantileSource(t, ts, 700)
	for k, d := range []time.Duration{0, 1, 2, 3, 4, 5, 15, 16, 17, 18} {
		p, st := eval(ts.Add(d * time.Minute))
		want := 0
		switch k {
		case 2, 3, 4, 5, 8, 9:
			want = 1
		}
		if k > 0 && p.Path != "incremental" {
			t.Errorf("evaluation %d (+%dm): path %+v, want incremental", k, d, p)
		}
		if st.AheadUsed != want {
			t.Errorf("evaluation %d (+%dm): %d steps took their leaving buckets from a read ahead, want %d", k, d, st.AheadUsed, want)
		}
		// After each evaluation on a rhythm, the next one's leaving
		// buckets are read ahead (the first has none).
		if k >= 1 && st.AheadReads != 1 {
			t.Errorf("evaluation %d (+%dm): %d reads ahead, want 1", k, d, st.AheadReads)
		}
	}
}

// TestQuantileWindowOnALongIntervalSteps: a day-long quantile window
// evaluated every 3 hours moves 180 buckets in and 180 out at each
// evaluation, more than maxCatchUp, yet on its rhythm: it steps on its
// value counts, with no full query and no background read, once its
// rhythm is known (its third evaluation). Reading its window again at
// every evaluation would throw each read away at the next one.
func TestQuantileWindowOnALongIntervalSteps(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	eval := dayQuantileSource(t, ts, 900)
	for k := range 6 {
		p, st := eval(ts.Add(time.Duration(k) * 3 * time.Hour))
		if k >= 2 && (p.Path != "incremental" || st.Fills != 0) {
			t.Errorf("evaluation %d, on a 3h rhythm: path %+v, %d background reads; want incremental and none", k, p, st.Fills)
		}
	}
}

// TestNestedGroupingsShareAValueCountRead: quantile families of one field
// whose groupings nest (platform-wide, filtered by app, by tenant, by app
// and tenant) step in one value-count query once their rhythm is known,
// grouped by the widest grouping, each folding its rows into its own
// groups (and in one more that reads again the open bucket a late row
// changed). Minute after minute every value equals the full query's
// (quantileExact).
func TestNestedGroupingsShareAValueCountRead(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 2400, time.Hour)
	leaves := parseLeaves(t,
		`p99(latency_ms[30m])`,
		`p95(latency_ms{app_code="a1"}[10m])`,
		`max by (tenant_id) (p95(latency_ms[10m]))`,
		`max by (app_code, tenant_id) (p50(latency_ms[10m]))`)
	for k := range 7 {
		at := ts.Add(time.Duration(k) * time.Minute)
		if k > 0 { // new rows in the minute just ended and a late one
			tw.minute(k, at)
			tw.insert(tw.row(5000+k, at.Add(-100*time.Second)))
		}
		paths, st := tw.eval(at, leaves)
		if k >= 2 {
			for i, p := range paths {
				if p.Path != "incremental" {
					t.Errorf("minute %d, leaf %d: path %+v, want incremental", k, i, p)
				}
			}
			// One read of the new buckets, one of the bucket the late
			// row changed, for the four families.
			if n := st.ValueQueries - st.AheadReads; n != 2 {
				t.Errorf("minute %d: %d value-count queries in the evaluation, want 2 for the four families", k, n)
			}
		}
	}
}

// TestOpenBucketsAreReadAgainOnlyWhenTheyChange: a quantile window keeps
// the counts of its buckets that are not final yet, counts their events
// at each step (one small query) and reads a bucket again only when its
// count changed: a late row in a bucket still open, or in one that turns
// final at this step. Every value equals the full query's, so the old
// counts of a bucket read again are taken off right.
func TestOpenBucketsAreReadAgainOnlyWhenTheyChange(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 1200, 30*time.Minute)
	leaves := parseLeaves(t, `max by (tenant_id) (p95(latency_ms[10m]))`, `p99(latency_ms{app_code="a2"}[10m])`)
	for k := range 8 {
		at := ts.Add(time.Duration(k) * time.Minute)
		want := 0
		if k > 0 {
			tw.minute(k, at)
		}
		switch k {
		case 3, 6: // into the bucket that ended a minute ago: still open
			tw.insert(tw.row(7000+k, at.Add(-90*time.Second)), tw.row(7100+k, at.Add(-80*time.Second)))
			want = 1
		case 4: // into the bucket that turns final now
			tw.insert(tw.row(7000+k, at.Add(-150*time.Second)))
			want = 1
		}
		paths, st := tw.eval(at, leaves)
		if k < 2 {
			continue
		}
		if paths[0].Path != "incremental" || paths[1].Path != "incremental" {
			t.Errorf("minute %d: paths %+v, want incremental", k, paths)
		}
		// Both families step in one read; the by-tenant one holds the
		// app's rows too, so a bucket changed for one is read for both.
		if st.Rereads != 2*want || st.BucketCounts != 1 {
			t.Errorf("minute %d: %d buckets read again after %d counts, want %d after 1", k, st.Rereads, st.BucketCounts, 2*want)
		}
	}
}

// TestLeavingBucketsTakenAheadArePutBack: the buckets read ahead are taken
// off the window in the background, before the step they leave at. An
// evaluation at the same time as the last one (another rule group) puts
// them back first, and the step after it still takes them off: every
// value equals the full query's.
func TestLeavingBucketsTakenAheadArePutBack(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 1200, 30*time.Minute)
	leaves := parseLeaves(t, `max by (tenant_id) (p50(latency_ms[10m]))`, `p95(latency_ms[10m])`)
	for k := range 6 {
		at := ts.Add(time.Duration(k) * time.Minute)
		if k > 0 {
			tw.minute(k, at)
		}
		_, st := tw.eval(at, leaves)
		if k >= 2 && st.AheadUsed != 2 {
			t.Errorf("minute %d: %d families took their leaving buckets from a read ahead, want both", k, st.AheadUsed)
		}
		if k >= 2 {
			tw.eval(at, leaves) // again, the next step's leaving bucket taken off
		}
	}
}

// TestOpenBucketTurningFinalUnderReuseIsCounted: an evaluation at the same
// time as the last one, within Incremental.Reuse, does not count the open
// buckets again — except one that turned final meanwhile: it is counted a
// last time, so rows that landed in it inside the late window are read
// before it stays in the window as it is. (Found by a review: a p95
// missed 30 late rows until the bucket left the window.)
func TestOpenBucketTurningFinalUnderReuseIsCounted(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 1200, 30*time.Minute)
	leaves := parseLeaves(t, `p95(latency_ms[10m])`, `sum_over_time(latency_ms[10m])`)
	for k := range 3 {
		at := ts.Add(time.Duration(k) * time.Minute)
		if k > 0 {
			tw.minute(k, at)
		}
		tw.eval(at, leaves)
	}
	at := ts.Add(3 * time.Minute)
	tw.minute(3, at)
	if _, _, diffs := tw.evalAt(at, at.Add(40*time.Second), leaves); len(diffs) > 0 {
		t.Fatal(diffs)
	}
	// 30 slow calls in (at−2m, at−1m], inside the late window: the bucket
	// turns final at at+60s.
	var rows []map[string]any
	for i := range 30 {
		r := tw.row(9000+i, at.Add(-90*time.Second))
		r["latency_ms"] = 5000.0
		rows = append(rows, r)
	}
	tw.insert(rows...)
	// 25s later, within Reuse: the bucket turned final; the quantile
	// counts it and reads it again. (The sum reuses its bucket read at
	// this time, and reads the bucket at the next one.)
	_, st, diffs := tw.evalAt(at, at.Add(65*time.Second), leaves)
	if st.Rereads != 1 || slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, "leaf 0") }) {
		t.Errorf("at %s again, 65s after it: %d buckets read again, want 1; %v", at.Format("15:04"), st.Rereads, diffs)
	}
	for k := 4; k < 14; k++ {
		at := ts.Add(time.Duration(k) * time.Minute)
		tw.minute(k, at)
		tw.eval(at, leaves)
	}
}

// TestStaleReadAheadIsNotRead: evaluations that come faster than the
// background reads settle leave at most one read ahead queued per family,
// and one whose family a step moved before its turn runs no query. The
// next evaluations still equal the full query's, and read ahead again.
func TestStaleReadAheadIsNotRead(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 1200, 30*time.Minute)
	inc := tw.options(&Incremental{FillSettle: 400 * time.Millisecond})
	leaves := parseLeaves(t, `max by (tenant_id) (p95(latency_ms[10m]))`)
	tw.eval(ts, leaves) // a first evaluation: full, its value counts read in the background
	before := inc.IncrementalStats()
	for k := 1; k <= 4; k++ {
		// Back to back: the read ahead queued after the second waits
		// for the evaluations to settle, and is stale by then.
		at := ts.Add(time.Duration(k) * time.Minute)
		tw.minute(k, at)
		tw.now = at.Add(time.Second)
		if _, err := inc.EvalLeaves(context.Background(), at, leaves); err != nil {
			t.Fatal(err)
		}
	}
	inc.WaitFills()
	if st := inc.IncrementalStats().since(before); st.AheadReads != 0 || st.ValueQueries != 4 {
		t.Errorf("four evaluations back to back: %d reads ahead, %d value-count queries; want none ahead and the four steps' own", st.AheadReads, st.ValueQueries)
	}
	for k := 5; k <= 7; k++ {
		at := ts.Add(time.Duration(k) * time.Minute)
		tw.minute(k, at)
		_, st := tw.eval(at, leaves) // waits for the read ahead it queues
		if st.AheadReads != 1 {
			t.Errorf("minute %d, evaluations settled: %d reads ahead, want 1", k, st.AheadReads)
		}
	}
}

// TestBudgetCountsValuesNotRows: a step that catches up several buckets
// reads the same values entering and leaving the window; the
// distinct-value budget counts them once. A window of 6 distinct latencies
// with a budget of 6 stays on the value counts (it went to the full path
// when the budget counted rows). Once a family went over the budget, its
// record is dropped when it expires, so a removed rule leaves nothing.
func TestBudgetCountsValuesNotRows(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 1, time.Minute)
	six := func(i int, at time.Time) map[string]any {
		r := tw.row(i, at)
		r["latency_ms"] = float64(100 * (1 + i%6))
		return r
	}
	var rows []map[string]any
	for i := range 600 {
		rows = append(rows, six(i, ts.Add(-30*time.Minute+time.Duration(i)*3*time.Second)))
	}
	tw.insert(rows...)
	inc := tw.options(&Incremental{MaxDistinctValues: 6})
	leaves := parseLeaves(t, `p95(latency_ms[10m])`)
	for _, m := range []int{0, 1, 2, 7} { // 7: four buckets in and out
		at := ts.Add(time.Duration(m) * time.Minute)
		var more []map[string]any
		for i := range 20 {
			more = append(more, six(1000*m+i, at.Add(-time.Duration(i)*3*time.Second)))
		}
		tw.insert(more...)
		paths, _ := tw.eval(at, leaves)
		if m > 0 && paths[0].Path != "incremental" {
			t.Errorf("minute %d: path %+v, want incremental: 6 distinct values, a budget of 6", m, paths[0])
		}
	}
	// Over the budget: the family's record is dropped once it expires.
	over := parseLeaves(t, `p99(latency_ms{tenant_id="t0"}[5m])`)
	for i := range 7 { // seven more distinct values for tenant t0
		r := tw.row(5000+5*i, ts.Add(7*time.Minute-time.Second))
		r["latency_ms"] = float64(1001 + i)
		tw.insert(r)
	}
	for _, m := range []int{7, 8} { // its first evaluation, then one that finds it over
		if paths, _ := tw.eval(ts.Add(time.Duration(m)*time.Minute), over); paths[0].Path != "full" {
			t.Fatalf("minute %d, more values than the budget: path %+v, want full", m, paths[0])
		}
	}
	if n := len(inc.inc.overflow); n != 1 {
		t.Fatalf("%d families over the budget recorded, want 1", n)
	}
	tw.eval(ts.Add(20*time.Minute), leaves) // the other rule, after it expired
	if n := len(inc.inc.overflow); n != 0 {
		t.Errorf("%d families over the budget still recorded after they expired, want 0", n)
	}
}

// options replaces the incremental source with one of options inc (its
// clock tw's; FillSettle -1 unless set) and returns it.
func (tw *twins) options(inc *Incremental) *Source {
	tw.t.Helper()
	if inc.FillSettle == 0 {
		inc.FillSettle = -1
	}
	inc.Now = func() time.Time { return tw.now }
	src, err := New(Options{Conn: tw.inc.opts.Conn, Table: tw.inc.opts.Table, Columns: tw.inc.opts.Columns, Incremental: inc})
	if err != nil {
		tw.t.Fatal(err)
	}
	tw.inc = src
	return src
}

// twins are an incremental source and a full one over the same table of
// generated calls, and the clock of the incremental one.
type twins struct {
	t         *testing.T
	now       time.Time
	inc, full *Source
	insert    func(rows ...map[string]any)
}

// newTwins loads n calls spread evenly over the span before ts.
func newTwins(t *testing.T, ts time.Time, n int, span time.Duration) *twins {
	t.Helper()
	tw := &twins{t: t, now: ts}
	var rows []map[string]any
	for i := range n {
		rows = append(rows, tw.row(i, ts.Add(-span+time.Duration(i)*span/time.Duration(n))))
	}
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", dsl.DefaultSchema()))
	s.InsertJSONEachRow(t, db, "events", rows)
	tw.insert = func(rows ...map[string]any) { s.InsertJSONEachRow(t, db, "events", rows) }
	newSource := func(inc *Incremental) *Source {
		src, err := New(Options{Conn: NewNativeConn(s.Conn(t, db)), Table: db + ".events", Columns: EventsColumns(dsl.DefaultSchema()), Incremental: inc})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	tw.inc = newSource(&Incremental{FillSettle: -1, Now: func() time.Time { return tw.now }})
	tw.full = newSource(nil)
	return tw
}

// row is call i at at: five tenants, three apps, latencies 100…999.
func (tw *twins) row(i int, at time.Time) map[string]any {
	return map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": fmt.Sprintf("t%d", i%5),
		"app_code": fmt.Sprintf("a%d", i%3), "status": "ok", "latency_ms": float64(100 + (i*7919)%900)}
}

// minute inserts 40 calls of the minute that ends at at.
func (tw *twins) minute(k int, at time.Time) {
	var rows []map[string]any
	for i := range 40 {
		rows = append(rows, tw.row(3000+40*k+i, at.Add(-time.Duration(i)*1500*time.Millisecond)))
	}
	tw.insert(rows...)
}

// eval evaluates the leaves at at on both sources (the incremental one's
// clock a second later), checks that they agree, and returns the
// incremental paths and counters of the evaluation, its background reads
// included.
func (tw *twins) eval(at time.Time, leaves []*dsl.Leaf) ([]engine.LeafPath, IncrementalStats) {
	tw.t.Helper()
	paths, st, diffs := tw.evalAt(at, at.Add(time.Second), leaves)
	for _, d := range diffs {
		tw.t.Error(d)
	}
	return paths, st
}

// evalAt is eval with the incremental source's clock at now; it returns
// the leaves on which the two sources differ.
func (tw *twins) evalAt(at, now time.Time, leaves []*dsl.Leaf) (paths []engine.LeafPath, st IncrementalStats, diffs []string) {
	t := tw.t
	t.Helper()
	tw.now = now
	before := tw.inc.IncrementalStats()
	got, err := tw.inc.EvalLeaves(context.Background(), at, leaves)
	if err != nil {
		t.Fatal(err)
	}
	tw.inc.WaitFills()
	st = tw.inc.IncrementalStats().since(before)
	want, err := tw.full.EvalLeaves(context.Background(), at, leaves)
	if err != nil {
		t.Fatal(err)
	}
	for i := range leaves {
		if g, w := fmt.Sprint(sortedSamples(got.Vectors[i])), fmt.Sprint(sortedSamples(want.Vectors[i])); g != w {
			diffs = append(diffs, fmt.Sprintf("at %s, leaf %d (%+v): %s, the full query says %s", at.Format("15:04"), i, got.Paths[i], g, w))
		}
	}
	return got.Paths, st, diffs
}

// parseLeaves returns the leaf of each expression.
func parseLeaves(t *testing.T, exprs ...string) []*dsl.Leaf {
	t.Helper()
	var out []*dsl.Leaf
	for _, e := range exprs {
		x := testrules.Expr(t, e)
		out = append(out, x.Leaves[0])
	}
	return out
}

// sortedSamples returns the samples as label set = value, sorted.
func sortedSamples(v []engine.Sample) []string {
	var out []string
	for _, s := range v {
		out = append(out, fmt.Sprintf("%s=%v", s.Labels, s.Value))
	}
	sort.Strings(out)
	return out
}

// TestCoSteppedReadsAreTheSameFromRunToRun: families of one field stepped
// together are read by one query, a count column per selector. The
// columns, and the grouping chosen among groupings that hold as many, once
// followed the order of a map and changed from run to run; the same
// evaluations must send the same statements.
func TestCoSteppedReadsAreTheSameFromRunToRun(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for i := range 600 {
		rows = append(rows, map[string]any{"created_at": ts.Add(-time.Duration(i) * 3 * time.Second).Format("2006-01-02 15:04:05"),
			"tenant_id": fmt.Sprintf("t%d", i%3), "app_code": fmt.Sprintf("a%d", i%2), "status": []string{"ok", "error", "timeout"}[i%3], "latency_ms": i % 97})
	}
	var leaves []*dsl.Leaf
	for _, expr := range []string{
		`p95(latency_ms[10m])`,
		`max by (tenant_id) (p95(latency_ms{status="ok"}[10m]))`,
		`max by (app_code) (p95(latency_ms{status="error"}[10m]))`,
		`max by (tenant_id) (p95(latency_ms{status="timeout"}[10m]))`,
		`max by (app_code) (p95(latency_ms{tenant_id="t1"}[10m]))`,
	} {
		leaves = append(leaves, testrules.Expr(t, expr).Leaves...)
	}
	var first []string
	for run := range 6 {
		now := ts
		src, _ := liveSource(t, &Incremental{Bucket: 10 * time.Second, LateWindow: 30 * time.Second, Reuse: -1, Now: func() time.Time { return now }}, rows...)
		var stmts []string
		for step := range 4 {
			now = ts.Add(time.Duration(step) * 10 * time.Second)
			res, err := src.EvalLeaves(context.Background(), now, leaves)
			if err != nil {
				t.Fatal(err)
			}
			src.WaitFills()
			if step > 0 {
				for _, st := range res.Statements {
					// Each run has a database of its own.
					db, _, _ := strings.Cut(src.opts.Table, ".")
					stmts = append(stmts, strings.ReplaceAll(st, "`"+db+"`", "db"))
				}
			}
		}
		if st := src.IncrementalStats(); st.CoSteps == 0 {
			t.Fatalf("no family was stepped along with another: %+v", st)
		}
		if run == 0 {
			first = stmts
			continue
		}
		if !slices.Equal(stmts, first) {
			t.Fatalf("run %d sent other statements than run 0:\n%s\n--- run 0:\n%s", run, strings.Join(stmts, "\n"), strings.Join(first, "\n"))
		}
	}
}
