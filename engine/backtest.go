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

// Transition is a change of an alert's state found by a backtest.
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
// each rule would have sent.
func Backtest(ctx context.Context, specs []*rulefmt.GroupSpec, opts BacktestOptions) (BacktestResult, error) {
	if !opts.To.After(opts.From) {
		return BacktestResult{}, fmt.Errorf("--to must be after --from")
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
		last map[string]map[uint64]Alert // by rule name
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
		groups = append(groups, &sched{g: g, next: g.EvalTimestamp(opts.From), last: map[string]map[uint64]Alert{}})
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
		s.g.Eval(ctx, ts)
		res.Evaluations++
		for _, r := range s.g.rules {
			if h, err, _, _ := r.Status(); h == HealthBad && err != nil {
				res.Errors++
			}
			ar, ok := r.(*AlertingRule)
			if !ok {
				continue
			}
			last := s.last[ar.Name()]
			now := map[uint64]Alert{}
			for _, a := range ar.Alerts() {
				if a.State == StateInactive {
					continue
				}
				fp := a.Fingerprint()
				now[fp] = a
				prev, had := last[fp]
				if !had || prev.State != a.State {
					from := "inactive"
					if had {
						from = prev.State.String()
					}
					res.Transitions = append(res.Transitions, Transition{Time: ts, Group: s.g.Name(), Rule: ar.Name(), Labels: a.Labels, From: from, To: a.State.String(), Value: a.Value})
					if a.State == StateFiring && a.Suppressed == "" {
						res.Notifications[ar.Name()]++
					}
				} else if a.State == StateFiring && prev.Labels.Get("severity") != a.Labels.Get("severity") {
					res.Transitions = append(res.Transitions, Transition{Time: ts, Group: s.g.Name(), Rule: ar.Name(), Labels: a.Labels,
						From: "firing/" + prev.Labels.Get("severity"), To: "firing/" + a.Labels.Get("severity"), Value: a.Value})
					res.Notifications[ar.Name()]++
				}
			}
			for fp, prev := range last {
				if _, still := now[fp]; !still {
					to := "resolved"
					if prev.State == StatePending {
						to = "inactive"
					}
					res.Transitions = append(res.Transitions, Transition{Time: ts, Group: s.g.Name(), Rule: ar.Name(), Labels: prev.Labels, From: prev.State.String(), To: to, Value: prev.Value})
					if to == "resolved" && prev.Suppressed == "" {
						res.Notifications[ar.Name()]++
					}
				}
			}
			s.last[ar.Name()] = now
		}
		s.next = ts.Add(s.g.interval)
		done++
		if opts.Progress != nil {
			opts.Progress(done, total)
		}
	}
	return res, nil
}
