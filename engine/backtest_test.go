package engine_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

// backtestRules exercise every kind of transition a backtest reports: tiers
// moving up and down with hysteresis, a pending alert that never fires, one
// that does, resolves of several alerts at one timestamp, and a firing held
// back by cooldown (not counted as a notification).
const backtestRules = tiered + `  recover_below: 2500
- alert: Slow
  expr: max by (tenant_id) (max_over_time(latency_ms[1m])) > 3500
  for: 2m
- alert: Any
  expr: count by (tenant_id) (count_over_time(events[1m])) > 0
  cooldown: 1h
`

func TestBacktestReportsTheTransitionsRulesRecord(t *testing.T) {
	var events []memory.Event
	events = append(events, series("acme", 4000, 9000, 5000, 2800, 2000, none, none, 4000)...)
	events = append(events, series("globex", 3600, 3600, 3600, 3600, none)...)
	events = append(events, series("initech", 9000, none, none, none, none, none, none, 100)...)
	_, q := newMemory(events...)
	specs, err := rulefmt.ParseRuleFile("rules.yaml", []byte(ruleFile("", backtestRules)), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := engine.BacktestOptions{GroupOptions: engine.GroupOptions{Query: q.QueryWith}, From: t0, To: t0.Add(8 * time.Minute)}
	res, err := engine.Backtest(context.Background(), specs, opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tr := range res.Transitions {
		got = append(got, fmt.Sprintf("%s %s %s %s→%s", tr.Time.Sub(t0), tr.Rule, tr.Labels.Get("tenant_id"), tr.From, tr.To))
	}
	want := []string{
		"0s Latency initech inactive→firing", "0s Latency acme inactive→firing", "0s Latency globex inactive→firing",
		"0s Slow acme inactive→pending", "0s Slow globex inactive→pending", "0s Slow initech inactive→pending",
		"0s Any acme inactive→firing", "0s Any globex inactive→firing", "0s Any initech inactive→firing",
		"1m0s Latency acme firing/warning→firing/critical", "1m0s Latency initech firing→resolved",
		"1m0s Slow initech pending→inactive", "1m0s Any initech firing→resolved",
		"2m0s Latency acme firing/critical→firing/warning", "2m0s Slow acme pending→firing", "2m0s Slow globex pending→firing",
		"3m0s Slow acme firing→resolved",
		"4m0s Latency acme firing→resolved", "4m0s Latency globex firing→resolved", "4m0s Slow globex firing→resolved",
		"4m0s Any globex firing→resolved",
		"5m0s Any acme firing→resolved",
		"7m0s Latency acme inactive→firing", "7m0s Slow acme inactive→pending", "7m0s Any acme inactive→firing",
		"7m0s Any initech inactive→firing",
		"8m0s Latency acme firing→resolved", "8m0s Slow acme pending→inactive", "8m0s Any acme firing→resolved",
		"8m0s Any initech firing→resolved",
	}
	if !slices.Equal(got, want) {
		t.Errorf("transitions:\n%q\nwant\n%q", got, want)
	}
	// Any: one firing admitted by cooldown and its resolve; the others held back.
	if wantN := map[string]int{"Any": 2, "Latency": 10, "Slow": 4}; !maps.Equal(res.Notifications, wantN) {
		t.Errorf("notifications = %v, want %v", res.Notifications, wantN)
	}
	if wantN := map[string]int{"Latency": 8}; !maps.Equal(res.WithoutControls, wantN) {
		t.Errorf("notifications without controls = %v, want %v", res.WithoutControls, wantN)
	}
	t.Run("two backtests report the same transitions in the same order", func(t *testing.T) {
		for range 5 {
			again, err := engine.Backtest(context.Background(), specs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(again.Transitions, res.Transitions, func(a, b engine.Transition) bool {
				return a.Time.Equal(b.Time) && a.Rule == b.Rule && a.From == b.From && a.To == b.To && a.Labels.String() == b.Labels.String()
			}) {
				t.Fatal("the order of transitions changed between runs")
			}
		}
	})
}
