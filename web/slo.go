package web

import (
	"math"
	"net/http"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

type sloJSON struct {
	Name        string         `json:"name"`
	File        string         `json:"file"`
	Objective   float64        `json:"objective"`
	Window      string         `json:"window"`
	ErrorBudget float64        `json:"errorBudget"`
	By          []string       `json:"by"`
	Alerts      []burnJSON     `json:"alerts"`
	Evaluated   *time.Time     `json:"lastEvaluation"`
	Groups      []sloGroupJSON `json:"groups"`
}

type burnJSON struct {
	Severity string  `json:"severity"`
	Long     string  `json:"long"`
	Short    string  `json:"short"`
	BurnRate float64 `json:"burnRate"`
	For      string  `json:"for"`
}

type sloGroupJSON struct {
	Labels          map[string]string   `json:"labels"`
	SLI             *float64            `json:"sli"`
	BudgetRemaining *float64            `json:"errorBudgetRemaining"`
	BurnRates       map[string]*float64 `json:"burnRates"`
	Exhaustion      *time.Time          `json:"projectedExhaustion"`
	Firing          []string            `json:"firing"`
}

type budgetJSON struct {
	Name       string            `json:"name"`
	File       string            `json:"file"`
	Limit      float64           `json:"limit"`
	Period     string            `json:"period"`
	PaceWindow string            `json:"paceWindow"`
	By         []string          `json:"by"`
	Thresholds []float64         `json:"thresholds"`
	Evaluated  *time.Time        `json:"lastEvaluation"`
	Groups     []budgetGroupJSON `json:"groups"`
}

type budgetGroupJSON struct {
	Labels     map[string]string `json:"labels"`
	Spent      *float64          `json:"spent"`
	Projected  *float64          `json:"projected"`
	Exhaustion *time.Time        `json:"projectedExhaustion"`
	Firing     []string          `json:"firingThresholds"`
}

// finite is a JSON number, or null for NaN and infinities.
func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

// when is a JSON time, or null for the zero time.
func when(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// sloReportJSON is the data of /api/v1/slos.
type sloReportJSON struct {
	SLOs    []sloJSON    `json:"slos"`
	Budgets []budgetJSON `json:"budgets"`
}

// sloReport is the JSON of /api/v1/slos.
func sloReport(groups []*engine.Group) sloReportJSON {
	slos, budgets := engine.SLOStatuses(groups)
	out := sloReportJSON{SLOs: []sloJSON{}, Budgets: []budgetJSON{}}
	for _, s := range slos {
		j := sloJSON{Name: s.Spec.Name, File: s.File, Objective: s.Spec.Objective, Window: rulefmt.WindowString(s.Spec.Window),
			ErrorBudget: s.Spec.ErrorBudget(), By: orEmpty(s.Spec.By), Evaluated: when(s.At), Groups: []sloGroupJSON{}}
		for _, a := range s.Spec.Alerts {
			j.Alerts = append(j.Alerts, burnJSON{Severity: string(a.Severity), Long: rulefmt.WindowString(a.Long),
				Short: rulefmt.WindowString(a.Short), BurnRate: a.Factor, For: rulefmt.WindowString(a.For)})
		}
		for _, g := range s.Groups {
			gj := sloGroupJSON{Labels: g.Labels, SLI: finite(g.SLI), BudgetRemaining: finite(g.BudgetRemaining),
				BurnRates: map[string]*float64{}, Exhaustion: when(g.Exhaustion), Firing: orEmpty(g.Firing)}
			for w, b := range g.BurnRates {
				gj.BurnRates[w] = finite(b)
			}
			j.Groups = append(j.Groups, gj)
		}
		out.SLOs = append(out.SLOs, j)
	}
	for _, b := range budgets {
		j := budgetJSON{Name: b.Spec.Name, File: b.File, Limit: b.Spec.Limit, Period: rulefmt.WindowString(b.Spec.Period),
			PaceWindow: rulefmt.WindowString(b.Spec.PaceWindow), By: orEmpty(b.Spec.By), Thresholds: b.Spec.Thresholds,
			Evaluated: when(b.At), Groups: []budgetGroupJSON{}}
		for _, g := range b.Groups {
			j.Groups = append(j.Groups, budgetGroupJSON{Labels: g.Labels, Spent: finite(g.Spent), Projected: finite(g.Projected),
				Exhaustion: when(g.Exhaustion), Firing: orEmpty(g.Firing)})
		}
		out.Budgets = append(out.Budgets, j)
	}
	return out
}

// slos serves /api/v1/slos: every SLO and budget per group, as their
// generated rules last recorded them.
func (a *api) slos(w http.ResponseWriter, _ *http.Request) {
	ok(w, sloReport(a.opts.Rules.Groups()))
}
