package storetest

// What the SQL suites share: an events table loaded with the same events
// as the memory evaluator, the comparison of both, and the seeds of the
// randomized suites.

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/proctest"
)

// eventsTable is an events table of the default schema
// (clickhouse.EventsDDL) in a backend, holding the same events as a memory
// evaluator.
type eventsTable struct {
	conn   clickhouse.ExecQuerier
	name   string // qualified by its database
	schema dsl.Schema
	mem    *memory.Store
	// full computes every leaf with a full query.
	full *clickhouse.Source
}

// newEventsTable creates table (db.name) and loads events into it and into
// memory.
func newEventsTable(t *testing.T, conn clickhouse.ExecQuerier, table string, events []memory.Event) *eventsTable {
	t.Helper()
	schema := dsl.DefaultSchema()
	createEventsTable(t, conn, table, schema)
	tb := &eventsTable{conn: conn, name: table, schema: schema, mem: memory.New(schema)}
	tb.add(t, events...)
	tb.full = tb.source(t, nil)
	return tb
}

// add inserts events into the table and into memory.
func (tb *eventsTable) add(t *testing.T, events ...memory.Event) {
	t.Helper()
	insertEvents(t, tb.conn, tb.name, tb.schema, events)
	tb.mem.Add(events...)
}

// source returns a Source over the table: the full path without inc, the
// incremental path with it.
func (tb *eventsTable) source(t *testing.T, inc *clickhouse.Incremental) *clickhouse.Source {
	t.Helper()
	src, err := clickhouse.New(clickhouse.Options{Conn: tb.conn, Table: tb.name, Schema: tb.schema, Incremental: inc, Distributed: distributed(tb.conn)})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// insertEvents writes events into an events table of the default column
// types (clickhouse.EventsColumns) with INSERT … SELECT over bound arrays,
// one per column (a native connection to 18.16 cannot send INSERT …
// VALUES), and stores each Float64 from its bits: the text parser of 18.16
// reads some decimals one unit in the last place off (0.159511 as
// 0.15951100000000001) where 26.x reads them exactly, and the suites
// compare minima, maxima and quantiles bit for bit.
func insertEvents(t *testing.T, conn clickhouse.ExecQuerier, table string, schema dsl.Schema, events []memory.Event) {
	t.Helper()
	types := clickhouse.EventsColumns(schema)
	cols := []string{"`" + schema.Time + "`"}
	sel := []string{"toDateTime(toUInt32(c0))"}
	for i, l := range schema.Labels {
		cols = append(cols, "`"+l+"`")
		sel = append(sel, fmt.Sprintf("c%d", 1+i))
	}
	numeric := schema.NumericColumns()
	for i, c := range numeric {
		cols = append(cols, "`"+c+"`")
		switch n := 1 + len(schema.Labels) + i; types[c] {
		case "UInt32":
			sel = append(sel, fmt.Sprintf("toUInt32(c%d)", n))
		case "Float64":
			sel = append(sel, fmt.Sprintf("reinterpretAsFloat64(reinterpretAsString(toUInt64(c%d)))", n))
		default:
			t.Fatalf("insertEvents cannot write column %s of type %s", c, types[c])
		}
	}
	if schema.RequestID != "" {
		cols = append(cols, "`"+schema.RequestID+"`")
		sel = append(sel, fmt.Sprintf("c%d", len(sel)))
	}
	// Statements of at most ~64 KiB of values: ClickHouse parses at most
	// max_query_size (256 KiB) of a query that is not INSERT … VALUES.
	const maxBytes = 64 << 10
	for start := 0; start < len(events); {
		columns := make([][]any, len(cols))
		size := 0
		end := start
		for ; end < len(events) && (end == start || size < maxBytes); end++ {
			ev := events[end]
			sec := ev.Time.Unix()
			if ev.Time.Nanosecond() != 0 || sec < 0 || sec > math.MaxUint32 {
				t.Fatalf("event at %s: a DateTime holds whole seconds from 1970 to 2106", ev.Time.Format(time.RFC3339Nano))
			}
			if len(ev.Labels) != len(schema.Labels) {
				t.Fatalf("event with %d labels, the schema has %d", len(ev.Labels), len(schema.Labels))
			}
			columns[0] = append(columns[0], uint32(sec))
			for i, l := range ev.Labels {
				columns[1+i] = append(columns[1+i], l)
				size += 2*len(l) + 4
			}
			for i, c := range numeric {
				v, k := ev.Nums[c], 1+len(schema.Labels)+i
				if types[c] == "Float64" {
					columns[k] = append(columns[k], math.Float64bits(v))
					continue
				}
				if v != math.Trunc(v) || v < 0 || v > math.MaxUint32 {
					t.Fatalf("%s = %v in a UInt32 column", c, v)
				}
				columns[k] = append(columns[k], uint64(v))
			}
			size += 22 * (1 + len(numeric))
			if schema.RequestID != "" {
				columns[len(cols)-1] = append(columns[len(cols)-1], ev.RequestID)
				size += 2*len(ev.RequestID) + 4
			}
		}
		var arrays []string
		var args []any
		for i, vals := range columns {
			arrays = append(arrays, "["+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+fmt.Sprintf("] AS c%d", i))
			args = append(args, vals...)
		}
		mustExecArgs(t, conn, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") SELECT "+strings.Join(sel, ", ")+
			" FROM system.one ARRAY JOIN "+strings.Join(arrays, ", "), args...)
		start = end
	}
}

func mustExecArgs(t *testing.T, conn clickhouse.ExecQuerier, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := conn.Exec(ctx, sql, args...); err != nil {
		if len(sql) > 300 {
			sql = sql[:300] + "…"
		}
		t.Fatalf("%s: %v", sql, err)
	}
}

// queryCount runs a query whose result is one count.
func queryCount(t *testing.T, conn clickhouse.ExecQuerier, sql string) uint64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var n uint64
	if !rows.Next() {
		t.Fatalf("%s: no row (%v)", sql, rows.Err())
	}
	if err := rows.Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// queryColumn runs a query whose result is one column and returns its
// values in order.
func queryColumn[T any](t *testing.T, conn clickhouse.Conn, sql string, args ...any) []T {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var x T
		if err := rows.Scan(&x); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// event is an event of the default schema at sqlAt(sec) with the given
// labels (by name) and numbers.
func event(sec int64, lbls map[string]string, nums map[string]float64) memory.Event {
	schema := dsl.DefaultSchema()
	ev := memory.Event{Time: sqlAt(sec), Labels: make([]string, len(schema.Labels)), Nums: map[string]float64{}}
	for i, l := range schema.Labels {
		ev.Labels[i] = lbls[l]
	}
	for _, c := range schema.NumericColumns() {
		ev.Nums[c] = nums[c]
	}
	return ev
}

func latencyEvent(sec int64, lbls map[string]string, latency float64) memory.Event {
	return event(sec, lbls, map[string]float64{"latency_ms": latency})
}

// sqlTS is the evaluation time of the SQL suites, a whole second; suites
// that need a fraction add it.
var sqlTS = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

func sqlAt(sec int64) time.Time { return sqlTS.Add(time.Duration(sec) * time.Second) }

func parseLeaves(t *testing.T, expr string) []*dsl.Leaf {
	t.Helper()
	e, err := dsl.Parse(expr, dsl.Options{})
	if err != nil {
		t.Fatalf("parse %s: %v", expr, err)
	}
	return e.Leaves
}

// agree computes leaves at ts with src and in memory, reports every leaf
// whose results differ, and returns the backend's results.
func (tb *eventsTable) agree(t *testing.T, src *clickhouse.Source, what string, ts time.Time, leaves []*dsl.Leaf) engine.LeafResult {
	t.Helper()
	ch, err := src.EvalLeaves(context.Background(), ts, leaves)
	if err != nil {
		t.Fatalf("%s at %s: %v\n%s", what, ts.Format(time.RFC3339Nano), err, strings.Join(ch.Statements, "\n\n"))
	}
	if len(ch.Vectors) != len(leaves) {
		t.Fatalf("%s: %d vectors for %d leaves", what, len(ch.Vectors), len(leaves))
	}
	mem, err := tb.mem.EvalLeaves(context.Background(), ts, leaves)
	if err != nil {
		t.Fatalf("%s in memory: %v", what, err)
	}
	for i, l := range leaves {
		if p := compareVectors(leafExact(l), leafTolerance, mem.Vectors[i], ch.Vectors[i]); p != "" {
			t.Errorf("%s: leaf %s at %s: %s\nmemory:     %v\nClickHouse: %v\nSQL:\n%s", what, l.Func, ts.Format(time.RFC3339Nano), p,
				mem.Vectors[i], ch.Vectors[i], strings.Join(ch.Statements, "\n\n"))
		}
	}
	return ch
}

// one evaluates an expression's single leaf on the full path, requires
// the backend to agree with memory, and returns the samples by their
// labels' string form.
func (tb *eventsTable) one(t *testing.T, expr string, ts time.Time) map[string]float64 {
	t.Helper()
	leaves := parseLeaves(t, expr)
	if len(leaves) != 1 {
		t.Fatalf("%s has %d leaves", expr, len(leaves))
	}
	return values(tb.agree(t, tb.full, expr, ts, leaves).Vectors[0])
}

// leafExact reports whether both backends compute a leaf's value bit for
// bit: counts (those at or below a threshold too), min, max and quantiles
// (which pick one of the values), and sums of integer columns (ClickHouse
// sums UInt32 into UInt64, Go into a float64, both exactly below 2^53). rate and increase are such a count or
// sum, divided (for rate) by the window in Go on both sides, so they are
// exact too unless the field is a float column. avg and stddev, and sums
// of floats, depend on the order of additions.
func leafExact(l *dsl.Leaf) bool {
	switch l.Agg {
	case dsl.AggCount, dsl.AggAbsent, dsl.AggPresent, dsl.AggMin, dsl.AggMax, dsl.AggQuantile, dsl.AggCountLE, dsl.AggCountGT:
		return true
	case dsl.AggSum, dsl.AggRate, dsl.AggIncrease:
		types := clickhouse.EventsColumns(dsl.DefaultSchema())
		for _, c := range l.Selector.Columns {
			if types[c] != "UInt32" {
				return false
			}
		}
		return true
	}
	return false
}

// tolerance bounds the difference of values that are not exact: relative,
// plus absolute for values near 0.
type tolerance struct{ rel, abs float64 }

// leafTolerance is that of a leaf's value: ClickHouse adds floats in
// another order (and merges partial states of avg and stddev), so results
// agree to about 1e-13 relative.
var leafTolerance = tolerance{rel: 1e-9, abs: 1e-12}

// compareVectors compares vectors sorted by labels (as the sources and the
// querier return them) and says how they differ, or returns "".
func compareVectors(exact bool, tol tolerance, mem, ch []engine.Sample) string {
	if len(mem) != len(ch) {
		return fmt.Sprintf("%d samples in memory, %d in ClickHouse", len(mem), len(ch))
	}
	for i := range mem {
		if !labels.Equal(mem[i].Labels, ch[i].Labels) {
			return fmt.Sprintf("labels differ: %s and %s", mem[i].Labels, ch[i].Labels)
		}
		if !sameValue(exact, tol, mem[i].Value, ch[i].Value) {
			return fmt.Sprintf("values of %s differ: %s in memory, %s in ClickHouse (exact comparison: %v)", mem[i].Labels,
				strconv.FormatFloat(mem[i].Value, 'g', -1, 64), strconv.FormatFloat(ch[i].Value, 'g', -1, 64), exact)
		}
	}
	return ""
}

// sameValue compares exactly, or within tol. NaN equals NaN: both sides
// computed the same undefined value.
func sameValue(exact bool, tol tolerance, a, b float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	if exact || math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsNaN(a) || math.IsNaN(b) {
		return false
	}
	return math.Abs(a-b) <= tol.rel*math.Max(math.Abs(a), math.Abs(b))+tol.abs
}

// Seeds are the seeds of the randomized suites: given (a -seed flag), else
// CALLWATCH_SEED, else a fixed seed, so a regression fails the same way
// every time, and one from the clock, so every run explores new inputs.
func Seeds(t *testing.T, given string) []uint64 {
	t.Helper()
	for _, v := range []string{given, os.Getenv("CALLWATCH_SEED")} {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("seed %q: %v", v, err)
		}
		return []uint64{seed}
	}
	return []uint64{fixedSeed, uint64(time.Now().UnixNano())}
}

// fixedSeed is the seed every run of a randomized suite starts with.
const fixedSeed = 20251124

// forEachSeed runs suite in a subtest per seed; a failure names the
// command that replays the seed.
func forEachSeed(t *testing.T, seeds []uint64, suite func(t *testing.T, seed uint64)) {
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			if seed != fixedSeed {
				// Written now, not logged at the end: a run killed
				// midway (out of memory, a timeout) still names the
				// clock's seed it was exploring.
				fmt.Fprintf(os.Stderr, "%s: starting with seed %d (replay: CALLWATCH_SEED=%d)\n", t.Name(), seed, seed)
			}
			defer func() {
				if t.Failed() {
					t.Logf("reproduce with: go test %s -run '%s' -v -seed=%d  (or CALLWATCH_SEED=%d)", packageDir(), t.Name(), seed, seed)
				}
			}()
			suite(t, seed)
		})
	}
}

// packageDir is the directory of the package under test, relative to the
// module's root (./storage/chdb), for the commands that replay a seed.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	root, err := proctest.ModuleRoot()
	if err != nil {
		return "."
	}
	rel, err := filepath.Rel(root, wd)
	if err != nil {
		return "."
	}
	return "./" + filepath.ToSlash(rel)
}
