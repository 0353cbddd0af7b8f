package clickhouse

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/chtest"
)

var server = chtest.NewShared()

func TestMain(m *testing.M) { os.Exit(server.Run(m)) }

// testTS is a whole second; tests that need a fraction add it.
var testTS = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

// event is one row of the default schema's events table.
type event struct {
	at     time.Time
	labels map[string]string
	// values holds the numeric columns: latency_ms, input_tokens,
	// output_tokens (whole numbers) and cost.
	values map[string]float64
}

func (e event) row() map[string]any {
	r := map[string]any{"created_at": e.at}
	for k, v := range e.labels {
		r[k] = v
	}
	for k, v := range e.values {
		r[k] = v
	}
	return r
}

// newSource creates an events table in a fresh database, loads events and
// returns a Source reading it.
func newSource(t *testing.T, events []event) *Source {
	t.Helper()
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", dsl.DefaultSchema()))
	rows := make([]map[string]any, len(events))
	for i, e := range events {
		rows[i] = e.row()
	}
	s.InsertJSONEachRow(t, db, "events", rows)
	src, err := New(Options{Conn: NewNativeConn(s.Conn(t, db)), Table: "events"})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// eval parses expr and computes its leaves at ts.
func eval(t *testing.T, src *Source, expr string, ts time.Time) (*dsl.Expr, engine.LeafResult) {
	t.Helper()
	e, err := dsl.Parse(expr, dsl.Options{})
	if err != nil {
		t.Fatalf("parse %s: %v", expr, err)
	}
	res, err := src.EvalLeaves(context.Background(), ts, e.Leaves)
	if err != nil {
		t.Fatalf("eval %s: %v\n%s", expr, err, strings.Join(res.Statements, "\n\n"))
	}
	if len(res.Vectors) != len(e.Leaves) {
		t.Fatalf("%d vectors for %d leaves", len(res.Vectors), len(e.Leaves))
	}
	return e, res
}

// one evaluates an expression with a single leaf and returns its samples as
// a map from the labels' string form to the value.
func one(t *testing.T, src *Source, expr string, ts time.Time) map[string]float64 {
	t.Helper()
	e, res := eval(t, src, expr, ts)
	if len(e.Leaves) != 1 {
		t.Fatalf("%s has %d leaves, want 1", expr, len(e.Leaves))
	}
	return vectorMap(res.Vectors[0])
}

func vectorMap(v []engine.Sample) map[string]float64 {
	m := map[string]float64{}
	for _, s := range v {
		m[s.Labels.String()] = s.Value
	}
	return m
}

func assertVector(t *testing.T, what string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
		return
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !near(g, w) {
			t.Errorf("%s = %v, want %v", what, got, want)
			return
		}
	}
}

// near compares with a relative tolerance of 1e-9: sums of floats may be
// added in another order in ClickHouse.
func near(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func at(sec int64) time.Time { return testTS.Add(time.Duration(sec) * time.Second) }

func ev(sec int64, lbls map[string]string, latency float64) event {
	return event{at: at(sec), labels: lbls, values: map[string]float64{"latency_ms": latency}}
}

func TestWindowIsOpenAtTheStartAndClosedAtTheEnd(t *testing.T) {
	src := newSource(t, []event{
		ev(-360, nil, 1), ev(-359, nil, 2), // the edges of [5m] offset 1m
		ev(-300, nil, 3), ev(-299, nil, 4), // the edges of [5m]
		ev(-60, nil, 5), ev(-59, nil, 6),
		ev(0, nil, 7), ev(1, nil, 8),
	})
	cases := []struct {
		name, expr string
		ts         time.Time
		want       float64
	}{
		{"an event at t−w is out and one at t is in", `sum_over_time(latency_ms[5m])`, testTS, 4 + 5 + 6 + 7},
		{"a fraction of a second does not move the edges", `sum_over_time(latency_ms[5m])`, testTS.Add(500 * time.Millisecond), 4 + 5 + 6 + 7},
		{"a second later the edges move by a second", `sum_over_time(latency_ms[5m])`, testTS.Add(time.Second), 5 + 6 + 7 + 8},
		{"an offset shifts both edges", `sum_over_time(latency_ms[5m] offset 1m)`, testTS, 2 + 3 + 4 + 5},
		{"an offset keeps the fraction rule", `sum_over_time(latency_ms[5m] offset 1m)`, testTS.Add(999 * time.Millisecond), 2 + 3 + 4 + 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertVector(t, tc.expr, one(t, src, tc.expr, tc.ts), map[string]float64{"{}": tc.want})
		})
	}
}

func TestRegexMatchersAreFullyAnchored(t *testing.T) {
	m := func(model string) map[string]string { return map[string]string{"model": model} }
	src := newSource(t, []event{ev(0, m("gpt"), 1), ev(0, m("gpt-4o"), 1), ev(0, m("xgpt"), 1), ev(0, m("a\nb"), 1)})
	cases := []struct {
		expr string
		want float64
	}{
		{`count_over_time(events{model=~"gpt"}[5m])`, 1},
		{`count_over_time(events{model!~"gpt"}[5m])`, 3},
		{`count_over_time(events{model=~"gpt.*"}[5m])`, 2},
		{`count_over_time(events{model=~".*gpt"}[5m])`, 2},
		{`count_over_time(events{model=~"gpt|xgpt"}[5m])`, 2},
		{`count_over_time(events{model=~"a.b"}[5m])`, 1}, // . matches a newline, as in PromQL
		{`count_over_time(events{model="gpt"}[5m])`, 1},
		{`count_over_time(events{model!="gpt"}[5m])`, 3},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			// An equality matcher labels the result, other matchers do not.
			e, _ := dsl.Parse(tc.expr, dsl.Options{})
			assertVector(t, tc.expr, one(t, src, tc.expr, testTS), map[string]float64{e.Leaves[0].Labels().String(): tc.want})
			// The reference: Prometheus' own matcher semantics.
			n := 0
			for _, model := range []string{"gpt", "gpt-4o", "xgpt", "a\nb"} {
				if e.Leaves[0].Selector.Matchers[0].Matches(model) {
					n++
				}
			}
			if float64(n) != tc.want {
				t.Errorf("Prometheus matches %d models, the test wants %v", n, tc.want)
			}
		})
	}
}

func TestGroupsWithAnEmptyLabelValueDropTheLabel(t *testing.T) {
	l := func(tenant, app string) map[string]string {
		return map[string]string{"tenant_id": tenant, "app_code": app}
	}
	src := newSource(t, []event{ev(0, l("acme", "chat"), 1), ev(0, l("", "chat"), 1), ev(0, l("", "chat"), 1), ev(0, l("", ""), 1)})
	got := one(t, src, `sum by (tenant_id, app_code) (count_over_time(events[5m]))`, testTS)
	assertVector(t, "grouped count", got, map[string]float64{
		`{app_code="chat", tenant_id="acme"}`: 1,
		`{app_code="chat"}`:                   2,
		`{}`:                                  1,
	})
}

func TestAbsentAndPresent(t *testing.T) {
	l := func(tenant string) map[string]string { return map[string]string{"tenant_id": tenant} }
	src := newSource(t, []event{ev(0, l("acme"), 1), ev(-10, l("beta"), 1), ev(-600, l("gamma"), 1)})
	cases := []struct {
		name, expr string
		want       map[string]float64
	}{
		{"absent has a sample when nothing matches", `absent_over_time(events{tenant_id="gamma"}[5m])`, map[string]float64{`{tenant_id="gamma"}`: 1}},
		{"absent has no sample when something matches", `absent_over_time(events{tenant_id="acme"}[5m])`, map[string]float64{}},
		{"absent drops labels of non-equality matchers", `absent_over_time(events{tenant_id=~"g.*", app_code="x"}[5m])`, map[string]float64{`{app_code="x"}`: 1}},
		{"grouped absent has one unlabelled sample when no group matches", `sum by (tenant_id) (absent_over_time(events{tenant_id="gamma"}[5m]))`, map[string]float64{`{}`: 1}},
		{"grouped absent has no sample when a group matches", `sum by (tenant_id) (absent_over_time(events[5m]))`, map[string]float64{}},
		{"present is 1 for every group with events", `sum by (tenant_id) (present_over_time(events[5m]))`, map[string]float64{`{tenant_id="acme"}`: 1, `{tenant_id="beta"}`: 1}},
		{"present has no sample without events", `present_over_time(events{tenant_id="gamma"}[5m])`, map[string]float64{}},
		{"present is labelled by equality matchers", `present_over_time(events{tenant_id="beta"}[5m])`, map[string]float64{`{tenant_id="beta"}`: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertVector(t, tc.expr, one(t, src, tc.expr, testTS), tc.want)
		})
	}
}

func TestQuantileIsTheElementAtFloorPhiN(t *testing.T) {
	var events []event
	for _, v := range []float64{4, 1, 3, 2} {
		events = append(events, ev(0, map[string]string{"tenant_id": "four"}, v))
	}
	for v := 1; v <= 20; v++ {
		events = append(events, ev(0, map[string]string{"tenant_id": "twenty"}, float64(v)))
	}
	for v := 1; v <= 100; v++ {
		events = append(events, ev(0, map[string]string{"tenant_id": "hundred"}, float64(v)))
	}
	src := newSource(t, events)
	cases := []struct {
		fn   string
		want map[string]float64 // tenant -> quantile
	}{
		{"quantile_over_time(0, latency_ms[5m])", map[string]float64{"four": 1, "twenty": 1, "hundred": 1}},
		{"p50(latency_ms[5m])", map[string]float64{"four": 3, "twenty": 11, "hundred": 51}},
		{"p90(latency_ms[5m])", map[string]float64{"four": 4, "twenty": 19, "hundred": 91}},
		{"p95(latency_ms[5m])", map[string]float64{"four": 4, "twenty": 20, "hundred": 96}},
		{"p99(latency_ms[5m])", map[string]float64{"four": 4, "twenty": 20, "hundred": 100}},
		{"quantile_over_time(1, latency_ms[5m])", map[string]float64{"four": 4, "twenty": 20, "hundred": 100}},
	}
	for _, tc := range cases {
		t.Run(tc.fn, func(t *testing.T) {
			want := map[string]float64{}
			for tenant, v := range tc.want {
				want[`{tenant_id="`+tenant+`"}`] = v
			}
			assertVector(t, tc.fn, one(t, src, "max by (tenant_id) ("+tc.fn+")", testTS), want)
			// The same definition in Go: sorted values, index floor(φ·n) clamped to n−1.
			e, _ := dsl.Parse(tc.fn, dsl.Options{})
			for tenant, w := range tc.want {
				var vals []float64
				for _, x := range events {
					if x.labels["tenant_id"] == tenant {
						vals = append(vals, x.values["latency_ms"])
					}
				}
				if got := quantile(e.Leaves[0].Quantile, vals); got != w {
					t.Errorf("Go quantile of %s = %v, want %v", tenant, got, w)
				}
			}
		})
	}
}

func TestStddevMatchesWelfordOnHardNumbers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var events []event
	var vals []float64
	for i := range 5000 {
		v := 1e6 + rng.Float64() // a large mean and a small spread defeat the naive formula
		vals = append(vals, v)
		events = append(events, event{at: at(-int64(i % 200)), values: map[string]float64{"cost": v}})
	}
	src := newSource(t, events)
	got := one(t, src, `stddev_over_time(cost[5m])`, testTS)
	want := welford(vals)
	if g := got["{}"]; math.Abs(g-want) > 1e-9*want {
		t.Fatalf("stddev = %.17g, Welford = %.17g (relative error %.3g)", g, want, math.Abs(g-want)/want)
	}
}

func TestIntegerSumsDoNotOverflow(t *testing.T) {
	big := event{at: at(0), values: map[string]float64{"input_tokens": 4_000_000_000, "output_tokens": 4_000_000_000}}
	src := newSource(t, []event{big, big, big})
	assertVector(t, "total tokens", one(t, src, `sum_over_time(total_tokens[5m])`, testTS), map[string]float64{"{}": 24e9})
	assertVector(t, "max total tokens", one(t, src, `max_over_time(total_tokens[5m])`, testTS), map[string]float64{"{}": 8e9})
}

// hostile are label values that would break or subvert SQL built by string
// concatenation.
var hostile = []string{
	`it's`,
	`a\b`,
	`a\'b`,
	`"double"`,
	`x -- comment`,
	`/* block */`,
	`'; DROP TABLE events; --`,
	`\`,
	`?`,
	"tab\tnew\nline",
	`租户`,
}

func TestValuesAreMatchedLiterallyNeverExecuted(t *testing.T) {
	var events []event
	for _, v := range hostile {
		events = append(events, ev(0, map[string]string{"tenant_id": v}, 1))
	}
	events = append(events, ev(0, map[string]string{"tenant_id": "plain"}, 1))
	src := newSource(t, events)
	for _, v := range hostile {
		t.Run(v, func(t *testing.T) {
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(v)
			qre := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(regexp.QuoteMeta(v))
			lbl := labels.FromStrings("tenant_id", v).String()
			for _, tc := range []struct {
				expr string
				want map[string]float64
			}{
				{`count_over_time(events{tenant_id="` + q + `"}[5m])`, map[string]float64{lbl: 1}},
				{`count_over_time(events{tenant_id!="` + q + `"}[5m])`, map[string]float64{"{}": float64(len(hostile))}},
				{`count_over_time(events{tenant_id=~"` + qre + `"}[5m])`, map[string]float64{"{}": 1}},
				{`count_over_time(events{tenant_id!~"` + qre + `"}[5m])`, map[string]float64{"{}": float64(len(hostile))}},
				{`sum by (tenant_id) (count_over_time(events{tenant_id="` + q + `"}[5m]))`, map[string]float64{lbl: 1}},
			} {
				_, res := eval(t, src, tc.expr, testTS)
				assertVector(t, tc.expr, vectorMap(res.Vectors[0]), tc.want)
				for _, sql := range res.Statements {
					if v != "?" && strings.Contains(sql, v) {
						t.Errorf("the SQL contains the value %q:\n%s", v, sql)
					}
				}
			}
		})
	}
	// The table survived every query.
	got := one(t, src, `count_over_time(events[5m])`, testTS)
	assertVector(t, "events after the hostile queries", got, map[string]float64{"{}": float64(len(hostile) + 1)})
}

// TestEveryLeafMatchesAReferenceComputation evaluates expressions covering
// every aggregate, grouped and ungrouped, with every matcher type and with
// offsets, over random events, and compares each leaf with the same
// definition computed in Go. It evaluates each expression alone and then
// all their leaves in one call, which fuses leaves of many selectors into
// the same queries.
func TestEveryLeafMatchesAReferenceComputation(t *testing.T) {
	events := randomEvents(3000)
	src := newSource(t, events)
	exprs := []string{
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
		`count_over_time(events{model=~"multi.line"}[2h])`,
		`sum without (model, provider, status, error_code, app_code) (count_over_time(events[1h]))`,
		`sum(count_over_time(events{tenant_id=~"acme|beta", status!="ok", app_code!~""}[1h]))`,
	}
	ts := testTS.Add(250 * time.Millisecond)
	var all []*dsl.Leaf
	for _, expr := range exprs {
		e, res := eval(t, src, expr, ts)
		for i, l := range e.Leaves {
			compareLeaf(t, expr, l, res.Vectors[i], reference(l, ts, events))
		}
		all = append(all, e.Leaves...)
	}
	res, err := src.EvalLeaves(context.Background(), ts, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Statements) >= len(all) {
		t.Errorf("%d statements for %d leaves: nothing was fused", len(res.Statements), len(all))
	}
	for i, l := range all {
		compareLeaf(t, "all leaves at once: "+l.Func, l, res.Vectors[i], reference(l, ts, events))
	}
}

func compareLeaf(t *testing.T, what string, l *dsl.Leaf, got, want []engine.Sample) {
	t.Helper()
	g, w := vectorMap(got), vectorMap(want)
	if len(g) != len(got) {
		t.Errorf("%s: duplicate label sets in %v", what, got)
	}
	if len(w) == 0 && len(g) == 0 {
		return
	}
	assertVector(t, what+" ("+l.Name+")", g, w)
}

func randomEvents(n int) []event {
	rng := rand.New(rand.NewPCG(7, 11))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	events := make([]event, n)
	for i := range events {
		events[i] = event{
			at: at(-int64(rng.IntN(3 * 3600))),
			labels: map[string]string{
				"tenant_id":  pick("acme", "beta", "gamma", ""),
				"app_code":   pick("chat", "search", "batch", ""),
				"model":      pick("gpt", "gpt-4o", "gpt-4o-mini", "claude", "multi\nline"),
				"provider":   pick("openai", "azure", "anthropic", ""),
				"status":     pick("ok", "ok", "ok", "error", "timeout"),
				"error_code": pick("", "", "429", "500"),
			},
			values: map[string]float64{
				"latency_ms":    float64(rng.IntN(10000)),
				"input_tokens":  float64(rng.IntN(5000)),
				"output_tokens": float64(rng.IntN(2000)),
				"cost":          math.Round(rng.Float64()*1e6) / 1e4,
			},
		}
	}
	return events
}

// reference computes a leaf over events in Go, from the definitions: the
// window (from, to], Prometheus' matchers, pooling per By group, and the
// aggregates' definitions.
func reference(l *dsl.Leaf, ts time.Time, events []event) []engine.Sample {
	from, to := l.Window(ts)
	groups := map[string][]float64{}
	groupValues := map[string][]string{}
	for _, e := range events {
		if !e.at.After(from) || e.at.After(to) {
			continue
		}
		ok := true
		for _, m := range l.Selector.Matchers {
			ok = ok && m.Matches(e.labels[m.Name])
		}
		if !ok {
			continue
		}
		vals := make([]string, len(l.By))
		for i, b := range l.By {
			vals[i] = e.labels[b]
		}
		k := strings.Join(vals, "\x00")
		groupValues[k] = vals
		v := 0.0
		for _, c := range l.Selector.Columns {
			v += e.values[c]
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
		sum := 0.0
		for _, v := range vals {
			sum += v
		}
		var agg float64
		switch l.Primitive() {
		case dsl.AggAvg:
			agg = sum / float64(len(vals))
		case dsl.AggMin:
			agg = slices.Min(vals)
		case dsl.AggMax:
			agg = slices.Max(vals)
		case dsl.AggQuantile:
			agg = quantile(l.Quantile, vals)
		case dsl.AggStddev:
			agg = welford(vals)
		}
		out = append(out, engine.Sample{Labels: l.GroupLabels(groupValues[k]), Value: l.Value(float64(len(vals)), sum, agg)})
	}
	return out
}

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

func TestEvalLeavesReportsFailuresWithTheStatement(t *testing.T) {
	src, err := New(Options{
		Conn: ConnFunc(func(ctx context.Context, sql string, args ...any) (Rows, error) {
			return nil, context.DeadlineExceeded
		}),
		Table:   "events",
		Columns: EventsColumns(dsl.DefaultSchema()),
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := dsl.Parse(`p95(latency_ms[5m])`, dsl.Options{})
	res, err := src.EvalLeaves(context.Background(), testTS, e.Leaves)
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
