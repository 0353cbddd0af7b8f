package engine

import (
	"context"
	"time"
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
