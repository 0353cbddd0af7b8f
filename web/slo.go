package web

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/notify"
	"github.com/callwatch/callwatch/rulefmt"
)

type sloJSON struct {
	Name        string         `json:"name"`
	File        string         `json:"file"`
	Objective   float64        `json:"objective"`
	Window      string         `json:"window"`
	TimeZone    string         `json:"timeZone,omitempty"`
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
	TimeZone   string            `json:"timeZone,omitempty"`
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

// zoneName is the zone of a calendar window, "" for a rolling one.
func zoneName(loc *time.Location) string {
	if loc == nil {
		return ""
	}
	return loc.String()
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
		j := sloJSON{Name: s.Spec.Name, File: s.File, Objective: s.Spec.Objective, Window: s.Spec.WindowName(), TimeZone: zoneName(s.Spec.Calendar),
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
		j := budgetJSON{Name: b.Spec.Name, File: b.File, Limit: b.Spec.Limit, Period: b.Spec.PeriodName(),
			TimeZone: zoneName(b.Spec.Calendar), PaceWindow: rulefmt.WindowString(b.Spec.PaceWindow), By: orEmpty(b.Spec.By), Thresholds: b.Spec.Thresholds,
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

// sloView is one SLO on the status page.
type sloView struct {
	Name, File, Objective, Window string
	Groups                        []sloGroupView
}

type sloGroupView struct {
	Labels []labelPair
	// SLI and Remaining are percents as shown; RemainingBar is the
	// remaining budget in [0, 100] for the bar.
	SLI, Remaining string
	RemainingBar   float64
	BurnRates      []burnView
	Exhaustion     time.Time
	Exhausted      bool
	Firing         []string
}

type burnView struct {
	Window, Value string
}

// budgetView is one spend budget on the status page.
type budgetView struct {
	Name, File, Limit, Period, PaceWindow string
	Groups                                []budgetGroupView
}

type budgetGroupView struct {
	Labels           []labelPair
	Spent, Projected string
	SpentPct         string
	SpentBar         float64
	Exhaustion       time.Time
	Exhausted        bool
	Firing           []string
}

// percent writes a ratio as a percent with up to three decimals.
func percent(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "–"
	}
	return strconv.FormatFloat(math.Round(f*100000)/1000, 'f', -1, 64) + "%"
}

// bar clamps a ratio into a bar's [0, 100].
func bar(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return math.Round(min(max(f, 0), 1)*1000) / 10
}

func labelPairs(m map[string]string) []labelPair {
	out := make([]labelPair, 0, len(m))
	for k, v := range m {
		out = append(out, labelPair{k, v})
	}
	slices.SortFunc(out, func(a, b labelPair) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// sloViews builds the status page's SLO and budget tables.
func sloViews(groups []*engine.Group) ([]sloView, []budgetView) {
	slos, budgets := engine.SLOStatuses(groups)
	var sv []sloView
	for _, s := range slos {
		v := sloView{Name: s.Spec.Name, File: s.File, Objective: strconv.FormatFloat(s.Spec.Objective, 'f', -1, 64) + "%",
			Window: rulefmt.Describe(s.Spec.Window, s.Spec.Calendar)}
		for _, g := range s.Groups {
			gv := sloGroupView{Labels: labelPairs(g.Labels), SLI: percent(g.SLI), Remaining: percent(g.BudgetRemaining),
				RemainingBar: bar(g.BudgetRemaining), Exhaustion: g.Exhaustion, Exhausted: !g.Exhaustion.IsZero() && !g.Exhaustion.After(s.At),
				Firing: g.Firing}
			for _, w := range s.Spec.Windows() {
				if b, ok := g.BurnRates[rulefmt.WindowString(w)]; ok {
					gv.BurnRates = append(gv.BurnRates, burnView{Window: rulefmt.WindowString(w), Value: notify.FormatValue(b) + "×"})
				}
			}
			v.Groups = append(v.Groups, gv)
		}
		sv = append(sv, v)
	}
	var bv []budgetView
	for _, b := range budgets {
		v := budgetView{Name: b.Spec.Name, File: b.File, Limit: notify.FormatValue(b.Spec.Limit), Period: rulefmt.Describe(b.Spec.Period, b.Spec.Calendar),
			PaceWindow: "the last " + rulefmt.WindowString(b.Spec.PaceWindow)}
		if b.Spec.Calendar != nil {
			v.PaceWindow = "the month so far"
		}
		for _, g := range b.Groups {
			ratio := g.Spent / b.Spec.Limit
			v.Groups = append(v.Groups, budgetGroupView{Labels: labelPairs(g.Labels), Spent: notify.FormatValue(g.Spent),
				Projected: notify.FormatValue(g.Projected), SpentPct: percent(ratio), SpentBar: bar(ratio), Exhaustion: g.Exhaustion,
				Exhausted: !g.Exhaustion.IsZero() && !g.Exhaustion.After(b.At), Firing: g.Firing})
		}
		bv = append(bv, v)
	}
	return sv, bv
}
