package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
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
