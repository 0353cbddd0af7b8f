package web

import (
	"fmt"
	"net/http/httptest"
	"strings"
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
	at := base.Add(9 * time.Hour)
	groups := evalRules(t, engine.NewQuerier(engine.QuerierOptions{Source: store}), "slo.yaml", sloRules, at)
	// Hand computation: events in (at − w, at].
	count := func(tenant string, w time.Duration, errorsOnly bool) (n float64) {
		for _, e := range evs {
			if e.Labels[0] == tenant && e.Time.After(at.Add(-w)) && !e.Time.After(at) && (!errorsOnly || e.Labels[4] == "error") {
				n++
			}
		}
		return n
	}
	srv := httptest.NewServer(Handler(Options{Rules: groups}))
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

// TestPageShowsSLOsAndBudgets renders the status page's SLO and budget
// tables: per group the SLI, the remaining error budget as a bar, the
// burn rates, when the budget runs out and what fires.
// sloPageGroups evaluates sloRules over calls of two tenants: acme fails 10
// of 100 calls (10%, twenty budgets of 0.5%), beta 1 of 1000 (0.1%, a
// fifth of the budget); each call costs 0.25. It returns the groups and
// the time of their last evaluation.
func sloPageGroups(t *testing.T) (staticRules, time.Time) {
	t.Helper()
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	store := memory.New(dsl.Schema{})
	for i := range 1100 {
		tenant, status := "beta", "ok"
		if i < 100 {
			tenant = "acme"
		}
		if (tenant == "acme" && i < 10) || i == 100 {
			status = "error"
		}
		store.Add(memory.Event{Time: at.Add(-4 * time.Minute), Labels: []string{tenant, "chat", "m", "p", status, ""}, Nums: map[string]float64{"cost": 0.25}})
	}
	// acme's page turns pending at the first evaluation, and fires at the
	// second, after its 2m.
	return evalRules(t, engine.NewQuerier(engine.QuerierOptions{Source: store}), "slo.yaml", sloRules, at.Add(-2*time.Minute), at), at
}

func TestPageShowsSLOsAndBudgets(t *testing.T) {
	groups, at := sloPageGroups(t)
	opts := Options{Rules: groups, Now: func() time.Time { return at }}
	srv := httptest.NewServer(PageHandler(opts))
	defer srv.Close()
	_, body := fetch(t, browser(t), srv.URL+"/")
	s := section(body, "slos")
	for _, want := range []string{
		`SLO avail <span class="muted small">slo.yaml · 99.5% of calls good over a rolling 7d</span>`,
		// acme: overspent, an empty bar, and the page firing.
		`<span class="label">tenant_id="acme"</span>`, `<td class="num">90%</td>`,
		`value="0" title="-1900% of the error budget remains"`, `<span class="badge critical">spent</span>`,
		`<span class="burn">1h 20×</span>`, `<span class="badge critical">critical</span>`,
		// beta: 80% of the budget left, burning at 0.2×: it lasts 4 × 7d.
		`<td class="num">99.9%</td>`, `value="80" title="80% of the error budget remains"`,
		`<span class="burn">1h 0.2×</span>`, `>in 28d</time>`,
		`Budget spend <span class="muted small">slo.yaml · 1000 per rolling 7d · pace of the last 1h</span>`,
		`value="25" title="25% of the limit spent"`, `<span class="badge warning">25%</span>`,
		`value="2.5" title="2.5% of the limit spent"`,
		// beta spends 250 an hour: the 750 left last 3 hours.
		`>in 3h</time>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the SLO section lacks %q:\n%s", want, s)
		}
	}
	if _, plain := fetch(t, browser(t), newPageFixture(t, "").srv.URL+"/"); strings.Contains(plain, `id="slos"`) {
		t.Error("a page without SLOs or budgets shows their section")
	}
}

// TestCalendarBudgetReport evaluates a calendar-month budget in
// Asia/Shanghai and checks /api/v1/slos and the page against a hand
// computation: the spend since midnight on the 1st in Shanghai, projected
// at the month-to-date pace, running out at that pace.
func TestCalendarBudgetReport(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	monthStart := time.Date(2026, 4, 1, 0, 0, 0, 0, shanghai)
	at := monthStart.Add(3 * 24 * time.Hour) // the 4th, 00:00 in Shanghai
	store := memory.New(dsl.Schema{})
	spent := 0.0
	// One call of cost 2 an hour from 12 hours before the month: those of
	// March (and the one at exactly midnight, which closes March) do not count.
	for at0 := monthStart.Add(-12 * time.Hour); !at0.After(at); at0 = at0.Add(time.Hour) {
		store.Add(memory.Event{Time: at0, Labels: []string{"acme", "chat", "m", "p", "ok", ""}, Nums: map[string]float64{"cost": 2}})
		if at0.After(monthStart) {
			spent += 2
		}
	}
	groups := evalRules(t, engine.NewQuerier(engine.QuerierOptions{Source: store}), "month.yaml", `budgets:
  - {name: monthly, limit: 1000, period: month, time_zone: Asia/Shanghai, by: [tenant_id]}
  - {name: roomy, limit: 2000, period: month, time_zone: Asia/Shanghai, by: [tenant_id]}
`, at)
	srv := httptest.NewServer(Handler(Options{Rules: groups}))
	defer srv.Close()
	_, body := get(t, srv.URL+"/api/v1/slos")
	budget := body["data"].(map[string]any)["budgets"].([]any)[0].(map[string]any)
	if budget["period"] != "month" || budget["timeZone"] != "Asia/Shanghai" {
		t.Errorf("period %v in %v, want month in Asia/Shanghai", budget["period"], budget["timeZone"])
	}
	bg := budget["groups"].([]any)[0].(map[string]any)
	month := float64(30 * 24 * time.Hour) // April
	projected := spent / (float64(at.Sub(monthStart)) / month)
	if bg["spent"] != spent || bg["projected"] != projected {
		t.Errorf("spent %v projected %v, want %v (72 calls) and %v", bg["spent"], bg["projected"], spent, projected)
	}
	exhaustion := at.Add(time.Duration((1000 - spent) / projected * month)).UTC()
	if got := bg["projectedExhaustion"]; got != exhaustion.Format(time.RFC3339Nano) {
		t.Errorf("projected exhaustion %v, want %v", got, exhaustion)
	}
	// 1440 projected for the month stays under 2000: the month restarts
	// before the limit is reached, so there is no exhaustion time.
	rg := body["data"].(map[string]any)["budgets"].([]any)[1].(map[string]any)["groups"].([]any)[0].(map[string]any)
	if rg["projected"] != projected || rg["projectedExhaustion"] != nil {
		t.Errorf("roomy: projected %v, exhaustion %v; want %v and none within the month", rg["projected"], rg["projectedExhaustion"], projected)
	}
	page := httptest.NewServer(PageHandler(Options{Rules: groups[:1], Now: func() time.Time { return at }}))
	defer page.Close()
	_, html := fetch(t, browser(t), page.URL+"/")
	if want := `Budget monthly <span class="muted small">month.yaml · 1000 per calendar month (Asia/Shanghai) · pace of the month so far</span>`; !strings.Contains(section(html, "slos"), want) {
		t.Errorf("the page lacks %q:\n%s", want, section(html, "slos"))
	}
}
