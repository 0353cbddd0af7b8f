package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

const sloRules = `slos:
  - name: avail
    objective: 99.5
    window: 7d
    by: [tenant_id]
    sli:
      errors: 'events{status="error"}'
      total: events
budgets:
  - name: spend
    limit: 1000
    period: 7d
    pace_window: 1h
    by: [tenant_id]
    thresholds: [25, 100]
`

// sloEvents are generated calls over 9 hours: tenant acme fails one call
// in 7 (more often in the last half hour), beta one in 50; each costs 0.25.
func sloEvents(base time.Time) []memory.Event {
	var evs []memory.Event
	for i := range 9 * 60 * 3 {
		at := base.Add(time.Duration(i) * 20 * time.Second)
		for _, tenant := range []string{"acme", "beta"} {
			status := "ok"
			switch {
			case tenant == "acme" && (i%7 == 0 || (i > 9*60*3-90 && i%2 == 0)):
				status = "error"
			case tenant == "beta" && i%50 == 0:
				status = "error"
			}
			evs = append(evs, memory.Event{Time: at, Labels: []string{tenant, "chat", "m", "p", status, ""}, Nums: map[string]float64{"cost": 0.25}})
		}
	}
	return evs
}

// TestSLOReportMatchesAHandComputation evaluates an SLO and a budget in
// memory and checks /api/v1/slos against counts made here from the same
// events: every ratio is bad events over all events of its window.
func TestSLOReportMatchesAHandComputation(t *testing.T) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	evs := sloEvents(base)
	store := memory.New(dsl.Schema{})
	for _, e := range evs {
		store.Add(e)
	}
	specs, err := rulefmt.ParseRuleFile("slo.yaml", []byte(sloRules), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	at := base.Add(9 * time.Hour)
	var groups []*engine.Group
	for _, s := range specs {
		g := engine.NewGroup(s, engine.GroupOptions{Query: q.QueryWith})
		g.Eval(context.Background(), at)
		groups = append(groups, g)
	}
	// Hand computation: events in (at − w, at].
	count := func(tenant string, w time.Duration, errorsOnly bool) (n float64) {
		for _, e := range evs {
			if e.Labels[0] == tenant && e.Time.After(at.Add(-w)) && !e.Time.After(at) && (!errorsOnly || e.Labels[4] == "error") {
				n++
			}
		}
		return n
	}
	srv := httptest.NewServer(Handler(Options{Rules: staticRules(groups)}))
	defer srv.Close()
	_, body := get(t, srv.URL+"/api/v1/slos")
	data := body["data"].(map[string]any)
	slo := data["slos"].([]any)[0].(map[string]any)
	if slo["name"] != "avail" || slo["errorBudget"] != 0.005 || len(slo["alerts"].([]any)) != 4 {
		t.Fatalf("slo %v", slo)
	}
	gs := slo["groups"].([]any)
	if len(gs) != 2 {
		t.Fatalf("%d groups, want acme and beta", len(gs))
	}
	for i, tenant := range []string{"acme", "beta"} {
		g := gs[i].(map[string]any)
		if g["labels"].(map[string]any)["tenant_id"] != tenant {
			t.Fatalf("group %d is %v, want %s", i, g["labels"], tenant)
		}
		week := 7 * 24 * time.Hour
		ratio := count(tenant, week, true) / count(tenant, week, false)
		if got, want := g["sli"], 1-ratio; got != want {
			t.Errorf("%s: SLI %v, want %v", tenant, got, want)
		}
		remaining := 1 - (1-(1-ratio))/0.005
		if got := g["errorBudgetRemaining"]; got != remaining {
			t.Errorf("%s: error budget remaining %v, want %v", tenant, got, remaining)
		}
		burns := g["burnRates"].(map[string]any)
		for _, w := range []time.Duration{5 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 6 * time.Hour, 24 * time.Hour, 72 * time.Hour} {
			key := rulefmt.WindowString(w)
			want := count(tenant, w, true) / count(tenant, w, false) / 0.005
			if got := burns[key]; got != want {
				t.Errorf("%s: burn rate over %s: %v, want %v", tenant, key, got, want)
			}
		}
		if tenant == "acme" {
			// acme burns: its budget runs out at the 1h burn rate.
			burn1h := count(tenant, time.Hour, true) / count(tenant, time.Hour, false) / 0.005
			want := at
			if remaining > 0 {
				want = at.Add(time.Duration(remaining * float64(week) / burn1h))
			}
			if got := g["projectedExhaustion"]; got != want.Format(time.RFC3339Nano) {
				t.Errorf("acme: projected exhaustion %v, want %v", got, want)
			}
		}
	}
	budget := data["budgets"].([]any)[0].(map[string]any)
	bg := budget["groups"].([]any)[0].(map[string]any)
	spent := count("acme", 7*24*time.Hour, false) * 0.25
	projected := count("acme", time.Hour, false) * 0.25 * 168
	if bg["spent"] != spent || bg["projected"] != projected {
		t.Errorf("budget: spent %v projected %v, want %v and %v", bg["spent"], bg["projected"], spent, projected)
	}
	if got := fmt.Sprint(bg["firingThresholds"]); got != "[25]" {
		t.Errorf("firing thresholds %s, want [25] (%v of 1000 spent)", got, spent)
	}
}
