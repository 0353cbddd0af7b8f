package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// Transition is a change of an alert's state, recorded by its rule where it
// happens and read by the audit trail and by backtests.
type Transition struct {
	Time   time.Time     `json:"time"`
	Group  string        `json:"group"`
	Rule   string        `json:"rule"`
	Labels labels.Labels `json:"labels"`
	From   string        `json:"from"`
	To     string        `json:"to"`
	Value  float64       `json:"value"`

	alert Alert
	kind  AuditKind
}

// notifies reports whether a direct channel (WeCom and the like) would
// receive a message for t: a firing or a resolve that cooldown and
// max_alerts_per_day did not hold back, or a tier change.
func (t Transition) notifies() bool {
	switch {
	case t.kind == AuditTier:
		return true
	case t.To == "firing", t.To == "resolved":
		return t.alert.Suppressed == ""
	}
	return false
}

// BacktestOptions configure Backtest.
type BacktestOptions struct {
	GroupOptions
	From, To time.Time
	// Step overrides every group's interval when positive.
	Step time.Duration
	// Progress, when set, is called after each evaluation step.
	Progress func(done, total int)
}

// BacktestResult is what a backtest found.
type BacktestResult struct {
	Transitions []Transition `json:"transitions"`
	// Notifications counts, per rule, the messages a direct channel (WeCom
	// and the like) would have received: each firing, tier change and
	// resolve, once.
	Notifications map[string]int `json:"notifications"`
	// WithoutControls counts the same for the rules with noise controls
	// evaluated without them (plain X > N on the lowest threshold), so a
	// team can see what the controls save.
	WithoutControls map[string]int `json:"notifications_without_controls,omitempty"`
	Evaluations     int            `json:"evaluations"`
	Errors          int            `json:"errors"`
}

// Backtest evaluates the groups over [From, To] as the running engine would
// have, and reports every alert state change and how many notifications
// each rule would have sent. The transitions are those the rules record as
// they evaluate (the ones the audit trail gets), in a deterministic order:
// by time, groups due at one time in the order given, each group's rules in
// file order, each rule's alerts in label order.
func Backtest(ctx context.Context, specs []*rulefmt.GroupSpec, opts BacktestOptions) (BacktestResult, error) {
	if !opts.To.After(opts.From) {
		return BacktestResult{}, fmt.Errorf("--to must be after --from")
	}
	for _, t := range []time.Time{opts.From, opts.To} {
		if err := dsl.TimeInRange(t); err != nil {
			return BacktestResult{}, fmt.Errorf("--from and --to: %w", err)
		}
	}
	res, err := backtest(ctx, specs, opts)
	if err != nil {
		return res, err
	}
	if plain, changed := withoutControls(specs, opts.Schema); changed {
		o := opts
		o.Progress = nil
		without, err := backtest(ctx, plain, o)
		if err != nil {
			return res, err
		}
		res.WithoutControls = map[string]int{}
		for _, g := range specs {
			for _, r := range g.Rules {
				if r.Quality != nil && r.Quality.Value != nil {
					res.WithoutControls[r.Name()] = without.Notifications[r.Name()]
				}
			}
		}
	}
	return res, nil
}

// withoutControls returns copies of the groups whose rules with noise
// controls are replaced by plain rules: the value compared with the lowest
// threshold, no recovery, min_events, grace or per-group no data.
func withoutControls(specs []*rulefmt.GroupSpec, schema dsl.Schema) ([]*rulefmt.GroupSpec, bool) {
	changed := false
	out := make([]*rulefmt.GroupSpec, len(specs))
	for i, g := range specs {
		gc := *g
		gc.Rules = make([]*rulefmt.RuleSpec, len(g.Rules))
		for j, r := range g.Rules {
			rc := *r
			if q := r.Quality; q != nil && q.Value != nil {
				th := q.Thresholds[0]
				e, err := dsl.Parse(fmt.Sprintf("(%s) %s %v", q.Value.Input, th.Op, th.Value), dsl.Options{Schema: schema})
				if err == nil {
					rc.Expr, rc.ExprText, rc.Quality, rc.Severity = e, e.Input, nil, th.Severity
					changed = true
				}
			}
			gc.Rules[j] = &rc
		}
		out[i] = &gc
	}
	return out, changed
}

func backtest(ctx context.Context, specs []*rulefmt.GroupSpec, opts BacktestOptions) (BacktestResult, error) {
	res := BacktestResult{Notifications: map[string]int{}}
	type sched struct {
		g    *Group
		next time.Time
	}
	var groups []*sched
	total := 0
	for _, s := range specs {
		gs := *s
		if opts.Step > 0 {
			gs.Interval = opts.Step
		}
		o := opts.GroupOptions
		o.Notifier = nil
		g := NewGroup(&gs, o)
		groups = append(groups, &sched{g: g, next: g.EvalTimestamp(opts.From)})
		total += int(opts.To.Sub(g.EvalTimestamp(opts.From))/g.interval) + 1
	}
	done := 0
	for {
		// Evaluate the group whose next timestamp is earliest.
		sort.SliceStable(groups, func(i, j int) bool { return groups[i].next.Before(groups[j].next) })
		if len(groups) == 0 || groups[0].next.After(opts.To) {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		s := groups[0]
		ts := s.next
		for _, t := range s.g.eval(ctx, ts, true) {
			if t.kind == AuditHeld {
				continue // the alert kept its state: no change to report
			}
			res.Transitions = append(res.Transitions, t)
			if t.notifies() {
				res.Notifications[t.Rule]++
			}
		}
		res.Evaluations++
		for _, r := range s.g.rules {
			if st := r.Status(); st.Health == HealthBad && st.LastError != nil {
				res.Errors++
			}
		}
		s.next = ts.Add(s.g.interval)
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	return res, nil
}
