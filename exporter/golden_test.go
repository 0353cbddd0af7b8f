package exporter

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/golden"
	"github.com/callwatch/callwatch/internal/testrules"
	"github.com/callwatch/callwatch/rulefmt"
)

// fakeRules serves fixed groups.
type fakeRules []*engine.Group

var _ Rules = fakeRules(nil)

func (f fakeRules) Groups() []*engine.Group { return f }

// testRules loads testdata/rules.yaml and evaluates its groups once at ts,
// with query results looked up by expression.
func testRules(t *testing.T, ts time.Time, results map[string][]engine.Sample) fakeRules {
	t.Helper()
	data, err := os.ReadFile("testdata/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	specs, err := rulefmt.ParseRuleFile("testdata/rules.yaml", data, rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	query := func(_ context.Context, e *dsl.Expr, _ time.Time, _ engine.SeriesSource) (engine.Result, error) {
		return engine.Result{Vector: results[e.Input]}, nil
	}
	var groups fakeRules
	for _, s := range specs {
		g := engine.NewGroup(s, engine.GroupOptions{Query: query})
		g.Eval(context.Background(), ts)
		groups = append(groups, g)
	}
	return groups
}

func sample(value float64, kv ...string) engine.Sample {
	return engine.Sample{Labels: labels.FromStrings(kv...), Value: value}
}

// goldenExporter is an exporter over canned query results and rules: the
// fixture of the exposition tests.
func goldenExporter(t *testing.T) (*Exporter, *fakeConn) {
	t.Helper()
	conn := &fakeConn{
		update: [][]any{
			updateRow("acme", "chat", "gpt-4o", "openai", "success", false, 4, -2, 3, 2400, 300, 30, 0.75),
			updateRow("acme", "chat", "gpt-4o", "openai", "success", true, 5, 3, 1, 1200, 100, 10, 0.25),
			updateRow("acme", "chat", "gpt-4o", "openai", "error", false, 9, 40, 1, 30000, 100, 0, 0),
			updateRow("beta", "search", "qwen-max", "dashscope", "success", false, 2, -18, 2, 400, 40, 4, 0.02),
			updateRow("gamma", "chat", "gpt-4o", "openai", "success", true, 3, -10, 1, 400, 10, 1, 0.01),
		},
		top:    map[string][][]any{"tenant_id": {{"acme", 100}, {"beta", 50}}},
		folded: map[string]float64{"tenant_id": 1},
	}
	rules := testRules(t, at(time.Minute), map[string][]engine.Sample{
		"sum by (tenant_id) (rate(events[5m]))":                                 {sample(0.25, "tenant_id", "acme"), sample(0.5, "tenant_id", "beta")},
		"sum by (tenant_id, app_code) (sum_over_time(cost[1h]))":                {sample(1.02, "tenant_id", "acme", "app_code", "chat")},
		`sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 10`: {sample(12, "tenant_id", "acme")},
		"max by (tenant_id) (p95(latency_ms[5m])) > 5000":                       {sample(30000, "tenant_id", "acme")},
	})
	e := newTestExporter(t, conn, "calls", config.Exporter{LabelLimits: map[string]int{"tenant_id": 2}}, rules)
	mustUpdate(t, e, at(time.Minute))
	return e, conn
}

// volatile are the families whose values are timings or depend on the Go
// version: golden files leave them out.
var volatile = []string{"callwatch_query_duration_seconds", "callwatch_exporter_collector_duration_seconds", "callwatch_build_info"}

// exposition gathers e through a pedantic registry and encodes it in the
// text format, without the volatile families.
func exposition(t *testing.T, e *Exporter) []byte {
	t.Helper()
	mfs := gather(t, e)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if slices.Contains(volatile, mf.GetName()) {
			continue
		}
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// checkSum reports an error unless the series of family name that match
// add up to want.
func checkSum(t *testing.T, mfs []*dto.MetricFamily, name string, match map[string]string, want float64) {
	t.Helper()
	if v := sum(mfs, name, match); v != want {
		t.Errorf("%s%s = %v, want %v", name, labels.FromMap(match), v, want)
	}
}

// wantSum is the sum checkSum expects of the series of family name that
// match.
type wantSum struct {
	name  string
	match map[string]string
	want  float64
}

// checkSums is checkSum of each of wants.
func checkSums(t *testing.T, mfs []*dto.MetricFamily, wants []wantSum) {
	t.Helper()
	for _, w := range wants {
		checkSum(t, mfs, w.name, w.match, w.want)
	}
}

func TestExpositionMatchesGoldenFile(t *testing.T) {
	e, _ := goldenExporter(t)
	golden.Compare(t, "testdata/exposition.golden.prom", exposition(t, e))
}

func TestBuildInfoCarriesVersionRevisionAndGoVersion(t *testing.T) {
	e, _ := goldenExporter(t)
	ms := series(gather(t, e), "callwatch_build_info", map[string]string{"version": "v0.0.0-test", "revision": "abc123"})
	if len(ms) != 1 || ms[0].Gauge.GetValue() != 1 {
		t.Fatalf("callwatch_build_info = %v, want one series of value 1", ms)
	}
}

func TestUpdateSQLMatchesGoldenFile(t *testing.T) {
	_, conn := goldenExporter(t)
	var b strings.Builder
	seen := map[string]bool{}
	for _, q := range conn.queries {
		if seen[q.sql] {
			continue
		}
		seen[q.sql] = true
		b.WriteString(q.sql + ";\n-- args: ")
		for i, a := range q.args {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strings.TrimSpace(strings.ReplaceAll(fmtArg(a), "\n", " ")))
		}
		b.WriteString("\n\n")
	}
	golden.Compare(t, "testdata/queries.golden.sql", []byte(b.String()))
}

// TestTheUpdateQueryReadsColumnsAsTheRulesDo: the exporter's update query
// is written by engine/clickhouse's SQL builder, so on a table with an Enum,
// a Nullable FixedString and a LowCardinality(Nullable(String)) label and a
// Nullable Float64 cost it reads every label and the cost with exactly the
// SQL a leaf's query does (clickhouse.Columns: Enum names, padding cut, NULL
// as "" and 0, NaN skipped), with nothing of its own around them.
func TestTheUpdateQueryReadsColumnsAsTheRulesDo(t *testing.T) {
	cols := unguarded(dsl.DefaultSchema())
	cols["tenant_id"] = "Enum8('acme' = 1, 'globex' = 2)"
	cols["app_code"] = "Nullable(FixedString(8))"
	cols["model"] = "LowCardinality(Nullable(String))"
	cols["cost"] = "Nullable(Float64)"
	conn := &fakeConn{}
	e, err := New(Options{Config: config.Exporter{SafetyLag: new(dsl.Duration(0))}, Conn: conn, Table: "analytics.calls", Columns: cols, Start: base})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, e, at(time.Minute))
	var update string
	for _, q := range conn.queries {
		if strings.Contains(q.sql, aliasPending) {
			update = q.sql
		}
	}
	expr := testrules.Expr(t, `sum by (tenant_id, app_code, model, status) (sum_over_time(cost[5m]))`)
	stmts := clickhouse.Compile(clickhouse.CompileOptions{Table: "analytics.calls", Columns: cols}, at(time.Minute), expr.Leaves)
	if len(stmts) != 1 || update == "" {
		t.Fatalf("%d statements for the leaf and update query %q", len(stmts), update)
	}
	leaf := stmts[0].SQL
	for _, want := range []string{"toString(`tenant_id`)", "ifNull(toStringCutToZero(`app_code`), '')", "ifNull(`model`, '')", "`status`"} {
		if !strings.Contains(leaf, want+",") {
			t.Errorf("the leaf's query lacks the label column %s:\n%s", want, leaf)
		}
	}
	for i, l := range e.labels {
		want := cols.Label(l) + " AS " + aliasLabel + strconv.Itoa(i) + ","
		if !strings.Contains(update, "\n    "+want) {
			t.Errorf("the update query does not read label %s as %s:\n%s", l, want, update)
		}
	}
	cost := "sumIf(" + cols.Value([]string{"cost"}) + ", " + cols.Finite([]string{"cost"}) + ")"
	if cost != "sumIf(ifNull(`cost`, 0), isFinite(ifNull(`cost`, 0)))" || !strings.Contains(update, cost) || !strings.Contains(leaf, cost) {
		t.Errorf("the cost is not summed as %s by both queries:\n%s\n%s", cost, update, leaf)
	}
	if !strings.Contains(update, "\nFROM `analytics`.`calls`\n") || !strings.Contains(leaf, "\nFROM `analytics`.`calls`\n") {
		t.Errorf("the table is not quoted alike:\n%s\n%s", update, leaf)
	}
}

func fmtArg(a any) string {
	switch a := a.(type) {
	case string:
		return "'" + a + "'"
	case int64:
		return time.Unix(a, 0).UTC().Format(time.RFC3339)
	}
	return "?"
}

func TestDescribeNeverQueries(t *testing.T) {
	conn := &fakeConn{err: errors.New("must not be called")}
	e := newTestExporter(t, conn, "calls", config.Exporter{}, fakeRules{})
	conn.queries = nil
	ch := make(chan *prometheus.Desc, 100)
	e.Describe(ch)
	close(ch)
	n := 0
	for range ch {
		n++
	}
	if n == 0 {
		t.Fatal("Describe sent no descriptors")
	}
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	if len(conn.queries) != 0 {
		t.Fatalf("Describe and a scrape ran %d queries, want none", len(conn.queries))
	}
}

func TestAFailedUpdateServesTheLastValues(t *testing.T) {
	e, conn := goldenExporter(t)
	before := exposition(t, e)
	conn.err = errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")
	if err := e.Update(context.Background(), at(2*time.Minute)); err == nil {
		t.Fatal("Update succeeded with a failing connection")
	}
	after := gather(t, e)
	if v := sum(after, "callwatch_datasource_up", nil); v != 0 {
		t.Errorf("callwatch_datasource_up = %v, want 0", v)
	}
	if v := sum(after, "callwatch_exporter_collector_success", map[string]string{"collector": "events"}); v != 0 {
		t.Errorf("collector_success{events} = %v, want 0", v)
	}
	if v := sum(after, "callwatch_query_errors_total", map[string]string{"kind": "update"}); v != 1 {
		t.Errorf("query_errors_total{update} = %v, want 1", v)
	}
	// The call metrics are exactly those of the last good update.
	callsOnly := func(b []byte) string {
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "callwatch_call") || strings.Contains(l, "_tokens_total") || strings.Contains(l, "callwatch_cost_total") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if got, want := callsOnly(exposition(t, e)), callsOnly(before); got != want {
		t.Errorf("call metrics changed after a failed update:\n%s", golden.Diff(want, got))
	}
	// And recover.
	conn.err = nil
	mustUpdate(t, e, at(3*time.Minute))
	if v := sum(gather(t, e), "callwatch_datasource_up", nil); v != 1 {
		t.Errorf("callwatch_datasource_up = %v after recovery, want 1", v)
	}
}

func TestCancellationIsNotAFailure(t *testing.T) {
	conn := &fakeConn{}
	e := newTestExporter(t, conn, "calls", config.Exporter{}, nil)
	conn.err = context.Canceled
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Update(ctx, at(time.Minute)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	if v := sum(gather(t, e), "callwatch_query_errors_total", nil); v != 0 {
		t.Errorf("callwatch_query_errors_total = %v after a cancellation, want 0", v)
	}
}

func TestNativeBucketsAreServedInTheProtobufFormat(t *testing.T) {
	e, _ := goldenExporter(t)
	mfs := gather(t, e)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	dec := expfmt.NewDecoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	found := false
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		if mf.GetName() != "callwatch_call_duration_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			h := m.Histogram
			if h.GetSchema() != 3 || h.ZeroThreshold == nil {
				t.Errorf("histogram %v: schema %d, zero threshold %v; want native schema 3", m.Label, h.GetSchema(), h.ZeroThreshold)
			}
			if len(h.Bucket) != len(config.DefaultDurationBuckets()) {
				t.Errorf("histogram %v: %d classic buckets, want %d", m.Label, len(h.Bucket), len(config.DefaultDurationBuckets()))
			}
			var native int64
			for _, n := range decodeNative(h.PositiveSpan, h.PositiveDelta) {
				native += n
			}
			if uint64(native)+h.GetZeroCount() != h.GetSampleCount() {
				t.Errorf("histogram %v: native buckets hold %d, count is %d", m.Label, native, h.GetSampleCount())
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no callwatch_call_duration_seconds in the protobuf exposition")
	}
}

func TestRulesCollectorSkipsWhatItCannotExport(t *testing.T) {
	data := `groups:
  - name: a
    rules:
      - record: callwatch_calls_total
        expr: sum(count_over_time(events[5m]))
      - record: tenant:calls:count5m
        expr: sum by (tenant_id) (count_over_time(events[5m]))
  - name: b
    rules:
      - record: tenant:calls:count5m
        expr: sum by (tenant_id) (count_over_time(events[5m]))
`
	specs, err := rulefmt.ParseRuleFile("rules.yaml", []byte(data), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	query := func(context.Context, *dsl.Expr, time.Time, engine.SeriesSource) (engine.Result, error) {
		return engine.Result{Vector: []engine.Sample{sample(3, "tenant_id", "acme")}}, nil
	}
	var groups fakeRules
	for _, s := range specs {
		g := engine.NewGroup(s, engine.GroupOptions{Query: query})
		g.Eval(context.Background(), at(0))
		groups = append(groups, g)
	}
	e := newTestExporter(t, &fakeConn{}, "calls", config.Exporter{}, groups)
	mfs := gather(t, e)
	if got := labelSets(mfs, "tenant:calls:count5m"); len(got) != 1 {
		t.Errorf("tenant:calls:count5m series = %v, want one (the duplicate skipped)", got)
	}
	// The recording rule named callwatch_calls_total is not exported.
	checkSum(t, mfs, "callwatch_calls_total", nil, 0)
	checkSum(t, mfs, "callwatch_exporter_collector_success", map[string]string{"collector": "rules"}, 0)
}

// TestSLOGaugesOfDifferentGroupingsAreExported: two SLOs grouped by
// different labels record the same series names with other label names;
// /metrics exports both, and the scrape succeeds.
func TestSLOGaugesOfDifferentGroupingsAreExported(t *testing.T) {
	data := `slos:
  - {name: a, objective: 99, window: 7d, by: [tenant_id], sli: {errors: '{status="error"}', total: events}}
  - {name: b, objective: 99, window: 7d, by: [tenant_id, app_code], sli: {errors: '{status="error"}', total: events}}
`
	specs, err := rulefmt.ParseRuleFile("rules.yaml", []byte(data), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New(dsl.Schema{})
	for i := range 10 {
		status := "ok"
		if i%5 == 0 {
			status = "error"
		}
		store.Add(memory.Event{Time: at(-time.Duration(i) * time.Minute), Labels: []string{"acme", "chat", "", "", status, ""}})
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	var groups fakeRules
	for _, s := range specs {
		g := engine.NewGroup(s, engine.GroupOptions{Query: q.QueryWith})
		g.Eval(context.Background(), at(0))
		groups = append(groups, g)
	}
	e := newTestExporter(t, &fakeConn{}, "calls", config.Exporter{}, groups)
	mfs := gather(t, e)
	// 2 of 10 calls failed: the SLI is 0.8 for both.
	for _, match := range []map[string]string{{"slo": "a", "tenant_id": "acme"}, {"slo": "b", "tenant_id": "acme", "app_code": "chat"}} {
		checkSum(t, mfs, "slo:sli:ratio", match, 0.8)
	}
	checkSum(t, mfs, "callwatch_exporter_collector_success", map[string]string{"collector": "rules"}, 1)
}
