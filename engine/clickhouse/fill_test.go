package clickhouse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/testrules"
)

// TestFillReadsEachLeafsColdPartOnly: the background read of long
// windows' cold parts reads each leaf's own buckets. Two day-long windows a
// month apart (one with offset 30d) once made one read of every bucket
// between them — a month of minutes per fill, which a randomized suite
// with far offsets grew to 24 GB and the kernel's OOM killer.
func TestFillReadsEachLeafsColdPartOnly(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for _, at := range []time.Time{ts.Add(-time.Hour), ts.Add(-30*24*time.Hour - time.Hour)} {
		rows = append(rows, map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": "acme", "status": "ok"})
	}
	src := incrementalSource(t, rows, func() time.Time { return ts })
	e := testrules.Expr(t, `count_over_time(events[1d]) + count_over_time(events[1d] offset 30d)`)
	res, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
	if err != nil {
		t.Fatal(err)
	}
	src.WaitFills()
	st := src.IncrementalStats()
	if st.Fills == 0 {
		t.Fatalf("no background fill ran (paths %v): the test does not reach the code it guards", res.Paths)
	}
	if most := 2 * 1440; st.BucketsRead > most {
		t.Errorf("the fills read %d buckets for two day-long windows, want at most %d (each window's own)", st.BucketsRead, most)
	}
}

// TestThirtyDayWindowSlides: an SLO's 30-day window at 1m buckets is
// computed incrementally. After the first evaluation each one-minute step
// reads only the new, the late and the leaving buckets, the grid keeps
// only the recent buckets (the cold state absorbs the final ones), and
// every step equals the count of the events in the window.
func TestThirtyDayWindowSlides(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	// Events near both edges of the window: some leave it during the
	// steps, some enter it.
	var rows []map[string]any
	var times []time.Time
	for i := range 20 {
		for _, at := range []time.Time{ts.Add(-30*24*time.Hour + time.Duration(i)*37*time.Second), ts.Add(-time.Hour + time.Duration(i)*3*time.Minute + 5*time.Second),
			ts.Add(time.Duration(i) * 41 * time.Second)} {
			times = append(times, at)
			rows = append(rows, map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": []string{"acme", "globex"}[i%2], "status": "error"})
		}
	}
	now := ts
	src := incrementalSource(t, rows, func() time.Time { return now })
	e := testrules.Expr(t, `sum(count_over_time(events{status="error"}[30d]))`)
	for step := range 30 {
		at := ts.Add(time.Duration(step) * time.Minute)
		now = at.Add(3 * time.Minute) // the late window (2m) has passed
		before := src.IncrementalStats()
		res, err := src.EvalLeaves(context.Background(), at, e.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, x := range times {
			if x.After(at.Add(-30*24*time.Hour)) && !x.After(at) {
				want++
			}
		}
		if got := res.Vectors[0]; len(got) != 1 || got[0].Value != float64(want) {
			t.Fatalf("step %d: %v, want %d events", step, got, want)
		}
		if step == 0 {
			continue
		}
		if p := res.Paths[0]; p.Path != "incremental" {
			t.Fatalf("step %d: path %+v, want incremental", step, p)
		}
		if read := src.IncrementalStats().BucketsRead - before.BucketsRead; read > 8 {
			t.Errorf("step %d read %d buckets, want the new, late and leaving ones only", step, read)
		}
		for _, g := range src.inc.grids {
			if n := len(g.buckets); n > 20 {
				t.Errorf("step %d: the grid keeps %d buckets, want only the recent ones (the cold state absorbs the rest)", step, n)
			}
		}
	}
	if st := src.IncrementalStats(); st.Absorbed == 0 {
		t.Errorf("no bucket absorbed: %+v", st)
	}
}

// incrementalSource loads rows into the events table of a new database on
// the shared server and returns an incremental source over it on the clock
// now, whose background fills start at once.
func incrementalSource(t *testing.T, rows []map[string]any, now func() time.Time) *Source {
	t.Helper()
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", dsl.DefaultSchema()))
	s.InsertJSONEachRow(t, db, "events", rows)
	src, err := New(Options{Conn: NewNativeConn(s.Conn(t, db)), Table: db + ".events", Columns: EventsColumns(dsl.DefaultSchema()),
		Incremental: &Incremental{FillSettle: -1, Now: now}})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestLongIntervalReadsWhatItMissed: a rule evaluated every 10 minutes
// with 1m buckets misses 12 buckets between evaluations (10 new and the
// late window), more than the 8 that mark a first evaluation. It reads
// them and stays on the incremental path: once it took a full query and
// a background fill of its whole window at every evaluation.
func TestLongIntervalReadsWhatItMissed(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	var rows []map[string]any
	var times []time.Time
	for i := range 90 {
		at := ts.Add(-time.Hour + time.Duration(i)*67*time.Second)
		times = append(times, at)
		rows = append(rows, map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": "acme", "status": "ok"})
	}
	now := ts
	src := incrementalSource(t, rows, func() time.Time { return now })
	e := testrules.Expr(t, `count_over_time(events[1h])`)
	for step := range 4 {
		at := ts.Add(time.Duration(step) * 10 * time.Minute)
		now = at.Add(time.Second)
		before := src.IncrementalStats()
		res, err := src.EvalLeaves(context.Background(), at, e.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		src.WaitFills()
		want := 0
		for _, x := range times {
			if x.After(at.Add(-time.Hour)) && !x.After(at) {
				want++
			}
		}
		if got := res.Vectors[0]; len(got) != 1 || got[0].Value != float64(want) {
			t.Fatalf("step %d: %v, want %d events", step, got, want)
		}
		if step == 0 {
			continue
		}
		after := src.IncrementalStats()
		if p := res.Paths[0]; p.Path != "incremental" || after.Fills != before.Fills {
			t.Errorf("step %d: path %+v, %d fills; want incremental and no fill", step, p, after.Fills-before.Fills)
		}
		if read := after.BucketsRead - before.BucketsRead; read > 13 {
			t.Errorf("step %d read %d buckets, want the 10 new and the 2 late ones", step, read)
		}
	}
	// A day-long window that missed five hours (less than half of it, more
	// than maxCatchUp) after a two-hour interval skipped evaluations: it
	// takes a full query and a background fill, so a read in the
	// foreground stays small. Evaluated again every five hours, on its
	// rhythm, it reads what it missed: a fill at each evaluation would be
	// thrown away at the next.
	e = testrules.Expr(t, `count_over_time(events[1d])`)
	for k, at := range []time.Time{ts.Add(time.Hour), ts.Add(3 * time.Hour), ts.Add(8 * time.Hour), ts.Add(13 * time.Hour), ts.Add(18 * time.Hour)} {
		now = at.Add(time.Second)
		before := src.IncrementalStats()
		res, err := src.EvalLeaves(context.Background(), at, e.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		if why := res.Paths[0].Reason; k == 2 && !strings.Contains(why, "302 buckets missed since the window's last evaluation") {
			t.Errorf("five hours later: reason %q, want the buckets missed", why)
		}
		src.WaitFills()
		after := src.IncrementalStats()
		read := after.BucketsRead - before.BucketsRead
		switch {
		case k == 1 && (after.Fills != before.Fills || read > 125):
			t.Errorf("two hours later: %d fills, %d buckets read; want the 122 it missed read at once", after.Fills-before.Fills, read)
		case k == 2 && (after.Fills == before.Fills || after.FullLeaves == before.FullLeaves):
			t.Errorf("five hours later: %d fills, %d full leaves; want a full query and a fill", after.Fills-before.Fills, after.FullLeaves-before.FullLeaves)
		case k >= 3 && (after.Fills != before.Fills || after.FullLeaves != before.FullLeaves || read > 305):
			t.Errorf("evaluation %d, five hours after the last as the one before: %d fills, %d full leaves, %d buckets read; want the 302 it missed read at once", k, after.Fills-before.Fills, after.FullLeaves-before.FullLeaves, read)
		}
	}
}
