package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
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
		e, err := dsl.Parse(q, dsl.Options{})
		if err != nil {
			t.Fatal(err)
		}
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
