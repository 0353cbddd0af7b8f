package dsl_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
)

// fuzzSeeds are good and bad expressions; `go test` runs them as the short
// seeded run, `make fuzz` mutates them for longer.
var fuzzSeeds = []string{
	// Good.
	`count_over_time(events{status="error"}[5m]) > 10`,
	`count_over_time(events[1h]) > 1000`,
	`sum_over_time(total_tokens[1d]) > 100000`,
	`sum_over_time(cost[1d]) > 100`,
	`avg_over_time(latency_ms[5m]) > 1000`,
	`p95(latency_ms[5m]) > 5000`,
	`p99(latency_ms{tenant_id="acme"}[5m]) > 5000`,
	`max_over_time(latency_ms[5m])`,
	`max by (tenant_id) (p95(latency_ms[5m])) > 5000`,
	`sum without (status, error_code) (count_over_time(events[5m]))`,
	`sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m])) > 0.05`,
	`count_over_time(events[1h]) / count_over_time(events[1h] offset 1w)`,
	`quantile_over_time(0.9, latency_ms{model=~"gpt.*", provider!~"open.*", status!="ok"}[5m])`,
	`topk(3, sum by (tenant_id) (sum_over_time(cost[1d])))`,
	`sum by (tenant_id, app_code) (rate(events[5m])) / on (tenant_id) group_left sum by (tenant_id) (rate(events[5m]))`,
	`count_over_time(events[5m]) > bool 10 and absent_over_time(events{tenant_id="acme"}[10m]) or present_over_time(cost[1m]) unless increase(events[1d])`,
	`scalar(sum(stddev_over_time(latency_ms[5m]))) + time() - vector(1)`,
	`clamp_max(abs(-min_over_time(latency_ms[90s])), 100)`,
	"max by (tenant_id) (\n  p50(latency_ms[5m])  # comment\n) > 5000",
	`quantile(0.9, sum by (model) (p90(latency_ms[5m])))`,
	// Bad.
	``,
	`p95(latency_ms[5m]) >`,
	"p95(latency_ms[5m])\n  > > 5000",
	`latency_ms > 5`,
	`count_over_time(foo[5m])`,
	`{tenant_id="x"}`,
	`count_over_time(events{tenant="x"}[5m])`,
	`max by (tenant) (p95(latency_ms[5m]))`,
	`sum_over_time(events[5m])`,
	`irate(events[5m])`,
	`histogram_quantile(0.9, vector(1))`,
	`max_over_time(p95(latency_ms[5m])[1h:5m])`,
	`count_over_time(events[5m] @ 1000)`,
	`count_over_time(events[5m] offset -1h)`,
	`quantile_over_time(1.5, latency_ms[5m])`,
	`quantile_over_time(scalar(vector(0.5)), latency_ms[5m])`,
	`count_over_time(events[500ms])`,
	`latency_ms[5m]`,
	`"x"`,
	`__leaf_0 > 1`,
	`count_over_time(events{tenant_id="租户"}[5m]) > > 1`,
	`count_over_time(events{model=~"("}[5m])`,
	`count_over_time(events[5m] anchored)`,
	`limitk(1, count_over_time(events[5m]))`,
	`count_over_time(events[5m+1m] offset 1h)`,
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	schema := dsl.DefaultSchema()
	reparse := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	f.Fuzz(func(t *testing.T, input string) {
		e, err := dsl.Parse(input, dsl.Options{})
		if err != nil {
			var de *dsl.Error
			if !errors.As(err, &de) {
				t.Fatalf("Parse(%q): error %v (%T) is not a *dsl.Error", input, err, err)
			}
			if de.Line < 1 || de.Col < 1 {
				t.Fatalf("Parse(%q): position %d:%d is not 1-based", input, de.Line, de.Col)
			}
			// The position is inside the input, so a caret can be drawn under it.
			lines := strings.Split(input, "\n")
			if de.Line > len(lines) {
				t.Fatalf("Parse(%q): line %d of %d", input, de.Line, len(lines))
			}
			if n := utf8.RuneCountInString(lines[de.Line-1]); de.Col > n+1 {
				t.Fatalf("Parse(%q): column %d past the end of line %d (%d characters)", input, de.Col, de.Line, n)
			}
			return
		}
		for _, l := range e.Leaves {
			if l.Range <= 0 {
				t.Fatalf("Parse(%q): leaf %s has range %v", input, l.Name, l.Range)
			}
			if l.Offset < 0 {
				t.Fatalf("Parse(%q): leaf %s has offset %v", input, l.Name, l.Offset)
			}
			for _, m := range l.Selector.Matchers {
				if !schema.IsLabel(m.Name) {
					t.Fatalf("Parse(%q): leaf %s matches on %q, not a schema label", input, l.Name, m.Name)
				}
			}
			for _, b := range l.By {
				if !schema.IsLabel(b) {
					t.Fatalf("Parse(%q): leaf %s groups by %q, not a schema label", input, l.Name, b)
				}
			}
			if !strings.HasPrefix(l.Name, dsl.LeafPrefix) || !strings.Contains(e.Query, l.Name) {
				t.Fatalf("Parse(%q): leaf %s is not in the query %q", input, l.Name, e.Query)
			}
		}
		if e.Type != parser.ValueTypeVector && e.Type != parser.ValueTypeScalar {
			t.Fatalf("Parse(%q): result type %s", input, e.Type)
		}
		if _, err := reparse.ParseExpr(e.Query); err != nil {
			t.Fatalf("Parse(%q): rewritten query %q does not parse: %v", input, e.Query, err)
		}
	})
}
