package engine_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
)

// series makes one event per minute from t0 for a tenant, with the given
// latencies; NaN means no event that minute.
func series(tenant string, lat ...float64) []memory.Event {
	var out []memory.Event
	for i, l := range lat {
		if !math.IsNaN(l) {
			out = append(out, event(t0.Add(time.Duration(i)*time.Minute), tenant, "ok", l))
		}
	}
	return out
}

var none = math.NaN()

// steps evaluates g at t0, t0+1m, ... and returns, per step, the alerts of
// rule as "tenant:STATE:severity" (reason appended when set), joined by spaces.
func steps(t *testing.T, g *engine.Group, rule string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		g.Eval(context.Background(), t0.Add(time.Duration(i)*time.Minute))
		var parts []string
		for _, a := range alertingRule(t, g, rule).Alerts() {
			if a.State == engine.StateInactive {
				continue
			}
			p := a.Labels.Get("tenant_id") + ":" + stateToken(a) + ":" + a.Labels.Get("severity")
			if r := a.Labels.Get(engine.ReasonLabel); r != "" {
				p += ":" + r
			}
			if a.Reason != "" {
				p += "(" + a.Reason + ")"
			}
			parts = append(parts, p)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

func checkSteps(t *testing.T, got, want []string) {
	t.Helper()
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("step %d (t0+%dm): got %q, want %q\nall: %q", i, i, got[i], want[i], got)
		}
	}
}

const tiered = `- alert: Latency
  expr: max by (tenant_id) (max_over_time(latency_ms[1m]))
  thresholds:
    - {severity: warning, op: ">", value: 3000, notify: [chat]}
    - {severity: critical, op: ">", value: 8000, notify: [oncall]}
`

func TestQualityControls(t *testing.T) {
	t.Run("tiers move one alert up and down, and recover_below keeps it until the value is really healthy", func(t *testing.T) {
		_, q := newMemory(series("acme", 4000, 9000, 5000, 2800, 2000)...)
		n := &notifications{}
		g := mustGroup(t, ruleFile("", tiered+"  recover_below: 2500"), engine.GroupOptions{Query: q.QueryWith, Notifier: n})
		checkSteps(t, steps(t, g, "Latency", 5), []string{
			"acme:F:warning", "acme:F:critical", "acme:F:warning",
			"acme:F:warning", // 2800 < 3000 but not below 2500: still firing
			"",               // 2000: resolved
		})
		fps := map[uint64]bool{}
		var channels []string
		for _, x := range n.take() {
			for _, a := range x.Alerts {
				fps[a.Fingerprint()] = true
				if a.ResolvedAt.IsZero() {
					channels = append(channels, strings.Join(x.Rule.NotifyFor(a.Labels), ","))
				}
			}
		}
		if len(fps) != 1 {
			t.Errorf("%d fingerprints, want 1: a tier change is the same alert", len(fps))
		}
		if got := strings.Join(channels, " "); !strings.HasPrefix(got, "chat oncall chat") {
			t.Errorf("channels per notification = %q, want each tier's own", got)
		}
	})

	t.Run("without recover_below the same values flap", func(t *testing.T) {
		_, q := newMemory(series("acme", 4000, 2800, 4000)...)
		g := mustGroup(t, ruleFile("", tiered), engine.GroupOptions{Query: q.QueryWith})
		checkSteps(t, steps(t, g, "Latency", 3), []string{"acme:F:warning", "", "acme:F:warning"})
	})

	t.Run("a plain X > N rule with recover_below gets hysteresis too", func(t *testing.T) {
		_, q := newMemory(series("acme", 6000, 4500, 3000)...)
		g := mustGroup(t, ruleFile("", `- alert: P95
  expr: max by (tenant_id) (p95(latency_ms[1m])) > 5000
  severity: error
  recover_below: 4000`), engine.GroupOptions{Query: q.QueryWith})
		checkSteps(t, steps(t, g, "P95", 3), []string{"acme:F:error", "acme:F:error", ""})
	})

	t.Run("a group that stops sending: no_data_state decides", func(t *testing.T) {
		evs := series("acme", 9000, 9000, none, none)
		for _, tc := range []struct{ policy, want string }{
			{"ok", ""},
			{"keep_last", "acme:F:critical(no data)"},
			{"alerting", "acme:P:warning:no_data"},
		} {
			_, q := newMemory(evs...)
			g := mustGroup(t, ruleFile("", tiered+"  no_data_state: "+tc.policy+"\n  for: 1m"), engine.GroupOptions{Query: q.QueryWith})
			got := steps(t, g, "Latency", 3)
			if tc.policy == "alerting" {
				// The no-data alert is its own alert (callwatch_reason label) and goes pending.
				if !strings.Contains(got[2], "acme:P::no_data") {
					t.Errorf("%s: step 2 = %q, want a pending no-data alert", tc.policy, got[2])
				}
				continue
			}
			if got[1] != "acme:F:critical" || got[2] != tc.want {
				t.Errorf("%s: got %q, want firing then %q", tc.policy, got, tc.want)
			}
		}
	})

	t.Run("a new group cannot fire during its grace period", func(t *testing.T) {
		evs := append(series("acme", 9000, 9000, 9000, 9000), series("beta", none, 9000, 9000, 9000)...)
		_, q := newMemory(evs...)
		g := mustGroup(t, ruleFile("", tiered+"  new_group_grace: 2m"), engine.GroupOptions{Query: q.QueryWith})
		got := steps(t, g, "Latency", 4)
		// acme is first seen at 0m, beta at 1m: each may fire 2m after.
		checkSteps(t, got, []string{"", "", "acme:F:critical", "acme:F:critical beta:F:critical"})
		if h := alertingRule(t, g, "Latency").History(); h[1].Held[engine.ReasonGrace] != 2 {
			t.Errorf("held at 1m = %v, want 2 groups in grace", h[1].Held)
		}
	})

	t.Run("min_events: a quiet tenant is not judged, and a firing one keeps its state when it gets quiet", func(t *testing.T) {
		var evs []memory.Event
		for i := range 3 { // acme: 3 slow calls a minute for 2 minutes, then 1
			evs = append(evs, series("acme", 9000, 9000)...)
			_ = i
		}
		evs = append(evs, series("acme", none, none, 100)...)
		evs = append(evs, series("quiet", 9000, 9000, 9000)...) // one call a minute
		_, q := newMemory(evs...)
		var audit []engine.AuditRecord
		rec := engine.AuditorFunc(func(_ context.Context, recs ...engine.AuditRecord) error { audit = append(audit, recs...); return nil })
		g := mustGroup(t, ruleFile("", `- alert: P95
  expr: max by (tenant_id) (p95(latency_ms[1m])) > 5000
  min_events: 3`), engine.GroupOptions{Query: q.QueryWith, Audit: rec})
		checkSteps(t, steps(t, g, "P95", 3), []string{"acme:F:", "acme:F:", "acme:F:(below min_events)"})
		if last := audit[len(audit)-1]; last.Kind != engine.AuditHeld || last.Reason != engine.ReasonMinEvents || last.TenantID != "acme" {
			t.Errorf("last audit record = %+v, want acme held below min_events", last)
		}
		if h := alertingRule(t, g, "P95").History(); h[0].Held[engine.ReasonMinEvents] != 1 {
			t.Errorf("held = %v, want the quiet tenant below min_events", h[0].Held)
		}
	})

	t.Run("the equivalent DSL guard keeps working without min_events", func(t *testing.T) {
		var evs []memory.Event
		for range 3 {
			evs = append(evs, series("acme", 9000)...)
		}
		evs = append(evs, series("quiet", 9000)...)
		_, q := newMemory(evs...)
		g := mustGroup(t, ruleFile("", `- alert: P95
  expr: max by (tenant_id) (p95(latency_ms[1m])) > 5000 and on (tenant_id) sum by (tenant_id) (count_over_time(events[1m])) >= 3`), engine.GroupOptions{Query: q.QueryWith})
		checkSteps(t, steps(t, g, "P95", 1), []string{"acme:F:"})
	})

	t.Run("controls combine: grace, then tiers with recovery", func(t *testing.T) {
		_, q := newMemory(series("acme", 9000, 9000, 4000, 2800, 2000)...)
		g := mustGroup(t, ruleFile("", tiered+"  recover_below: 2500\n  new_group_grace: 1m"), engine.GroupOptions{Query: q.QueryWith})
		checkSteps(t, steps(t, g, "Latency", 5), []string{"", "acme:F:critical", "acme:F:warning", "acme:F:warning", ""})
	})

	t.Run("a rule without controls is judged by PromQL exactly as before", func(t *testing.T) {
		_, q := newMemory(series("acme", 4000, 2800)...)
		g := mustGroup(t, ruleFile("", `- alert: Plain
  expr: max by (tenant_id) (max_over_time(latency_ms[1m])) > 3000`), engine.GroupOptions{Query: q.QueryWith})
		checkSteps(t, steps(t, g, "Plain", 2), []string{"acme:F:", ""})
		if alertingRule(t, g, "Plain").Spec().Quality != nil {
			t.Error("a plain rule got noise controls")
		}
	})
}
