package rulefmt

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

// Threshold is one severity tier of a rule: the alert is at this tier
// while `value op Value` holds.
type Threshold struct {
	Severity Severity
	Op       string
	Value    float64
	// Notify overrides the rule's channels at this tier.
	Notify []string
}

// Quality are a rule's noise controls. A rule with any of them is judged
// per group by callwatch (its expression is evaluated without the
// comparison, so every group's value is known), instead of by PromQL's
// comparison filter.
type Quality struct {
	// Thresholds are the tiers, lowest severity first.
	Thresholds []Threshold
	// Value is the expression without its comparison.
	Value *dsl.Expr
	// Recover, when set, is the value a firing alert must cross (below for
	// > and >=, above for < and <=) to resolve: hysteresis.
	Recover *float64
	// MinEvents: a group whose window holds fewer events is not judged
	// (its state is kept). Count counts them.
	MinEvents int
	Count     *dsl.Expr
	// NewGroupGrace: a group first seen less than this long ago cannot fire.
	NewGroupGrace time.Duration
	// RepeatInterval re-sends a firing alert to direct channels at this
	// interval (overrides the channel's).
	RepeatInterval time.Duration
	// NoDataWindow: a group seen within this window and now missing from
	// the result is "no data" for that group, handled by no_data_state
	// (default 1h). Giving no_data_window turns per-group no data on for a
	// rule without other controls; otherwise no_data_state applies to the
	// whole rule (every selector matched nothing).
	NoDataWindow time.Duration
}

var compareOps = []string{">", ">=", "<", "<=", "==", "!="}

// quality parses the noise controls of an alerting rule.
func (p *fileParser) quality(n *yaml.Node, g *GroupSpec, r *RuleSpec) {
	name := r.Name()
	q := &Quality{NoDataWindow: time.Hour}
	used := false
	if v := mapValue(n, "thresholds"); v != nil {
		used = true
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			p.add(p.errAt(v, g.Name, name, `thresholds must be a list, e.g. [{severity: warning, op: ">", value: 3000}]`))
		}
		for _, tn := range v.Content {
			var t struct {
				Severity string   `yaml:"severity"`
				Op       string   `yaml:"op"`
				Value    *float64 `yaml:"value"`
				Notify   []string `yaml:"notify"`
			}
			if tn.Kind != yaml.MappingNode {
				p.add(p.errAt(tn, g.Name, name, "a threshold is {severity, op, value, notify}"))
				continue
			}
			p.checkKeys(tn, []string{"severity", "op", "value", "notify"}, g.Name, name)
			if err := tn.Decode(&t); err != nil || t.Value == nil {
				p.add(p.errAt(tn, g.Name, name, "a threshold needs severity, op and a numeric value"))
				continue
			}
			if !Severity(t.Severity).Valid() {
				p.add(p.errAt(tn, g.Name, name, "threshold severity %q: write one of %s", t.Severity, severityChoices()))
			}
			if !slices.Contains(compareOps, t.Op) {
				p.add(p.errAt(tn, g.Name, name, "threshold op %q: write one of %s", t.Op, strings.Join(compareOps, " ")))
			}
			for _, c := range t.Notify {
				if p.opts.Channels != nil && !slices.Contains(p.opts.Channels, c) {
					p.add(p.errAt(tn, g.Name, name, "notify: no channel named %q; configured channels: %s", c, strings.Join(p.opts.Channels, ", ")))
				}
			}
			q.Thresholds = append(q.Thresholds, Threshold{Severity: Severity(t.Severity), Op: t.Op, Value: *t.Value, Notify: t.Notify})
		}
		sort.SliceStable(q.Thresholds, func(i, j int) bool {
			return q.Thresholds[i].Severity.Rank() < q.Thresholds[j].Severity.Rank()
		})
		for i := 1; i < len(q.Thresholds); i++ {
			if q.Thresholds[i].Severity == q.Thresholds[i-1].Severity {
				p.add(p.errAt(v, g.Name, name, "two thresholds have severity %q", q.Thresholds[i].Severity))
			}
		}
		if r.Severity != "" {
			p.add(p.errAt(v, g.Name, name, "with thresholds, each tier has its severity; remove the rule's severity/priority"))
		}
		r.Warnings = append(r.Warnings, p.tierOrder(v, g.Name, name, q.Thresholds)...)
	}
	for _, k := range []string{"recover_below", "recover_above"} {
		if v := mapValue(n, k); v != nil {
			used = true
			var f float64
			if err := v.Decode(&f); err != nil {
				p.add(p.errAt(v, g.Name, name, "%s must be a number", k))
				continue
			}
			if q.Recover != nil {
				p.add(p.errAt(v, g.Name, name, "give recover_below or recover_above, not both"))
			}
			q.Recover = &f
		}
	}
	if v := mapValue(n, "min_events"); v != nil {
		used = true
		if err := v.Decode(&q.MinEvents); err != nil || q.MinEvents < 1 {
			p.add(p.errAt(v, g.Name, name, "min_events must be a positive integer"))
		}
	}
	if v := mapValue(n, "new_group_grace"); v != nil {
		used = true
		q.NewGroupGrace = p.duration(v, g.Name, name, "new_group_grace")
	}
	if v := mapValue(n, "repeat_interval"); v != nil {
		q.RepeatInterval = p.duration(v, g.Name, name, "repeat_interval")
		if !used && mapValue(n, "no_data_window") == nil {
			// repeat_interval alone changes notification only, not judging.
			r.Quality = &Quality{RepeatInterval: q.RepeatInterval}
			return
		}
	}
	if v := mapValue(n, "no_data_window"); v != nil {
		used = true
		q.NoDataWindow = p.duration(v, g.Name, name, "no_data_window")
	}
	if !used {
		return
	}
	r.Quality = q
	if r.Expr == nil {
		return // the expression's own error is reported already
	}
	exprNode := mapValue(n, "expr")
	if len(q.Thresholds) == 0 {
		c, ok := dsl.SplitComparison(r.ExprText)
		if !ok {
			p.add(p.errAt(exprNode, g.Name, name, "noise controls judge each group's value: write the expression as X > N, or leave the comparison out and give thresholds:"))
			return
		}
		q.Thresholds = []Threshold{{Severity: r.Severity, Op: c.Op, Value: c.Threshold}}
		e, err := dsl.Parse(c.Value, dsl.Options{Schema: p.opts.Schema, Series: p.recordedBefore(g), Limits: p.opts.Limits})
		if err != nil {
			p.add(p.errAt(exprNode, g.Name, name, "expr: %v", err))
			return
		}
		q.Value = e
	} else {
		if _, cmp := dsl.SplitComparison(r.ExprText); cmp {
			p.add(p.errAt(exprNode, g.Name, name, "with thresholds, leave the comparison out of expr: the tiers compare"))
			return
		}
		q.Value = r.Expr
	}
	if q.Recover != nil {
		up := strings.HasPrefix(q.Thresholds[0].Op, ">")
		below := mapValue(n, "recover_below") != nil
		switch {
		case up && !below:
			p.add(p.errAt(n, g.Name, name, "the threshold compares with %s: give recover_below", q.Thresholds[0].Op))
		case !up && below:
			p.add(p.errAt(n, g.Name, name, "the threshold compares with %s: give recover_above", q.Thresholds[0].Op))
		case up && *q.Recover > q.Thresholds[0].Value, !up && *q.Recover < q.Thresholds[0].Value:
			p.add(p.errAt(n, g.Name, name, "the recovery value must be on the healthy side of the lowest threshold %v", q.Thresholds[0].Value))
		}
	}
	if q.MinEvents > 0 {
		leaves := q.Value.Leaves
		if len(leaves) == 0 {
			p.add(p.errAt(exprNode, g.Name, name, "min_events needs an expression over events"))
			return
		}
		// The volume is that of the broadest selector (fewest matchers).
		best := leaves[0]
		for _, l := range leaves[1:] {
			if len(l.Selector.Matchers) < len(best.Selector.Matchers) {
				best = l
			}
		}
		c, err := dsl.Parse(best.CountExpr(), dsl.Options{Schema: p.opts.Schema})
		if err != nil {
			p.add(p.errAt(exprNode, g.Name, name, "min_events: %v", err))
			return
		}
		q.Count = c
	}
}

// Tier returns the highest threshold v reaches, or -1.
func (q *Quality) Tier(v float64) int {
	t := -1
	for i, th := range q.Thresholds {
		if !math.IsNaN(v) && dsl.Compare(v, th.Op, th.Value) {
			t = i
		}
	}
	return t
}

// Recovered reports whether a firing value has crossed the recovery value.
func (q *Quality) Recovered(v float64) bool {
	if q.Recover == nil {
		return true
	}
	if strings.HasPrefix(q.Thresholds[0].Op, ">") {
		return v < *q.Recover
	}
	return v > *q.Recover
}

// NotifyFor returns the channels of an alert with the given labels: its
// tier's, else the rule's (nil: the default channels).
func (s *RuleSpec) NotifyFor(alert labels.Labels) []string {
	if s.Quality != nil {
		sev := Severity(alert.Get("severity"))
		for _, t := range s.Quality.Thresholds {
			if t.Severity == sev && len(t.Notify) > 0 {
				return t.Notify
			}
		}
	}
	return s.Notify
}

// RepeatInterval returns the rule's repeat_interval (0: the channel's).
func (s *RuleSpec) RepeatInterval() time.Duration {
	if s.Quality == nil {
		return 0
	}
	return s.Quality.RepeatInterval
}

// String describes a tier, for messages.
func (t Threshold) String() string { return fmt.Sprintf("%s %s %v", t.Severity, t.Op, t.Value) }

// tierOrder warns about tiers whose values do not grow stricter with their
// severity: with warning > 5000 and critical > 3000, every group past the
// warning tier is past the critical one too, so warning never shows.
func (p *fileParser) tierOrder(v *yaml.Node, group, rule string, ts []Threshold) []error {
	var out []error
	for i := 1; i < len(ts); i++ {
		lo, hi := ts[i-1], ts[i]
		up := func(op string) bool { return op == ">" || op == ">=" }
		down := func(op string) bool { return op == "<" || op == "<=" }
		switch {
		case up(lo.Op) && up(hi.Op) && hi.Value <= lo.Value,
			down(lo.Op) && down(hi.Op) && hi.Value >= lo.Value:
			out = append(out, p.errAt(v, group, rule, "thresholds out of order: %s (%s %v) is not stricter than %s (%s %v), so a group past %s is always past %s and %s never shows; give the more severe tier the stricter value",
				hi.Severity, hi.Op, hi.Value, lo.Severity, lo.Op, lo.Value, lo.Severity, hi.Severity, lo.Severity))
		}
	}
	return out
}
