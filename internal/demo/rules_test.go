package demo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

// backtestBaseline evaluates rules.d/baseline.yaml, as the running engine
// would with its one-minute groups, over the demo's events from start to
// start+d, with a 10-minute backfill before start.
func backtestBaseline(t *testing.T, g *Generator, d time.Duration) []engine.Transition {
	t.Helper()
	start := g.Start()
	store := memory.New(dsl.Schema{})
	var events []memory.Event
	for _, e := range g.Generate(start.Add(-10*time.Minute), start.Add(d)) {
		events = append(events, e.Memory())
	}
	store.Add(events...)
	specs, err := rulefmt.LoadFiles([]string{"../../rules.d/baseline.yaml"}, rulefmt.LoadOptions{Schema: dsl.DefaultSchema()})
	if err != nil {
		t.Fatal(err)
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	res, err := engine.Backtest(context.Background(), specs, engine.BacktestOptions{
		GroupOptions: engine.GroupOptions{Query: q.QueryWith}, From: start, To: start.Add(d),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 {
		t.Fatalf("%d evaluations failed", res.Errors)
	}
	return res.Transitions
}

// never is what first returns when there is no such transition.
const never = 1000 * time.Hour

// first returns the offset from start of the first transition of rule
// (and tenant, when not empty) to state after the offset after, or never.
func first(trs []engine.Transition, start time.Time, rule, tenant, to string, after time.Duration) time.Duration {
	for _, tr := range trs {
		off := tr.Time.Sub(start)
		if tr.Rule == rule && tr.To == to && off > after && (tenant == "" || tr.Labels.Get("tenant_id") == tenant) {
			return off
		}
	}
	return never
}

func TestScriptTripsTheBaselineRules(t *testing.T) {
	script := DefaultScript()
	burst, spike := script.Incidents[0], script.Incidents[1]
	// Different hours (office hours and night in UTC+8, so different
	// rates) and different seconds within the minute the rules are
	// evaluated at.
	for _, start := range []time.Time{
		time.Date(2025, 11, 24, 2, 0, 10, 0, time.UTC),
		time.Date(2025, 11, 24, 2, 0, 55, 0, time.UTC),
		time.Date(2025, 11, 24, 19, 0, 10, 0, time.UTC),
		time.Date(2025, 11, 24, 19, 0, 55, 0, time.UTC),
	} {
		t.Run(fmt.Sprintf("started at %s UTC", start.Format("15:04:05")), func(t *testing.T) {
			t.Parallel()
			g := New(Options{Seed: 1, Start: start})
			trs := backtestBaseline(t, g, 35*time.Minute)
			if testing.Verbose() {
				for _, tr := range trs {
					t.Logf("+%-6s %-18s %-9s %s→%s %.4g", tr.Time.Sub(start), tr.Rule, tr.Labels.Get("tenant_id"), tr.From, tr.To, tr.Value)
				}
			}
			t.Run("ErrorBurst fires within two minutes", func(t *testing.T) {
				if at := first(trs, start, "ErrorBurst", "", "firing", -time.Minute); at > 2*time.Minute {
					t.Fatalf("ErrorBurst fired at +%s", at)
				}
			})
			for _, tc := range []struct {
				rule, tenant string
				incident     Incident
				resolveBy    time.Duration // after the incident ends
			}{
				// The burst's calls leave the 5-minute window.
				{"TenantErrorRatio", "globex", burst, 6 * time.Minute},
				// Plus keep_firing_for: 2m.
				{"TenantP95Latency", "acme", spike, 8 * time.Minute},
			} {
				t.Run(tc.rule+" goes pending within two minutes, fires and resolves", func(t *testing.T) {
					pending := first(trs, start, tc.rule, tc.tenant, "pending", 0)
					firing := first(trs, start, tc.rule, tc.tenant, "firing", 0)
					resolved := first(trs, start, tc.rule, tc.tenant, "resolved", 0)
					end := tc.incident.At + tc.incident.For
					if pending > 2*time.Minute || firing != pending+2*time.Minute ||
						resolved < end || resolved > end+tc.resolveBy {
						t.Fatalf("%s{tenant_id=%q}: pending at +%s, firing at +%s, resolved at +%s; the incident ran from +%s to +%s",
							tc.rule, tc.tenant, pending, firing, resolved, tc.incident.At, end)
					}
					if again := first(trs, start, tc.rule, tc.tenant, "pending", script.Every); again > script.Every+2*time.Minute {
						t.Fatalf("the second round went pending at +%s", again)
					}
				})
				t.Run(tc.rule+" fires for no other tenant", func(t *testing.T) {
					for _, tr := range trs {
						if tr.Rule == tc.rule && tr.To == "firing" && tr.Labels.Get("tenant_id") != tc.tenant {
							t.Fatalf("%s fired for %s at +%s", tc.rule, tr.Labels.Get("tenant_id"), tr.Time.Sub(start))
						}
					}
				})
			}
			t.Run("TenantCost fires for umbrella by the end of its cost surge", func(t *testing.T) {
				surge := script.Incidents[2]
				if at := first(trs, start, "TenantCost", "umbrella", "firing", -time.Minute); at > surge.At+surge.For {
					t.Fatalf("TenantCost{tenant_id=\"umbrella\"} fired at +%s", at)
				}
			})
		})
	}
}

func TestSilentTenantIsAbsent(t *testing.T) {
	start := time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC)
	g := New(Options{Seed: 1, Start: start})
	store := memory.New(dsl.Schema{})
	var events []memory.Event
	for _, e := range g.Generate(start.Add(10*time.Minute), start.Add(25*time.Minute)) {
		events = append(events, e.Memory())
	}
	store.Add(events...)
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	e, err := dsl.Parse(`absent_over_time(events{tenant_id="initech"}[2m])`, dsl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at     time.Duration
		absent bool
	}{{14 * time.Minute, false}, {18 * time.Minute, true}, {20 * time.Minute, true}, {22 * time.Minute, false}} {
		res, err := q.Query(context.Background(), e, start.Add(tc.at))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(res.Vector) == 1; got != tc.absent {
			t.Errorf("at +%s: absent = %v, want %v", tc.at, got, tc.absent)
		}
	}
}
