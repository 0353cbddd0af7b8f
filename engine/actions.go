package engine

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// findAlert returns the group and rule holding the alert with fingerprint fp.
func (m *Manager) findAlert(fp uint64) (*Group, *AlertingRule) {
	for _, g := range m.Groups() {
		for _, r := range g.rules {
			if ar, ok := r.(*AlertingRule); ok {
				if _, found := ar.Alert(fp); found {
					return g, ar
				}
			}
		}
	}
	return nil, nil
}

// Acknowledge marks a firing alert acknowledged by someone: direct channels
// stop repeating it until it changes state. It is audited.
func (m *Manager) Acknowledge(ctx context.Context, fp uint64, by, comment string) (Alert, error) {
	return m.operate(ctx, operation{fp: fp, by: by, comment: comment, verb: "acknowledges", kind: AuditAcknowledged,
		change: func(a *Alert, now time.Time) { acknowledged(a, by, comment, now) },
	})
}

// Resolve resolves a firing alert by hand: it is sent resolved and fires
// again (after for) if its condition still holds. It is audited.
func (m *Manager) Resolve(ctx context.Context, fp uint64, by, comment string) (Alert, error) {
	return m.operate(ctx, operation{fp: fp, by: by, comment: comment, verb: "resolves", kind: AuditManualResolve,
		change: resolvedByHand,
		then: func(g *Group, r *AlertingRule, now time.Time) {
			// Send the resolve now rather than at the next evaluation.
			if due := r.due(now, m.opts.ResendDelay, g.interval); len(due) > 0 && m.opts.Notifier != nil {
				m.opts.Notifier.Notify(ctx, Notification{Group: g.Name(), Rule: r.spec, Time: now, Alerts: due})
			}
		},
	})
}

// operation is an operator's action on the firing alert fp: by (who,
// required; verb says what they do) and comment go to its audit record, of
// kind; change is what it does to the alert, then (when set) follows once
// the action is audited on the replica that holds the alert.
type operation struct {
	fp          uint64
	by, comment string
	verb        string
	kind        AuditKind
	change      func(a *Alert, now time.Time)
	then        func(g *Group, r *AlertingRule, now time.Time)
}

// operate finds the alert of op, runs op.do on it and audits it.
func (m *Manager) operate(ctx context.Context, op operation) (Alert, error) {
	if op.by == "" {
		return Alert{}, fmt.Errorf("say who %s: by is required", op.verb)
	}
	now := m.opts.Now()
	g, r := m.findAlert(op.fp)
	if r == nil {
		// An alert of a group another replica evaluates (ha.share_groups)
		// is acted on through the audit trail: the owner applies the record
		// at its next heartbeat (SyncActions), as it does an action made
		// on any replica.
		return m.operateShared(ctx, op, now)
	}
	a, err := r.changeFiring(op.fp, func(a *Alert) { op.change(a, now) })
	if err != nil {
		return a, err
	}
	rec := NewAuditRecord(op.kind, now, g.Name(), r.spec, a)
	rec.By, rec.Comment = op.by, op.comment
	if err := m.record(ctx, rec); err != nil {
		return a, err
	}
	if op.then != nil {
		op.then(g, r, now)
	}
	return a, nil
}

// operateShared audits op on fp when it is an alert of a group another
// replica evaluates, as SharedAlerts shows it: ErrAlertNotFound when it is
// not one, ErrNotFiring when it is not firing.
func (m *Manager) operateShared(ctx context.Context, op operation, now time.Time) (Alert, error) {
	shared, err := m.SharedAlerts(ctx)
	if err != nil {
		return Alert{}, err
	}
	for _, g := range m.Groups() {
		for _, rule := range g.rules {
			r, ok := rule.(*AlertingRule)
			if !ok {
				continue
			}
			for _, a := range shared[r] {
				if a.Fingerprint() != op.fp {
					continue
				}
				if a.State != StateFiring {
					return a, ErrNotFiring
				}
				op.change(&a, now)
				rec := NewAuditRecord(op.kind, now, g.Name(), r.spec, a)
				rec.By, rec.Comment = op.by, op.comment
				if err := m.record(ctx, rec); err != nil {
					return a, err
				}
				// The next read of the shared alerts shows the action.
				m.sharedMu.Lock()
				m.sharedRecs = nil
				m.sharedMu.Unlock()
				return a, nil
			}
		}
	}
	return Alert{}, ErrAlertNotFound
}

func (m *Manager) record(ctx context.Context, rec AuditRecord) error {
	if m.opts.Audit == nil {
		return nil
	}
	rec.Replica = m.opts.Replica
	return m.opts.Audit.Record(ctx, rec)
}

// restoreFromAudit brings back what the events cannot tell: the firing
// times cooldown and max_alerts_per_day count, and acknowledgements of
// alerts still firing.
func (m *Manager) restoreFromAudit(ctx context.Context, groups []*Group) {
	if m.opts.AuditReader == nil {
		return
	}
	now := m.opts.Now()
	var maxCooldown time.Duration
	for _, g := range groups {
		for _, r := range g.spec.Rules {
			maxCooldown = max(maxCooldown, r.Cooldown)
		}
	}
	since := now.UTC().Truncate(24 * time.Hour)
	if c := now.Add(-maxCooldown); c.Before(since) {
		since = c
	}
	firings, err := m.opts.AuditReader.History(ctx, AuditQuery{From: since, Kinds: []AuditKind{AuditFiring}, Limit: 100000})
	if err != nil {
		m.opts.Logger.Error("restoring cooldowns from the audit trail failed", "err", err)
		return
	}
	byRule := map[string][]time.Time{}
	for _, f := range firings {
		if f.Reason == "" { // suppressed firings do not count
			byRule[f.Group+"\x00"+f.Rule] = append(byRule[f.Group+"\x00"+f.Rule], f.Time)
		}
	}
	acks, err := m.opts.AuditReader.History(ctx, AuditQuery{From: now.Add(-max(m.opts.RestoreWindow, 24*time.Hour)),
		Kinds: []AuditKind{AuditFiring, AuditResolved, AuditAcknowledged, AuditManualResolve}, Limit: 100000})
	if err != nil {
		m.opts.Logger.Error("restoring acknowledgements from the audit trail failed", "err", err)
		return
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].Time.Before(acks[j].Time) })
	lastAck := map[string]AuditRecord{}
	for _, r := range acks {
		switch r.Kind {
		case AuditAcknowledged:
			lastAck[r.Fingerprint] = r
		default:
			delete(lastAck, r.Fingerprint)
		}
	}
	for _, g := range groups {
		for _, rule := range g.rules {
			ar, ok := rule.(*AlertingRule)
			if !ok {
				continue
			}
			ts := byRule[g.Name()+"\x00"+ar.Name()]
			sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
			ar.setFirings(ts)
			for _, a := range ar.Alerts() {
				if ack, ok := lastAck[FingerprintString(a.Fingerprint())]; ok && a.State == StateFiring {
					ar.acknowledge(a.Fingerprint(), ack.By, ack.Comment, ack.Time)
				}
			}
		}
	}
}

// syncOverlap is how far before the last sync SyncActions reads again: an
// audit row of another replica may become visible late (its insert still
// in flight, the replicas' clocks apart). Rows read twice are applied once:
// an action applies only to the firing it was made on.
const syncOverlap = time.Minute

// SyncActions applies the acknowledgements and manual resolves recorded in
// the audit trail since the last call, by any replica, to this replica's
// alerts: an action made on one replica takes effect on all within the
// interval of the calls, without a restart. An action applies only to an
// alert that is firing and fired by the action's time (not to a later
// firing of the same alert), so reading a row again, or this replica's own
// rows, changes nothing. It returns how many actions took effect.
func (m *Manager) SyncActions(ctx context.Context) (int, error) {
	if m.opts.AuditReader == nil {
		return 0, nil
	}
	now := m.opts.Now()
	m.syncMu.Lock()
	from := m.syncedTo
	m.syncMu.Unlock()
	if from.IsZero() {
		from = now
	}
	recs, err := m.opts.AuditReader.History(ctx, AuditQuery{From: from.Add(-syncOverlap),
		Kinds: []AuditKind{AuditAcknowledged, AuditManualResolve}, Limit: 10000})
	if err != nil {
		return 0, fmt.Errorf("read the replicas' actions from the audit trail: %w", err)
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	applied := 0
	for _, rec := range recs {
		fp, err := ParseFingerprint(rec.Fingerprint)
		if err != nil {
			continue
		}
		g, r := m.findAlert(fp)
		if r == nil {
			continue
		}
		a, ok := r.Alert(fp)
		if !ok || a.State != StateFiring || a.FiredAt.After(rec.Time) {
			continue
		}
		switch rec.Kind {
		case AuditAcknowledged:
			if a.AckedAt.Before(rec.Time) {
				if _, err := r.acknowledge(fp, rec.By, rec.Comment, rec.Time); err == nil {
					applied++
				}
			}
		case AuditManualResolve:
			if _, err := r.resolveManually(fp, rec.Time); err == nil {
				applied++
				m.opts.Logger.Info("alert resolved by hand on another replica", "group", g.Name(), "rule", r.Name(),
					"fingerprint", rec.Fingerprint, "by", rec.By, "replica", rec.Replica)
			}
		}
	}
	m.syncMu.Lock()
	m.syncedTo = now
	m.syncMu.Unlock()
	return applied, nil
}
