package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

// TestFillReadsEachLeafsColdPartOnly: the background read of long
// windows' cold parts reads each leaf's own buckets. Two day-long windows a
// month apart (one with offset 30d) once made one read of every bucket
// between them — a month of minutes per fill, which a randomized suite
// with far offsets grew to 24 GB and the kernel's OOM killer.
func TestFillReadsEachLeafsColdPartOnly(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", dsl.DefaultSchema()))
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	var rows []map[string]any
	for _, at := range []time.Time{ts.Add(-time.Hour), ts.Add(-30*24*time.Hour - time.Hour)} {
		rows = append(rows, map[string]any{"created_at": at.Format("2006-01-02 15:04:05"), "tenant_id": "acme", "status": "ok"})
	}
	s.InsertJSONEachRow(t, db, "events", rows)
	conn := s.Conn(t, db)
	src, err := New(Options{Conn: NewNativeConn(conn), Table: db + ".events", Columns: EventsColumns(dsl.DefaultSchema()),
		Incremental: &Incremental{FillSettle: -1, Now: func() time.Time { return ts }}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := dsl.Parse(`count_over_time(events[1d]) + count_over_time(events[1d] offset 30d)`, dsl.Options{})
	if err != nil {
		t.Fatal(err)
	}
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
