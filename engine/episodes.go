package engine

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// This file restores what a restart (or a group moving to another replica)
// cannot learn from the events: where each alert's episode stood in the
// audit trail. Prometheus restores an alert's start from its
// ALERTS_FOR_STATE series; callwatch reads the audit table, which holds
// every transition with the alert's active and firing times.
//
// Three things follow from it:
//
//   - an alert that comes back (in the start-up replay or the first live
//     evaluation) continues its episode: its ActiveAt and FiredAt are the
//     ones the audit trail holds, not the start of the replay window, so
//     "firing since", startsAt and ALERTS_FOR_STATE do not jump;
//   - the transitions the replay finds that the audit trail lacks (an alert
//     that became firing while callwatch was down) are audited, and those it
//     already holds are not audited twice;
//   - an alert the audit trail holds as firing that the first healthy live
//     evaluation no longer returns resolved while callwatch was down: it is
//     resolved, audited and sent resolved, instead of staying firing in
//     every channel forever.

// episodeHorizon is how far back the audit trail is read for episodes: an
// alert firing for longer than a week without a transition restarts its
// times.
const episodeHorizon = 7 * 24 * time.Hour

// episode is an alert's last transition in the audit trail.
type episode struct {
	last AuditRecord
	// open says the alert was pending or firing.
	open bool
}

// firing says the episode's alert was firing (a tier change is a firing
// alert moving between severities).
func (e episode) firing() bool {
	return e.open && (e.last.Kind == AuditFiring || e.last.Kind == AuditTier)
}

// loadEpisodes reads the alerts' last transitions from the audit trail into
// their rules, before the start-up replay, and has the replay audit what the
// trail lacks. Without an audit reader, or when it cannot be read, nothing
// changes: the replay audits nothing, as it cannot tell what is new.
func (m *Manager) loadEpisodes(ctx context.Context, groups []*Group) {
	if m.opts.AuditReader == nil {
		return
	}
	byRule, _, err := lastTransitions(ctx, m.opts.AuditReader, m.opts.Now())
	if err != nil {
		m.opts.Logger.Error("reading alert episodes from the audit trail failed; restored alerts restart their times", "err", err)
		return
	}
	for _, g := range groups {
		g.auditReplay = m.opts.Audit != nil
		for _, rule := range g.rules {
			if ar, ok := rule.(*AlertingRule); ok {
				ar.setEpisodes(byRule[g.Name()+"\x00"+ar.Name()])
			}
		}
	}
}

// lastTransitions reads, in one read of the audit trail (within
// episodeHorizon), each alert's last transition by group and rule
// ("group\x00rule"), and each fingerprint's last acknowledgement.
func lastTransitions(ctx context.Context, reader AuditReader, now time.Time) (byRule map[string][]AuditRecord, acks map[string]AuditRecord, err error) {
	recs, err := reader.History(ctx, AuditQuery{From: now.Add(-episodeHorizon),
		Kinds: []AuditKind{AuditPending, AuditFiring, AuditTier, AuditResolved, AuditManualResolve, AuditAcknowledged}, Limit: 100000})
	if err != nil {
		return nil, nil, err
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	last, acks := map[string]AuditRecord{}, map[string]AuditRecord{}
	for _, r := range recs {
		if r.Kind == AuditAcknowledged {
			acks[r.Fingerprint] = r
			continue
		}
		last[r.Group+"\x00"+r.Rule+"\x00"+r.Fingerprint] = r
	}
	byRule = map[string][]AuditRecord{}
	for _, r := range last {
		byRule[r.Group+"\x00"+r.Rule] = append(byRule[r.Group+"\x00"+r.Rule], r)
	}
	return byRule, acks, nil
}

// newEpisode is the episode whose last transition is rec.
func newEpisode(rec AuditRecord) episode {
	return episode{last: rec, open: rec.Kind == AuditPending || rec.Kind == AuditFiring || rec.Kind == AuditTier}
}

// setEpisodes keeps the audit trail's last transitions of the rule's alerts
// (those whose labels this rule can produce: two rules of a group may share
// a name).
func (r *AlertingRule) setEpisodes(recs []AuditRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.episodes, r.auditedUpTo = map[uint64]episode{}, map[uint64]time.Time{}
	for _, rec := range recs {
		fp, err := ParseFingerprint(rec.Fingerprint)
		if err != nil || !r.mayHave(rec.Labels) {
			continue
		}
		r.auditedUpTo[fp] = rec.Time
		r.episodes[fp] = newEpisode(rec)
	}
}

// mayHave reports whether an alert with labels ls can come from this rule:
// it carries the rule's fixed labels.
func (r *AlertingRule) mayHave(ls map[string]string) bool {
	for k, v := range r.spec.Labels {
		if !strings.Contains(v, "{{") && ls[k] != v {
			return false
		}
	}
	return true
}

// continueEpisode gives a new alert a at ts the times of its open episode,
// if it has one that started by ts, and reports whether it did: the alert
// is not new, and makes no transition. The caller holds r.mu.
func (r *AlertingRule) continueEpisode(h uint64, a *Alert, ts time.Time) bool {
	ep, ok := r.episodes[h]
	if !ok || !ep.open || ep.last.ActiveAt.IsZero() || ts.Before(ep.last.ActiveAt) {
		return false
	}
	delete(r.episodes, h)
	a.ActiveAt = ep.last.ActiveAt
	if ep.firing() {
		a.State, a.FiredAt, a.Evidence = StateFiring, ep.last.FiredAt, ep.last.Evidence
		if a.FiredAt.IsZero() {
			a.FiredAt = ep.last.Time
		}
		if suppression(ep.last.Reason) {
			a.Suppressed = ep.last.Reason
		}
	}
	return true
}

// suppression reports whether an audit row's reason is cooldown's or
// max_alerts_per_day's (the alert was held back, not sent).
func suppression(reason string) bool {
	return strings.HasPrefix(reason, "cooldown:") || strings.HasPrefix(reason, "max_alerts_per_day:")
}

// unaudited returns the replayed transitions the audit trail does not hold
// yet: those after the alert's last row there.
func (r *AlertingRule) unaudited(trans []Transition) []Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Transition
	for _, t := range trans {
		if at, ok := r.auditedUpTo[t.alert.Fingerprint()]; ok && !t.Time.After(at) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// settleEpisodes ends, at the first healthy live evaluation, the episodes
// no alert continued: a firing one resolved while callwatch was not
// evaluating the rule, so it is resolved now (audited and sent resolved;
// one held back by cooldown stays unsent); a pending one simply ended. The
// caller holds r.mu.
func (r *AlertingRule) settleEpisodes(ts time.Time) {
	for h, ep := range r.episodes {
		if _, active := r.active[h]; active || !ep.firing() {
			continue
		}
		lset := labels.FromMap(ep.last.Labels)
		if r.identity(lset) != h {
			continue // not this rule's alert after all
		}
		a := &Alert{Labels: lset, Annotations: labels.FromMap(ep.last.Annotations), Value: ep.last.Value,
			ActiveAt: ep.last.ActiveAt, FiredAt: ep.last.FiredAt, State: StateInactive, ResolvedAt: ts}
		if suppression(ep.last.Reason) {
			a.Suppressed = ep.last.Reason
		}
		r.active[h] = a
		r.transitions = append(r.transitions, Transition{Time: ts, Labels: lset, From: "firing", To: "resolved", Value: a.Value, alert: *a})
	}
	r.episodes = nil
}
