package storetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

// sloRules are an availability and a latency SLO per tenant over 7 days
// (calls at 2000 ms are good, at 2100 ms slow) and a spend budget, as a
// user writes them: rulefmt compiles them into ordinary groups.
const sloRules = `slos:
  - name: chat
    objective: 99
    window: 7d
    by: [tenant_id]
    sli:
      errors: 'events{app_code="chat", status="error"}'
      total: 'events{app_code="chat"}'
  - name: fast
    objective: 98
    window: 7d
    by: [tenant_id, app_code]
    sli:
      field: latency_ms
      le: 2000
      total: events
budgets:
  - name: spend
    limit: 30
    period: 7d
    pace_window: 6h
    by: [tenant_id]
`

// SLOsMatchMemory evaluates the groups generated from an SLO and a budget
// on the backend (the incremental path, stepped every 10 minutes over the
// last two hours of three days of calls, across a day boundary) and in
// memory, and compares every recorded series and alert bit for bit: the
// burn rates are ratios of counts, the spend sums of quarters, exact on
// both.
func SLOsMatchMemory(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	rng := rand.New(rand.NewPCG(16, 16))
	schema := dsl.DefaultSchema()
	end := time.Date(2026, 3, 3, 1, 0, 0, 0, time.UTC)
	var events []memory.Event
	for at := end.Add(-72 * time.Hour); at.Before(end); at = at.Add(time.Duration(30+rng.IntN(90)) * time.Second) {
		tenant := []string{"acme", "beta", "gamma"}[rng.IntN(3)]
		status := "ok"
		if rng.IntN(40) == 0 || (tenant == "acme" && at.After(end.Add(-90*time.Minute)) && rng.IntN(4) == 0) {
			status = "error"
		}
		app := "chat"
		if rng.IntN(5) == 0 {
			app = "search"
		}
		events = append(events, event(0, map[string]string{"tenant_id": tenant, "app_code": app, "status": status},
			map[string]float64{"cost": float64(1+rng.IntN(4)) / 4, "latency_ms": float64(1800 + 100*rng.IntN(6))}))
		events[len(events)-1].Time = at
	}
	tb := newEventsTable(t, conn, db+".slo_events", events)
	var now time.Time
	inc := tb.source(t, &clickhouse.Incremental{Bucket: time.Minute, LateWindow: 2 * time.Minute, Now: func() time.Time { return now }, FillSettle: -1})
	specs, err := rulefmt.ParseRuleFile("slo.yaml", []byte(sloRules), rulefmt.LoadOptions{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	memQ := engine.NewQuerier(engine.QuerierOptions{Source: tb.mem})
	chQ := engine.NewQuerier(engine.QuerierOptions{Source: inc})
	var memG, chG []*engine.Group
	for _, s := range specs {
		memG = append(memG, engine.NewGroup(s, engine.GroupOptions{Query: memQ.QueryWith}))
		chG = append(chG, engine.NewGroup(s, engine.GroupOptions{Query: chQ.QueryWith}))
	}
	compared, firing := 0, 0
	for ts := end.Add(-2 * time.Hour); !ts.After(end); ts = ts.Add(10 * time.Minute) {
		now = ts.Add(5 * time.Second)
		for i := range memG {
			memG[i].Eval(context.Background(), ts)
			chG[i].Eval(context.Background(), ts)
			inc.WaitFills()
			for j, r := range memG[i].Rules() {
				if st := chG[i].Rules()[j].Status(); st.LastError != nil {
					t.Fatalf("%s: rule %s on the backend: %s %v", ts.Format(time.RFC3339), r.Name(), st.Health, st.LastError)
				}
				if mr, ok := r.(*engine.RecordingRule); ok {
					m, _ := mr.Samples()
					c, _ := chG[i].Rules()[j].(*engine.RecordingRule).Samples()
					if p := compareVectors(true, exprTolerance, m, c); p != "" {
						t.Fatalf("%s: %s %v differs: %s", ts.Format(time.RFC3339), mr.Name(), mr.Spec().Labels, p)
					}
					compared += len(m)
				}
			}
			m, c := alertSet(memG[i]), alertSet(chG[i])
			if fmt.Sprint(m) != fmt.Sprint(c) {
				t.Fatalf("%s: alerts differ:\nmemory  %v\nbackend %v", ts.Format(time.RFC3339), m, c)
			}
			firing += len(m)
		}
	}
	if compared == 0 || firing == 0 {
		t.Errorf("compared %d recorded samples and %d alert states: the events must give both", compared, firing)
	}
	if st := inc.IncrementalStats(); st.Leaves == 0 {
		t.Errorf("the SLO's windows must slide on buckets, got %+v", st)
	}
	t.Logf("%d events; %d recorded samples and %d alert states equal on both", len(events), compared, firing)
}

// alertSet lists a group's active alerts with their state and value.
func alertSet(g *engine.Group) []string {
	var out []string
	for _, r := range g.Rules() {
		if ar, ok := r.(*engine.AlertingRule); ok {
			for _, a := range ar.Alerts() {
				out = append(out, fmt.Sprintf("%s %s %v", a.Labels, a.State, a.Value))
			}
		}
	}
	slices.Sort(out)
	return out
}

// calendarRules are an availability SLO and a spend budget per tenant over
// the calendar month in Asia/Shanghai (UTC+8), as a user writes them.
const calendarRules = `slos:
  - name: monthly
    objective: 99
    window: month
    time_zone: Asia/Shanghai
    by: [tenant_id]
    sli:
      errors: 'events{status="error"}'
      total: events
budgets:
  - name: monthly-spend
    limit: 40
    period: month
    time_zone: Asia/Shanghai
    pace_window: 1h
    thresholds: [50, 100]
    by: [tenant_id]
`

// CalendarMonthsMatchMemory evaluates a calendar-month SLO and budget in
// Asia/Shanghai on the backend (the incremental path, and the full path)
// and in memory, stepping every 10 minutes across the month boundary
// (2026-04-01 00:00 in Shanghai, 2026-03-31T16:00Z), and compares every
// recorded series and alert bit for bit. The spend is also computed by
// hand from the events: an event at exactly midnight belongs to the month
// it closes, the month's spend restarts after it, and the projection
// waits for the pace window's share of the month.
func CalendarMonthsMatchMemory(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	rng := rand.New(rand.NewPCG(17, 17))
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	boundary := time.Date(2026, 4, 1, 0, 0, 0, 0, shanghai)
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, shanghai)
	var events []memory.Event
	var tenants []string // of each event
	add := func(at time.Time, tenant, status string, cost float64) {
		tenants = append(tenants, tenant)
		events = append(events, event(0, map[string]string{"tenant_id": tenant, "app_code": "chat", "status": status},
			map[string]float64{"cost": cost, "latency_ms": 100}))
		events[len(events)-1].Time = at
	}
	for at := boundary.Add(-72 * time.Hour); at.Before(boundary.Add(3 * time.Hour)); at = at.Add(time.Duration(30+rng.IntN(90)) * time.Second) {
		status := "ok"
		if rng.IntN(30) == 0 {
			status = "error"
		}
		add(at, []string{"acme", "beta"}[rng.IntN(2)], status, float64(1+rng.IntN(4))/4)
	}
	// At exactly midnight: March's, not April's.
	add(boundary, "acme", "error", 7)
	tb := newEventsTable(t, conn, db+".calendar_events", events)
	var now time.Time
	inc := tb.source(t, &clickhouse.Incremental{Bucket: time.Minute, LateWindow: 2 * time.Minute, Now: func() time.Time { return now }, FillSettle: -1})
	specs, err := rulefmt.ParseRuleFile("calendar.yaml", []byte(calendarRules), rulefmt.LoadOptions{Schema: tb.schema})
	if err != nil {
		t.Fatal(err)
	}
	type backend struct {
		name   string
		groups []*engine.Group
	}
	memQ := engine.NewQuerier(engine.QuerierOptions{Source: tb.mem})
	backends := []backend{{name: "memory"}, {name: "incremental"}, {name: "full"}}
	for _, s := range specs {
		backends[0].groups = append(backends[0].groups, engine.NewGroup(s, engine.GroupOptions{Query: memQ.QueryWith}))
		for k, src := range []*clickhouse.Source{inc, tb.full} {
			q := engine.NewQuerier(engine.QuerierOptions{Source: src})
			backends[k+1].groups = append(backends[k+1].groups, engine.NewGroup(s, engine.GroupOptions{Query: q.QueryWith}))
		}
	}
	// spentByHand is each tenant's spend in (from, to].
	spentByHand := func(from, to time.Time) map[string]float64 {
		out := map[string]float64{}
		for i, e := range events {
			if e.Time.After(from) && !e.Time.After(to) {
				out[tenants[i]] += e.Nums["cost"]
			}
		}
		return out
	}
	compared, projected, firedBefore, firedAfter, calendarSlid := 0, 0, 0, 0, 0
	for ts := boundary.Add(-2 * time.Hour); !ts.After(boundary.Add(3 * time.Hour)); ts = ts.Add(10 * time.Minute) {
		now = ts.Add(5 * time.Second)
		for i, spec := range specs {
			before := inc.IncrementalStats()
			for _, b := range backends {
				b.groups[i].Eval(context.Background(), ts)
			}
			inc.WaitFills()
			if after := inc.IncrementalStats(); spec.Budget != nil {
				// The budget's leaves are all calendar months.
				calendarSlid += after.Leaves - before.Leaves
			}
			mem := backends[0].groups[i]
			for _, b := range backends[1:] {
				for j, r := range mem.Rules() {
					if st := b.groups[i].Rules()[j].Status(); st.LastError != nil {
						t.Fatalf("%s: rule %s on the %s path: %s %v", ts.Format(time.RFC3339), r.Name(), b.name, st.Health, st.LastError)
					}
					if mr, ok := r.(*engine.RecordingRule); ok {
						m, _ := mr.Samples()
						c, _ := b.groups[i].Rules()[j].(*engine.RecordingRule).Samples()
						if p := compareVectors(true, exprTolerance, m, c); p != "" {
							t.Fatalf("%s: %s %v differs on the %s path: %s", ts.Format(time.RFC3339), mr.Name(), mr.Spec().Labels, b.name, p)
						}
						compared += len(m)
					}
				}
				if m, c := alertSet(mem), alertSet(b.groups[i]); fmt.Sprint(m) != fmt.Sprint(c) {
					t.Fatalf("%s: alerts differ on the %s path:\nmemory  %v\nbackend %v", ts.Format(time.RFC3339), b.name, m, c)
				}
			}
			if spec.Budget == nil {
				continue
			}
			from := march
			if ts.After(boundary) {
				from = boundary
			}
			want := spentByHand(from, ts)
			for _, r := range mem.Rules() {
				rr, ok := r.(*engine.RecordingRule)
				if !ok {
					continue
				}
				samples, _ := rr.Samples()
				switch rr.Name() {
				case rulefmt.SpentSeries:
					if len(samples) != len(want) {
						t.Fatalf("%s: spend of %d tenants, want %d (%v)", ts.Format(time.RFC3339), len(samples), len(want), want)
					}
					for _, s := range samples {
						if w := want[s.Labels.Get("tenant_id")]; s.Value != w {
							t.Fatalf("%s: %s spent %v in the month so far, by hand %v", ts.Format(time.RFC3339), s.Labels, s.Value, w)
						}
					}
				case rulefmt.ProjectedSeries:
					early := ts.After(boundary) && ts.Sub(boundary) < time.Hour
					if early && len(samples) > 0 {
						t.Fatalf("%s: projected %v before the pace window's share of the month passed", ts.Format(time.RFC3339), samples)
					}
					for _, s := range samples {
						progress := float64(ts.Sub(from)) / float64(from.AddDate(0, 1, 0).Sub(from))
						if w := want[s.Labels.Get("tenant_id")] / progress; math.Abs(s.Value-w) > 1e-9*w {
							t.Fatalf("%s: %s projected %v, by hand %v", ts.Format(time.RFC3339), s.Labels, s.Value, w)
						}
						projected++
					}
				}
			}
			for _, a := range alertSet(mem) {
				if strings.Contains(a, "BudgetConsumed") && strings.Contains(a, "firing") {
					if ts.After(boundary) && ts.Sub(boundary) <= 30*time.Minute {
						firedAfter++
					} else {
						firedBefore++
					}
				}
			}
		}
	}
	if compared == 0 || projected == 0 || firedBefore == 0 {
		t.Errorf("compared %d recorded samples, %d projections, %d budget alerts firing in March: the events must give all", compared, projected, firedBefore)
	}
	if firedAfter != 0 {
		t.Errorf("%d budget alerts fire in April's first half hour: March's spend must not count", firedAfter)
	}
	if calendarSlid == 0 {
		t.Errorf("the calendar months must slide on buckets, got %+v", inc.IncrementalStats())
	}
	t.Logf("%d events; %d recorded samples and every alert state equal on the three paths; %d projections as by hand; %d calendar leaves slid",
		len(events), compared, projected, calendarSlid)
}
