package engine

import (
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/rulefmt"
)

// The noise controls at run time: rulefmt parses thresholds, hysteresis,
// min_events, new_group_grace and no_data_window into a rulefmt.Quality;
// an alerting rule judges each group's value with them here.

// groupState is what a judged rule remembers of a group between evaluations.
type groupState struct {
	firstSeen, lastSeen time.Time
	labels              labels.Labels
	value               float64
}

// Hold reasons, shown on alerts and in the audit trail.
const (
	ReasonMinEvents = "below min_events"
	ReasonGrace     = "grace"
	ReasonNoData    = "no data"
)

// judge turns the value vector of a rule with noise controls into the
// samples that are "true" (with their tier's severity label), applying
// hysteresis, min_events, grace and per-group no data. counts holds the
// volume per group when min_events is set. It returns how many groups were
// held and why.
func (r *AlertingRule) judge(ts time.Time, vec []Sample, counts []Sample) ([]Sample, map[string]int) {
	q := r.spec.Quality
	held := map[string]int{}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups == nil {
		r.groups = map[uint64]*groupState{}
	}
	active := map[uint64]*Alert{}
	for _, a := range r.active {
		if a.State != StateInactive {
			active[groupHash(a.sample)] = a
		}
	}
	var out []Sample
	seen := map[uint64]bool{}
	for _, s := range vec {
		h := groupHash(s.Labels)
		seen[h] = true
		gs := r.groups[h]
		if gs == nil {
			gs = &groupState{firstSeen: ts, labels: s.Labels}
			r.groups[h] = gs
		}
		gs.lastSeen, gs.value = ts, s.Value
		prev := active[h]
		keep := func(reason string) {
			held[reason]++
			if prev != nil {
				r.hold(ts, prev, reason)
				out = append(out, Sample{Labels: prev.sample, Value: prev.Value})
			}
		}
		if q.MinEvents > 0 && volume(s.Labels, counts) < float64(q.MinEvents) {
			keep(ReasonMinEvents)
			continue
		}
		if q.NewGroupGrace > 0 && ts.Sub(gs.firstSeen) < q.NewGroupGrace && prev == nil {
			held[ReasonGrace]++
			continue
		}
		t := q.Tier(s.Value)
		if t < 0 && prev != nil && !q.Recovered(s.Value) {
			t = 0 // hysteresis keeps it firing, at the lowest tier
		}
		if t < 0 {
			continue
		}
		if prev != nil {
			prev.Reason = ""
		}
		out = append(out, Sample{Labels: withSeverity(s.Labels, q.Thresholds[t].Severity), Value: s.Value})
	}
	// Groups seen recently and missing now have no data (those missing
	// for longer are forgotten); by labels, as a query's vector, so their
	// templates expand in the same order.
	var missing []uint64
	for h, gs := range r.groups {
		switch {
		case seen[h]:
		case ts.Sub(gs.lastSeen) > q.NoDataWindow:
			delete(r.groups, h)
		default:
			missing = append(missing, h)
		}
	}
	slices.SortFunc(missing, func(a, b uint64) int { return labels.Compare(r.groups[a].labels, r.groups[b].labels) })
	for _, h := range missing {
		gs := r.groups[h]
		held[ReasonNoData]++
		prev := active[h]
		switch r.spec.NoDataState {
		case rulefmt.KeepLast:
			if prev != nil {
				r.hold(ts, prev, ReasonNoData)
				out = append(out, Sample{Labels: prev.sample, Value: prev.Value})
			}
		case rulefmt.Alerting:
			lb := labels.NewBuilder(gs.labels)
			lb.Set(ReasonLabel, "no_data")
			out = append(out, Sample{Labels: lb.Labels(), Value: gs.value})
		}
	}
	return out, held
}

// hold marks an alert's state as kept for reason, recording the change for
// the audit trail when the reason is new. The caller holds r.mu.
func (r *AlertingRule) hold(ts time.Time, a *Alert, reason string) {
	if a.Reason == reason {
		return
	}
	a.Reason = reason
	r.transitions = append(r.transitions, Transition{Time: ts, Labels: a.Labels, From: a.State.String(), To: a.State.String(),
		Value: a.Value, alert: *a, kind: AuditHeld})
}

func withSeverity(l labels.Labels, sev rulefmt.Severity) labels.Labels {
	if sev == "" {
		return l
	}
	lb := labels.NewBuilder(l)
	lb.Set("severity", string(sev))
	return lb.Labels()
}

// volume finds the count sample matching a value sample's labels.
func volume(l labels.Labels, counts []Sample) float64 {
	for _, c := range counts {
		match := true
		c.Labels.Range(func(x labels.Label) {
			if l.Get(x.Name) != x.Value {
				match = false
			}
		})
		if match {
			return c.Value
		}
	}
	return 0
}

// groupHash identifies the group an alert's sample came from: its labels
// without the tier's severity and the no-data marker.
func groupHash(l labels.Labels) uint64 {
	h, _ := l.HashWithoutLabels(nil, "severity", ReasonLabel)
	return h
}
