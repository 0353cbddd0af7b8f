package clickhouse

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/memory"
)

// oddExprs exercise every aggregate over a field.
var oddExprs = []string{
	`sum_over_time(cost[1h])`, `avg_over_time(cost[1h])`, `min_over_time(cost[1h])`, `max_over_time(cost[1h])`,
	`p95(cost[1h])`, `stddev_over_time(cost[1h])`, `count_over_time(events[1h])`, `rate(cost[1h])`,
	`max by (tenant_id) (max_over_time(latency_ms[1h]))`,
}

// TestNegativeAndHugeValuesAgreeWithMemory: negative and huge costs are
// values like any other, on the full and the incremental path.
func TestNegativeAndHugeValuesAgreeWithMemory(t *testing.T) {
	srv := server.Get(t)
	db := srv.NewDatabase(t)
	schema := dsl.DefaultSchema()
	srv.Exec(t, EventsDDL(db+".events", schema))
	t0 := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	mem := memory.New(schema)
	var rows []map[string]any
	for i, c := range []float64{-2.5, 0, 1e300, -1e300, 3, -0.125, math.MaxFloat64} {
		at := t0.Add(-time.Duration(i*7) * time.Minute)
		rows = append(rows, map[string]any{"created_at": at, "tenant_id": "acme", "status": "ok", "cost": c, "latency_ms": i})
		mem.Add(memory.Event{Time: at, Labels: []string{"acme", "", "", "", "ok", ""}, Nums: map[string]float64{"cost": c, "latency_ms": float64(i)}})
	}
	srv.InsertJSONEachRow(t, db, "events", rows)
	conn := NewNativeConn(srv.Conn(t, db))
	full, _ := New(Options{Conn: conn, Table: "events", Schema: schema})
	inc, _ := New(Options{Conn: conn, Table: "events", Schema: schema, Incremental: &Incremental{Now: func() time.Time { return t0.Add(time.Hour) }}})
	for _, expr := range oddExprs {
		e, err := dsl.Parse(expr, dsl.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)} {
			m, _ := mem.EvalLeaves(context.Background(), ts, e.Leaves)
			for name, src := range map[string]*Source{"full": full, "incremental": inc} {
				c, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
				if err != nil {
					t.Fatalf("%s, %s path: %v", expr, name, err)
				}
				if p := compareVectors(false, m.Vectors[0], c.Vectors[0]); p != "" {
					t.Errorf("%s at %s, %s path: %s", expr, ts.Format(time.TimeOnly), name, p)
				}
			}
		}
	}
}

// TestNullableColumnsCountNullAsZero: in a user's table whose field column
// is Nullable, a NULL value is 0 — as a key missing from a JSON event is in
// the memory evaluator — on the full and the incremental path alike.
func TestNullableColumnsCountNullAsZero(t *testing.T) {
	srv := server.Get(t)
	db := srv.NewDatabase(t)
	schema := dsl.DefaultSchema()
	ddl := strings.Replace(EventsDDL(db+".events", schema), "`cost` Float64", "`cost` Nullable(Float64)", 1)
	srv.Exec(t, ddl)
	t0 := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	srv.InsertJSONEachRow(t, db, "events", []map[string]any{
		{"created_at": t0.Add(-time.Minute), "tenant_id": "acme", "status": "ok", "cost": 1.5},
		{"created_at": t0.Add(-2 * time.Minute), "tenant_id": "acme", "status": "ok", "cost": nil},
	})
	conn := NewNativeConn(srv.Conn(t, db))
	full, _ := New(Options{Conn: conn, Table: "events", Schema: schema})
	inc, _ := New(Options{Conn: conn, Table: "events", Schema: schema, Incremental: &Incremental{Now: func() time.Time { return t0 }}})
	want := map[string]float64{`sum_over_time(cost[1h])`: 1.5, `avg_over_time(cost[1h])`: 0.75, `min_over_time(cost[1h])`: 0,
		`max_over_time(cost[1h])`: 1.5, `p95(cost[1h])`: 1.5, `count_over_time(events[1h])`: 2}
	for _, expr := range oddExprs {
		e, _ := dsl.Parse(expr, dsl.Options{Schema: schema})
		for _, ts := range []time.Time{t0, t0.Add(time.Minute)} {
			f, err := full.EvalLeaves(context.Background(), ts, e.Leaves)
			if err != nil {
				t.Fatalf("%s, full path: %v", expr, err)
			}
			c, err := inc.EvalLeaves(context.Background(), ts, e.Leaves)
			if err != nil {
				t.Fatalf("%s, incremental path: %v", expr, err)
			}
			if p := compareVectors(false, f.Vectors[0], c.Vectors[0]); p != "" {
				t.Errorf("%s at %s: incremental and full differ: %s", expr, ts.Format(time.TimeOnly), p)
			}
			if w, ok := want[expr]; ok && ts.Equal(t0) && (len(f.Vectors[0]) != 1 || f.Vectors[0][0].Value != w) {
				t.Errorf("%s = %v, want %v", expr, f.Vectors[0], w)
			}
		}
	}
}
