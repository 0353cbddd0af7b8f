package dsl

import "testing"

func TestSplitComparison(t *testing.T) {
	cases := []struct {
		in, value, op string
		threshold     float64
		ok            bool
	}{
		{`max by (tenant_id) (p95(latency_ms[5m])) > 5000`, `max by (tenant_id) (p95(latency_ms[5m]))`, ">", 5000, true},
		{`100 <= sum_over_time(cost[1d])`, `sum_over_time(cost[1d])`, ">=", 100, true},
		{`(count_over_time(events[5m]) < 3)`, `count_over_time(events[5m])`, "<", 3, true},
		{`count_over_time(events[5m]) > bool 3`, "", "", 0, false},
		{`count_over_time(events[5m]) > count_over_time(events[1h])`, "", "", 0, false},
		{`count_over_time(events[5m])`, "", "", 0, false},
	}
	for _, tc := range cases {
		c, ok := SplitComparison(tc.in)
		if ok != tc.ok || c.Value != tc.value || c.Op != tc.op || c.Threshold != tc.threshold {
			t.Errorf("SplitComparison(%q) = %+v, %v", tc.in, c, ok)
		}
	}
}

func TestCountExprCountsTheLeafsEvents(t *testing.T) {
	e, err := Parse(`sum by (tenant_id) (count_over_time(events{status="error"}[5m] offset 1m)) / sum by (tenant_id) (count_over_time(events[5m]))`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.Leaves[0].CountExpr(), `sum by (tenant_id) (count_over_time(events{status="error"}[5m] offset 1m))`; got != want {
		t.Errorf("grouped: %s, want %s", got, want)
	}
	e, _ = Parse(`p95(latency_ms{tenant_id="acme"}[5m])`, Options{})
	if got, want := e.Leaves[0].CountExpr(), `count_over_time(latency_ms{tenant_id="acme"}[5m])`; got != want {
		t.Errorf("ungrouped: %s, want %s", got, want)
	}
}
