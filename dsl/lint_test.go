package dsl

import (
	"strings"
	"testing"
)

// TestLintProvesSidesThatNeverMatch: each expression's findings, by the
// text they must contain ("" for none).
func TestLintProvesSidesThatNeverMatch(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		// The README's trap: {status="error"} divided by {}.
		{`count_over_time(events{status="error"}[5m]) / count_over_time(events[5m]) > 0.05`, `only the left side carries status`},
		{`sum(count_over_time(events{status="error"}[5m])) / sum(count_over_time(events[5m])) > 0.05`, ``},
		{`count_over_time(events{status="error"}[5m]) / ignoring(status) count_over_time(events[5m]) > 0.05`, ``},
		{`sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m])) > 0.05`, ``},
		{`sum by (tenant_id) (count_over_time(events[5m])) / sum(count_over_time(events[5m]))`, `only the left side carries tenant_id`},
		{`count_over_time(events{tenant_id="a"}[5m]) - count_over_time(events{tenant_id="b"}[5m])`, `tenant_id is "a" on the left and "b" on the right`},
		{`count_over_time(events{tenant_id="a"}[5m]) - on() count_over_time(events{tenant_id="b"}[5m])`, ``},
		{`max by (tenant_id) (p95(latency_ms[5m])) > 5000`, ``},
		{`count_over_time(events{status="error"}[5m]) > 3 and count_over_time(events[5m]) > 10`, `only the left side carries status`},
		{`count_over_time(events{status="error"}[5m]) > 3 or count_over_time(events[5m]) > 10`, ``},
		{`abs(count_over_time(events{app_code="x"}[5m])) / count_over_time(events[5m])`, `only the left side carries app_code`},
		{`sum without (status) (count_over_time(events{status="error"}[5m])) / count_over_time(events[5m])`, `only the left side carries app_code`}, // grouped by every other label
		{`count_over_time(events[5m]) * on(tenant_id) group_left count_over_time(events[5m])`, ``},
		{`vector(1) + count_over_time(events{status="x"}[5m])`, `only the right side carries status`},
		// The latency SLI: a threshold count over a total.
		{`count_le_over_time(latency_ms{status="ok"}[5m], 2000) / count_over_time(latency_ms[5m])`, `only the left side carries status`},
		{`sum by (tenant_id) (count_le_over_time(latency_ms[5m], 2000)) / sum by (tenant_id) (count_over_time(latency_ms[5m]))`, ``},
		{`count_gt_over_time(latency_ms[5m], 2000) / count_over_time(latency_ms{tenant_id="a"}[5m])`, `only the right side carries tenant_id`},
	} {
		e, err := Parse(tc.expr, Options{})
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		var got []string
		for _, f := range e.Findings {
			got = append(got, f.Error())
		}
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: unexpected findings %q", tc.expr, got)
		case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: findings %q, want one containing %q", tc.expr, got, tc.want)
		}
	}
	// The finding is positioned at the operator's expression and says what
	// to write instead.
	e, _ := Parse("  count_over_time(events{status=\"error\"}[5m]) / count_over_time(events[5m])", Options{})
	if len(e.Findings) != 1 || e.Findings[0].Line != 1 || e.Findings[0].Col != 3 || !strings.Contains(e.Findings[0].Hint, "ignoring(status)") {
		t.Errorf("finding %+v, want one at 1:3 with a hint naming ignoring(status)", e.Findings)
	}
}
