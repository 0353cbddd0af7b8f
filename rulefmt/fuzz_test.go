package rulefmt_test

import (
	"errors"
	"testing"

	"github.com/callwatch/callwatch/rulefmt"
)

// FuzzParseRuleFile: any bytes give groups or positioned errors, never a panic.
func FuzzParseRuleFile(f *testing.F) {
	for _, s := range []string{
		ruleFile("", "- alert: A\n  expr: p95(latency_ms[5m]) > 5000\n  for: 2m"),
		ruleFile("interval: 30s", "- record: r\n  expr: sum by (tenant_id) (rate(events[5m]))"),
		ruleFile("", "- alert: T\n  expr: max by (tenant_id) (p95(latency_ms[5m]))\n  thresholds: [{severity: warning, op: \">\", value: 1}]\n  recover_below: 0.5"),
		sloFile,
		"slos:\n- {name: l, objective: 99, window: 28d, sli: {field: latency_ms, le: 2000, total: '{app_code=\"chat\"}'}, alerting: {page: {notify: [x]}}}\n",
		"budgets:\n- {name: b, cost: 'cost{tenant_id=\"a\"}', limit: 5, period: 7d, pace_window: 1h, thresholds: [10, 90]}\n",
		"groups: [", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: |\n      sum(\n        irate(x[5m]))\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		groups, err := rulefmt.ParseRuleFile("f.yaml", data, rulefmt.LoadOptions{})
		if err != nil {
			var es rulefmt.Errors
			if !errors.As(err, &es) {
				t.Fatalf("err is %T, want rulefmt.Errors", err)
			}
			for _, e := range es {
				var fe *rulefmt.FileError
				if !errors.As(e, &fe) || fe.Pos.Line < 1 || fe.Pos.Col < 1 {
					t.Fatalf("error without a position: %v", e)
				}
			}
			return
		}
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.Expr == nil {
					t.Fatalf("rule %q accepted without an expression", r.Name())
				}
			}
		}
	})
}
