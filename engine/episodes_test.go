package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
)

// episodeProcess is one run of callwatch over a shared audit trail: a
// manager loaded at now, over the events, with the rule Errors (for 2m at a
// 1m interval).
type episodeProcess struct {
	m    *engine.Manager
	sent *notifications
	// fail, when set, makes every query fail (ClickHouse down).
	fail *error
	// now is the manager's clock.
	now *time.Time
}

func startProcess(t *testing.T, now time.Time, audit *auditLog, events []memory.Event) *episodeProcess {
	t.Helper()
	_, q := newMemory(events...)
	p := &episodeProcess{sent: &notifications{}, fail: new(error), now: &now}
	query := func(ctx context.Context, e *dsl.Expr, ts time.Time, s engine.SeriesSource) (engine.Result, error) {
		if *p.fail != nil {
			return engine.Result{}, *p.fail
		}
		return q.QueryWith(ctx, e, ts, s)
	}
	f := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, f, ruleFile("interval: 1m", `
- alert: Errors
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m])) > 0
  for: 2m`))
	p.m = engine.NewManager(engine.ManagerOptions{
		GroupOptions: engine.GroupOptions{Query: query, Notifier: p.sent, Audit: audit},
		AuditReader:  audit,
		RuleFiles:    []string{f},
		Now:          func() time.Time { return *p.now },
	})
	if err := p.m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// firstRun starts a process five minutes before t0 and evaluates its
// groups at t0 and every minute after, n times: the run before a restart.
func firstRun(t *testing.T, audit *auditLog, events []memory.Event, n int) {
	t.Helper()
	evalMinutes(startProcess(t, t0.Add(-5*time.Minute), audit, events).m, t0, n)
}

// rows returns "kind@15:04" for every audit row of the alert's transitions.
func (l *auditLog) rows() string {
	var out []string
	for _, r := range l.Records() {
		switch r.Kind {
		case engine.AuditPending, engine.AuditFiring, engine.AuditResolved:
			out = append(out, string(r.Kind)+"@"+r.Time.Format("15:04"))
		}
	}
	return strings.Join(out, " ")
}

func TestRestartContinuesTheAuditedEpisode(t *testing.T) {
	hhmm := func(ts time.Time) string { return ts.Format("15:04") }
	// Errors every minute from t0 on: the alert is pending at t0 and
	// fires at t0+2m.
	errorsFrom := func(from, to time.Time) []memory.Event {
		return everyMinute(from.Add(-30*time.Second), to, "acme", "error")
	}

	t.Run("a restarted firing alert keeps its start and is not audited again", func(t *testing.T) {
		audit := &auditLog{}
		events := errorsFrom(t0, t0.Add(2*time.Hour))
		firstRun(t, audit, events, 11)
		// The firing row carries what explained the alert (evidence).
		recs := audit.Records()
		for i := range recs {
			if recs[i].Kind == engine.AuditFiring {
				recs[i].Evidence = &engine.Evidence{Leaf: "count_over_time(events[1m])", Total: 7}
			}
		}
		audit = &auditLog{}
		audit.Record(context.Background(), recs...)
		// Restarted twenty minutes later: the replay covers 27m..30m only.
		restart := t0.Add(30*time.Minute + 20*time.Second)
		second := startProcess(t, restart, audit, events)
		a := groupRule(t, second.m, "Errors").Alerts()
		if len(a) != 1 || a[0].State != engine.StateFiring || !a[0].ActiveAt.Equal(t0) || !a[0].FiredAt.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("after the restart: %+v, want firing, active since %s and fired at %s (the audit trail's), not the replay's", a, hhmm(t0), hhmm(t0.Add(2*time.Minute)))
		}
		if ev := a[0].Evidence; ev == nil || ev.Total != 7 {
			t.Errorf("the restarted alert's evidence %+v, want the firing row's (7 events)", ev)
		}
		evalAll(second.m, t0.Add(31*time.Minute))
		if got, want := audit.rows(), "pending@10:00 firing@10:02"; got != want {
			t.Errorf("audit rows %q, want %q: the episode went on, nothing new happened", got, want)
		}
		if sent := sentAlerts(second.sent.take()); len(sent) != 1 || !sent[0].ActiveAt.Equal(t0) {
			t.Errorf("sent after the restart: %+v, want the alert once, active since %s", sent, hhmm(t0))
		}
	})

	t.Run("an alert that fired while callwatch was down is audited from the replay", func(t *testing.T) {
		audit := &auditLog{}
		// The condition starts at t0+25m; callwatch starts at t0+30m20s.
		second := startProcess(t, t0.Add(30*time.Minute+20*time.Second), audit, errorsFrom(t0.Add(25*time.Minute), t0.Add(2*time.Hour)))
		if got, want := audit.rows(), "pending@10:27 firing@10:29"; got != want {
			t.Errorf("audit rows after the replay %q, want %q", got, want)
		}
		evalAll(second.m, t0.Add(31*time.Minute))
		if got, want := audit.rows(), "pending@10:27 firing@10:29"; got != want {
			t.Errorf("audit rows after the first evaluation %q, want %q (no second firing row)", got, want)
		}
		if n := len(sentAlerts(second.sent.take())); n != 1 {
			t.Errorf("%d alerts sent at the first live evaluation, want 1", n)
		}
	})

	t.Run("a replay over transitions already audited writes none again", func(t *testing.T) {
		audit := &auditLog{}
		// The last error is at t0+5m30s: fires at t0+2m, resolves at
		// t0+7m; restarted at t0+8m20s, the replay (t0+5m..t0+8m) sees
		// the end of the episode again.
		events := errorsFrom(t0, t0.Add(6*time.Minute))
		firstRun(t, audit, events, 8)
		want := "pending@10:00 firing@10:02 resolved@10:07"
		if got := audit.rows(); got != want {
			t.Fatalf("first run's audit rows %q, want %q", got, want)
		}
		second := startProcess(t, t0.Add(8*time.Minute+20*time.Second), audit, events)
		evalAll(second.m, t0.Add(9*time.Minute))
		if got := audit.rows(); got != want {
			t.Errorf("audit rows after the restart %q, want %q unchanged", got, want)
		}
		if n := second.sent.count(); n != 0 {
			t.Errorf("%d notifications after the restart, want none", n)
		}
	})

	t.Run("an alert that resolved while callwatch was down is resolved, audited and sent, but not during an outage", func(t *testing.T) {
		audit := &auditLog{}
		events := errorsFrom(t0, t0.Add(10*time.Minute))
		firstRun(t, audit, events, 5)
		// Down from t0+4m to t0+30m; the errors stopped at t0+10m.
		second := startProcess(t, t0.Add(30*time.Minute+20*time.Second), audit, events)
		*second.fail = errors.New("clickhouse: connection refused")
		evalAll(second.m, t0.Add(31*time.Minute))
		if got, want := audit.rows(), "pending@10:00 firing@10:02"; got != want {
			t.Errorf("audit rows after a failed first evaluation %q, want %q: an outage must not resolve", got, want)
		}
		if n := second.sent.count(); n != 0 {
			t.Errorf("%d notifications during the outage, want none", n)
		}
		*second.fail = nil
		evalAll(second.m, t0.Add(32*time.Minute))
		if got, want := audit.rows(), "pending@10:00 firing@10:02 resolved@10:32"; got != want {
			t.Errorf("audit rows after the first healthy evaluation %q, want %q", got, want)
		}
		sent := sentAlerts(second.sent.take())
		if len(sent) != 1 || sent[0].State != engine.StateInactive || sent[0].Labels.Get("tenant_id") != "acme" || !sent[0].ActiveAt.Equal(t0) {
			t.Errorf("sent %+v, want acme's alert resolved, active since %s", sent, hhmm(t0))
		}
		evalAll(second.m, t0.Add(33*time.Minute))
		if got := audit.rows(); strings.Count(got, "resolved") != 1 {
			t.Errorf("audit rows %q: the resolve is written once", got)
		}
	})

	t.Run("an unreadable audit trail changes nothing", func(t *testing.T) {
		audit := &auditLog{fail: errors.New("clickhouse: timeout")}
		second := startProcess(t, t0.Add(30*time.Minute+20*time.Second), audit, errorsFrom(t0.Add(25*time.Minute), t0.Add(2*time.Hour)))
		a := groupRule(t, second.m, "Errors").Alerts()
		if len(a) != 1 || !a[0].ActiveAt.Equal(t0.Add(27*time.Minute)) {
			t.Errorf("alerts %+v, want the replay's alert, active since 10:27", a)
		}
		if got := audit.rows(); got != "" {
			t.Errorf("audit rows %q written without knowing what the trail holds, want none", got)
		}
	})
}

func TestSyncActionsAppliesOtherReplicasActionsOnce(t *testing.T) {
	audit := &auditLog{}
	events := everyMinute(t0.Add(-30*time.Second), t0.Add(2*time.Hour), "acme", "error")
	a := startProcess(t, t0.Add(-5*time.Minute), audit, events)
	b := startProcess(t, t0.Add(-5*time.Minute), audit, events)
	for i := range 3 {
		evalAll(a.m, t0.Add(time.Duration(i)*time.Minute))
		evalAll(b.m, t0.Add(time.Duration(i)*time.Minute))
	}
	*a.now, *b.now = t0.Add(2*time.Minute+10*time.Second), t0.Add(2*time.Minute+10*time.Second)
	alertOf := func(p *episodeProcess) engine.Alert {
		t.Helper()
		al := groupRule(t, p.m, "Errors").Alerts()
		if len(al) != 1 {
			t.Fatalf("alerts %+v, want one", al)
		}
		return al[0]
	}
	first := alertOf(a)
	fp := first.Fingerprint()
	if _, err := b.m.Acknowledge(context.Background(), fp, "alice", "on it"); err != nil {
		t.Fatal(err)
	}
	if n, err := a.m.SyncActions(context.Background()); err != nil || n != 1 {
		t.Fatalf("SyncActions = %d, %v; want the acknowledgement applied", n, err)
	}
	if got := alertOf(a); got.AckedBy != "alice" || got.AckComment != "on it" {
		t.Errorf("replica a's alert after the sync: acked by %q (%q), want alice (on it)", got.AckedBy, got.AckComment)
	}
	if n, _ := a.m.SyncActions(context.Background()); n != 0 {
		t.Errorf("a second sync applied %d actions, want 0 (the row was applied)", n)
	}
	if n, _ := b.m.SyncActions(context.Background()); n != 0 {
		t.Errorf("replica b applied its own acknowledgement again: %d", n)
	}

	if _, err := b.m.Resolve(context.Background(), fp, "alice", "fixed"); err != nil {
		t.Fatal(err)
	}
	a.sent.take()
	if n, _ := a.m.SyncActions(context.Background()); n != 1 {
		t.Errorf("SyncActions applied %d actions, want the manual resolve", n)
	}
	if got := alertOf(a); got.State != engine.StateInactive {
		t.Errorf("replica a's alert after b resolved it by hand: %s, want resolved", got.State)
	}
	// The condition still holds: the alert fires again after for, and the
	// old resolve, read again, does not touch the new firing.
	for i := 3; i <= 6; i++ {
		evalAll(a.m, t0.Add(time.Duration(i)*time.Minute))
	}
	*a.now = t0.Add(6*time.Minute + 10*time.Second)
	if got := alertOf(a); got.State != engine.StateFiring {
		t.Fatalf("replica a's alert after for: %s, want firing again", got.State)
	}
	if n, _ := a.m.SyncActions(context.Background()); n != 0 {
		t.Errorf("the old resolve applied to the new firing: %d actions", n)
	}
}
