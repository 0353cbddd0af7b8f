package web

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/callwatch/callwatch/engine"
)

// The status page's audit history lists transitions (pending, firing,
// resolved, tier changes), acknowledgements and silences; the notification
// records, an intent and an answer per channel and attempt, and for
// Alertmanager one pair per resend while an alert fires, are folded under
// the transition they followed. Listed as rows of their own they would push
// the firings off the list within minutes.

// transitionKinds are the audit kinds the history lists as rows.
var transitionKinds = []engine.AuditKind{
	engine.AuditPending, engine.AuditFiring, engine.AuditResolved, engine.AuditTier, engine.AuditHeld,
	engine.AuditAcknowledged, engine.AuditManualResolve, engine.AuditSilence, engine.AuditUnsilence,
}

// historyRow is a row of the audit history: a transition and the
// notifications that followed it, newest first.
type historyRow struct {
	engine.AuditRecord
	Notifications []engine.AuditRecord
	// Unit is the unit of the rule's values, when its rule is loaded.
	Unit string
}

// NotificationSummary says what the row's notifications did, channel by
// channel: "ops-wecom sent, alertmanager sent ×12 (11 resends)".
func (h historyRow) NotificationSummary() string {
	type tally struct {
		statuses map[string]int
		firstAt  time.Time
	}
	byChannel := map[string]*tally{}
	var order []string
	// Oldest first, so the channels are listed in the order they were told.
	for i := len(h.Notifications) - 1; i >= 0; i-- {
		n := h.Notifications[i]
		t := byChannel[n.Channel]
		if t == nil {
			t = &tally{statuses: map[string]int{}, firstAt: n.Time}
			byChannel[n.Channel] = t
			order = append(order, n.Channel)
		}
		t.statuses[n.NotifyStatus]++
	}
	parts := make([]string, 0, len(order))
	for _, ch := range order {
		st := byChannel[ch].statuses
		var outcomes []string
		for _, s := range []string{engine.NotifySent, engine.NotifyFailed, engine.NotifySkipped} {
			if n := st[s]; n > 0 {
				outcomes = append(outcomes, countText(s, n))
			}
		}
		// An intent without an answer yet is still on its way.
		if st[engine.NotifySent]+st[engine.NotifyFailed]+st[engine.NotifySkipped] < st[engine.NotifyPending] {
			outcomes = append(outcomes, "pending")
		}
		text := ch + " " + strings.Join(outcomes, ", ")
		if resends := st[engine.NotifySent] - 1; resends > 0 {
			text += fmt.Sprintf(" (%d %s)", resends, plural(resends, "resend", "resends"))
		}
		parts = append(parts, text)
	}
	return strings.Join(parts, "; ")
}

func countText(status string, n int) string {
	if n == 1 {
		return status
	}
	return fmt.Sprintf("%s ×%d", status, n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// readHistory reads the last historyLimit transitions and the notifications
// since the oldest of them, folded under the transitions they followed. It
// returns how many notifications belong to none of the rows.
func readHistory(ctx context.Context, r engine.AuditReader) ([]historyRow, int, error) {
	recs, err := r.History(ctx, engine.AuditQuery{Kinds: transitionKinds, Limit: historyLimit})
	if err != nil || len(recs) == 0 {
		return nil, 0, err
	}
	rows := make([]historyRow, len(recs))
	for i, rec := range recs {
		rows[i].AuditRecord = rec
	}
	notes, err := r.History(ctx, engine.AuditQuery{Kinds: []engine.AuditKind{engine.AuditNotification},
		From: recs[len(recs)-1].Time.Truncate(time.Second), Limit: notificationLimit})
	if err != nil {
		return rows, 0, fmt.Errorf("reading the notifications: %w", err)
	}
	return rows, foldNotifications(rows, notes), nil
}

// foldNotifications attaches each notification (newest first) to the
// newest row of its alert at or before it, and returns how many found
// none.
func foldNotifications(rows []historyRow, notes []engine.AuditRecord) int {
	// The rows of each alert, newest first as rows are.
	byAlert := map[string][]int{}
	for i, row := range rows {
		if row.Fingerprint != "" && isTransition(row.Kind) {
			byAlert[row.Fingerprint] = append(byAlert[row.Fingerprint], i)
		}
	}
	orphans := 0
	for _, n := range notes {
		i := sort.Search(len(byAlert[n.Fingerprint]), func(k int) bool {
			return !rows[byAlert[n.Fingerprint][k]].Time.After(n.Time)
		})
		if i == len(byAlert[n.Fingerprint]) {
			orphans++
			continue
		}
		row := &rows[byAlert[n.Fingerprint][i]]
		row.Notifications = append(row.Notifications, n)
	}
	return orphans
}

// isTransition reports whether kind is a change of an alert's state, which
// notifications follow.
func isTransition(kind engine.AuditKind) bool {
	switch kind {
	case engine.AuditPending, engine.AuditFiring, engine.AuditResolved, engine.AuditTier, engine.AuditManualResolve:
		return true
	}
	return false
}

// shareGroupTime gives each rule of gv evaluated with the group's last
// evaluation its share of the time the group spent outside its rules: a
// group's leaves are queried together before its first rule runs, so a
// rule's own time is little more than applying the result (0.0 ms when
// the group took 7 ms). The shares go by leaves[i], the number of leaves
// rule i queries, evenly when no rule queries any.
func shareGroupTime(gv groupView, leaves []int) {
	var own time.Duration
	total, n := 0, 0
	in := func(rv ruleView) bool { return !rv.LastEval.IsZero() && rv.LastEval.Equal(gv.LastEval) }
	for i, rv := range gv.Rules {
		if in(rv) {
			own += rv.OwnTime
			total += leaves[i]
			n++
		}
	}
	rest := gv.EvalTime - own
	if rest <= 0 {
		return
	}
	for i, rv := range gv.Rules {
		switch {
		case !in(rv):
		case total > 0:
			gv.Rules[i].EvalTime += rest * time.Duration(leaves[i]) / time.Duration(total)
		default:
			gv.Rules[i].EvalTime += rest / time.Duration(n)
		}
	}
}
