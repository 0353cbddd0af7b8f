package storetest

// The contract of the events SQL, run once per backend like the stores'
// (the ClickHouse 18.16 server in engine/clickhouse's tests, embedded
// ClickHouse 26.x in storage/chdb's), so the two cannot drift apart as
// mirrored copies would.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
)

func mustExec(t *testing.T, conn clickhouse.ExecQuerier, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// t0 is the evaluation time of the suites, a whole second.
var t0 = time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)

// badRow is one event of the bad-data table; nil labels are NULL.
type badRow struct {
	ago            time.Duration
	tenant, status *string
	cost           float64 // may be NaN or ±Inf
	input, output  int64
}

func str(s string) *string { return &s }

// badRows hold NULL labels, NaN and infinite costs and Int64 tokens whose
// sum wraps around in Int64.
var badRows = []badRow{
	{ago: 1 * time.Minute, tenant: str("acme"), status: str("ok"), cost: 1.5, input: 9e18, output: 1},
	{ago: 2 * time.Minute, tenant: str("acme"), status: str("error"), cost: math.NaN(), input: 9e18, output: 1},
	{ago: 3 * time.Minute, tenant: nil, status: str("ok"), cost: 7, input: 1, output: 1},
	{ago: 4 * time.Minute, tenant: nil, status: nil, cost: math.Inf(1), input: 1, output: 1},
	{ago: 5 * time.Minute, tenant: str("beta"), status: str("ok"), cost: math.Inf(-1), input: 2, output: 2},
	{ago: 6 * time.Minute, tenant: str("beta"), status: str("ok"), cost: 2.25, input: 2, output: 2},
}

// badTable creates the bad-data table in a fresh database: a user's table
// with Nullable label columns, a Float64 cost and Int64 tokens. It returns
// the table and the same events in memory (NULL labels as "").
func badTable(t *testing.T, conn clickhouse.ExecQuerier, db string) (string, *memory.Store) {
	t.Helper()
	table := db + ".bad_events"
	mustExec(t, conn, "CREATE TABLE "+table+` (
    created_at DateTime,
    tenant_id Nullable(String), app_code String, model String, provider String,
    status Nullable(String), error_code Nullable(String),
    latency_ms UInt32, input_tokens Int64, output_tokens Int64, cost Float64
) ENGINE = MergeTree ORDER BY created_at`)
	schema := dsl.DefaultSchema()
	mem := memory.New(schema)
	lit := func(s *string) string {
		if s == nil {
			return "NULL"
		}
		return "'" + *s + "'"
	}
	val := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	var sel []string
	for _, r := range badRows {
		at := t0.Add(-r.ago)
		cost := fmt.Sprintf("toFloat64(%v)", r.cost)
		switch {
		case math.IsNaN(r.cost):
			cost = "nan"
		case math.IsInf(r.cost, 1):
			cost = "inf"
		case math.IsInf(r.cost, -1):
			cost = "-inf"
		}
		sel = append(sel, fmt.Sprintf("SELECT toDateTime(%d) AS created_at, %s AS tenant_id, 'app' AS app_code, 'm' AS model, 'p' AS provider, %s AS status, NULL AS error_code, toUInt32(100) AS latency_ms, toInt64(%d) AS input_tokens, toInt64(%d) AS output_tokens, %s AS cost",
			at.Unix(), lit(r.tenant), lit(r.status), r.input, r.output, cost))
		mem.Add(memory.Event{Time: at, Labels: []string{val(r.tenant), "app", "m", "p", val(r.status), ""},
			Nums: map[string]float64{"latency_ms": 100, "input_tokens": float64(r.input), "output_tokens": float64(r.output), "cost": r.cost}})
	}
	mustExec(t, conn, "INSERT INTO "+table+" (created_at, tenant_id, app_code, model, provider, status, error_code, latency_ms, input_tokens, output_tokens, cost) "+
		strings.Join(sel, " UNION ALL "))
	return table, mem
}

// BadData checks that NULL labels, non-finite values and huge integers
// never break or silence a rule: NULL labels read as "", NaN and ±Inf are
// skipped by every aggregate of a field (so a maximum is the maximum of the
// finite values), Int64 sums do not wrap around; on the full and the
// incremental path, with the table's real column types and with unknown
// ones, in agreement with the memory evaluator.
func BadData(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	table, mem := badTable(t, conn, db)
	schema := dsl.DefaultSchema()
	ctx := context.Background()
	cols := fittingColumns(t, conn, table, schema, "a table of Nullable strings, Int64 and Float64 fits the schema")
	sources := map[string]*clickhouse.Source{}
	for name, c := range map[string]clickhouse.Columns{"read types": cols, "unknown types": nil} {
		full, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Columns: c})
		if err != nil {
			t.Fatal(err)
		}
		inc, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Columns: c,
			Incremental: &clickhouse.Incremental{Now: func() time.Time { return t0.Add(time.Hour) }}})
		if err != nil {
			t.Fatal(err)
		}
		sources[name+", full path"], sources[name+", incremental path"] = full, inc
	}
	cases := []struct {
		expr string
		want map[string]float64 // labels → value, from the rows above
	}{
		{`max_over_time(cost[1h])`, map[string]float64{"{}": 7}},
		{`min_over_time(cost[1h])`, map[string]float64{"{}": 1.5}},
		{`sum_over_time(cost[1h])`, map[string]float64{"{}": 10.75}},
		{`count_over_time(cost[1h])`, map[string]float64{"{}": 3}},
		{`count_over_time(events[1h])`, map[string]float64{"{}": 6}},
		{`p50(cost[1h])`, map[string]float64{"{}": 2.25}},
		{`max by (tenant_id) (max_over_time(cost[1h]))`, map[string]float64{`{tenant_id="acme"}`: 1.5, `{}`: 7, `{tenant_id="beta"}`: 2.25}},
		{`sum by (tenant_id, status) (count_over_time(events[1h]))`, map[string]float64{
			`{status="ok", tenant_id="acme"}`: 1, `{status="error", tenant_id="acme"}`: 1, `{status="ok"}`: 1, `{}`: 1, `{status="ok", tenant_id="beta"}`: 2}},
		{`count_over_time(events{tenant_id=""}[1h])`, map[string]float64{"{}": 2}},
		{`count_over_time(events{status!="ok"}[1h])`, map[string]float64{"{}": 2}},
		{`count_over_time(events{tenant_id=~"ac.*|"}[1h])`, map[string]float64{"{}": 4}},
		{`sum_over_time(total_tokens[1h])`, map[string]float64{"{}": 1.8000000000000000014e19}},
		{`max by (tenant_id) (sum_over_time(input_tokens[1h]))`, map[string]float64{`{tenant_id="acme"}`: 1.8e19, `{}`: 2, `{tenant_id="beta"}`: 4}},
	}
	for _, tc := range cases {
		e, err := dsl.Parse(tc.expr, dsl.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range []time.Time{t0, t0.Add(time.Minute)} {
			m, err := mem.EvalLeaves(ctx, ts, e.Leaves)
			if err != nil {
				t.Fatal(err)
			}
			if ts.Equal(t0) {
				if d := diff(m.Vectors[0], tc.want); d != "" {
					t.Errorf("%s in memory: %s", tc.expr, d)
				}
			}
			for name, src := range sources {
				c, err := src.EvalLeaves(ctx, ts, e.Leaves)
				if err != nil {
					t.Errorf("%s, %s: %v", tc.expr, name, err)
					continue
				}
				if d := diff(c.Vectors[0], values(m.Vectors[0])); d != "" {
					t.Errorf("%s at %s, %s: differs from memory: %s", tc.expr, ts.Format(time.TimeOnly), name, d)
				}
			}
		}
	}
}

// fittingColumns reads the columns of table and fails the test, saying
// what, when they do not fit schema.
func fittingColumns(t *testing.T, conn clickhouse.ExecQuerier, table string, schema dsl.Schema, what string) clickhouse.Columns {
	t.Helper()
	cols, err := clickhouse.ReadColumns(context.Background(), conn, table)
	if err != nil {
		t.Fatal(err)
	}
	if err := cols.Check(table, schema); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return cols
}

// SchemaCheck checks that a table that cannot serve the schema is refused
// with every problem named.
func SchemaCheck(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	table := db + ".misfit_events"
	mustExec(t, conn, "CREATE TABLE "+table+" (created_at String, tenant_id UInt8, app_code String, model String, provider String, status String, "+
		"latency_ms String, input_tokens UInt32, output_tokens UInt32, cost Float64) ENGINE = MergeTree ORDER BY tuple()")
	cols, err := clickhouse.ReadColumns(context.Background(), conn, table)
	if err != nil {
		t.Fatal(err)
	}
	err = cols.Check(table, dsl.DefaultSchema())
	if err == nil {
		t.Fatal("Check accepted a table with a String time column, a numeric label, a String field and a missing label")
	}
	for _, want := range []string{`"created_at" (the time column) has type String`, `"tenant_id" (a label) has type UInt8`,
		`"error_code" (a label) is missing; map an existing column in schema.labels`, `"latency_ms" (a field) has type String`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error lacks %q:\n%v", want, err)
		}
	}
	if _, err := clickhouse.ReadColumns(context.Background(), conn, db+".nothing"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("ReadColumns of a missing table = %v, want it to say the table does not exist", err)
	}
}

// GroupLimit checks that the series limit is enforced inside ClickHouse
// (max_rows_to_group_by): a grouping with more groups than MaxGroups fails
// with clickhouse.ErrTooManyGroups on the full and the incremental path,
// while one within the limit runs.
func GroupLimit(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	table := db + ".many_events"
	schema := dsl.DefaultSchema()
	mustExec(t, conn, clickhouse.EventsDDL(table, schema))
	// 200 tenants, one call each in the last hour.
	mustExec(t, conn, fmt.Sprintf("INSERT INTO %s (created_at, tenant_id, status) SELECT toDateTime(%d - number), concat('t', toString(number)), 'ok' FROM system.numbers LIMIT 200",
		table, t0.Add(-time.Minute).Unix()))
	opts := clickhouse.Options{Conn: conn, Table: table, Schema: schema, Columns: clickhouse.EventsColumns(schema), MaxGroups: 50}
	full, _ := clickhouse.New(opts)
	opts.Incremental = &clickhouse.Incremental{Now: func() time.Time { return t0.Add(time.Hour) }}
	inc, _ := clickhouse.New(opts)
	for name, src := range map[string]*clickhouse.Source{"full": full, "incremental": inc} {
		for _, ts := range []time.Time{t0, t0.Add(time.Minute)} {
			e, _ := dsl.Parse(`max by (tenant_id) (count_over_time(events[1h]))`, dsl.Options{Schema: schema})
			_, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
			if !errors.Is(err, clickhouse.ErrTooManyGroups) {
				t.Errorf("%s path: 200 groups with MaxGroups 50: err = %v, want ErrTooManyGroups", name, err)
			} else if !strings.Contains(err.Error(), "limits.max_series_per_rule (50)") {
				t.Errorf("%s path: the error does not name the limit to raise: %v", name, err)
			}
			e, _ = dsl.Parse(`max by (status) (count_over_time(events[1h]))`, dsl.Options{Schema: schema})
			if res, err := src.EvalLeaves(context.Background(), ts, e.Leaves); err != nil || len(res.Vectors[0]) != 1 || res.Vectors[0][0].Value != 200 {
				t.Errorf("%s path: one group within the limit = %v, %v; want 200 calls", name, res.Vectors, err)
			}
		}
	}
}

func values(v []engine.Sample) map[string]float64 {
	out := map[string]float64{}
	for _, s := range v {
		out[s.Labels.String()] = s.Value
	}
	return out
}

// diff compares a vector with labels → value, exactly but for sums of
// floats added in another order (1e-12 relative).
func diff(got []engine.Sample, want map[string]float64) string {
	g := values(got)
	var out []string
	for k, w := range want {
		v, ok := g[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s missing (want %v)", k, w))
		case !(v == w || math.Abs(v-w) <= 1e-12*math.Abs(w)):
			out = append(out, fmt.Sprintf("%s = %v, want %v", k, v, w))
		}
	}
	for k, v := range g {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected %s = %v", k, v))
		}
	}
	return strings.Join(out, "; ")
}

// OddColumnTypes checks label and field columns of the types a user's
// table may have besides String and plain numbers: an Enum label reads as
// its names (a matcher on a name the Enum lacks matches nothing, regexps
// apply), a FixedString label without its padding, Decimal fields (also
// Nullable) as numbers for every aggregate — in agreement with the memory
// evaluator, on the full and the incremental path. A Nullable Enum label,
// which 18.16 cannot read as names, is refused at start.
func OddColumnTypes(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	table := db + ".odd_events"
	mustExec(t, conn, "CREATE TABLE "+table+` (
    created_at DateTime,
    tenant_id Enum8('acme' = 1, 'globex' = 2), app_code FixedString(8), model String, provider String,
    status Enum8('' = 0, 'ok' = 1, 'error' = 2), error_code String,
    latency_ms Decimal(9, 2), input_tokens Nullable(Decimal(18, 4)), output_tokens UInt32, cost Float32
) ENGINE = MergeTree ORDER BY created_at`)
	schema := dsl.DefaultSchema()
	mem := memory.New(schema)
	type row struct {
		tenant, app, status string
		latency             float64
		input               *float64
	}
	f := func(v float64) *float64 { return &v }
	var sel []string
	for i, r := range []row{{"acme", "chat", "ok", 120.5, f(10)}, {"acme", "search", "error", 99.25, nil}, {"globex", "chat", "", 300, f(2.5)}, {"globex", "chat", "ok", 7.75, f(1)}} {
		at := t0.Add(-time.Duration(i+1) * time.Minute)
		status, input := "'"+r.status+"'", "NULL"
		if r.input != nil {
			input = fmt.Sprintf("toDecimal64(%v, 4)", *r.input)
		}
		sel = append(sel, fmt.Sprintf("SELECT toDateTime(%d), '%s', '%s', 'm', 'p', %s, '', toDecimal32(%v, 2), %s, toUInt32(1), toFloat32(0.5)",
			at.Unix(), r.tenant, r.app, status, r.latency, input))
		in := 0.0
		if r.input != nil {
			in = *r.input
		}
		mem.Add(memory.Event{Time: at, Labels: []string{r.tenant, r.app, "m", "p", r.status, ""},
			Nums: map[string]float64{"latency_ms": r.latency, "input_tokens": in, "output_tokens": 1, "cost": 0.5}})
	}
	mustExec(t, conn, "INSERT INTO "+table+" (created_at, tenant_id, app_code, model, provider, status, error_code, latency_ms, input_tokens, output_tokens, cost) "+
		strings.Join(sel, " UNION ALL "))
	ctx := context.Background()
	cols := fittingColumns(t, conn, table, schema, "Enum, FixedString, Decimal and Float32 columns fit the schema")
	nullableEnum := clickhouse.Columns{}
	maps.Copy(nullableEnum, cols)
	nullableEnum["status"] = "Nullable(Enum8('ok' = 1, 'error' = 2))"
	if err := nullableEnum.Check(table, schema); err == nil || !strings.Contains(err.Error(), "a Nullable Enum cannot be read") {
		t.Errorf("a Nullable Enum label: Check = %v, want it refused", err)
	}
	full, _ := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Columns: cols})
	inc, _ := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Columns: cols,
		Incremental: &clickhouse.Incremental{Now: func() time.Time { return t0.Add(time.Hour) }}})
	for _, tc := range []struct {
		expr string
		want map[string]float64
	}{
		{`count_over_time(events{tenant_id="initech"}[1h])`, map[string]float64{}},
		{`count_over_time(events{tenant_id!="initech"}[1h])`, map[string]float64{"{}": 4}},
		{`count_over_time(events{tenant_id=~"ac.*"}[1h])`, map[string]float64{"{}": 2}},
		{`sum by (app_code) (count_over_time(events[1h]))`, map[string]float64{`{app_code="chat"}`: 3, `{app_code="search"}`: 1}},
		{`count_over_time(events{app_code="chat", status=""}[1h])`, map[string]float64{`{app_code="chat"}`: 1}},
		{`sum_over_time(input_tokens[1h])`, map[string]float64{"{}": 13.5}},
		{`max_over_time(input_tokens[1h])`, map[string]float64{"{}": 10}},
		{`stddev_over_time(latency_ms[1h])`, nil},
		{`p50(latency_ms[1h])`, map[string]float64{"{}": 120.5}},
		{`sum by (tenant_id) (sum_over_time(cost[1h]))`, map[string]float64{`{tenant_id="acme"}`: 1, `{tenant_id="globex"}`: 1}},
	} {
		e, err := dsl.Parse(tc.expr, dsl.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := mem.EvalLeaves(ctx, t0, e.Leaves)
		if tc.want != nil {
			if d := diff(m.Vectors[0], tc.want); d != "" {
				t.Errorf("%s in memory: %s", tc.expr, d)
			}
		}
		for name, src := range map[string]*clickhouse.Source{"full path": full, "incremental path": inc} {
			c, err := src.EvalLeaves(ctx, t0, e.Leaves)
			if err != nil {
				t.Errorf("%s, %s: %v", tc.expr, name, err)
				continue
			}
			if d := diff(c.Vectors[0], values(m.Vectors[0])); d != "" {
				t.Errorf("%s, %s: differs from memory: %s", tc.expr, name, d)
			}
		}
	}
}
