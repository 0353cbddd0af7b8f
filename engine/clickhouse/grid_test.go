package clickhouse

import (
	"fmt"
	"testing"
	"time"
)

// TestNarrowGroupingsFoldIntoAWiderRead: the platform-wide leaves of a
// rule pack and its leaves by tenant, and by tenant and app, read the same
// buckets at each step; one query grouped by tenant and app reads them
// all, and the narrower groupings' buckets are folded from its rows: counts
// and sums add up, an extreme is taken over the groups that have an event
// of its selector. Late rows land in buckets that are open. Every value
// equals the full query's. A platform-wide stddev (of a field all 0, so
// that it compares exactly) cannot be folded from the groups' moments: its
// grouping then reads on its own.
func TestNarrowGroupingsFoldIntoAWiderRead(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	folded := parseLeaves(t,
		`count_over_time(events{status="ok"}[5m])`,
		`sum_over_time(latency_ms[1h])`,
		`max_over_time(latency_ms{tenant_id="t1"}[5m])`,
		`min_over_time(latency_ms{app_code="a2"}[1h])`,
		`max_over_time(latency_ms{app_code="a2"}[5m])`,
		`sum by (tenant_id) (count_over_time(events[5m]))`,
		`sum by (tenant_id, app_code) (sum_over_time(latency_ms[5m]))`,
	)
	for _, tc := range []struct {
		name                 string
		extra                string
		queries, foldedReads int
	}{
		{"folded", "", 1, 2},
		{"stddev reads on its own", `stddev_over_time(input_tokens[5m])`, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTwins(t, ts, 600, 2*time.Hour)
			leaves := folded
			if tc.extra != "" {
				leaves = append(parseLeaves(t, tc.extra), folded...)
			}
			for k := range 6 {
				at := ts.Add(time.Duration(k) * time.Minute)
				if k > 0 {
					tw.minute(k, at)
					// A late row in the bucket before, still open.
					late := tw.row(5000+k, at.Add(-90*time.Second))
					late["app_code"], late["latency_ms"] = "a2", float64(k)
					tw.insert(late)
				}
				_, st := tw.eval(at, leaves)
				if k < 2 {
					continue // the first evaluations read their windows
				}
				if st.Queries != tc.queries || st.FoldedReads != tc.foldedReads {
					t.Errorf("at %s: %d bucket reads, %d folded into a wider one; want %d and %d", at.Format("15:04"), st.Queries, st.FoldedReads, tc.queries, tc.foldedReads)
				}
			}
		})
	}
}

// TestQuantileStepCountsOpenBucketsByTheBucketRead: a quantile window
// keeps the buckets not final yet in its distribution and reads one again
// when its number of events changed (late rows). When the evaluation's
// bucket read counts the same selector's events over those buckets (here
// for count_over_time and sum_over_time of the same calls), the quantile
// step takes its counts from it and runs no count query; late rows that
// move the p95 are still found. A quantile whose selector no bucket read
// counts (t2) counts its buckets itself.
func TestQuantileStepCountsOpenBucketsByTheBucketRead(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		quantile string
		counts   int // count queries per step
	}{
		{"same selector", `p95(latency_ms{tenant_id="t1"}[5m])`, 0},
		{"no bucket read counts it", `p95(latency_ms{tenant_id="t2"}[5m])`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTwins(t, ts, 600, 2*time.Hour)
			leaves := parseLeaves(t, tc.quantile, `p99(latency_ms{tenant_id="t1"}[1h])`,
				`count_over_time(events{tenant_id="t1"}[5m])`, `sum by (tenant_id) (sum_over_time(latency_ms[1h]))`)
			rereads := 0
			for k := range 7 {
				at := ts.Add(time.Duration(k) * time.Minute)
				if k > 0 {
					tw.minute(k, at)
				}
				if k == 4 {
					// Late and slow calls of t1 and t2 in the bucket
					// before, still open: the p95s move to 9000.
					var late []map[string]any
					for i := range 30 {
						r := tw.row(6001+i, at.Add(-90*time.Second))
						r["latency_ms"] = float64(9000)
						late = append(late, r)
					}
					tw.insert(late...)
				}
				_, st := tw.eval(at, leaves)
				rereads += st.Rereads
				if k >= 2 && st.BucketCounts != tc.counts {
					t.Errorf("at %s: %d count queries, want %d", at.Format("15:04"), st.BucketCounts, tc.counts)
				}
			}
			if rereads == 0 {
				t.Error("no open bucket was read again: the late rows went unseen")
			}
		})
	}
}

// TestFoldingDoesNotWidenARead: the per-tenant count of one tenant's calls
// reads that tenant's rows; folding the platform-wide count of all calls
// into it would make it read, and keep, a row for every tenant — over
// max_series_per_rule (10 here, of 50 tenants), an evaluation that failed.
// The two groupings read apart, and the values are the full query's.
func TestFoldingDoesNotWidenARead(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	tw := newTwins(t, ts, 100, time.Hour)
	var rows []map[string]any
	for i := range 3000 {
		r := tw.row(i, ts.Add(-50*time.Minute+time.Duration(i)*time.Second))
		r["tenant_id"] = fmt.Sprintf("t%d", i%50)
		rows = append(rows, r)
	}
	tw.insert(rows...)
	src, err := New(Options{Conn: tw.inc.opts.Conn, Table: tw.inc.opts.Table, Columns: tw.inc.opts.Columns, MaxGroups: 10,
		Incremental: &Incremental{FillSettle: -1, Now: func() time.Time { return tw.now }}})
	if err != nil {
		t.Fatal(err)
	}
	tw.inc = src
	leaves := parseLeaves(t, `sum by (tenant_id) (count_over_time(events{tenant_id="t1"}[5m]))`, `count_over_time(events[5m])`)
	for k := range 4 {
		_, st := tw.eval(ts.Add(time.Duration(k)*time.Minute), leaves)
		if st.FoldedReads != 0 {
			t.Errorf("step %d: %d reads folded into the one tenant's read", k, st.FoldedReads)
		}
	}
}
