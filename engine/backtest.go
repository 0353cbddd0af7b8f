package engine

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
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
	// Notifications counts, per rule, the alerts that would have been sent.
	Notifications map[string]int `json:"notifications"`
	Evaluations   int            `json:"evaluations"`
	Errors        int            `json:"errors"`
}

// Backtest evaluates the groups over [From, To] as the running engine would
// have, and reports every alert state change and how many notifications
// each rule would have sent.
func Backtest(ctx context.Context, specs []*GroupSpec, opts BacktestOptions) (BacktestResult, error) {
	if !opts.To.After(opts.From) {
		return BacktestResult{}, fmt.Errorf("--to must be after --from")
	}
	res := BacktestResult{Notifications: map[string]int{}}
	counting := NotifierFunc(func(_ context.Context, n Notification) {
		res.Notifications[n.Rule.Name()] += len(n.Alerts)
	})
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
		o.Notifier = counting
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
				}
			}
			for fp, prev := range last {
				if _, still := now[fp]; !still {
					to := "resolved"
					if prev.State == StatePending {
						to = "inactive"
					}
					res.Transitions = append(res.Transitions, Transition{Time: ts, Group: s.g.Name(), Rule: ar.Name(), Labels: prev.Labels, From: prev.State.String(), To: to, Value: prev.Value})
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
