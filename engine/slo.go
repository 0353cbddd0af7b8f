package engine

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// SLOStatus is where an SLO stands at its group's last evaluation, read
// from the series its generated recording rules recorded.
type SLOStatus struct {
	Spec *rulefmt.SLOSpec
	File string
	// At is the group's last evaluation (zero before the first).
	At time.Time
	// Groups are the SLO's groups (one per value of its by labels), sorted
	// by labels.
	Groups []SLOGroupStatus
}

// SLOGroupStatus is one group of an SLO.
type SLOGroupStatus struct {
	// Labels are the group's by labels.
	Labels map[string]string
	// SLI is the share of good events over the SLO window.
	SLI float64
	// BudgetRemaining is the share of the error budget left (1: untouched,
	// 0: spent, below 0: overspent).
	BudgetRemaining float64
	// BurnRates are the burn rates per alert window ("5m", "1h", …).
	BurnRates map[string]float64
	// Exhaustion is when the budget left runs out at the burn rate of the
	// fastest page's long window (1h); zero when it does not burn (or, over
	// a calendar month, would not run out before the month ends), and At
	// when it is already spent.
	Exhaustion time.Time
	// Firing are the severities of the SLO's firing burn-rate alerts for
	// the group, highest first.
	Firing []string
}

// BudgetStatus is where a spend budget stands at its group's last
// evaluation.
type BudgetStatus struct {
	Spec   *rulefmt.BudgetSpec
	File   string
	At     time.Time
	Groups []BudgetGroupStatus
}

// BudgetGroupStatus is one group of a budget.
type BudgetGroupStatus struct {
	Labels map[string]string
	// Spent is the spend over the period; Projected the spend over the
	// period at the pace of the pace window.
	Spent, Projected float64
	// Exhaustion is when the spend reaches the limit at that pace; zero
	// when nothing is being spent (or, over a calendar month, the limit
	// would not be reached before the month ends), and At when it is
	// already reached.
	Exhaustion time.Time
	// Firing are the thresholds (percent) whose alerts are firing.
	Firing []string
}

// SLOStatuses returns the status of every SLO and budget among groups.
func SLOStatuses(groups []*Group) ([]SLOStatus, []BudgetStatus) {
	var slos []SLOStatus
	var budgets []BudgetStatus
	for _, g := range groups {
		spec := g.Spec()
		at, _ := g.LastEval()
		switch {
		case spec.SLO != nil:
			slos = append(slos, sloStatus(g, spec.SLO, at))
		case spec.Budget != nil:
			budgets = append(budgets, budgetStatus(g, spec.Budget, at))
		}
	}
	return slos, budgets
}

// recordedBy returns the samples of the group's recording rules, by
// record name and group key (the by labels' values).
func recordedBy(g *Group, by []string) (map[string]map[string][]Sample, map[string]map[string]string) {
	out := map[string]map[string][]Sample{}
	keys := map[string]map[string]string{}
	for _, r := range g.Rules() {
		rr, ok := r.(*RecordingRule)
		if !ok {
			continue
		}
		samples, _ := rr.Samples()
		for _, s := range samples {
			k, lm := byKey(s.Labels, by)
			keys[k] = lm
			if out[rr.Name()] == nil {
				out[rr.Name()] = map[string][]Sample{}
			}
			out[rr.Name()][k] = append(out[rr.Name()][k], s)
		}
	}
	return out, keys
}

// firing returns the values of label of the rule's firing alerts, per group.
func firing(g *Group, by []string, label string) map[string][]string {
	out := map[string][]string{}
	for _, r := range g.Rules() {
		ar, ok := r.(*AlertingRule)
		if !ok {
			continue
		}
		for _, a := range ar.Alerts() {
			if a.State != StateFiring {
				continue
			}
			k, _ := byKey(a.Labels, by)
			out[k] = append(out[k], a.Labels.Get(label))
		}
	}
	return out
}

func byKey(l labels.Labels, by []string) (string, map[string]string) {
	m := map[string]string{}
	parts := make([]string, len(by))
	for i, b := range by {
		m[b] = l.Get(b)
		parts[i] = b + "=" + m[b]
	}
	return strings.Join(parts, "\xff"), m
}

func first(s []Sample) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	return s[0].Value
}

func sloStatus(g *Group, s *rulefmt.SLOSpec, at time.Time) SLOStatus {
	st := SLOStatus{Spec: s, File: g.File(), At: at}
	rec, keys := recordedBy(g, s.By)
	fires := firing(g, s.By, "severity")
	fast := rulefmt.WindowString(s.Alerts[0].Long)
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		gs := SLOGroupStatus{Labels: keys[k], SLI: first(rec[rulefmt.SLISeries][k]),
			BudgetRemaining: first(rec[rulefmt.BudgetRemainingSeries][k]), BurnRates: map[string]float64{}}
		for _, b := range rec[rulefmt.BurnRateSeries][k] {
			gs.BurnRates[b.Labels.Get("window")] = b.Value
		}
		burn, ok := gs.BurnRates[fast]
		switch {
		case gs.BudgetRemaining <= 0:
			gs.Exhaustion = at
		case ok && burn > 0 && !math.IsNaN(gs.BudgetRemaining):
			// At burn rate b the whole budget lasts window / b.
			gs.Exhaustion = withinMonth(at.Add(time.Duration(gs.BudgetRemaining*float64(s.Window)/burn)), at, s.Calendar)
		}
		gs.Firing = severityOrder(fires[k])
		st.Groups = append(st.Groups, gs)
	}
	return st
}

// withinMonth returns when, or the zero time when a calendar month's
// budget would run out only after the month ends: it restarts first.
func withinMonth(when, at time.Time, cal *time.Location) time.Time {
	if cal == nil {
		return when
	}
	if _, end := dsl.MonthBounds(at, cal); when.After(end) {
		return time.Time{}
	}
	return when
}

func severityOrder(s []string) []string {
	slices.SortFunc(s, func(a, b string) int {
		return rulefmt.Severity(b).Rank() - rulefmt.Severity(a).Rank()
	})
	return slices.Compact(s)
}

func budgetStatus(g *Group, b *rulefmt.BudgetSpec, at time.Time) BudgetStatus {
	st := BudgetStatus{Spec: b, File: g.File(), At: at}
	rec, keys := recordedBy(g, b.By)
	fires := firing(g, b.By, "threshold")
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		gs := BudgetGroupStatus{Labels: keys[k], Spent: first(rec[rulefmt.SpentSeries][k]), Projected: first(rec[rulefmt.ProjectedSeries][k])}
		switch {
		case gs.Spent >= b.Limit:
			gs.Exhaustion = at
		case gs.Projected > 0 && !math.IsNaN(gs.Spent):
			// The pace spends Projected per period (the calendar month
			// holding at, for a calendar budget).
			from, to := rulefmt.PeriodAt(at, b.Period, b.Calendar)
			gs.Exhaustion = withinMonth(at.Add(time.Duration((b.Limit-gs.Spent)/gs.Projected*float64(to.Sub(from)))), at, b.Calendar)
		}
		for _, t := range fires[k] {
			if t != "" {
				gs.Firing = append(gs.Firing, t)
			}
		}
		slices.SortFunc(gs.Firing, func(x, y string) int {
			fx, _ := strconv.ParseFloat(x, 64)
			fy, _ := strconv.ParseFloat(y, 64)
			return cmp.Compare(fx, fy)
		})
		st.Groups = append(st.Groups, gs)
	}
	return st
}

// SLOPeriod is one period of an SLO or a budget over history, for one
// group: met or missed, and how much of the budget it consumed.
type SLOPeriod struct {
	// Kind is "slo" or "budget".
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	// From and To bound the period; a Partial one is shorter than the
	// SLO window or budget period (the end of the history).
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Partial bool      `json:"partial,omitempty"`
	// SLI, Objective (percent) and Met are an SLO's; Spent and Limit a
	// budget's.
	SLI       float64 `json:"sli,omitempty"`
	Objective float64 `json:"objective,omitempty"`
	Met       bool    `json:"met"`
	Spent     float64 `json:"spent,omitempty"`
	Limit     float64 `json:"limit,omitempty"`
	// Consumed is the share of the budget the period used: the error
	// ratio over the error budget for an SLO, spent over the limit for a
	// budget (1 is all of it).
	Consumed float64 `json:"consumed"`
}

// SLOPeriodsOptions configure SLOPeriods.
type SLOPeriodsOptions struct {
	// Query evaluates an expression at a time.
	Query func(ctx context.Context, e *dsl.Expr, ts time.Time) (Result, error)
	// Schema and Limits parse the periods' expressions.
	Schema dsl.Schema
	Limits dsl.Limits
	// From and To bound the history; periods start at From.
	From, To time.Time
}

// SLOPeriods judges every SLO and budget among specs over consecutive
// periods from From to To, each as long as the SLO window or budget period
// (the last one shorter when the history ends first), or the calendar
// months in its zone (the first and last partial unless From and To fall
// on month starts): an SLO is met in a period when its error ratio over
// the period is within the error budget.
// Each period is one query of the period's whole window at its end: the
// ratio of sums, exactly as the recorded SLI.
func SLOPeriods(ctx context.Context, specs []*rulefmt.GroupSpec, opts SLOPeriodsOptions) ([]SLOPeriod, error) {
	var out []SLOPeriod
	for _, g := range specs {
		var window time.Duration
		var cal *time.Location
		switch {
		case g.SLO != nil:
			window, cal = g.SLO.Window, g.SLO.Calendar
		case g.Budget != nil:
			window, cal = g.Budget.Period, g.Budget.Calendar
		default:
			continue
		}
		for start := opts.From; start.Before(opts.To); {
			end := start.Add(window)
			partial := end.After(opts.To)
			if cal != nil {
				// The month holding the instant just after start.
				from, to := dsl.MonthBounds(start.Add(time.Nanosecond), cal)
				end, partial = to, !from.Equal(start) || to.After(opts.To)
			}
			if end.After(opts.To) {
				end = opts.To
			}
			next := end
			w := end.Sub(start).Truncate(time.Second)
			if w <= 0 {
				return nil, fmt.Errorf("%s: the period from %s is empty", g.Name, start.UTC().Format(time.RFC3339))
			}
			rows, err := periodRows(ctx, g, opts, end, w)
			if err != nil {
				return nil, fmt.Errorf("%s at %s: %w", g.Name, end.UTC().Format(time.RFC3339), err)
			}
			for _, r := range rows {
				r.From, r.To, r.Partial = start.UTC(), end.UTC(), partial
				if cal != nil {
					// A month reads best in its own zone.
					r.From, r.To = start.In(cal), end.In(cal)
				}
				out = append(out, r)
			}
			start = next
		}
	}
	return out, nil
}

// periodRows evaluates one period of length w ending at end.
func periodRows(ctx context.Context, g *rulefmt.GroupSpec, opts SLOPeriodsOptions, end time.Time, w time.Duration) ([]SLOPeriod, error) {
	// query evaluates text at the period's end and makes a row of each
	// group, labelled by its by labels.
	// A calendar month with a change back from summer time is longer
	// than the 31d limits.max_window allows by default: the period was
	// checked as a month when its rules loaded.
	limits := opts.Limits
	if limits.MaxRange > 0 && limits.MaxRange < w {
		limits.MaxRange = w
	}
	query := func(text string, by []string, row func(v float64) SLOPeriod) ([]SLOPeriod, error) {
		e, err := dsl.Parse(text, dsl.Options{Schema: opts.Schema, Limits: limits})
		if err != nil {
			return nil, err
		}
		res, err := opts.Query(ctx, e, end)
		if err != nil {
			return nil, err
		}
		var rows []SLOPeriod
		for _, smp := range res.Vector {
			r := row(smp.Value)
			_, r.Labels = byKey(smp.Labels, by)
			rows = append(rows, r)
		}
		return rows, nil
	}
	var rows []SLOPeriod
	var err error
	switch {
	case g.SLO != nil:
		s := g.SLO
		rows, err = query(s.ErrorRatioExpr(w), s.By, func(ratio float64) SLOPeriod {
			return SLOPeriod{Kind: "slo", Name: s.Name, SLI: 1 - ratio, Objective: s.Objective, Met: ratio <= s.ErrorBudget(), Consumed: ratio / s.ErrorBudget()}
		})
	case g.Budget != nil:
		b := *g.Budget
		b.Period, b.Calendar = w, nil // the period's own (start, end]
		rows, err = query(b.SpentExpr(), b.By, func(spent float64) SLOPeriod {
			return SLOPeriod{Kind: "budget", Name: b.Name, Spent: spent, Limit: b.Limit, Met: spent <= b.Limit, Consumed: spent / b.Limit}
		})
	}
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b SLOPeriod) int { return strings.Compare(fmt.Sprint(a.Labels), fmt.Sprint(b.Labels)) })
	return rows, nil
}
