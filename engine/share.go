package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// This file shares the rule groups between replicas: with
// GroupOptions.Owns set (the Elector's Owns), each group is evaluated by one
// live replica only, so replicas divide ClickHouse's load instead of
// multiplying it. A replica that stops owning a group stops evaluating it
// and forgets its alerts (the owner shows them); one that starts owning a
// group takes it over: it reads the alerts' episodes from the audit trail
// and replays the group's recent evaluations, as at a start, so for state,
// the alerts' times and what was audited continue where the previous owner
// left them.

// owns reports whether this replica evaluates the group now.
func (g *Group) owns() bool { return g.opts.Owns == nil || g.opts.Owns(g.Name()) }

// Released reports whether another replica evaluates the group (its alerts
// here are empty, not stale).
func (g *Group) Released() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.released
}

// release stops showing the group's alerts on this replica: another one
// evaluates it.
func (g *Group) release() {
	g.mu.Lock()
	was := g.released
	g.released, g.alerts = true, nil
	g.mu.Unlock()
	if was {
		return
	}
	for _, r := range g.rules {
		if ar, ok := r.(*AlertingRule); ok {
			ar.forget()
		}
	}
	g.opts.Metrics.setOwned(g, false)
	g.opts.Logger.Info("rule group evaluated by another replica from now on", "group", g.Name())
}

// forget drops the rule's alerts (kept firing times stay: cooldown and
// max_alerts_per_day count firings whichever replica evaluated them).
func (r *AlertingRule) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active, r.transitions, r.episodes, r.auditedUpTo = map[uint64]*Alert{}, nil, nil, nil
}

// takeOver makes this replica the group's evaluator from ts on: the
// episodes from the audit trail, then a replay of the evaluations before
// ts that for and keep_firing_for need, auditing what the trail lacks.
func (m *Manager) takeOver(ctx context.Context, g *Group, ts time.Time) {
	m.loadEpisodes(ctx, []*Group{g})
	n := 0
	if window := m.replayWindow(g); window > 0 {
		n = g.replay(ctx, ts.Add(-window), ts.Add(-g.interval))
	}
	g.auditReplay = false
	m.restoreFromAudit(ctx, []*Group{g})
	if m.opts.OnTakeOver != nil {
		m.opts.OnTakeOver(ctx)
	}
	g.mu.Lock()
	g.released = false
	g.mu.Unlock()
	g.opts.Metrics.setOwned(g, true)
	g.opts.Logger.Info("took over a rule group from another replica", "group", g.Name(), "replayed_evaluations", n)
}

// replayWindow is how far back a start or a takeover replays the group:
// its longest for + keep_firing_for and one interval, at most
// RestoreWindow; 0 when nothing needs it.
func (m *Manager) replayWindow(g *Group) time.Duration {
	if m.opts.RestoreWindow < 0 {
		return 0
	}
	var hold time.Duration
	for _, r := range g.spec.Rules {
		hold = max(hold, r.For+r.KeepFiringFor)
	}
	if hold == 0 {
		return 0
	}
	return min(hold+g.interval, m.opts.RestoreWindow)
}

// sharedTTL is how long SharedAlerts answers from its last read of the
// audit trail: API clients poll, ClickHouse need not answer each poll.
const sharedTTL = 5 * time.Second

// SharedAlerts returns the pending and firing alerts of the groups another
// replica evaluates (Released), by rule, as the audit trail holds them: the
// owner audits every transition, so each alert is there with its labels,
// annotations, times and the value of its last transition. Reads are
// cached for a few seconds.
func (m *Manager) SharedAlerts(ctx context.Context) (map[*AlertingRule][]Alert, error) {
	var released []*Group
	for _, g := range m.Groups() {
		if g.Released() {
			released = append(released, g)
		}
	}
	if len(released) == 0 || m.opts.AuditReader == nil {
		return nil, nil
	}
	now := m.opts.Now()
	m.sharedMu.Lock()
	defer m.sharedMu.Unlock()
	if m.sharedRecs == nil || now.Sub(m.sharedAt) > sharedTTL || now.Before(m.sharedAt) {
		byRule, acks, err := lastTransitions(ctx, m.opts.AuditReader, now)
		if err != nil {
			return nil, fmt.Errorf("read the alerts of the groups other replicas evaluate: %w", err)
		}
		m.sharedRecs, m.sharedAcks, m.sharedAt = byRule, acks, now
	}
	out := map[*AlertingRule][]Alert{}
	for _, g := range released {
		for _, rule := range g.rules {
			ar, ok := rule.(*AlertingRule)
			if !ok {
				continue
			}
			for _, rec := range m.sharedRecs[g.Name()+"\x00"+ar.Name()] {
				ep := newEpisode(rec)
				if !ep.open || !ar.mayHave(rec.Labels) {
					continue
				}
				a := Alert{State: StatePending, Labels: labels.FromMap(rec.Labels), Annotations: labels.FromMap(rec.Annotations),
					Value: rec.Value, ActiveAt: rec.ActiveAt}
				if ep.firing() {
					a.State, a.FiredAt, a.Evidence = StateFiring, rec.FiredAt, rec.Evidence
					// An acknowledgement of this firing, on any replica.
					if ack, ok := m.sharedAcks[rec.Fingerprint]; ok && !ack.Time.Before(a.FiredAt) {
						acknowledged(&a, ack.By, ack.Comment, ack.Time)
					}
				}
				out[ar] = append(out[ar], a)
			}
			slices.SortFunc(out[ar], func(x, y Alert) int { return labels.Compare(x.Labels, y.Labels) })
		}
	}
	return out, nil
}
