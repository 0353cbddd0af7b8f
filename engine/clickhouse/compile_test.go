package clickhouse

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/docpage"
	"github.com/callwatch/callwatch/internal/golden"
	"github.com/callwatch/callwatch/internal/testrules"
)

// goldenTS is the evaluation time of the golden files; its fraction of a
// second shows that window bounds are floored to whole seconds.
var goldenTS = time.Date(2025, 11, 24, 16, 0, 0, 500_000_000, time.UTC)

// goldenCases compile against the table EventsDDL creates, unless cols
// gives other column types.
var goldenCases = []struct {
	name, expr string
	cols       func() Columns
}{
	{"error_rate", `count_over_time(events{status="error"}[5m]) > 10`, nil},
	{"call_count", `count_over_time(events[1h]) > 1000`, nil},
	{"token_usage", `sum_over_time(total_tokens[1d]) > 100000`, nil},
	{"cost_threshold", `sum_over_time(cost[1d]) > 100`, nil},
	{"latency_p95", `p95(latency_ms[5m]) > 5000`, nil},
	{"latency_p95_by_tenant", `max by (tenant_id) (p95(latency_ms[5m])) > 5000`, nil},
	{"p95_and_p99_share_one_sort", `max by (tenant_id) (p95(latency_ms[5m])) > 5000 or max by (tenant_id) (p99(latency_ms[5m])) > 8000 or max by (tenant_id) (p95(latency_ms{status="ok"}[5m]))`, nil},
	{"error_ratio_by_tenant", `sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m])) > 0.05`, nil},
	{"latency_scoped_to_tenant", `avg_over_time(latency_ms{tenant_id="acme", app_code!="batch"}[5m]) > 2000`, nil},
	{"regex_matchers", `count_over_time(events{model=~"gpt-4.*|o1", provider!~"azure|"}[10m]) > 0`, nil},
	{"week_over_week", `sum_over_time(cost[1d]) / sum_over_time(cost[1d] offset 1w) > 1.5`, nil},
	{"absent_and_present", `absent_over_time(events{app_code="checkout"}[15m]) or present_over_time(events{app_code="search"}[15m])`, nil},
	{"every_aggregate_by_app", `sum by (app_code, model) (rate(events[5m]) + increase(total_tokens[5m]) + min_over_time(latency_ms[5m]) + stddev_over_time(latency_ms[5m]) + quantile_over_time(0.5, cost[5m]))`, nil},
	// A user's table: a Nullable label reads NULL as "", NaN costs are
	// skipped, Int64 tokens are summed as Float64.
	{"nullable_labels_nan_costs_int64_tokens", `sum by (tenant_id) (sum_over_time(cost{status="ok"}[1h])) > 10 or max by (tenant_id) (sum_over_time(total_tokens[1h]))`, func() Columns {
		c := EventsColumns(dsl.DefaultSchema())
		c["tenant_id"], c["status"], c["cost"] = "LowCardinality(Nullable(String))", "Nullable(String)", "Nullable(Float64)"
		c["input_tokens"], c["output_tokens"] = "Int64", "UInt64"
		return c
	}},
	// Unknown types (no ReadColumns): every guard.
	{"unknown_column_types", `max by (tenant_id) (p95(latency_ms{status="error"}[5m]))`, func() Columns { return nil }},
}

func TestCompileMatchesGoldenFiles(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			e := testrules.Expr(t, tc.expr)
			cols := EventsColumns(dsl.DefaultSchema())
			if tc.cols != nil {
				cols = tc.cols()
			}
			got := renderGolden(tc.expr, Compile(CompileOptions{Table: "ai_call_events", Columns: cols}, goldenTS, e.Leaves), e.Leaves)
			golden.Compare(t, filepath.Join("testdata", tc.name+".golden"), []byte(got))
		})
	}
}

func renderGolden(expr string, stmts []Statement, leaves []*dsl.Leaf) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# expr: %s\n# at:   %s\n", expr, goldenTS.Format(time.RFC3339Nano))
	for i, st := range stmts {
		fmt.Fprintf(&b, "\n-- statement %d computes", i)
		for j, li := range st.Leaves {
			c := st.Columns[j]
			fmt.Fprintf(&b, "\n--   %s %s(%s)", leaves[li].Name, leaves[li].Func, leaves[li].Selector.Field)
			for _, pc := range c.Partials {
				fmt.Fprintf(&b, " %s=col%v", strings.ReplaceAll(pc.Partial.String(), " ", "_"), pc.Cols)
			}
		}
		fmt.Fprintf(&b, "\n%s\n-- args:", st.SQL)
		for _, a := range st.Args {
			fmt.Fprintf(&b, " %#v", a)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestCompileFusesLeavesOfTheSameShape(t *testing.T) {
	cases := []struct {
		name, expr string
		statements int
	}{
		{"the per-tenant error ratio is one query", `sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m]))`, 1},
		{"different windows are different queries", `count_over_time(events[5m]) / count_over_time(events[1h])`, 2},
		{"an offset is a different query", `sum_over_time(cost[1d]) / sum_over_time(cost[1d] offset 1w)`, 2},
		{"different groupings are different queries", `sum by (tenant_id) (count_over_time(events[5m])) + on() group_left sum(count_over_time(events[5m]))`, 2},
		{"ungrouped and grouped-by-nothing leaves share a query", `count_over_time(events[5m]) + sum(p95(latency_ms[5m]))`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := testrules.Expr(t, tc.expr)
			stmts := Compile(CompileOptions{Table: "events"}, goldenTS, e.Leaves)
			if len(stmts) != tc.statements {
				t.Fatalf("got %d statements, want %d:\n%s", len(stmts), tc.statements, renderGolden(tc.expr, stmts, e.Leaves))
			}
			seen := map[int]bool{}
			for _, st := range stmts {
				for _, li := range st.Leaves {
					seen[li] = true
				}
				if got, want := strings.Count(st.SQL, "?"), len(st.Args); got != want {
					t.Errorf("%d placeholders for %d args in\n%s", got, want, st.SQL)
				}
			}
			if len(seen) != len(e.Leaves) {
				t.Errorf("statements compute leaves %v, want all %d", seen, len(e.Leaves))
			}
		})
	}
}

func TestCompiledSQLHoldsNoValueFromTheExpression(t *testing.T) {
	exprs := []string{
		`count_over_time(events{tenant_id="acme", status!="ok", model=~"gpt-4o", provider!~"openai"}[5m])`,
		`sum by (app_code) (p99(latency_ms{tenant_id="it's; DROP TABLE x --", model=~"a'b\\\\c/*x*/"}[5m]))`,
		`absent_over_time(events{app_code="?", status=~"\\?|x"}[1m])`,
	}
	for _, expr := range exprs {
		e := testrules.Expr(t, expr)
		for _, st := range Compile(CompileOptions{Table: "events"}, goldenTS, e.Leaves) {
			if got, want := strings.Count(st.SQL, "?"), len(st.Args); got != want {
				t.Errorf("%d placeholders for %d args in\n%s", got, want, st.SQL)
			}
			for _, l := range e.Leaves {
				for _, m := range l.Selector.Matchers {
					if strings.Contains(st.SQL, m.Value) && m.Value != "?" {
						t.Errorf("SQL contains the value %q of %s:\n%s", m.Value, m, st.SQL)
					}
					want := m.Value
					if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
						want = "^(?s:" + m.Value + ")$"
					}
					if !containsArg(st.Args, want) {
						t.Errorf("args %q lack %q", st.Args, want)
					}
				}
			}
		}
	}
}

func containsArg(args []any, v string) bool {
	for _, a := range args {
		if a == v {
			return true
		}
	}
	return false
}

func TestEventsDDLTypesTheDefaultSchema(t *testing.T) {
	got := EventsDDL("calls.ai_call_events", dsl.Schema{})
	want := "CREATE TABLE IF NOT EXISTS `calls`.`ai_call_events` (\n" +
		"    `created_at` DateTime,\n" +
		"    `tenant_id` String,\n    `app_code` String,\n    `model` String,\n    `provider` String,\n    `status` String,\n    `error_code` String,\n" +
		"    `cost` Float64,\n    `input_tokens` UInt32,\n    `latency_ms` UInt32,\n    `output_tokens` UInt32\n" +
		") ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(`created_at`)\nORDER BY `created_at`"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestDocsShowTheEventsDDL: the events table's DDL in docs/language.md is
// what EventsDDL writes (the DDL the tests create on 18.16 and 26.x), so
// the page cannot drift from the code.
func TestDocsShowTheEventsDDL(t *testing.T) {
	got := strings.TrimSpace(docpage.CodeBlock(t, "language.md", "## The events table", "sql"))
	if want := EventsDDL("ai_call_events", dsl.DefaultSchema()); got != want {
		t.Errorf("docs/language.md shows\n%s\nEventsDDL writes\n%s", got, want)
	}
}

// TestADistributedTableSendsNoStableVarianceState: on a Distributed table
// a stddev leaf's variance is computed over the values the shards send
// (groupArray), never from varPopStable states, which 18.16 does not send
// intact between servers; on one server it stays varPopStable.
func TestADistributedTableSendsNoStableVarianceState(t *testing.T) {
	e := testrules.Expr(t, `stddev_over_time(latency_ms{status="ok"}[5m]) + stddev_over_time(cost[5m])`)
	for _, distributed := range []bool{false, true} {
		stmts := Compile(CompileOptions{Table: "events", Distributed: distributed}, goldenTS, e.Leaves)
		var sql strings.Builder
		for _, st := range stmts {
			sql.WriteString(st.SQL)
		}
		stable := strings.Count(sql.String(), "varPopStableIf(") + strings.Count(sql.String(), "varPopStable(")
		spread := strings.Count(sql.String(), "arrayReduce('varPopStable', groupArrayIf(")
		if distributed && (stable != 0 || spread != 2) {
			t.Errorf("distributed: %d varPopStable states, %d variances over sent values; want 0 and 2:\n%s", stable, spread, sql.String())
		}
		if !distributed && (stable != 2 || spread != 0) {
			t.Errorf("one server: %d varPopStable states, %d variances over sent values; want 2 and 0:\n%s", stable, spread, sql.String())
		}
	}
}
