package storetest

// The SQL of engine/clickhouse's compiler on each backend: the same events
// go into a table (clickhouse.EventsDDL) and into engine/memory, every leaf
// is computed by clickhouse.Source over the backend's connection and by the
// memory evaluator, and both must agree — bit for bit where both compute
// the same value exactly, within 1e-9 relative where floats are added in
// another order — and give the values these suites state.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
)

// Events runs the contract of the events SQL: every suite below and those
// of events.go, each in a subtest named by what it shows, in database db
// of conn.
func Events(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	for _, s := range []struct {
		name  string
		suite func(*testing.T, clickhouse.ExecQuerier, string)
	}{
		{"windows are open at the start and closed at the end", Windows},
		{"windows around the epoch select what DateTime holds", WindowsAroundTheEpoch},
		{"regex matchers are fully anchored", RegexMatchers},
		{"absent, present and empty label values", AbsentPresentAndEmptyLabels},
		{"quantiles are the element at floor(φ·n), stddev is stable, integer sums do not overflow", QuantilesStddevAndBigSums},
		{"hostile label values are matched literally, never executed", HostileLabelValues},
		{"every leaf agrees with memory and with its definition", EveryLeafAgreesWithMemory},
		{"negative and huge values agree with memory", NegativeAndHugeValues},
		{"NULL in a Nullable field counts as 0", NullFieldsCountAsZero},
		{"late rows count within the late window", IncrementalLateRows},
		{"bad data never silences a rule", BadData},
		{"a table that does not fit the schema is refused with every problem", SchemaCheck},
		{"the series limit is enforced inside ClickHouse", GroupLimit},
		{"Enum, FixedString and Decimal columns are read as strings and numbers", OddColumnTypes},
		{"an alert's evidence agrees with memory", EvidenceAgreesWithMemory},
	} {
		t.Run(s.name, func(t *testing.T) { s.suite(t, conn, db) })
	}
}

// Windows checks the window (t−o−w, t−o]: an event at its start is out, one
// at its end is in, and a fraction of a second of the evaluation time does
// not move the edges.
func Windows(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	tb := newEventsTable(t, conn, db+".window_events", []memory.Event{
		latencyEvent(-360, nil, 1), latencyEvent(-359, nil, 2), // the edges of [5m] offset 1m
		latencyEvent(-300, nil, 3), latencyEvent(-299, nil, 4), // the edges of [5m]
		latencyEvent(-60, nil, 5), latencyEvent(-59, nil, 6),
		latencyEvent(0, nil, 7), latencyEvent(1, nil, 8),
	})
	for _, tc := range []struct {
		name, expr string
		ts         time.Time
		want       float64
	}{
		{"an event at t−w is out and one at t is in", `sum_over_time(latency_ms[5m])`, sqlTS, 4 + 5 + 6 + 7},
		{"a fraction of a second does not move the edges", `sum_over_time(latency_ms[5m])`, sqlTS.Add(500 * time.Millisecond), 4 + 5 + 6 + 7},
		{"a second later the edges move by a second", `sum_over_time(latency_ms[5m])`, sqlTS.Add(time.Second), 5 + 6 + 7 + 8},
		{"an offset shifts both edges", `sum_over_time(latency_ms[5m] offset 1m)`, sqlTS, 2 + 3 + 4 + 5},
		{"an offset keeps the fraction rule", `sum_over_time(latency_ms[5m] offset 1m)`, sqlTS.Add(999 * time.Millisecond), 2 + 3 + 4 + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tb.one(t, tc.expr, tc.ts); got["{}"] != tc.want || len(got) != 1 {
				t.Fatalf("%s = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

// WindowsAroundTheEpoch covers the statements for windows that start
// before 1970, where DateTime's range ends: rule unit tests run a clock
// that starts at 1970-01-01 00:00:00.
func WindowsAroundTheEpoch(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	at := func(sec int64) memory.Event {
		ev := latencyEvent(0, nil, float64(sec+1))
		ev.Time = time.Unix(sec, 0).UTC()
		return ev
	}
	tb := newEventsTable(t, conn, db+".epoch_events", []memory.Event{at(0), at(1), at(50), at(61)})
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
			if got := tb.one(t, tc.expr, tc.ts.UTC()); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("%s = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

// RegexMatchers checks that regular expressions match whole values, as in
// PromQL, character by character, with . matching a newline; an equality
// matcher labels the result, other matchers do not.
func RegexMatchers(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	models := []string{"gpt", "gpt-4o", "xgpt", "a\nb", "租户"}
	var events []memory.Event
	for _, m := range models {
		events = append(events, latencyEvent(0, map[string]string{"model": m}, 1))
	}
	tb := newEventsTable(t, conn, db+".regex_events", events)
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
		{`count_over_time(events{model="gpt"}[5m])`, 1},
		{`count_over_time(events{model!="gpt"}[5m])`, 4},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			leaf := parseLeaves(t, tc.expr)[0]
			want := map[string]float64{leaf.Labels().String(): tc.want}
			if got := tb.one(t, tc.expr, sqlTS); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			// The reference: Prometheus' own matcher semantics.
			n := 0
			for _, m := range models {
				if leaf.Selector.Matchers[0].Matches(m) {
					n++
				}
			}
			if float64(n) != tc.want {
				t.Errorf("Prometheus matches %d models, the test wants %v", n, tc.want)
			}
		})
	}
}

// AbsentPresentAndEmptyLabels checks absent_over_time and
// present_over_time, and that a group whose label value is empty drops the
// label, as PromQL does.
func AbsentPresentAndEmptyLabels(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	l := func(tenant, app string) map[string]string {
		return map[string]string{"tenant_id": tenant, "app_code": app}
	}
	tb := newEventsTable(t, conn, db+".absent_events", []memory.Event{
		latencyEvent(0, l("acme", "chat"), 1), latencyEvent(-10, l("beta", ""), 1), latencyEvent(-600, l("gamma", "chat"), 1),
		latencyEvent(0, l("", "chat"), 1), latencyEvent(-1, l("", "chat"), 1), latencyEvent(0, l("", ""), 1),
	})
	for _, tc := range []struct {
		name, expr string
		want       map[string]float64
	}{
		{"absent has a sample when nothing matches", `absent_over_time(events{tenant_id="gamma"}[5m])`, map[string]float64{`{tenant_id="gamma"}`: 1}},
		{"absent has no sample when something matches", `absent_over_time(events{tenant_id="acme"}[5m])`, map[string]float64{}},
		{"absent drops labels of non-equality matchers", `absent_over_time(events{tenant_id=~"g.*", app_code="x"}[5m])`, map[string]float64{`{app_code="x"}`: 1}},
		{"grouped absent has one unlabelled sample when no group matches", `sum by (tenant_id) (absent_over_time(events{tenant_id="gamma"}[5m]))`, map[string]float64{`{}`: 1}},
		{"grouped absent has no sample when a group matches", `sum by (tenant_id) (absent_over_time(events[5m]))`, map[string]float64{}},
		{"present is 1 for every group with events, the empty tenant unlabelled", `sum by (tenant_id) (present_over_time(events[5m]))`, map[string]float64{`{tenant_id="acme"}`: 1, `{tenant_id="beta"}`: 1, `{}`: 1}},
		{"present has no sample without events", `present_over_time(events{tenant_id="gamma"}[5m])`, map[string]float64{}},
		{"present is labelled by equality matchers", `present_over_time(events{tenant_id="beta"}[5m])`, map[string]float64{`{tenant_id="beta"}`: 1}},
		{"groups with an empty label value drop the label", `sum by (tenant_id, app_code) (count_over_time(events[5m]))`, map[string]float64{
			`{app_code="chat", tenant_id="acme"}`: 1, `{tenant_id="beta"}`: 1, `{app_code="chat"}`: 2, `{}`: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tb.one(t, tc.expr, sqlTS); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("%s = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

// QuantilesStddevAndBigSums checks that a quantile is the element at index
// ⌊φ·n⌋ of the sorted values (ClickHouse's quantileExact), that the
// standard deviation is computed stably (a large mean and a small spread
// defeat the naive formula), and that sums of integer columns do not
// overflow.
func QuantilesStddevAndBigSums(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	var events []memory.Event
	tenant := func(t string) map[string]string { return map[string]string{"tenant_id": t} }
	latencies := map[string][]float64{"four": {4, 1, 3, 2}}
	for v := 1; v <= 20; v++ {
		latencies["twenty"] = append(latencies["twenty"], float64(v))
	}
	for v := 1; v <= 100; v++ {
		latencies["hundred"] = append(latencies["hundred"], float64(v))
	}
	for _, name := range []string{"four", "twenty", "hundred"} {
		for _, v := range latencies[name] {
			events = append(events, latencyEvent(0, tenant(name), v))
		}
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
	tb := newEventsTable(t, conn, db+".quantile_events", events)

	for _, tc := range []struct {
		fn   string
		want map[string]float64 // tenant → quantile
	}{
		{"quantile_over_time(0, latency_ms[5m])", map[string]float64{"four": 1, "twenty": 1, "hundred": 1}},
		{"p50(latency_ms[5m])", map[string]float64{"four": 3, "twenty": 11, "hundred": 51}},
		{"p90(latency_ms[5m])", map[string]float64{"four": 4, "twenty": 19, "hundred": 91}},
		{"p95(latency_ms[5m])", map[string]float64{"four": 4, "twenty": 20, "hundred": 96}},
		{"p99(latency_ms[5m])", map[string]float64{"four": 4, "twenty": 20, "hundred": 100}},
		{"quantile_over_time(1, latency_ms[5m])", map[string]float64{"four": 4, "twenty": 20, "hundred": 100}},
	} {
		t.Run(tc.fn+" is the element at floor(φ·n)", func(t *testing.T) {
			want := map[string]float64{}
			for name, v := range tc.want {
				want[`{tenant_id="`+name+`"}`] = v
			}
			expr := "max by (tenant_id) (" + strings.Replace(tc.fn, "latency_ms[", `latency_ms{tenant_id=~"four|twenty|hundred"}[`, 1) + ")"
			if got := tb.one(t, expr, sqlTS); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s = %v, want %v", expr, got, want)
			}
			// The same definition in Go: sorted values, index ⌊φ·n⌋ clamped to n−1.
			leaf := parseLeaves(t, tc.fn)[0]
			for name, w := range tc.want {
				if got := quantile(leaf.Quantile, latencies[name]); got != w {
					t.Errorf("Go quantile of %s = %v, want %v", name, got, w)
				}
			}
		})
	}
	t.Run("stddev matches Welford's on hard numbers", func(t *testing.T) {
		got := tb.one(t, `stddev_over_time(cost{tenant_id="hard"}[5m])`, sqlTS)[`{tenant_id="hard"}`]
		if want := welford(hard); math.Abs(got-want) > 1e-9*want {
			t.Fatalf("stddev = %.17g, Welford = %.17g (relative error %.3g)", got, want, math.Abs(got-want)/want)
		}
	})
	for _, tc := range []struct {
		expr string
		want map[string]float64
	}{
		{`sum_over_time(total_tokens{tenant_id="big"}[5m])`, map[string]float64{`{tenant_id="big"}`: 24e9}},
		{`max_over_time(total_tokens{tenant_id="big"}[5m])`, map[string]float64{`{tenant_id="big"}`: 8e9}},
	} {
		t.Run("integer sums do not overflow: "+tc.expr, func(t *testing.T) {
			if got := tb.one(t, tc.expr, sqlTS); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("%s = %v, want %v", tc.expr, got, tc.want)
			}
		})
	}
}

// HostileValues would break or subvert SQL built by concatenation, or a
// binding that gets an escape wrong.
func HostileValues() []string {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return []string{
		`it's`, `it''s`, `a\b`, `a\'b`, `\`, `\\`, `'`, `\'`, `\\'`, `"double"`, "`backtick`",
		`x -- comment`, `x # comment`, `/* block`, `*/`, `/* a */ b`, `/* block */`,
		`'; DROP TABLE victim; --`, `\'; DROP TABLE victim; --`, `' OR 1=1 OR '`, `'); DROP TABLE victim; SELECT ('`, `'; DROP TABLE events; --`,
		`?`, `??`, `'?'`, `$$`, `$x$`, `$$; DROP TABLE victim; $$`,
		"new\nline", "cr\rlf\r\n", "tab\there", "tab\tnew\nline", "nul\x00byte", "\x00", "bell\x07\x1b[31m",
		"bad \xff utf-8", "\xc3\x28", "\x80", "truncated \xe4\xb8", "\xed\xa0\x80 surrogate",
		`租户`, "emoji 🚨", "\u2028\u2029", `\x41`, `\0`, `\n`, "",
		strings.Repeat("long'\\", 20000),
		string(all),
	}
}

// HostileLabelValues puts hostile values in the events and in matchers
// (built directly, so values PromQL's parser would not accept, such as
// invalid UTF-8, are tried too): each is matched literally by every
// matcher type, never reaches the SQL's text, and the tables named in the
// payloads survive.
func HostileLabelValues(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	vals := HostileValues()
	var events []memory.Event
	seen := map[string]bool{}
	for _, v := range vals {
		if seen[v] {
			t.Fatalf("HostileValues holds %q twice", v)
		}
		seen[v] = true
		events = append(events, latencyEvent(0, map[string]string{"tenant_id": v}, 1))
	}
	events = append(events, latencyEvent(0, map[string]string{"tenant_id": "plain"}, 1))
	tb := newEventsTable(t, conn, db+".hostile_events", events)
	victim := db + ".victim"
	mustExec(t, conn, "CREATE TABLE "+victim+" (x UInt8) ENGINE = Memory")
	mustExec(t, conn, "INSERT INTO "+victim+" SELECT 1")

	template := parseLeaves(t, `count_over_time(events{tenant_id="x"}[5m])`)[0]
	grouped := parseLeaves(t, `sum by (tenant_id) (count_over_time(events{tenant_id="x"}[5m]))`)[0]
	with := func(l *dsl.Leaf, typ labels.MatchType, v string) *dsl.Leaf {
		c := *l
		c.Selector.Matchers = []*labels.Matcher{labels.MustNewMatcher(typ, "tenant_id", v)}
		return &c
	}
	leavesOf := func(v string) []*dsl.Leaf {
		leaves := []*dsl.Leaf{with(template, labels.MatchEqual, v), with(template, labels.MatchNotEqual, v), with(grouped, labels.MatchEqual, v)}
		if utf8.ValidString(v) && !strings.ContainsRune(v, 0) {
			// RE2 (both sides) takes valid UTF-8 without NUL.
			leaves = append(leaves, with(template, labels.MatchRegexp, regexp.QuoteMeta(v)), with(template, labels.MatchNotRegexp, regexp.QuoteMeta(v)))
		}
		return leaves
	}
	// The text every statement has whatever the value: a value found in it
	// (?, the empty string) proves nothing.
	neutral := strings.Join(tb.agree(t, tb.full, "value plain", sqlTS, leavesOf("plain")).Statements, "\n")
	others := float64(len(vals)) // every event but the value's own
	for _, v := range vals {
		name := v
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			leaves := leavesOf(v)
			res := tb.agree(t, tb.full, fmt.Sprintf("value %q", name), sqlTS, leaves)
			own := labels.FromStrings("tenant_id", v)
			if v == "" {
				own = labels.EmptyLabels()
			}
			wants := []struct {
				what   string
				labels labels.Labels
				value  float64
			}{
				{"=", own, 1}, {"!=", labels.EmptyLabels(), others}, {"= grouped by tenant_id", own, 1},
				{"=~", labels.EmptyLabels(), 1}, {"!~", labels.EmptyLabels(), others},
			}
			for i := range leaves {
				w, got := wants[i], res.Vectors[i]
				if len(got) != 1 || !labels.Equal(got[0].Labels, w.labels) || got[0].Value != w.value {
					t.Errorf("tenant_id %s value: %v, want %s %v", w.what, got, w.labels, w.value)
				}
			}
			if v != "" && !strings.Contains(neutral, v) {
				for _, sql := range res.Statements {
					if strings.Contains(sql, v) {
						t.Errorf("the SQL contains the value:\n%s", sql)
					}
				}
			}
		})
	}
	if got := tb.one(t, `count_over_time(events[5m])`, sqlTS); got["{}"] != float64(len(events)) {
		t.Errorf("after the hostile queries the events table counts %v, want %d", got, len(events))
	}
	if n := queryCount(t, conn, "SELECT count() FROM "+victim); n != 1 {
		t.Errorf("the victim table has %d rows, want 1", n)
	}
}

// everyLeafExprs cover every aggregate, grouped and not, every matcher
// type and offsets, and every aggregate of one shape fused into one
// statement.
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
	`count_le_over_time(latency_ms[1h], 2000) / count_over_time(latency_ms[1h])`,
	`sum by (tenant_id) (count_gt_over_time(cost{status="ok"}[30m], 50))`,
	`sum by (tenant_id) (count_le_over_time(latency_ms[1h], -1))`, // every group 0
	`sum_over_time(cost[10m] offset 30m)`,
	`sum by (tenant_id) (count_over_time(events[10m] offset 1h))`,
	`count_over_time(events{model=~"multi.line"}[2h])`,
	`count_over_time(events{model=~"claude 3.\\(beta\\)"}[2h])`,
	`sum without (model, provider, status, error_code, app_code) (count_over_time(events[1h]))`,
	`sum(count_over_time(events{tenant_id=~"acme|beta", status!="ok", app_code!~""}[1h]))`,
	`sum by (app_code) (rate(events[5m]) + increase(total_tokens[5m]) + min_over_time(latency_ms[5m]) + stddev_over_time(latency_ms[5m]) + quantile_over_time(0.5, cost[5m]) + avg_over_time(cost[5m]) + max_over_time(cost[5m]) + present_over_time(events[5m]))`,
}

// EveryLeafAgreesWithMemory evaluates everyLeafExprs over random events,
// each alone and then all their leaves at once (fused into shared
// statements), and compares every leaf with the memory evaluator and with
// the same definition computed here; then it runs them through the
// incremental path (partial aggregates per bucket) at three consecutive
// minutes.
func EveryLeafAgreesWithMemory(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	events := randomEvents(3000)
	tb := newEventsTable(t, conn, db+".every_leaf_events", events)
	ts := sqlTS.Add(250 * time.Millisecond)
	var all []*dsl.Leaf
	for _, expr := range everyLeafExprs {
		leaves := parseLeaves(t, expr)
		res := tb.agree(t, tb.full, expr, ts, leaves)
		for i, l := range leaves {
			compareWithReference(t, expr, l, res.Vectors[i], reference(tb.schema, l, ts, events))
		}
		all = append(all, leaves...)
	}
	res := tb.agree(t, tb.full, "all leaves at once", ts, all)
	if len(res.Statements) >= len(all) {
		t.Errorf("%d statements for %d leaves: nothing was fused", len(res.Statements), len(all))
	}
	for i, l := range all {
		compareWithReference(t, "all leaves at once: "+l.Func, l, res.Vectors[i], reference(tb.schema, l, ts, events))
	}

	now := sqlTS.Add(-2 * time.Minute)
	inc := tb.source(t, &clickhouse.Incremental{Now: func() time.Time { return now }})
	for k := range 3 {
		ts := sqlTS.Add(time.Duration(k-2) * time.Minute)
		now = ts.Add(time.Second)
		tb.agree(t, inc, "all leaves, incremental", ts, all)
	}
	if st := inc.IncrementalStats(); st.Leaves == 0 || st.Queries == 0 {
		t.Fatalf("nothing took the incremental path: %+v", st)
	}
}

// randomEvents are n events over the three hours before sqlTS.
func randomEvents(n int) []memory.Event {
	rng := rand.New(rand.NewPCG(7, 11))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	events := make([]memory.Event, n)
	for i := range events {
		events[i] = event(-int64(rng.IntN(3*3600)), map[string]string{
			"tenant_id":  pick("acme", "beta", "gamma", ""),
			"app_code":   pick("chat", "search", "batch", ""),
			"model":      pick("gpt", "gpt-4o", "gpt-4o-mini", "claude", "multi\nline", "claude 3\n(beta)"),
			"provider":   pick("openai", "azure", "anthropic", ""),
			"status":     pick("ok", "ok", "ok", "error", "timeout"),
			"error_code": pick("", "", "429", "500"),
		}, map[string]float64{
			"latency_ms":    float64(rng.IntN(10000)),
			"input_tokens":  float64(rng.IntN(5000)),
			"output_tokens": float64(rng.IntN(2000)),
			"cost":          math.Round(rng.Float64()*1e6) / 1e4,
		})
	}
	return events
}

// compareWithReference compares a leaf's samples with the reference
// computation, within 1e-9 relative: sums of floats may be added in
// another order.
func compareWithReference(t *testing.T, what string, l *dsl.Leaf, got, want []engine.Sample) {
	t.Helper()
	g, w := values(got), values(want)
	if len(g) != len(got) {
		t.Errorf("%s: duplicate label sets in %v", what, got)
	}
	if p := compareMaps(g, w); p != "" {
		t.Errorf("%s (%s) differs from its definition: %s", what, l.Name, p)
	}
}

func compareMaps(got, want map[string]float64) string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, fmt.Sprintf("%s missing (want %v)", k, w))
		} else if !sameValue(false, tolerance{rel: 1e-9}, g, w) {
			out = append(out, fmt.Sprintf("%s = %v, want %v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("unexpected %s = %v", k, g))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// reference computes a leaf over events from the definitions: the window
// (from, to], Prometheus' matchers, pooling per By group, and each range
// function's meaning.
func reference(schema dsl.Schema, l *dsl.Leaf, ts time.Time, events []memory.Event) []engine.Sample {
	index := map[string]int{}
	for i, name := range schema.Labels {
		index[name] = i
	}
	from, to := l.Window(ts)
	groups := map[string][]float64{}
	groupValues := map[string][]string{}
	for _, e := range events {
		if !e.Time.After(from) || e.Time.After(to) {
			continue
		}
		ok := true
		for _, m := range l.Selector.Matchers {
			ok = ok && m.Matches(e.Labels[index[m.Name]])
		}
		if !ok {
			continue
		}
		vals := make([]string, len(l.By))
		for i, b := range l.By {
			vals[i] = e.Labels[index[b]]
		}
		k := strings.Join(vals, "\x00")
		groupValues[k] = vals
		v := 0.0
		for _, c := range l.Selector.Columns {
			v += e.Nums[c]
		}
		groups[k] = append(groups[k], v)
	}
	if l.Agg == dsl.AggAbsent {
		if len(groups) > 0 {
			return nil
		}
		return []engine.Sample{{Labels: l.Labels(), Value: 1}}
	}
	var out []engine.Sample
	for k, vals := range groups {
		n, sum := float64(len(vals)), 0.0
		for _, v := range vals {
			sum += v
		}
		count := n
		if l.Selector.Field != dsl.EventsSelector {
			count = sum // rate and increase of a field add its values
		}
		var v float64
		switch l.Agg {
		case dsl.AggCount:
			v = n
		case dsl.AggSum:
			v = sum
		case dsl.AggAvg:
			v = sum / n
		case dsl.AggMin:
			v = slices.Min(vals)
		case dsl.AggMax:
			v = slices.Max(vals)
		case dsl.AggQuantile:
			v = quantile(l.Quantile, vals)
		case dsl.AggStddev:
			v = welford(vals)
		case dsl.AggRate:
			v = count / l.Range.Seconds()
		case dsl.AggIncrease:
			v = count
		case dsl.AggPresent:
			v = 1
		case dsl.AggCountLE, dsl.AggCountGT:
			for _, x := range vals {
				if (x <= l.Threshold) == (l.Agg == dsl.AggCountLE) {
					v++
				}
			}
		default:
			panic("reference: no definition of " + l.Func)
		}
		out = append(out, engine.Sample{Labels: l.GroupLabels(groupValues[k]), Value: v})
	}
	return out
}

// quantile is the element at index ⌊φ·n⌋ of the sorted values, clamped to
// n−1.
func quantile(phi float64, vals []float64) float64 {
	s := slices.Clone(vals)
	sort.Float64s(s)
	i := int(phi * float64(len(s)))
	if i > len(s)-1 {
		i = len(s) - 1
	}
	return s[i]
}

// welford is the population standard deviation by Welford's algorithm.
func welford(vals []float64) float64 {
	var n, mean, m2 float64
	for _, x := range vals {
		n++
		d := x - mean
		mean += d / n
		m2 += d * (x - mean)
	}
	return math.Sqrt(m2 / n)
}

// oddExprs exercise every aggregate over a field.
var oddExprs = []string{
	`sum_over_time(cost[1h])`, `avg_over_time(cost[1h])`, `min_over_time(cost[1h])`, `max_over_time(cost[1h])`,
	`p95(cost[1h])`, `stddev_over_time(cost[1h])`, `count_over_time(events[1h])`, `rate(cost[1h])`,
	`max by (tenant_id) (max_over_time(latency_ms[1h]))`,
	`count_le_over_time(cost[1h], 0)`, `count_gt_over_time(cost[1h], 0)`,
}

// NegativeAndHugeValues checks that negative and huge costs are values like
// any other, on the full and the incremental path.
func NegativeAndHugeValues(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	var events []memory.Event
	for i, c := range []float64{-2.5, 0, 1e300, -1e300, 3, -0.125, math.MaxFloat64} {
		events = append(events, event(-int64(i*7*60), map[string]string{"tenant_id": "acme", "status": "ok"},
			map[string]float64{"cost": c, "latency_ms": float64(i)}))
	}
	tb := newEventsTable(t, conn, db+".extreme_events", events)
	inc := tb.source(t, &clickhouse.Incremental{Now: func() time.Time { return sqlTS.Add(time.Hour) }})
	for _, expr := range oddExprs {
		leaves := parseLeaves(t, expr)
		for _, ts := range []time.Time{sqlTS, sqlTS.Add(time.Minute), sqlTS.Add(2 * time.Minute)} {
			m, err := tb.mem.EvalLeaves(context.Background(), ts, leaves)
			if err != nil {
				t.Fatal(err)
			}
			for name, src := range map[string]*clickhouse.Source{"full": tb.full, "incremental": inc} {
				c, err := src.EvalLeaves(context.Background(), ts, leaves)
				if err != nil {
					t.Fatalf("%s, %s path: %v", expr, name, err)
				}
				if p := compareVectors(false, exprTolerance, m.Vectors[0], c.Vectors[0]); p != "" {
					t.Errorf("%s at %s, %s path: %s", expr, ts.Format(time.TimeOnly), name, p)
				}
			}
		}
	}
}

// NullFieldsCountAsZero checks that, in a user's table whose field column
// is Nullable, a NULL value is 0 — as a key missing from a JSON event is in
// the memory evaluator — on the full and the incremental path alike.
func NullFieldsCountAsZero(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	schema := dsl.DefaultSchema()
	table := db + ".nullable_events"
	ddl := strings.Replace(clickhouse.EventsDDL(table, schema), "`cost` Float64", "`cost` Nullable(Float64)", 1)
	if ddl == clickhouse.EventsDDL(table, schema) {
		t.Fatalf("no Float64 cost column to make Nullable in:\n%s", ddl)
	}
	mustExec(t, conn, ddl)
	for _, row := range []struct {
		ago  time.Duration
		cost string
	}{{time.Minute, "1.5"}, {2 * time.Minute, "NULL"}} {
		mustExec(t, conn, fmt.Sprintf("INSERT INTO %s (created_at, tenant_id, status, cost) SELECT toDateTime(%d), 'acme', 'ok', %s",
			table, sqlTS.Add(-row.ago).Unix(), row.cost))
	}
	full, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	inc, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Incremental: &clickhouse.Incremental{Now: func() time.Time { return sqlTS }}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{`sum_over_time(cost[1h])`: 1.5, `avg_over_time(cost[1h])`: 0.75, `min_over_time(cost[1h])`: 0,
		`max_over_time(cost[1h])`: 1.5, `p95(cost[1h])`: 1.5, `count_over_time(events[1h])`: 2,
		// The NULL is 0: at or below 0, and not above it.
		`count_le_over_time(cost[1h], 0)`: 1, `count_gt_over_time(cost[1h], 0)`: 1}
	for _, expr := range oddExprs {
		leaves := parseLeaves(t, expr)
		for _, ts := range []time.Time{sqlTS, sqlTS.Add(time.Minute)} {
			f, err := full.EvalLeaves(context.Background(), ts, leaves)
			if err != nil {
				t.Fatalf("%s, full path: %v", expr, err)
			}
			c, err := inc.EvalLeaves(context.Background(), ts, leaves)
			if err != nil {
				t.Fatalf("%s, incremental path: %v", expr, err)
			}
			if p := compareVectors(false, exprTolerance, f.Vectors[0], c.Vectors[0]); p != "" {
				t.Errorf("%s at %s: incremental and full differ: %s", expr, ts.Format(time.TimeOnly), p)
			}
			if w, ok := want[expr]; ok && ts.Equal(sqlTS) && (len(f.Vectors[0]) != 1 || f.Vectors[0][0].Value != w) {
				t.Errorf("%s = %v, want %v", expr, f.Vectors[0], w)
			}
		}
	}
}

// IncrementalLateRows pins the late-arrival contract: a row that lands
// within the late window after its bucket's end is counted, one that lands
// later is not counted by windows already read (its bucket was final), and
// a fresh Source counts it again.
func IncrementalLateRows(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	tb := newEventsTable(t, conn, db+".late_events", nil)
	now := sqlTS
	inc := tb.source(t, &clickhouse.Incremental{Now: func() time.Time { return now }})
	leaves := parseLeaves(t, `count_over_time(events[1h])`)
	insert := func(at time.Time) {
		ev := event(0, map[string]string{"tenant_id": "acme", "status": "ok"}, nil)
		ev.Time = at
		insertEvents(t, conn, tb.name, tb.schema, []memory.Event{ev})
	}
	count := func(src *clickhouse.Source, ts time.Time) float64 {
		t.Helper()
		r, err := src.EvalLeaves(context.Background(), ts, leaves)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Vectors[0]) == 0 {
			return 0
		}
		return r.Vectors[0][0].Value
	}
	insert(sqlTS.Add(-30 * time.Minute))
	if got := count(inc, sqlTS); got != 1 {
		t.Fatalf("at t0: got %v, want 1", got)
	}
	// 90s late: within the 2m window, counted.
	now = sqlTS.Add(time.Minute)
	insert(sqlTS.Add(-30 * time.Second))
	if got := count(inc, now); got != 2 {
		t.Fatalf("a row 90s late: got %v, want 2", got)
	}
	// 10 minutes late, into a bucket that was final: not counted.
	now = sqlTS.Add(2 * time.Minute)
	insert(sqlTS.Add(-8 * time.Minute))
	if got := count(inc, now); got != 2 {
		t.Fatalf("a row 10m late: got %v, want 2 (its bucket was final)", got)
	}
	fresh := tb.source(t, &clickhouse.Incremental{Now: func() time.Time { return now }})
	if got := count(fresh, now); got != 3 {
		t.Fatalf("a fresh source: got %v, want 3", got)
	}
}
