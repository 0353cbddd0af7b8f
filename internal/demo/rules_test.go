package demo

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/testrules"
	"github.com/callwatch/callwatch/rulefmt"
)

// backtestBaseline evaluates the demo's baseline rules (deploy/demo/rules/baseline.yaml), as the running engine
// would with its one-minute groups, over the demo's events from start to
// start+d, with a 10-minute backfill before start.
func backtestBaseline(t *testing.T, g *Generator, d time.Duration) []engine.Transition {
	t.Helper()
	return backtestRules(t, g, []string{"../../deploy/demo/rules/baseline.yaml"}, 10*time.Minute, d, 0)
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
			// Within two minutes of the incident's start: at night, with
			// few calls, the first evaluation after it may be too early.
			t.Run("ErrorBurst fires within two minutes", func(t *testing.T) {
				if at := first(trs, start, "ErrorBurst", "", "firing", -time.Minute); at > burst.At+2*time.Minute {
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
					if pending > tc.incident.At+2*time.Minute || firing != pending+2*time.Minute ||
						resolved < end || resolved > end+tc.resolveBy {
						t.Fatalf("%s{tenant_id=%q}: pending at +%s, firing at +%s, resolved at +%s; the incident ran from +%s to +%s",
							tc.rule, tc.tenant, pending, firing, resolved, tc.incident.At, end)
					}
					if again := first(trs, start, tc.rule, tc.tenant, "pending", script.Every); again > script.Every+tc.incident.At+2*time.Minute {
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
	e := testrules.Expr(t, `absent_over_time(events{tenant_id="initech"}[2m])`)
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

// ruleFiles are the rules `make run` serves over the demo's traffic.
var ruleFiles = []string{"../../deploy/demo/rules/baseline.yaml", "../../rules.d/quality.yaml"}

// backtestRules evaluates the rule files, as the running engine would with
// their one-minute groups (or every step when step is positive), over the
// demo's events from start to start+d, after backfill of traffic before
// start.
func backtestRules(t *testing.T, g *Generator, files []string, backfill, d, step time.Duration) []engine.Transition {
	t.Helper()
	start := g.Start()
	store := memory.New(dsl.Schema{})
	var events []memory.Event
	for _, e := range g.Generate(start.Add(-backfill), start.Add(d)) {
		events = append(events, e.Memory())
	}
	store.Add(events...)
	specs, err := rulefmt.LoadFiles(files, rulefmt.LoadOptions{Schema: dsl.DefaultSchema()})
	if err != nil {
		t.Fatal(err)
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	res, err := engine.Backtest(context.Background(), specs, engine.BacktestOptions{
		GroupOptions: engine.GroupOptions{Query: q.QueryWith}, From: start, To: start.Add(d), Step: step,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors > 0 {
		t.Fatalf("%d evaluations failed", res.Errors)
	}
	return res.Transitions
}

// raises reports whether a transition starts or worsens an alert: it goes
// pending, fires, or moves up a tier.
func raises(tr engine.Transition) bool {
	from, okFrom := strings.CutPrefix(tr.From, "firing/")
	to, okTo := strings.CutPrefix(tr.To, "firing/")
	if okFrom && okTo {
		return rulefmt.Severity(to).Rank() > rulefmt.Severity(from).Rank()
	}
	return tr.To == "pending" || tr.To == "firing"
}

// countRaises counts, per rule, the transitions that raise an alert.
func countRaises(trs []engine.Transition, keep func(engine.Transition) bool) map[string]int {
	out := map[string]int{}
	for _, tr := range trs {
		if raises(tr) && keep(tr) {
			out[tr.Rule]++
		}
	}
	return out
}

func TestNormalTrafficFiresNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("a day of evaluations takes about 15 s")
	}
	// A whole day without incidents, so that the daily rules (TenantCost,
	// TenantTokenUsage) see a full day of calls, with two hours of
	// backfill so that TenantSilent knows every tenant.
	start := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)
	g := New(Options{Seed: 1, Start: start, Script: quiet})
	trs := backtestRules(t, g, ruleFiles, 2*time.Hour, 24*time.Hour, 0)
	if got := countRaises(trs, func(engine.Transition) bool { return true }); len(got) > 0 {
		for _, tr := range trs {
			if raises(tr) {
				t.Logf("+%-8s %-22s %-9s %s→%s %.4g", tr.Time.Sub(start), tr.Rule, tr.Labels.Get("tenant_id"), tr.From, tr.To, tr.Value)
			}
		}
		t.Fatalf("alerts raised on a day of normal traffic, per rule: %v", got)
	}
}

// explains lists, for each kind of incident, the rules it is meant to fire.
var explains = map[Kind][]string{
	ErrorBurst:   {"ErrorBurst", "TenantErrorRatio", "TenantErrorRatioNewTenantGrace"},
	LatencySpike: {"TenantP95Latency", "TenantP95LatencyTiers", "ChatP99Latency", "LatencyAvgHigh"},
	CostSurge:    {"TenantCost", "TenantTokenUsage"},
	Silence:      {"TenantSilent"},
}

// explained reports whether an incident of g's script that is meant to
// fire tr's rule, for tr's tenant when the alert has one, was in effect at
// some time in [tr.Time-slack, tr.Time].
func explained(g *Generator, tr engine.Transition, slack time.Duration) bool {
	tenant := tr.Labels.Get("tenant_id")
	for at := tr.Time.Add(-slack); !at.After(tr.Time); at = at.Add(10 * time.Second) {
		for _, i := range g.Active(at) {
			for _, r := range explains[i.Kind] {
				if r == tr.Rule && (tenant == "" || tenant == i.Tenant) {
					return true
				}
			}
		}
	}
	return false
}

// fires lists, for each kind of incident, the rules it must fire before
// it ends, for its tenant or platform-wide. A silence is too short for
// TenantSilent (10 minutes without calls, then for: 5m); the rules written
// for it use absent_over_time (TestSilentTenantIsAbsent).
var fires = map[Kind][]struct {
	rule                           string
	platform, daily, newGroupGrace bool
}{
	ErrorBurst:   {{rule: "ErrorBurst", platform: true}, {rule: "TenantErrorRatio"}, {rule: "TenantErrorRatioNewTenantGrace", newGroupGrace: true}},
	LatencySpike: {{rule: "TenantP95Latency"}, {rule: "TenantP95LatencyTiers"}},
	CostSurge:    {{rule: "TenantCost", daily: true}, {rule: "TenantTokenUsage", daily: true}},
}

// firingAt reports whether the alert of rule (and tenant, when not empty)
// is firing at ts: TenantP95LatencyTiers, for one, keeps its state while a
// tenant makes fewer than min_events calls, so at night it may still fire
// from the first round when the second begins.
func firingAt(trs []engine.Transition, rule, tenant string, ts time.Time) bool {
	firing := false
	for _, tr := range trs {
		if tr.Time.After(ts) {
			break
		}
		if tr.Rule == rule && (tenant == "" || tr.Labels.Get("tenant_id") == tenant) {
			firing = strings.HasPrefix(tr.To, "firing")
		}
	}
	return firing
}

// slack is how long after an incident ends it still explains an alert
// that goes pending (the rules' 5-minute windows) or fires (for: 2m).
const slack = 7 * time.Minute

func TestDemoFiresOnItsIncidentsOnly(t *testing.T) {
	script := DefaultScript()
	for _, start := range []time.Time{
		time.Date(2025, 11, 24, 2, 0, 10, 0, time.UTC),  // 10:00 in UTC+8, busy
		time.Date(2025, 11, 24, 6, 0, 55, 0, time.UTC),  // 14:00, the afternoon peak
		time.Date(2025, 11, 24, 19, 0, 10, 0, time.UTC), // 03:00, the night's low
		time.Date(2025, 11, 24, 19, 0, 55, 0, time.UTC),
	} {
		t.Run(fmt.Sprintf("started at %s UTC", start.Format("15:04:05")), func(t *testing.T) {
			t.Parallel()
			g := New(Options{Seed: 1, Start: start})
			// As `make run`: 15 minutes of backfill, then two rounds.
			trs := backtestRules(t, g, ruleFiles, 15*time.Minute, 2*script.Every, 0)
			if testing.Verbose() {
				for _, tr := range trs {
					t.Logf("+%-6s %-30s %-9s %s→%s %.4g", tr.Time.Sub(start), tr.Rule, tr.Labels.Get("tenant_id"), tr.From, tr.To, tr.Value)
				}
			}
			t.Run("no alert is raised outside an incident meant to raise it", func(t *testing.T) {
				// An alert goes pending while its incident runs or while
				// the incident's calls (or the silence) are in the rules'
				// 5-minute windows; it fires for: 2m later.
				if got := countRaises(trs, func(tr engine.Transition) bool { return !explained(g, tr, slack) }); len(got) > 0 {
					for _, tr := range trs {
						if raises(tr) && !explained(g, tr, slack) {
							t.Errorf("+%s: %s %s→%s %s = %.4g", tr.Time.Sub(start), tr.Rule, tr.From, tr.To, tr.Labels, tr.Value)
						}
					}
					t.Fatalf("raised outside their incidents, per rule: %v", got)
				}
			})
			for _, round := range []time.Duration{0, script.Every} {
				for _, i := range script.Incidents {
					from, to := round+i.At, round+i.At+i.For
					for _, f := range fires[i.Kind] {
						tenant := i.Tenant
						if f.platform {
							tenant = ""
						}
						if (round > 0 && f.daily) || (round == 0 && f.newGroupGrace) {
							// Still firing since the first round: the
							// day's window holds the first surge. Or
							// every tenant is new in the first 10 minutes.
							continue
						}
						t.Run(fmt.Sprintf("%s of +%s fires %s", i.Kind, from, f.rule), func(t *testing.T) {
							if at := first(trs, start, f.rule, tenant, "firing", from); at > to && !firingAt(trs, f.rule, tenant, start.Add(to)) {
								t.Fatalf("%s{tenant_id=%q} fired at +%s; the incident ran from +%s to +%s", f.rule, tenant, at, from, to)
							}
						})
					}
				}
			}
		})
	}
}
