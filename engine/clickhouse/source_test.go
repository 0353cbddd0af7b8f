package clickhouse

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/testrules"
)

// The SQL-level tests of Source (windows, matchers, aggregates, the
// differential and incremental suites) are contracts of every backend: they
// are in internal/storetest, run here against the server (backend_test.go)
// and by storage/chdb on embedded ClickHouse. What is left here needs no
// server or is about the native connection.

var server = chtest.NewShared()

func TestMain(m *testing.M) { os.Exit(server.Run(m)) }

func TestEvalLeavesReportsFailuresWithTheStatement(t *testing.T) {
	src, err := New(Options{
		Conn: ConnFunc(func(context.Context, string, ...any) (Rows, error) {
			return nil, context.DeadlineExceeded
		}),
		Table:   "events",
		Columns: EventsColumns(dsl.DefaultSchema()),
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := dsl.Parse(`p95(latency_ms[5m])`, dsl.Options{})
	res, err := src.EvalLeaves(context.Background(), time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC), e.Leaves)
	if err == nil || !strings.Contains(err.Error(), "p95") {
		t.Fatalf("err = %v, want one naming p95", err)
	}
	if len(res.Statements) != 1 || !strings.Contains(res.Statements[0], "quantileExact(0.95)") {
		t.Fatalf("statements = %q", res.Statements)
	}
}

func TestNewRejectsIncompleteOptions(t *testing.T) {
	conn := ConnFunc(func(context.Context, string, ...any) (Rows, error) { return nil, nil })
	for name, opts := range map[string]Options{
		"without a connection": {Table: "events"},
		"without a table":      {Conn: conn},
		"with an invalid schema": {Conn: conn, Table: "events", Schema: dsl.Schema{
			Time: "created_at", Labels: []string{"tenant id"}, Fields: map[string]dsl.Columns{"x": {"x"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(opts); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func TestOpenConnectsWithADSN(t *testing.T) {
	s := server.Get(t)
	conn, err := Open(context.Background(), s.DSN("default"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(context.Background(), "SELECT toFloat64(?) + 1", 41)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var x float64
	if !rows.Next() {
		t.Fatalf("no row: %v", rows.Err())
	}
	if err := rows.Scan(&x); err != nil || x != 42 {
		t.Fatalf("got %v, %v", x, err)
	}
}

// TestEvalLeavesReportsTheReadsThatRanBesideAFailure: a grouping's bucket
// read fails while a quantile's value-count read, which runs at the same
// time, succeeds. The evaluation fails with the bucket read's error, and
// its statements are every one that ran, the value-count read's included.
// oneEventTable returns a connection to a new database whose events table
// holds one call, a minute before ts.
func oneEventTable(t *testing.T, ts time.Time) (*NativeConn, string) {
	t.Helper()
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", dsl.DefaultSchema()))
	s.InsertJSONEachRow(t, db, "events", []map[string]any{{"created_at": ts.Add(-time.Minute).Format("2006-01-02 15:04:05"), "tenant_id": "acme", "status": "ok", "latency_ms": 100}})
	return NewNativeConn(s.Conn(t, db)), db
}

func TestEvalLeavesReportsTheReadsThatRanBesideAFailure(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	native, db := oneEventTable(t, ts)
	failed := errors.New("the bucket read failed")
	conn := ConnFunc(func(ctx context.Context, sql string, args ...any) (Rows, error) {
		if strings.Contains(sql, "intDiv(") {
			return nil, failed
		}
		return native.Query(ctx, sql, args...)
	})
	now := ts.Add(-3 * time.Minute) // no bucket of the windows is final: the quantile reads its value counts at once
	src, err := New(Options{Conn: conn, Table: db + ".events", Columns: EventsColumns(dsl.DefaultSchema()),
		Incremental: &Incremental{FillSettle: -1, Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	e := testrules.Expr(t, `count_over_time(events[5m]) + p95(latency_ms[5m])`)
	res, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
	if !errors.Is(err, failed) {
		t.Fatalf("err = %v, want the bucket read's", err)
	}
	var buckets, values int
	for _, sql := range res.Statements {
		switch {
		case strings.Contains(sql, "intDiv("):
			buckets++
		case strings.Contains(sql, "cw_part"):
			values++
		}
	}
	if buckets != 1 || values != 1 {
		t.Fatalf("statements %q: want the failed bucket read and the value-count read that ran", res.Statements)
	}
}

// serialConn is a Conn that says it runs one statement at a time and
// records how many of its queries were ever in flight together.
type serialConn struct {
	Conn
	serial        bool
	mu            sync.Mutex
	inFlight, max int
}

func (c *serialConn) Serial() bool { return c.serial }

func (c *serialConn) Query(ctx context.Context, sql string, args ...any) (Rows, error) {
	c.mu.Lock()
	c.inFlight++
	c.max = max(c.max, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	time.Sleep(50 * time.Millisecond) // long enough for the others to start
	return c.Conn.Query(ctx, sql, args...)
}

// TestEvalLeavesRunsReadsOneAtATimeOnASerialConn checks that an
// evaluation's reads run at the same time on a connection that can, and
// one after another on one that runs a statement at a time (embedded
// ClickHouse), where they would spend their timeouts waiting.
func TestEvalLeavesRunsReadsOneAtATimeOnASerialConn(t *testing.T) {
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	native, db := oneEventTable(t, ts)
	// The platform-wide stddev cannot be folded from the sums by tenant:
	// two bucket reads.
	e := testrules.Expr(t, `stddev_over_time(latency_ms[5m]) + on () group_left sum by (tenant_id) (count_over_time(events[5m])) + p95(latency_ms[5m])`)
	for _, serial := range []bool{false, true} {
		conn := &serialConn{Conn: native, serial: serial}
		now := ts.Add(-3 * time.Minute) // no bucket is final: every read runs now
		src, err := New(Options{Conn: conn, Table: db + ".events", Columns: EventsColumns(dsl.DefaultSchema()),
			Incremental: &Incremental{FillSettle: -1, Now: func() time.Time { return now }}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Statements) < 3 {
			t.Fatalf("serial %v: statements %q, want two bucket reads and a value-count read", serial, res.Statements)
		}
		if want := map[bool]bool{false: conn.max > 1, true: conn.max == 1}; !want[serial] {
			t.Errorf("serial %v: %d reads in flight at most", serial, conn.max)
		}
	}
}
