package chdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
)

// These tests run the SQL of engine/clickhouse's compiler on embedded
// ClickHouse 26.x, as engine/clickhouse's own tests run it on a 18.16
// server: the same events go into a table (clickhouse.EventsDDL) and into
// engine/memory, every leaf is computed by clickhouse.Source over this
// package's Conn and by the memory evaluator, and both must agree — bit for
// bit where both compute the same value exactly, within 1e-9 relative where
// floats are added in another order.

// sqlTS is a whole second; tests that need a fraction add it.
var sqlTS = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

// backends are the same events in embedded ClickHouse and in memory.
type backends struct {
	ch  *clickhouse.Source
	mem *memory.Store
	// intColumns are the integer columns of the events table, whose sums
	// both backends compute exactly.
	intColumns map[string]bool
	conn       *Conn
	table      string
}

// newBackends creates an events table in a fresh database and loads events
// into it and into memory.
func newBackends(t *testing.T, events []memory.Event) *backends {
	t.Helper()
	c, db := newDatabase(t)
	schema := dsl.DefaultSchema()
	table := db + ".events"
	mustExec(t, c, clickhouse.EventsDDL(table, schema))
	b := &backends{mem: memory.New(schema), intColumns: map[string]bool{}, conn: c, table: table}
	queryRows(t, c, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", []any{db, "events"}, func(r *Rows) error {
		var name, typ string
		if err := r.Scan(&name, &typ); err != nil {
			return err
		}
		if strings.HasPrefix(typ, "UInt") || strings.HasPrefix(typ, "Int") {
			b.intColumns[name] = true
		}
		return nil
	})
	insertEvents(t, c, table, schema, b.intColumns, events)
	b.mem.Add(events...)
	src, err := clickhouse.New(clickhouse.Options{Conn: c, Table: table, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	b.ch = src
	return b
}

// insertEvents writes events with bound INSERT … VALUES statements.
func insertEvents(t *testing.T, c *Conn, table string, schema dsl.Schema, intColumns map[string]bool, events []memory.Event) {
	t.Helper()
	cols := append(append([]string{schema.Time}, schema.Labels...), schema.NumericColumns()...)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	const batch = 1000
	for start := 0; start < len(events); start += batch {
		part := events[start:min(start+batch, len(events))]
		rows := make([]string, len(part))
		args := make([]any, 0, len(part)*len(cols))
		for i, ev := range part {
			rows[i] = row
			args = append(args, ev.Time.Unix())
			for _, l := range ev.Labels {
				args = append(args, l)
			}
			for _, col := range schema.NumericColumns() {
				v := ev.Nums[col]
				if intColumns[col] {
					if v != math.Trunc(v) || v < 0 {
						t.Fatalf("%s = %v in an integer column", col, v)
					}
					args = append(args, int64(v))
				} else {
					args = append(args, v)
				}
			}
		}
		mustExec(t, c, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") VALUES "+strings.Join(rows, ", "), args...)
	}
}

// evalBoth computes leaves at ts on both backends.
func (b *backends) evalBoth(t *testing.T, ts time.Time, leaves []*dsl.Leaf) (ch, mem engine.LeafResult) {
	t.Helper()
	ch, err := b.ch.EvalLeaves(context.Background(), ts, leaves)
	if err != nil {
		t.Fatalf("embedded ClickHouse: %v\n%s", err, strings.Join(ch.Statements, "\n\n"))
	}
	mem, err = b.mem.EvalLeaves(context.Background(), ts, leaves)
	if err != nil {
		t.Fatalf("memory: %v", err)
	}
	return ch, mem
}

// agree computes leaves on both backends and reports every leaf whose
// results differ. It returns the embedded results.
func (b *backends) agree(t *testing.T, what string, ts time.Time, leaves []*dsl.Leaf) engine.LeafResult {
	t.Helper()
	ch, mem := b.evalBoth(t, ts, leaves)
	for i, l := range leaves {
		if p := diffVectors(b.exact(l), ch.Vectors[i], mem.Vectors[i]); p != "" {
			t.Errorf("%s: leaf %s at %s: %s\nembedded: %v\nmemory:   %v\nSQL:\n%s", what, l.Func, ts.Format(time.RFC3339Nano), p,
				ch.Vectors[i], mem.Vectors[i], strings.Join(ch.Statements, "\n\n"))
		}
	}
	return ch
}

// exact reports whether both backends compute the leaf bit for bit: counts,
// min, max and quantiles (which pick a value), and sums of integer columns.
// avg, stddev and sums of floats depend on the order of additions.
func (b *backends) exact(l *dsl.Leaf) bool {
	switch l.Agg {
	case dsl.AggCount, dsl.AggAbsent, dsl.AggPresent, dsl.AggMin, dsl.AggMax, dsl.AggQuantile:
		return true
	case dsl.AggSum, dsl.AggRate, dsl.AggIncrease:
		for _, c := range l.Selector.Columns {
			if !b.intColumns[c] {
				return false
			}
		}
		return true
	}
	return false
}

// diffVectors compares two vectors sorted by labels and says how they
// differ, or returns "".
func diffVectors(exact bool, a, b []engine.Sample) string {
	a, b = sortedSamples(a), sortedSamples(b)
	if len(a) != len(b) {
		return fmt.Sprintf("%d samples embedded, %d in memory", len(a), len(b))
	}
	for i := range a {
		if !labels.Equal(a[i].Labels, b[i].Labels) {
			return fmt.Sprintf("labels differ: %s and %s", a[i].Labels, b[i].Labels)
		}
		if !sameValue(exact, a[i].Value, b[i].Value) {
			return fmt.Sprintf("%s: %s embedded, %s in memory (exact comparison: %v)", a[i].Labels,
				strconv.FormatFloat(a[i].Value, 'g', -1, 64), strconv.FormatFloat(b[i].Value, 'g', -1, 64), exact)
		}
	}
	return ""
}

func sortedSamples(v []engine.Sample) []engine.Sample {
	v = slices.Clone(v)
	sort.Slice(v, func(i, j int) bool { return labels.Compare(v[i].Labels, v[j].Labels) < 0 })
	return v
}

func sameValue(exact bool, a, b float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	if exact || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return false
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))+1e-12
}

func parseLeaves(t *testing.T, expr string) []*dsl.Leaf {
	t.Helper()
	e, err := dsl.Parse(expr, dsl.Options{})
	if err != nil {
		t.Fatalf("parse %s: %v", expr, err)
	}
	return e.Leaves
}

// values evaluates an expression's single leaf on both backends, requires
// them to agree, and returns the samples by their labels' string form.
func (b *backends) values(t *testing.T, expr string, ts time.Time) map[string]float64 {
	t.Helper()
	leaves := parseLeaves(t, expr)
	if len(leaves) != 1 {
		t.Fatalf("%s has %d leaves", expr, len(leaves))
	}
	res := b.agree(t, expr, ts, leaves)
	m := map[string]float64{}
	for _, s := range res.Vectors[0] {
		m[s.Labels.String()] = s.Value
	}
	return m
}

func sqlAt(sec int64) time.Time { return sqlTS.Add(time.Duration(sec) * time.Second) }

// event is an event of the default schema with the given labels (by name)
// and numbers.
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

func TestWindowsAreOpenAtTheStartAndClosedAtTheEndEmbedded(t *testing.T) {
	b := newBackends(t, []memory.Event{
		latencyEvent(-360, nil, 1), latencyEvent(-359, nil, 2), // the edges of [5m] offset 1m
		latencyEvent(-300, nil, 3), latencyEvent(-299, nil, 4), // the edges of [5m]
		latencyEvent(-60, nil, 5), latencyEvent(-59, nil, 6),
		latencyEvent(0, nil, 7), latencyEvent(1, nil, 8),
	})
	cases := []struct {
		name, expr string
		ts         time.Time
		want       float64
	}{
		{"an event at t−w is out and one at t is in", `sum_over_time(latency_ms[5m])`, sqlTS, 4 + 5 + 6 + 7},
		{"a fraction of a second does not move the edges", `sum_over_time(latency_ms[5m])`, sqlTS.Add(500 * time.Millisecond), 4 + 5 + 6 + 7},
		{"a second later the edges move by a second", `sum_over_time(latency_ms[5m])`, sqlTS.Add(time.Second), 5 + 6 + 7 + 8},
		{"an offset shifts both edges", `sum_over_time(latency_ms[5m] offset 1m)`, sqlTS, 2 + 3 + 4 + 5},
		{"an offset keeps the fraction rule", `sum_over_time(latency_ms[5m] offset 1m)`, sqlTS.Add(999 * time.Millisecond), 2 + 3 + 4 + 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.values(t, tc.expr, tc.ts); got["{}"] != tc.want || len(got) != 1 {
				t.Fatalf("%s = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

// TestWindowsAroundTheEpochEmbedded covers the statements for windows that
// start before 1970, where DateTime's range ends: rule unit tests run a
// clock that starts at 1970-01-01 00:00:00.
func TestWindowsAroundTheEpochEmbedded(t *testing.T) {
	at := func(sec int64) memory.Event {
		ev := latencyEvent(0, nil, float64(sec+1))
		ev.Time = time.Unix(sec, 0).UTC()
		return ev
	}
	b := newBackends(t, []memory.Event{at(0), at(1), at(50), at(61)})
	for _, tc := range []struct {
		name, expr string
		ts         time.Time
		want       map[string]float64
	}{
		{"a window that starts before 1970 has no lower bound", `count_over_time(events[5m])`, time.Unix(60, 0), map[string]float64{"{}": 3}},
		{"a window that ends before 1970 selects nothing", `count_over_time(events[5m] offset 2m)`, time.Unix(60, 0), map[string]float64{}},
		{"a window that ends at the epoch holds its first second", `sum_over_time(latency_ms[5m] offset 1m)`, time.Unix(60, 0), map[string]float64{"{}": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.values(t, tc.expr, tc.ts.UTC()); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("%s = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

func TestRegexMatchersAreFullyAnchoredEmbedded(t *testing.T) {
	m := func(model string) map[string]string { return map[string]string{"model": model} }
	b := newBackends(t, []memory.Event{latencyEvent(0, m("gpt"), 1), latencyEvent(0, m("gpt-4o"), 1), latencyEvent(0, m("xgpt"), 1),
		latencyEvent(0, m("a\nb"), 1), latencyEvent(0, m("租户"), 1)})
	for _, tc := range []struct {
		expr string
		want float64
	}{
		{`count_over_time(events{model=~"gpt"}[5m])`, 1},
		{`count_over_time(events{model!~"gpt"}[5m])`, 4},
		{`count_over_time(events{model=~"gpt.*"}[5m])`, 2},
		{`count_over_time(events{model=~".*gpt"}[5m])`, 2},
		{`count_over_time(events{model=~"gpt|xgpt"}[5m])`, 2},
		{`count_over_time(events{model=~"a.b"}[5m])`, 1}, // . matches a newline, as in PromQL
		{`count_over_time(events{model=~".."}[5m])`, 1},  // characters, not bytes
		{`count_over_time(events{model=~"(?i)GPT"}[5m])`, 1},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got := b.values(t, tc.expr, sqlTS)
			if len(got) != 1 {
				t.Fatalf("got %v", got)
			}
			for _, v := range got {
				if v != tc.want {
					t.Fatalf("got %v, want %v", v, tc.want)
				}
			}
		})
	}
}

func TestAbsentPresentAndEmptyLabelsEmbedded(t *testing.T) {
	l := func(tenant, app string) map[string]string {
		return map[string]string{"tenant_id": tenant, "app_code": app}
	}
	b := newBackends(t, []memory.Event{
		latencyEvent(0, l("acme", "chat"), 1), latencyEvent(-10, l("beta", ""), 1), latencyEvent(-600, l("gamma", "chat"), 1),
		latencyEvent(0, l("", "chat"), 1), latencyEvent(0, l("", ""), 1),
	})
	cases := []struct {
		expr string
		want map[string]float64
	}{
		{`absent_over_time(events{tenant_id="gamma"}[5m])`, map[string]float64{`{tenant_id="gamma"}`: 1}},
		{`absent_over_time(events{tenant_id="acme"}[5m])`, map[string]float64{}},
		{`absent_over_time(events{tenant_id=~"g.*", app_code="x"}[5m])`, map[string]float64{`{app_code="x"}`: 1}},
		{`sum by (tenant_id) (absent_over_time(events{tenant_id="gamma"}[5m]))`, map[string]float64{`{}`: 1}},
		{`sum by (tenant_id) (absent_over_time(events[5m]))`, map[string]float64{}},
		{`sum by (tenant_id) (present_over_time(events[5m]))`, map[string]float64{`{tenant_id="acme"}`: 1, `{tenant_id="beta"}`: 1, `{}`: 1}},
		{`present_over_time(events{tenant_id="gamma"}[5m])`, map[string]float64{}},
		{`sum by (tenant_id, app_code) (count_over_time(events[5m]))`, map[string]float64{
			`{app_code="chat", tenant_id="acme"}`: 1, `{tenant_id="beta"}`: 1, `{app_code="chat"}`: 1, `{}`: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			got := b.values(t, tc.expr, sqlTS)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQuantilesStddevAndBigSumsEmbedded(t *testing.T) {
	var events []memory.Event
	tenant := func(t string) map[string]string { return map[string]string{"tenant_id": t} }
	for _, v := range []float64{4, 1, 3, 2} {
		events = append(events, latencyEvent(0, tenant("four"), v))
	}
	for v := 1; v <= 100; v++ {
		events = append(events, latencyEvent(0, tenant("hundred"), float64(v)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var hard []float64
	for i := range 5000 {
		v := 1e6 + rng.Float64() // a large mean and a small spread defeat the naive formula
		hard = append(hard, v)
		events = append(events, event(-int64(i%200), tenant("hard"), map[string]float64{"cost": v}))
	}
	big := map[string]float64{"input_tokens": 4_000_000_000, "output_tokens": 4_000_000_000}
	for range 3 {
		events = append(events, event(0, tenant("big"), big))
	}
	b := newBackends(t, events)
	for _, tc := range []struct {
		expr string
		want map[string]float64
	}{
		{`max by (tenant_id) (p50(latency_ms{tenant_id=~"four|hundred"}[5m]))`, map[string]float64{`{tenant_id="four"}`: 3, `{tenant_id="hundred"}`: 51}},
		{`max by (tenant_id) (p99(latency_ms{tenant_id=~"four|hundred"}[5m]))`, map[string]float64{`{tenant_id="four"}`: 4, `{tenant_id="hundred"}`: 100}},
		{`max by (tenant_id) (quantile_over_time(0, latency_ms{tenant_id=~"four|hundred"}[5m]))`, map[string]float64{`{tenant_id="four"}`: 1, `{tenant_id="hundred"}`: 1}},
		{`max by (tenant_id) (quantile_over_time(1, latency_ms{tenant_id=~"four|hundred"}[5m]))`, map[string]float64{`{tenant_id="four"}`: 4, `{tenant_id="hundred"}`: 100}},
		{`sum_over_time(total_tokens{tenant_id="big"}[5m])`, map[string]float64{`{tenant_id="big"}`: 24e9}},
		{`max_over_time(total_tokens{tenant_id="big"}[5m])`, map[string]float64{`{tenant_id="big"}`: 8e9}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			if got := b.values(t, tc.expr, sqlTS); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("stddev is Welford's on hard numbers", func(t *testing.T) {
		got := b.values(t, `stddev_over_time(cost{tenant_id="hard"}[5m])`, sqlTS)[`{tenant_id="hard"}`]
		var n, mean, m2 float64
		for _, x := range hard {
			n++
			d := x - mean
			mean += d / n
			m2 += d * (x - mean)
		}
		if want := math.Sqrt(m2 / n); math.Abs(got-want) > 1e-9*want {
			t.Fatalf("stddev = %.17g, Welford = %.17g", got, want)
		}
	})
}

// TestHostileLabelValuesAreMatchedLiterallyEmbedded puts hostile values in
// the events and in matchers (built directly, so values PromQL's parser
// would not accept, such as invalid UTF-8, are tried too).
func TestHostileLabelValuesAreMatchedLiterallyEmbedded(t *testing.T) {
	vals := hostileValues()
	var events []memory.Event
	for _, v := range vals {
		events = append(events, latencyEvent(0, map[string]string{"tenant_id": v}, 1))
	}
	events = append(events, latencyEvent(0, map[string]string{"tenant_id": "plain"}, 1))
	b := newBackends(t, events)
	mustExec(t, b.conn, "CREATE TABLE "+strings.TrimSuffix(b.table, ".events")+".victim (x UInt8) ENGINE = Memory")
	template := parseLeaves(t, `count_over_time(events{tenant_id="x"}[5m])`)[0]
	grouped := parseLeaves(t, `sum by (tenant_id) (count_over_time(events{tenant_id="x"}[5m]))`)[0]
	with := func(l *dsl.Leaf, typ labels.MatchType, v string) *dsl.Leaf {
		c := *l
		c.Selector.Matchers = []*labels.Matcher{labels.MustNewMatcher(typ, "tenant_id", v)}
		return &c
	}
	for _, v := range vals {
		leaves := []*dsl.Leaf{with(template, labels.MatchEqual, v), with(template, labels.MatchNotEqual, v), with(grouped, labels.MatchEqual, v)}
		if utf8Valid(v) && !strings.ContainsRune(v, 0) {
			// RE2 (both sides) takes valid UTF-8 without NUL.
			leaves = append(leaves, with(template, labels.MatchRegexp, regexp.QuoteMeta(v)), with(template, labels.MatchNotRegexp, regexp.QuoteMeta(v)))
		}
		res := b.agree(t, fmt.Sprintf("value %q", v), sqlTS, leaves)
		for i, want := range []float64{1, float64(len(vals))} {
			if len(res.Vectors[i]) != 1 || res.Vectors[i][0].Value != want {
				t.Errorf("value %q: leaf %d = %v, want %v", v, i, res.Vectors[i], want)
			}
		}
	}
	var n uint64
	queryOne(t, b.conn, "SELECT count() FROM "+b.table, nil, &n)
	if n != uint64(len(events)) {
		t.Fatalf("the events table has %d rows, want %d", n, len(events))
	}
	var victim uint64 = 1
	queryOne(t, b.conn, "SELECT count() FROM "+strings.TrimSuffix(b.table, ".events")+".victim", nil, &victim)
	if victim != 0 {
		t.Fatalf("the victim table has %d rows", victim)
	}
}

// TestEveryLeafAgreesWithMemoryEmbedded evaluates the expressions of
// engine/clickhouse's reference test (every aggregate, grouped and not,
// every matcher type, offsets) alone and then all at once, fused into
// shared statements.
func TestEveryLeafAgreesWithMemoryEmbedded(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	gen := newLeafGen(rng)
	b := newBackends(t, gen.events(3000, sqlTS))
	exprs := everyLeafExprs
	ts := sqlTS.Add(250 * time.Millisecond)
	var all []*dsl.Leaf
	for _, expr := range exprs {
		leaves := parseLeaves(t, expr)
		b.agree(t, expr, ts, leaves)
		all = append(all, leaves...)
	}
	res := b.agree(t, "all leaves at once", ts, all)
	if len(res.Statements) >= len(all) {
		t.Errorf("%d statements for %d leaves: nothing was fused", len(res.Statements), len(all))
	}
}

// TestIncrementalLeavesAgreeWithMemoryEmbedded runs the same expressions
// through the incremental path (partial aggregates per bucket) on the
// embedded engine, at three consecutive minutes, so its statements are
// proven on 26.x as engine/clickhouse's tests prove them on 18.16.
func TestIncrementalLeavesAgreeWithMemoryEmbedded(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	gen := newLeafGen(rng)
	b := newBackends(t, gen.events(3000, sqlTS))
	now := sqlTS.Add(-2 * time.Minute)
	inc, err := clickhouse.New(clickhouse.Options{Conn: b.conn, Table: b.table, Schema: dsl.DefaultSchema(),
		Incremental: &clickhouse.Incremental{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	b.ch = inc
	var all []*dsl.Leaf
	for _, expr := range everyLeafExprs {
		all = append(all, parseLeaves(t, expr)...)
	}
	for k := range 3 {
		ts := sqlTS.Add(time.Duration(k-2) * time.Minute)
		now = ts.Add(time.Second)
		b.agree(t, "all leaves, incremental", ts, all)
	}
	if st := inc.IncrementalStats(); st.Leaves == 0 || st.Queries == 0 {
		t.Fatalf("nothing took the incremental path: %+v", st)
	}
}

// everyLeafExprs cover every aggregate, grouped and not, every matcher
// type and offsets.
var everyLeafExprs = []string{
	`count_over_time(events[5m])`,
	`count_over_time(events{status="error"}[5m])`,
	`count_over_time(events{tenant_id="nobody"}[5m])`,
	`sum by (tenant_id) (count_over_time(events{status!="ok"}[10m]))`,
	`sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m]))`,
	`sum_over_time(cost{model=~"gpt.*"}[1h])`,
	`sum by (app_code) (sum_over_time(total_tokens{provider!~"azure|"}[1h]))`,
	`avg_over_time(latency_ms[30m])`,
	`max by (tenant_id, model) (avg_over_time(latency_ms{status="ok"}[30m]))`,
	`min_over_time(latency_ms{tenant_id="acme"}[1h])`,
	`min by (provider) (min_over_time(cost[1h]))`,
	`max_over_time(latency_ms[1h])`,
	`max by (status) (max_over_time(total_tokens[1h]))`,
	`p50(latency_ms[1h])`,
	`p95(latency_ms{model!~"gpt"}[1h])`,
	`p99(latency_ms[1h])`,
	`max by (tenant_id) (p95(latency_ms[5m]))`,
	`max by (tenant_id) (quantile_over_time(0, cost[1h])) + max by (tenant_id) (quantile_over_time(1, cost[1h]))`,
	`stddev_over_time(latency_ms[1h])`,
	`max by (app_code) (stddev_over_time(cost{tenant_id!=""}[1h]))`,
	`rate(events[5m])`,
	`sum by (tenant_id) (rate(cost[5m]))`,
	`increase(total_tokens{app_code="chat"}[1h])`,
	`sum by (model) (increase(events{status=~"error|timeout"}[1h]))`,
	`absent_over_time(events{tenant_id="nobody"}[5m])`,
	`absent_over_time(events[5m])`,
	`sum by (tenant_id) (present_over_time(events{model=~"gpt"}[5m]))`,
	`sum_over_time(cost[10m] offset 30m)`,
	`sum by (tenant_id) (count_over_time(events[10m] offset 1h))`,
	`count_over_time(events{model=~"claude 3.\\(beta\\)"}[2h])`,
	`sum without (model, provider, status, error_code, app_code) (count_over_time(events[1h]))`,
	`sum(count_over_time(events{tenant_id=~"acme|beta", status!="ok", app_code!~""}[1h]))`,
	`sum by (app_code) (rate(events[5m]) + increase(total_tokens[5m]) + min_over_time(latency_ms[5m]) + stddev_over_time(latency_ms[5m]) + quantile_over_time(0.5, cost[5m]) + avg_over_time(cost[5m]) + max_over_time(cost[5m]) + present_over_time(events[5m]))`,
}

// TestRandomLeavesAgreeWithMemoryEmbedded generates leaves over every
// range function, both selectors, every matcher type, groupings, windows
// and offsets, over events placed on the windows' edges, and evaluates them
// one by one and all together at several times. A failure names the seed;
// CALLWATCH_SEED replays it.
func TestRandomLeavesAgreeWithMemoryEmbedded(t *testing.T) {
	seeds := []uint64{20251124, uint64(time.Now().UnixNano())}
	if s := getenvSeed(t); s != 0 {
		seeds = []uint64{s}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("replay with: CALLWATCH_SEED=%d go test ./engine/chdb -run TestRandomLeaves", seed)
				}
			}()
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			gen := newLeafGen(rng)
			end := sqlTS
			times := []time.Time{end, end.Add(-30*time.Minute + 250*time.Millisecond), end.Add(-time.Hour + 999*time.Millisecond)}
			events := gen.events(2500, end)
			for _, ts := range times {
				events = append(events, gen.edgeEvents(ts)...)
			}
			b := newBackends(t, events)
			var leaves []*dsl.Leaf
			for len(leaves) < 200 || len(gen.missing()) > 0 {
				if len(leaves) > 2000 {
					t.Fatalf("the generator does not reach %v", gen.missing())
				}
				expr := gen.expr()
				e, err := dsl.Parse(expr, dsl.Options{})
				if err != nil {
					t.Fatalf("generated %s: %v", expr, err)
				}
				leaves = append(leaves, e.Leaves...)
			}
			statements := map[string]bool{}
			nonEmpty := 0
			for _, ts := range times {
				for _, l := range leaves {
					res := b.agree(t, "leaf alone", ts, []*dsl.Leaf{l})
					for _, s := range res.Statements {
						statements[s] = true
					}
				}
				res := b.agree(t, "all leaves at once", ts, leaves)
				for _, s := range res.Statements {
					statements[s] = true
				}
				for _, v := range res.Vectors {
					if len(v) > 0 {
						nonEmpty++
					}
				}
			}
			t.Logf("seed %d: %d events, %d leaves at %d times (%d results not empty), %d distinct statements ran",
				seed, len(events), len(leaves), len(times), nonEmpty, len(statements))
			if nonEmpty < len(leaves) {
				t.Errorf("only %d of %d results have samples: the comparison is too often of nothing", nonEmpty, len(leaves)*len(times))
			}
		})
	}
}

func getenvSeed(t *testing.T) uint64 {
	v := strings.TrimSpace(os.Getenv("CALLWATCH_SEED"))
	if v == "" {
		return 0
	}
	s, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("CALLWATCH_SEED=%q: %v", v, err)
	}
	return s
}
