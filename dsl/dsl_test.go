package dsl_test

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/docpage"
	"github.com/callwatch/callwatch/internal/testrules"
)

// leaf is the comparable description of a planned dsl.Leaf.
type leaf struct {
	Name     string
	Func     string
	Agg      dsl.Agg
	Quantile float64
	Field    string
	Columns  []string
	Matchers []string
	Range    time.Duration
	Offset   time.Duration
	Grouped  bool
	By       []string
	Labels   string
}

func describe(l *dsl.Leaf) leaf {
	d := leaf{
		Name: l.Name, Func: l.Func, Agg: l.Agg, Quantile: l.Quantile,
		Field: l.Selector.Field, Range: l.Range, Offset: l.Offset, Grouped: l.Grouped,
		Labels: l.Labels().String(),
	}
	if len(l.Selector.Columns) > 0 {
		d.Columns = l.Selector.Columns
	}
	for _, m := range l.Selector.Matchers {
		d.Matchers = append(d.Matchers, m.String())
	}
	if len(l.By) > 0 {
		d.By = l.By
	}
	return d
}

// customSchema maps a table that shares no names with the default one.
var customSchema = dsl.Schema{
	Time:   "ts",
	Labels: []string{"customer", "route", "outcome"},
	Fields: map[string]dsl.Columns{
		"duration": {"duration_ms"},
		"tokens":   {"prompt_tokens", "completion_tokens"},
	},
}

// recorded says which names are recorded series (Options.Series).
func recorded(names ...string) func(string) bool {
	return func(n string) bool {
		for _, x := range names {
			if n == x {
				return true
			}
		}
		return false
	}
}

const m5, h1, d1 = 5 * time.Minute, time.Hour, 24 * time.Hour

func TestParsePlansLeaves(t *testing.T) {
	latency := []string{"latency_ms"}
	cases := []struct {
		name   string
		expr   string
		opts   dsl.Options
		query  string
		leaves []leaf
		series []string
		scalar bool
	}{
		// The baseline's rule types.
		{
			name:  "the baseline error_rate rule counts error events and is labelled by its matcher",
			expr:  `count_over_time(events{status="error"}[5m]) > 10`,
			query: `__leaf_0 > 10`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Matchers: []string{`status="error"`}, Range: m5, Labels: `{status="error"}`}},
		},
		{
			name:  "the baseline call_count rule counts every event",
			expr:  `count_over_time(events[1h]) > 1000`,
			query: `__leaf_0 > 1000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Range: h1, Labels: `{}`}},
		},
		{
			name:  "the baseline token_usage rule sums a field made of two columns",
			expr:  `sum_over_time(total_tokens[1d]) > 100000`,
			query: `__leaf_0 > 100000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "sum_over_time", Agg: dsl.AggSum, Field: "total_tokens",
				Columns: []string{"input_tokens", "output_tokens"}, Range: d1, Labels: `{}`}},
		},
		{
			name:  "the baseline cost_threshold rule sums cost",
			expr:  `sum_over_time(cost[1d]) > 100`,
			query: `__leaf_0 > 100`,
			leaves: []leaf{{Name: "__leaf_0", Func: "sum_over_time", Agg: dsl.AggSum, Field: "cost",
				Columns: []string{"cost"}, Range: d1, Labels: `{}`}},
		},
		{
			name:  "the baseline latency rule can average",
			expr:  `avg_over_time(latency_ms[5m]) > 1000`,
			query: `__leaf_0 > 1000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "avg_over_time", Agg: dsl.AggAvg, Field: "latency_ms",
				Columns: latency, Range: m5, Labels: `{}`}},
		},
		{
			name:  "the baseline latency rule can take p95",
			expr:  `p95(latency_ms[5m]) > 5000`,
			query: `__leaf_0 > 5000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Labels: `{}`}},
		},
		{
			name:  "the baseline latency rule can take p99 of one tenant, labelled by the tenant",
			expr:  `p99(latency_ms{tenant_id="acme"}[5m]) > 5000`,
			query: `__leaf_0 > 5000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p99", Agg: dsl.AggQuantile, Quantile: 0.99, Field: "latency_ms",
				Columns: latency, Matchers: []string{`tenant_id="acme"`}, Range: m5, Labels: `{tenant_id="acme"}`}},
		},
		{
			name:  "the baseline latency rule can take the maximum",
			expr:  `max_over_time(latency_ms[5m]) > 30000`,
			query: `__leaf_0 > 30000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "max_over_time", Agg: dsl.AggMax, Field: "latency_ms",
				Columns: latency, Range: m5, Labels: `{}`}},
		},

		// Pooling and grouping.
		{
			name:  "a by clause groups the pooled events of the leaf beneath it",
			expr:  `max by (tenant_id) (p95(latency_ms[5m])) > 5000`,
			query: `max by (tenant_id) (__leaf_0) > 5000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`}},
		},
		{
			name:  "by labels are sorted",
			expr:  `sum by (tenant_id, app_code) (count_over_time(events[5m]))`,
			query: `sum by (tenant_id, app_code) (__leaf_0)`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Range: m5, Grouped: true, By: []string{"app_code", "tenant_id"}, Labels: `{}`}},
		},
		{
			name:  "without groups by every schema label except those named",
			expr:  `sum without (status, error_code) (count_over_time(events[5m]))`,
			query: `sum without (status, error_code) (__leaf_0)`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Range: m5, Grouped: true, By: []string{"app_code", "model", "provider", "tenant_id"}, Labels: `{}`}},
		},
		{
			name:  "an aggregation without grouping pools into one group and drops the matcher labels",
			expr:  `sum(count_over_time(events{status="error"}[5m]))`,
			query: `sum(__leaf_0)`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Matchers: []string{`status="error"`}, Range: m5, Grouped: true, Labels: `{}`}},
		},
		{
			name:  "the per-tenant error ratio plans two grouped leaves",
			expr:  `sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m])) > 0.05`,
			query: `sum by (tenant_id) (__leaf_0) / sum by (tenant_id) (__leaf_1) > 0.05`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Matchers: []string{`status="error"`}, Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`},
				{Name: "__leaf_1", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`},
			},
		},
		{
			name:  "the nearest aggregation groups through functions, parentheses and binary operators",
			expr:  `sum by (app_code) (abs((p95(latency_ms[5m]) - 1)))`,
			query: `sum by (app_code) (abs((__leaf_0 - 1)))`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Grouped: true, By: []string{"app_code"}, Labels: `{}`}},
		},
		{
			name:  "only the nearest of two nested aggregations groups the leaf",
			expr:  `sum by (tenant_id) (max without (model) (p95(latency_ms[5m])))`,
			query: `sum by (tenant_id) (max without (model) (__leaf_0))`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Grouped: true,
				By: []string{"app_code", "error_code", "provider", "status", "tenant_id"}, Labels: `{}`}},
		},
		{
			name:  "a comparison inside an aggregation still groups the leaf",
			expr:  `count by (tenant_id) (p95(latency_ms[5m]) > 1000)`,
			query: `count by (tenant_id) (__leaf_0 > 1000)`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`}},
		},

		// Leaves are deduplicated.
		{
			name:  "the same range function twice is one leaf",
			expr:  `p95(latency_ms[5m]) + p95(latency_ms[5m])`,
			query: `__leaf_0 + __leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Labels: `{}`}},
		},
		{
			name:  "matchers written in another order are the same leaf",
			expr:  `count_over_time(events{status="error", tenant_id="a"}[5m]) - count_over_time(events{tenant_id="a", status="error"}[5m])`,
			query: `__leaf_0 - __leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Matchers: []string{`status="error"`, `tenant_id="a"`}, Range: m5, Labels: `{status="error", tenant_id="a"}`}},
		},
		{
			name:  "the same range function under different groupings is two leaves",
			expr:  `sum by (tenant_id) (count_over_time(events[5m])) / on () group_left sum(count_over_time(events[5m]))`,
			query: `sum by (tenant_id) (__leaf_0) / on () group_left () sum(__leaf_1)`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`},
				{Name: "__leaf_1", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Range: m5, Grouped: true, Labels: `{}`},
			},
		},
		{
			name:  "offset makes a second leaf for week-over-week comparisons",
			expr:  `count_over_time(events[1h]) / count_over_time(events[1h] offset 1w)`,
			query: `__leaf_0 / __leaf_1`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: h1, Labels: `{}`},
				{Name: "__leaf_1", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: h1, Offset: 7 * d1, Labels: `{}`},
			},
		},

		// Range functions and matchers.
		{
			name:  "every matcher type is kept, sorted by name, and only equality labels the result",
			expr:  `count_over_time(events{model=~"gpt.*", status!="ok", provider!~"open.*", app_code="chat"}[5m])`,
			query: `__leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: m5,
				Matchers: []string{`app_code="chat"`, `model=~"gpt.*"`, `provider!~"open.*"`, `status!="ok"`},
				Labels:   `{app_code="chat"}`}},
		},
		{
			name:  "an empty equality matcher does not label the result",
			expr:  `count_over_time(events{error_code=""}[5m])`,
			query: `__leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Matchers: []string{`error_code=""`}, Range: m5, Labels: `{}`}},
		},
		{
			name:  "quantile_over_time takes φ from its first argument",
			expr:  `quantile_over_time(0.9, latency_ms[5m])`,
			query: `__leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "quantile_over_time", Agg: dsl.AggQuantile, Quantile: 0.9,
				Field: "latency_ms", Columns: latency, Range: m5, Labels: `{}`}},
		},
		{
			name:  "a parenthesised φ is still a literal",
			expr:  `quantile_over_time((0.5), latency_ms[5m])`,
			query: `__leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "quantile_over_time", Agg: dsl.AggQuantile, Quantile: 0.5,
				Field: "latency_ms", Columns: latency, Range: m5, Labels: `{}`}},
		},
		{
			name:  "rate accepts events and fields",
			expr:  `rate(events[5m]) + rate(cost[1h])`,
			query: `__leaf_0 + __leaf_1`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "rate", Agg: dsl.AggRate, Field: "events", Range: m5, Labels: `{}`},
				{Name: "__leaf_1", Func: "rate", Agg: dsl.AggRate, Field: "cost", Columns: []string{"cost"}, Range: h1, Labels: `{}`},
			},
		},
		{
			name:  "absent_over_time is labelled by its equality matchers like absent",
			expr:  `absent_over_time(events{tenant_id="acme"}[10m])`,
			query: `__leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "absent_over_time", Agg: dsl.AggAbsent, Field: "events",
				Matchers: []string{`tenant_id="acme"`}, Range: 10 * time.Minute, Labels: `{tenant_id="acme"}`}},
		},
		{
			name:   "a range selector in parentheses is still a range selector",
			expr:   `count_over_time((events[5m]))`,
			query:  `__leaf_0`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: m5, Labels: `{}`}},
		},

		// PromQL above the leaves.
		{
			name:   "time() is a scalar",
			expr:   `time() - 1`,
			query:  `time() - 1`,
			scalar: true,
		},
		{
			name:  "vector(1) needs no leaf",
			expr:  `vector(1)`,
			query: `vector(1)`,
		},
		{
			name:   "scalar() turns a single-group aggregation into a scalar",
			expr:   `scalar(sum(count_over_time(events[5m])))`,
			query:  `scalar(sum(__leaf_0))`,
			scalar: true,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Range: m5, Grouped: true, Labels: `{}`}},
		},
		{
			name:  "topk ranks the groups of a grouped leaf",
			expr:  `topk(3, sum by (tenant_id) (sum_over_time(cost[1d])))`,
			query: `topk(3, sum by (tenant_id) (__leaf_0))`,
			leaves: []leaf{{Name: "__leaf_0", Func: "sum_over_time", Agg: dsl.AggSum, Field: "cost",
				Columns: []string{"cost"}, Range: d1, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`}},
		},
		{
			name:  "quantile across groups is PromQL's aggregation",
			expr:  `quantile(0.9, sum by (tenant_id) (rate(events[5m])))`,
			query: `quantile(0.9, sum by (tenant_id) (__leaf_0))`,
			leaves: []leaf{{Name: "__leaf_0", Func: "rate", Agg: dsl.AggRate, Field: "events",
				Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`}},
		},
		{
			name:  "group_left matches many groups to one",
			expr:  `sum by (tenant_id, app_code) (count_over_time(events[5m])) / on (tenant_id) group_left sum by (tenant_id) (count_over_time(events[5m]))`,
			query: `sum by (tenant_id, app_code) (__leaf_0) / on (tenant_id) group_left () sum by (tenant_id) (__leaf_1)`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Range: m5, Grouped: true, By: []string{"app_code", "tenant_id"}, Labels: `{}`},
				{Name: "__leaf_1", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`},
			},
		},
		{
			name:   "bool turns a comparison into 0 or 1",
			expr:   `count_over_time(events[5m]) > bool 10`,
			query:  `__leaf_0 > bool 10`,
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: m5, Labels: `{}`}},
		},
		{
			name:  "and, or and unless combine leaves",
			expr:  `count_over_time(events[5m]) and count_over_time(events{status="error"}[5m]) or count_over_time(events[1h]) unless count_over_time(events[1d])`,
			query: `__leaf_0 and __leaf_1 or __leaf_2 unless __leaf_3`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: m5, Labels: `{}`},
				{Name: "__leaf_1", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
					Matchers: []string{`status="error"`}, Range: m5, Labels: `{status="error"}`},
				{Name: "__leaf_2", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: h1, Labels: `{}`},
				{Name: "__leaf_3", Func: "count_over_time", Agg: dsl.AggCount, Field: "events", Range: d1, Labels: `{}`},
			},
		},
		{
			name:  "clamp_max passes a leaf through",
			expr:  `clamp_max(avg_over_time(latency_ms[5m]), 100)`,
			query: `clamp_max(__leaf_0, 100)`,
			leaves: []leaf{{Name: "__leaf_0", Func: "avg_over_time", Agg: dsl.AggAvg, Field: "latency_ms",
				Columns: latency, Range: m5, Labels: `{}`}},
		},
		{
			name:   "a number alone is a scalar",
			expr:   `42`,
			query:  `42`,
			scalar: true,
		},
		{
			name:  "an expression may span lines and carry a comment",
			expr:  "max by (tenant_id) (\n  p95(latency_ms[5m])  # the slow ones\n) > 5000",
			query: `max by (tenant_id) (__leaf_0) > 5000`,
			leaves: []leaf{{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "latency_ms",
				Columns: latency, Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`}},
		},

		// Options.
		{
			name:  "a custom schema has its own fields, columns and labels",
			expr:  `p95(duration{customer="c1"}[5m]) + sum without (route) (sum_over_time(tokens[1h]))`,
			opts:  dsl.Options{Schema: customSchema},
			query: `__leaf_0 + sum without (route) (__leaf_1)`,
			leaves: []leaf{
				{Name: "__leaf_0", Func: "p95", Agg: dsl.AggQuantile, Quantile: 0.95, Field: "duration",
					Columns: []string{"duration_ms"}, Matchers: []string{`customer="c1"`}, Range: m5, Labels: `{customer="c1"}`},
				{Name: "__leaf_1", Func: "sum_over_time", Agg: dsl.AggSum, Field: "tokens",
					Columns: []string{"prompt_tokens", "completion_tokens"}, Range: h1, Grouped: true,
					By: []string{"customer", "outcome"}, Labels: `{}`},
			},
		},
		{
			name:   "a recorded series may be used as an instant selector",
			expr:   `tenant:error_ratio:5m > 0.05 and on (tenant_id) sum by (tenant_id) (count_over_time(events[5m])) > 100`,
			opts:   dsl.Options{Series: recorded("tenant:error_ratio:5m")},
			query:  `tenant:error_ratio:5m > 0.05 and on (tenant_id) sum by (tenant_id) (__leaf_0) > 100`,
			series: []string{"tenant:error_ratio:5m"},
			leaves: []leaf{{Name: "__leaf_0", Func: "count_over_time", Agg: dsl.AggCount, Field: "events",
				Range: m5, Grouped: true, By: []string{"tenant_id"}, Labels: `{}`}},
		},
		{
			name:   "a recorded series read twice is listed once",
			expr:   `ALERTS{alertstate="firing"} or ALERTS`,
			opts:   dsl.Options{Series: recorded("ALERTS")},
			query:  `ALERTS{alertstate="firing"} or ALERTS`,
			series: []string{"ALERTS"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := dsl.Parse(tc.expr, tc.opts)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.expr, err)
			}
			if e.Input != tc.expr {
				t.Errorf("Input = %q, want the expression as written", e.Input)
			}
			if e.Query != tc.query {
				t.Errorf("Query = %q, want %q", e.Query, tc.query)
			}
			var got []leaf
			for _, l := range e.Leaves {
				got = append(got, describe(l))
			}
			if !reflect.DeepEqual(got, tc.leaves) {
				t.Errorf("leaves:\n got %+v\nwant %+v", got, tc.leaves)
			}
			if len(e.Series) > 0 || len(tc.series) > 0 {
				if !reflect.DeepEqual(e.Series, tc.series) {
					t.Errorf("Series = %q, want %q", e.Series, tc.series)
				}
			}
			wantType := parser.ValueTypeVector
			if tc.scalar {
				wantType = parser.ValueTypeScalar
			}
			if e.Type != wantType {
				t.Errorf("Type = %s, want %s", e.Type, wantType)
			}
			// The rewritten query is what the PromQL engine parses.
			if _, err := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()}).ParseExpr(e.Query); err != nil {
				t.Errorf("rewritten query %q does not parse: %v", e.Query, err)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name      string
		expr      string
		opts      dsl.Options
		line, col int
		msg       string // a part of Error.Msg
	}{
		// Syntax.
		{name: "an empty expression is rejected", expr: ``, line: 1, col: 1, msg: "empty expression"},
		{name: "a blank expression is rejected", expr: " \n\t", line: 1, col: 1, msg: "empty expression"},
		{name: "a parse error points at the end of an incomplete expression", expr: `p95(latency_ms[5m]) >`, line: 1, col: 22, msg: "unexpected end of input"},
		{name: "an unclosed parenthesis is a parse error", expr: `count_over_time(events[5m]`, line: 1, col: 27, msg: "unclosed left parenthesis"},
		{name: "a parse error on the second line has that line's column", expr: "p95(latency_ms[5m])\n  > > 5000", line: 2, col: 5, msg: "unexpected"},
		{name: "the column counts characters, not bytes", expr: `count_over_time(events{tenant_id="租户"}[5m]) > > 1`, line: 1, col: 47, msg: "unexpected"},
		{name: "a bad regular expression is a parse error", expr: `count_over_time(events{model=~"("}[5m])`, line: 1, col: 24, msg: "error parsing regexp"},
		{name: "a range function without a window says to add one", expr: `p95(latency_ms)`, line: 1, col: 5, msg: "expected type range vector"},
		{name: "an unknown function is a parse error", expr: `foo(events[5m])`, line: 1, col: 1, msg: "unknown function"},
		{name: "an experimental Prometheus function is not enabled", expr: `info(vector(1))`, line: 1, col: 1, msg: "not enabled"},
		{name: "a zero window is a parse error", expr: `count_over_time(events[0s])`, line: 1, col: 24, msg: "greater than 0"},
		{name: "a string in arithmetic is a parse error", expr: `1 + "x"`, line: 1, col: 5, msg: "binary expression"},
		{name: "offset after a range function is a parse error", expr: `count_over_time(events[5m]) offset 1h`, line: 1, col: 1, msg: "offset modifier"},
		{name: "an experimental aggregation is not enabled, without pointing at Prometheus' flag", expr: `limitk(1, count_over_time(events[5m]))`, line: 1, col: 1, msg: "not enabled in callwatch"},

		// Selectors.
		{name: "an instant selector on a field is rejected", expr: `latency_ms > 5`, line: 1, col: 1, msg: "no value at an instant"},
		{name: "an instant selector on a field inside an aggregation is rejected", expr: `sum(latency_ms)`, line: 1, col: 5, msg: "no value at an instant"},
		{name: "an instant selector on events is rejected", expr: `events`, line: 1, col: 1, msg: "no value at an instant"},
		{name: "an unknown selector in a range function is rejected", expr: `count_over_time(foo[5m])`, line: 1, col: 17, msg: `unknown selector "foo"`},
		{name: "an unknown instant selector is rejected", expr: `foo > 1`, line: 1, col: 1, msg: `unknown selector "foo"`},
		{name: "an unnamed instant selector is rejected", expr: `{tenant_id="x"}`, line: 1, col: 1, msg: "needs a name"},
		{name: "an unnamed range selector is rejected", expr: `count_over_time({tenant_id="x"}[5m])`, line: 1, col: 17, msg: "needs a name"},
		{name: "a second name in __name__ is rejected", expr: `count_over_time(events{__name__="x"}[5m])`, line: 1, col: 17, msg: "metric name must not be set twice"},
		{name: "a matcher on an unknown label is rejected", expr: `count_over_time(events{tenant="x"}[5m])`, line: 1, col: 17, msg: `"tenant" is not a label`},
		{name: "a matcher on an unknown label on the second line is rejected there", expr: "sum by (tenant_id) (\n  p95(latency_ms{tenant=\"acme\"}[5m])\n)", line: 2, col: 7, msg: `"tenant" is not a label`},
		{name: "by an unknown label over a leaf is rejected", expr: `max by (tenant) (p95(latency_ms[5m]))`, line: 1, col: 1, msg: `"tenant" is not a label`},
		{name: "without an unknown label over a leaf is rejected", expr: `1 + sum without (tenant) (p95(latency_ms[5m]))`, line: 1, col: 5, msg: `"tenant" is not a label`},
		{name: "a label of the default schema is unknown in a custom one", expr: `count_over_time(events{tenant_id="x"}[5m])`, opts: dsl.Options{Schema: customSchema}, line: 1, col: 17, msg: `"tenant_id" is not a label`},
		{name: "a field of the default schema is unknown in a custom one", expr: `p95(latency_ms[5m])`, opts: dsl.Options{Schema: customSchema}, line: 1, col: 5, msg: `unknown selector "latency_ms"`},
		{name: "a range function over a recorded series is rejected", expr: `max_over_time(tenant:error_ratio:5m[1h])`, opts: dsl.Options{Series: recorded("tenant:error_ratio:5m")}, line: 1, col: 15, msg: "recorded series"},
		{name: "a top-level range selector is rejected", expr: `latency_ms[5m]`, line: 1, col: 1, msg: "not a result by itself"},
		{name: "a string result is rejected", expr: `"x"`, line: 1, col: 1, msg: "type string"},
		{name: "a user may not name a leaf", expr: `__leaf_0 > 1`, line: 1, col: 1, msg: `"__leaf_0" is not allowed`},
		{name: "a user may not name a leaf inside an aggregation", expr: `sum(__leaf_0)`, line: 1, col: 5, msg: `"__leaf_0" is not allowed`},
		{name: "a user may not select a leaf in a range function", expr: `count_over_time(__leaf_0[5m])`, line: 1, col: 17, msg: `unknown selector "__leaf_0"`},
		{name: "a recorded series may not start with __ either", expr: `__x`, opts: dsl.Options{Series: recorded("__x")}, line: 1, col: 1, msg: "not allowed"},

		// Range functions.
		{name: "sum_over_time of events is rejected", expr: `sum_over_time(events[5m])`, line: 1, col: 15, msg: "needs a field, not events"},
		{name: "p95 of events is rejected", expr: `p95(events[5m])`, line: 1, col: 5, msg: "needs a field, not events"},
		{name: "irate is not supported", expr: `irate(events[5m])`, line: 1, col: 1, msg: `function "irate" is not supported`},
		{name: "deriv is not supported", expr: `deriv(latency_ms[5m])`, line: 1, col: 1, msg: `function "deriv" is not supported`},
		{name: "last_over_time is not supported", expr: `1 + last_over_time(latency_ms[5m])`, line: 1, col: 5, msg: `function "last_over_time" is not supported`},
		{name: "histogram_quantile is not supported", expr: `histogram_quantile(0.9, vector(1))`, line: 1, col: 1, msg: `function "histogram_quantile" is not supported`},
		{name: "a subquery of raw events is rejected", expr: `count_over_time(events[5m:1m])`, line: 1, col: 17, msg: "selects raw call events"},
		{name: "a subquery at the top is rejected", expr: `sum(count_over_time(events[5m]))[10m:1m]`, line: 1, col: 1, msg: "a subquery is not a result by itself"},
		{name: "nested subqueries are rejected", expr: `max_over_time(max_over_time(p95(latency_ms[5m])[1h:5m])[1d:1h])`, line: 1, col: 29, msg: "subqueries cannot be nested"},
		{name: "rate over a subquery is rejected", expr: `rate(sum(count_over_time(events[5m]))[1h:5m])`, line: 1, col: 1, msg: "rate over a subquery is not supported"},
		{name: "the @ modifier is rejected", expr: `count_over_time(events[5m] @ 1000)`, line: 1, col: 17, msg: "@ modifier is not supported"},
		{name: "the @ modifier with start() is rejected", expr: `rate(events[5m] offset 1h @ end())`, line: 1, col: 6, msg: "@ modifier is not supported"},
		{name: "the @ modifier after a function is a parse error", expr: `p95(latency_ms[5m]) @ 100`, line: 1, col: 1, msg: "@ modifier"},
		{name: "a negative offset is rejected", expr: `count_over_time(events[5m] offset -1h)`, line: 1, col: 1, msg: "negative offsets"},
		{name: "a φ above 1 is rejected", expr: `quantile_over_time(1.5, latency_ms[5m])`, line: 1, col: 20, msg: "out of range"},
		{name: "a φ below 0 is rejected", expr: `quantile_over_time(-0.1, latency_ms[5m])`, line: 1, col: 20, msg: "out of range"},
		{name: "a φ that is NaN is rejected", expr: `quantile_over_time(NaN, latency_ms[5m])`, line: 1, col: 20, msg: "out of range"},
		{name: "a φ that is not a literal is rejected", expr: `quantile_over_time(scalar(vector(0.5)), latency_ms[5m])`, line: 1, col: 20, msg: "must be a number literal"},
		{name: "count_le_over_time without a threshold says to write one", expr: `count_le_over_time(latency_ms[5m])`, line: 1, col: 1, msg: "takes a range selector and a threshold"},
		{name: "a threshold that is not a literal is rejected", expr: `count_le_over_time(latency_ms[5m], scalar(vector(2000)))`, line: 1, col: 36, msg: "must be a number literal"},
		{name: "a threshold computed from literals is rejected", expr: `count_gt_over_time(latency_ms[5m], 1000 * 2)`, line: 1, col: 36, msg: "must be a number literal"},
		{name: "a threshold that is NaN is rejected", expr: `count_gt_over_time(latency_ms[5m], NaN)`, line: 1, col: 36, msg: "is NaN"},
		{name: "a threshold that is a vector is a parse error with a hint", expr: `count_le_over_time(latency_ms[5m], count_over_time(events[5m]))`, line: 1, col: 36, msg: "expected type scalar"},
		{name: "a threshold before the window is a parse error", expr: `count_le_over_time(2000, latency_ms[5m])`, line: 1, col: 20, msg: "expected type range vector"},
		{name: "count_le_over_time of events is rejected", expr: `count_le_over_time(events[5m], 1)`, line: 1, col: 20, msg: "needs a field, not events"},
		{name: "count_gt_over_time over a subquery is rejected", expr: `count_gt_over_time(sum(count_over_time(events[5m]))[1h:5m], 3)`, line: 1, col: 1, msg: "count_gt_over_time over a subquery is not supported"},
		{name: "the anchored modifier is rejected", expr: `count_over_time(events[5m] anchored)`, line: 1, col: 17, msg: "anchored and smoothed modifiers are not supported"},
		{name: "the smoothed modifier is rejected", expr: `rate(events[5m] smoothed)`, line: 1, col: 6, msg: "anchored and smoothed modifiers are not supported"},
		{name: "a duration expression is rejected", expr: `count_over_time(events[5m+1m])`, line: 1, col: 1, msg: "duration expressions are not supported"},
		{name: "a sub-second window is rejected", expr: `count_over_time(events[500ms])`, line: 1, col: 1, msg: "whole seconds"},
		{name: "a sub-second offset is rejected", expr: "\n  count_over_time(events[1m] offset 1m500ms)", line: 2, col: 3, msg: "whole seconds"},

		// Limits.
		{name: "a window longer than the maximum is rejected", expr: `count_over_time(events[60d])`, opts: dsl.Options{Limits: dsl.Limits{MaxRange: 31 * 24 * time.Hour}}, line: 1, col: 1, msg: "more than the configured maximum"},
		{name: "a window plus offset longer than the maximum is rejected", expr: `count_over_time(events[20d] offset 20d)`, opts: dsl.Options{Limits: dsl.Limits{MaxRange: 31 * 24 * time.Hour}}, line: 1, col: 1, msg: "looks back 40d"},
		{name: "a window and an offset whose sum overflows are rejected, not wrapped around", expr: `count_over_time(events[290y] offset 3y)`, opts: dsl.Options{Limits: dsl.Limits{MaxRange: 31 * 24 * time.Hour}}, line: 1, col: 1, msg: "window of count_over_time is 290y"},
		{name: "an offset beyond the ceiling is rejected without a configured maximum", expr: `count_over_time(events[5m] offset 200y)`, line: 1, col: 1, msg: "offset of count_over_time is 200y"},
		{name: "a window beyond the ceiling is rejected without a configured maximum", expr: `p95(latency_ms[101y])`, line: 1, col: 1, msg: "longer than callwatch allows"},
		{name: "brackets nested too deep are rejected before parsing", expr: strings.Repeat("(", 101) + "1" + strings.Repeat(")", 101), line: 1, col: 101, msg: "nested more than 100 deep"},
		{name: "a chain of operators nested too deep is rejected", expr: strings.Repeat("1 + ", 100) + "1", line: 1, col: 1, msg: "nested more than 100 deep"},
		{name: "a too long expression is rejected", expr: "1" + strings.Repeat(" ", dsl.DefaultMaxBytes), line: 1, col: 1, msg: "bytes long"},
		{name: "too many distinct range functions are rejected", expr: manyLeaves(dsl.DefaultMaxLeaves + 1), line: 1, col: 1 + len(manyLeaves(dsl.DefaultMaxLeaves)) + 3, msg: "more than 64 distinct range functions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := dsl.Parse(tc.expr, tc.opts)
			if err == nil {
				t.Fatalf("Parse(%q) = %q, want an error", tc.expr, e.Query)
			}
			var de *dsl.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *dsl.Error", err, err)
			}
			if de.Line != tc.line || de.Col != tc.col {
				t.Errorf("position = %d:%d, want %d:%d (%v)", de.Line, de.Col, tc.line, tc.col, err)
			}
			if !strings.Contains(de.Msg, tc.msg) {
				t.Errorf("Msg = %q, want it to contain %q", de.Msg, tc.msg)
			}
			if strings.TrimSpace(de.Hint) == "" {
				t.Errorf("no hint saying what to write instead: %v", err)
			}
			if strings.Contains(err.Error(), "--enable-feature") {
				t.Errorf("the error points at a Prometheus flag callwatch does not have: %v", err)
			}
			if want := fmt.Sprintf("%d:%d: ", tc.line, tc.col); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want it to start with %q", err.Error(), want)
			}
		})
	}
}

// manyLeaves returns n distinct range functions added up.
func manyLeaves(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("count_over_time(events[%dm])", i+1)
	}
	return strings.Join(parts, " + ")
}

func TestLimitsBoundParsingCost(t *testing.T) {
	t.Run("brackets in strings and comments do not count as nesting", func(t *testing.T) {
		expr := `count_over_time(events{model="` + strings.Repeat("(", 200) + `"}[5m]) # ` + strings.Repeat("[", 200)
		if _, err := dsl.Parse(expr, dsl.Options{}); err != nil {
			t.Fatalf("Parse: %v", err)
		}
	})
	t.Run("the deepest allowed nesting parses", func(t *testing.T) {
		expr := strings.Repeat("(", 98) + "count_over_time(events[5m])" + strings.Repeat(")", 98)
		if _, err := dsl.Parse(expr, dsl.Options{}); err != nil {
			t.Fatalf("Parse: %v", err)
		}
	})
	t.Run("a hundred thousand nested parentheses are refused at once", func(t *testing.T) {
		// PromQL's parser took 53 s of CPU on this input.
		expr := strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000)
		if _, err := dsl.Parse(expr, dsl.Options{Limits: dsl.Limits{MaxBytes: 1 << 20}}); err == nil || !strings.Contains(err.Error(), "nested more than") {
			t.Fatalf("Parse = %v, want a nesting error", err)
		}
	})
	t.Run("an input of the maximum size with the maximum nesting is accepted", func(t *testing.T) {
		one := strings.Repeat("(", 45) + `count_over_time(events{model="` + strings.Repeat("x", 200) + `"}[5m])` + strings.Repeat(")", 45)
		var parts []string
		for len(strings.Join(parts, " or "))+len(one)+4 < dsl.DefaultMaxBytes {
			parts = append(parts, one)
		}
		if _, err := dsl.Parse(strings.Join(parts, " or "), dsl.Options{}); err != nil {
			t.Fatalf("Parse: %v", err)
		}
	})
}

func TestEveryRangeFunctionParses(t *testing.T) {
	names := dsl.RangeFunctionNames()
	if len(names) == 0 {
		t.Fatal("no range functions")
	}
	for _, name := range names {
		t.Run(name+" parses in a minimal expression", func(t *testing.T) {
			expr := name + "(latency_ms[5m])"
			switch name {
			case "quantile_over_time":
				expr = name + "(0.5, latency_ms[5m])"
			case "count_le_over_time", "count_gt_over_time":
				expr = name + "(latency_ms[5m], 2000)"
			}
			e, err := dsl.Parse(expr, dsl.Options{})
			if err != nil {
				t.Fatalf("Parse(%q): %v", expr, err)
			}
			if len(e.Leaves) != 1 || e.Leaves[0].Func != name || e.Query != "__leaf_0" {
				t.Fatalf("Parse(%q) planned %q with %d leaves", expr, e.Query, len(e.Leaves))
			}
			if e.Leaves[0].Range != m5 {
				t.Errorf("Range = %v, want 5m", e.Leaves[0].Range)
			}
		})
	}
	t.Run("the hint for an unsupported function lists every range function", func(t *testing.T) {
		_, err := dsl.Parse(`foo(events[5m])`, dsl.Options{})
		var de *dsl.Error
		if !errors.As(err, &de) {
			t.Fatalf("err = %v", err)
		}
		for _, name := range names {
			if !strings.Contains(de.Hint, name) {
				t.Errorf("hint %q does not mention %s", de.Hint, name)
			}
		}
	})
}

// TestEveryRangeFunctionIsDocumented: each range function has a row in
// the range-function table of docs/language.md (its first cell names it).
func TestEveryRangeFunctionIsDocumented(t *testing.T) {
	section := docpage.Section(t, "language.md", "### Range functions")
	var firstCells []string
	for _, line := range strings.Split(section, "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 && strings.HasPrefix(line, "| `") {
			firstCells = append(firstCells, cells[1])
		}
	}
	for _, name := range dsl.RangeFunctionNames() {
		word := regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`)
		found := false
		for _, c := range firstCells {
			found = found || word.MatchString(c)
		}
		if !found {
			t.Errorf("%s has no row in the range-function table of docs/language.md", name)
		}
	}
}

func TestInstantFunctionsAreKnownToPrometheus(t *testing.T) {
	for _, name := range dsl.InstantFunctionNames() {
		t.Run(name+" is in Prometheus' function table and not experimental", func(t *testing.T) {
			f, ok := parser.Functions[name]
			if !ok {
				t.Fatalf("%s is not a Prometheus function", name)
			}
			if f.Experimental {
				t.Fatalf("%s is experimental, which callwatch's parser does not enable", name)
			}
			if f.ReturnType != parser.ValueTypeVector && f.ReturnType != parser.ValueTypeScalar {
				t.Errorf("%s returns %s", name, f.ReturnType)
			}
			for _, a := range f.ArgTypes {
				if a == parser.ValueTypeMatrix {
					t.Errorf("%s takes a range vector, so it is a range function, not an instant one", name)
				}
			}
		})
	}
	t.Run("no name is both a range and an instant function", func(t *testing.T) {
		instant := map[string]bool{}
		for _, n := range dsl.InstantFunctionNames() {
			instant[n] = true
		}
		for _, n := range dsl.RangeFunctionNames() {
			if instant[n] {
				t.Errorf("%s is in both tables", n)
			}
		}
	})
	t.Run("the parser's table keeps Prometheus' functions and adds the range functions", func(t *testing.T) {
		funcs := dsl.ParserFunctions()
		for name := range parser.Functions {
			if funcs[name] == nil {
				t.Errorf("%s is missing", name)
			}
		}
		for _, name := range dsl.RangeFunctionNames() {
			if funcs[name] == nil {
				t.Errorf("%s is missing", name)
			}
		}
		if _, ok := parser.Functions["p95"]; ok {
			t.Error("p95 was added to Prometheus' global function table")
		}
	})
}

func TestLeafWindowIsHalfOpenAndShiftedByOffset(t *testing.T) {
	e := testrules.Expr(t, `count_over_time(events[5m] offset 1h)`)
	ts := time.Date(2025, 11, 24, 16, 10, 0, 0, time.UTC)
	from, to := e.Leaves[0].Window(ts)
	if want := ts.Add(-h1); !to.Equal(want) {
		t.Errorf("to = %v, want %v", to, want)
	}
	if want := ts.Add(-h1 - m5); !from.Equal(want) {
		t.Errorf("from = %v, want %v", from, want)
	}
}

func TestLineColCountsLinesAndCharacters(t *testing.T) {
	cases := []struct {
		name      string
		s         string
		off       int
		line, col int
	}{
		{"the start is 1:1", "abc", 0, 1, 1},
		{"the end of a line is one past its last character", "abc", 3, 1, 4},
		{"the first character after a newline is column 1", "ab\ncd", 3, 2, 1},
		{"multi-byte characters count once", "租户x", len("租户"), 1, 3},
		{"an offset past the end is clamped", "ab", 10, 1, 3},
		{"a negative offset is clamped", "ab", -1, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, col := dsl.LineCol(tc.s, tc.off)
			if line != tc.line || col != tc.col {
				t.Fatalf("LineCol(%q, %d) = %d:%d, want %d:%d", tc.s, tc.off, line, col, tc.line, tc.col)
			}
		})
	}
}

func TestUnknownNamesSayWhatWasMeant(t *testing.T) {
	opts := dsl.Options{Schema: dsl.DefaultSchema()}
	for _, tc := range []struct{ expr, want string }{
		{`p95(latncy_ms[5m]) > 1`, `unknown selector "latncy_ms"; did you mean "latency_ms"?`},
		{`count_over_time(event[5m]) > 1`, `unknown selector "event"; did you mean "events"?`},
		{`count_over_time(events{state="error"}[5m]) > 1`, `"state" is not a label of call events; did you mean "status"?`},
		{`sum by (tenant) (count_over_time(events[5m])) > 1`, `"tenant" is not a label of call events; did you mean "tenant_id"?`},
		{`sum by (region) (count_over_time(events[5m])) > 1`, `"region" is not a label of call events; group by labels of call events: tenant_id`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := dsl.Parse(tc.expr, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%s) = %v, want %q", tc.expr, err, tc.want)
			}
		})
	}
}

func TestExprUnit(t *testing.T) {
	opts := dsl.Options{Schema: dsl.DefaultSchema()}
	for expr, want := range map[string]string{
		`p95(latency_ms[5m]) > 5000`:                                                          "ms",
		`max by (tenant_id) (avg_over_time(latency_ms[5m])) > 3000`:                           "ms",
		`sum by (tenant_id) (sum_over_time(total_tokens[1d])) > 1e6`:                          "tokens",
		`sum by (tenant_id) (sum_over_time(cost[1d])) > 100`:                                  "¥",
		`max_over_time(p95(latency_ms[5m])[1h:5m]) > 5000`:                                    "ms",
		`p95(latency_ms[5m]) - p50(latency_ms[5m]) > 100`:                                     "ms",
		`p95(latency_ms[5m]) + 10 > 100`:                                                      "ms",
		`count_over_time(events[5m]) > 3`:                                                     "",
		`sum(count_over_time(events{status="error"}[5m])) / sum(count_over_time(events[5m]))`: "",
		`p95(latency_ms[5m]) / 1000 > 5`:                                                      "",
		`p95(latency_ms[5m]) > bool 5000`:                                                     "",
		`rate(input_tokens[5m]) > 10`:                                                         "",
		`p95(latency_ms[5m]) + sum_over_time(cost[5m])`:                                       "",
	} {
		e, err := dsl.Parse(expr, opts)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if e.Unit != want {
			t.Errorf("the unit of %s is %q, want %q", expr, e.Unit, want)
		}
	}
	noUnits := dsl.DefaultSchema()
	noUnits.Units = nil
	if e, err := dsl.Parse(`p95(latency_ms[5m]) > 5000`, dsl.Options{Schema: noUnits}); err != nil || e.Unit != "" {
		t.Errorf("without schema units: %v, unit %q", err, e.Unit)
	}
	bad := dsl.DefaultSchema()
	bad.Units = map[string]string{"latency": "ms"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `schema.units: "latency" is not a field`) || !strings.Contains(err.Error(), `did you mean "latency_ms"?`) {
		t.Errorf("Validate of units of an unknown field = %v", err)
	}
}
