package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/audittest"
	"github.com/callwatch/callwatch/internal/managertest"
)

// auditLog records what an engine writes to the audit trail.
type auditLog struct {
	audittest.Log
	fail error
}

var (
	_ engine.Auditor     = (*auditLog)(nil)
	_ engine.AuditReader = (*auditLog)(nil)
)

// History returns the records of the query's kinds at or after its From,
// newest first, as the ClickHouse store does; fail, when set, is its error.
func (l *auditLog) History(_ context.Context, q engine.AuditQuery) ([]engine.AuditRecord, error) {
	if l.fail != nil {
		return nil, l.fail
	}
	recs := l.Records()
	var out []engine.AuditRecord
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if r.Time.Before(q.From) || (len(q.Kinds) > 0 && !slices.Contains(q.Kinds, r.Kind)) {
			continue
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out, nil
}

// kinds returns "kind/rule/reason" for every record of the given kind.
func (l *auditLog) kinds(kind engine.AuditKind) []string {
	var out []string
	for _, r := range l.Records() {
		if r.Kind == kind {
			out = append(out, string(r.Kind)+"/"+r.Rule+"/"+r.Reason)
		}
	}
	return out
}

// reloadFixture is a manager over rule files in a temporary directory,
// evaluating over error events of tenant acme (one a minute for an hour
// around t0) with the memory evaluator, on a clock the test moves.
type reloadFixture struct {
	dir   string
	m     *engine.Manager
	sent  *notifications
	audit *auditLog
	reg   *prometheus.Registry
	now   time.Time
}

func newReloadFixture(t *testing.T, files map[string]string) *reloadFixture {
	t.Helper()
	_, q := newMemory(everyMinute(t0.Add(-30*time.Minute), t0.Add(time.Hour), "acme", "error")...)
	f := &reloadFixture{dir: t.TempDir(), sent: &notifications{}, audit: &auditLog{}, reg: prometheus.NewRegistry(), now: t0}
	for name, content := range files {
		writeFile(t, filepath.Join(f.dir, name), content)
	}
	f.m = managertest.Load(t, filepath.Join(f.dir, "*.yaml"),
		engine.GroupOptions{Query: q.QueryWith, Notifier: f.sent, Audit: f.audit, Metrics: engine.NewMetrics(f.reg)},
		func() time.Time { return f.now })
	return f
}

// evalUntil evaluates every group once a minute from t0 up to and including
// t0+d, then moves the clock 20s past it.
func (f *reloadFixture) evalUntil(d time.Duration) {
	for ts := t0; !ts.After(t0.Add(d)); ts = ts.Add(time.Minute) {
		evalAll(f.m, ts)
	}
	f.now = t0.Add(d + 20*time.Second)
}

// states returns "rule=state" of every alert of every alerting rule running.
func (f *reloadFixture) states() string {
	var out []string
	for _, g := range f.m.Groups() {
		for _, r := range g.Rules() {
			if ar, ok := r.(*engine.AlertingRule); ok {
				for _, a := range ar.Alerts() {
					out = append(out, ar.Name()+"="+a.State.String())
				}
			}
		}
	}
	return strings.Join(out, " ")
}

// resolvedSent returns "rule@time" for every alert sent resolved.
func resolvedSent(ns []engine.Notification) []string {
	var out []string
	for _, n := range ns {
		for _, a := range n.Alerts {
			if a.State == engine.StateInactive {
				out = append(out, n.Rule.Name()+"@"+a.ResolvedAt.Format("15:04:05"))
			}
		}
	}
	return out
}

const (
	errorsRule = "- alert: Errors\n  expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[5m])) > 0"
	slowRule   = "- alert: Slow\n  expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[5m])) > 1"
	// pendingRule matches too, but waits an hour before firing.
	pendingRule = "- alert: Waiting\n  expr: count_over_time(events[5m]) > 0\n  for: 1h"
)

func TestReloadRefusesToRemoveEveryRuleUnlessForced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string
	}{
		{
			name:   "a rule file truncated to 0 bytes",
			change: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "rules.yaml"), "") },
			want:   "the new rule files contain no rules; the running 1 rules keep running; to remove every rule, reload with force",
		},
		{
			name:   "a rule file left with comments only",
			change: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "rules.yaml"), "# nothing here yet\n") },
			want:   "the new rule files contain no rules",
		},
		{
			name: "every rule file deleted",
			change: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "rules.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			want: "the new rule files contain no rules",
		},
	} {
		t.Run(tc.name+" is refused, the alert keeps firing, and a forced reload resolves it, sent and audited", func(t *testing.T) {
			f := newReloadFixture(t, map[string]string{"rules.yaml": ruleFile("", errorsRule)})
			f.evalUntil(time.Minute)
			if got := f.states(); got != "Errors=firing" {
				t.Fatalf("before the reload: %q, want Errors=firing", got)
			}
			f.sent.take()

			tc.change(t, f.dir)
			err := f.m.Load(context.Background())
			if !errors.Is(err, engine.ErrReloadRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload error = %v, want ErrReloadRefused saying %q", err, tc.want)
			}
			reloadMetric(t, f.reg, "0")
			if got := f.states(); got != "Errors=firing" {
				t.Fatalf("after the refused reload: %q, want Errors=firing", got)
			}
			if n := f.sent.count(); n != 0 {
				t.Fatalf("a refused reload sent %d notifications", n)
			}
			evalAll(f.m, t0.Add(2*time.Minute)) // the rule still runs
			f.sent.take()

			f.now = t0.Add(2*time.Minute + 30*time.Second)
			if err := f.m.Reload(context.Background(), engine.ReloadOptions{Force: true}); err != nil {
				t.Fatalf("forced reload: %v", err)
			}
			reloadMetric(t, f.reg, "1")
			if got := f.states(); got != "" {
				t.Errorf("after the forced reload: %q, want no rules", got)
			}
			if got, want := strings.Join(resolvedSent(f.sent.take()), " "), "Errors@10:02:30"; got != want {
				t.Errorf("sent resolved %q, want %q", got, want)
			}
			if got, want := strings.Join(f.audit.kinds(engine.AuditResolved), " "), "resolved/Errors/"+engine.RemovedByReason; got != want {
				t.Errorf("audited %q, want %q", got, want)
			}
		})
	}
}

func TestReloadResolvesTheAlertsOfRemovedRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		// files are the rule files before, change the new ones ("" deletes).
		files, change map[string]string
		// sent and audited are the rules whose alerts are sent and audited resolved.
		sent, audited string
		// after are the alerts left running.
		after string
	}{
		{
			name:    "a rule removed from a file is sent and audited resolved, the other keeps firing",
			files:   map[string]string{"rules.yaml": ruleFile("", errorsRule+"\n"+slowRule)},
			change:  map[string]string{"rules.yaml": ruleFile("", errorsRule)},
			sent:    "Slow@10:01:20",
			audited: "Slow",
			after:   "Errors=firing",
		},
		{
			name:    "a deleted rule file is deliberate: its rules are removed and their alerts resolved",
			files:   map[string]string{"a.yaml": ruleFile("", errorsRule), "b.yaml": strings.Replace(ruleFile("", slowRule), "name: g", "name: h", 1)},
			change:  map[string]string{"b.yaml": ""},
			sent:    "Slow@10:01:20",
			audited: "Slow",
			after:   "Errors=firing",
		},
		{
			name:    "a rule whose labels changed resolves the alerts of its old identity",
			files:   map[string]string{"rules.yaml": ruleFile("", errorsRule)},
			change:  map[string]string{"rules.yaml": ruleFile("", errorsRule+"\n  labels:\n    team: sre")},
			sent:    "Errors@10:01:20",
			audited: "Errors",
			after:   "",
		},
		{
			name:    "a renamed group resolves the alerts of the old one",
			files:   map[string]string{"rules.yaml": ruleFile("", errorsRule)},
			change:  map[string]string{"rules.yaml": strings.Replace(ruleFile("", errorsRule), "name: g", "name: renamed", 1)},
			sent:    "Errors@10:01:20",
			audited: "Errors",
			after:   "",
		},
		{
			name:    "a removed pending alert is audited resolved but not sent: it was never announced",
			files:   map[string]string{"rules.yaml": ruleFile("", errorsRule+"\n"+pendingRule)},
			change:  map[string]string{"rules.yaml": ruleFile("", errorsRule)},
			sent:    "",
			audited: "Waiting",
			after:   "Errors=firing",
		},
		{
			name:    "an edited threshold keeps the alert: it is judged at the next evaluation",
			files:   map[string]string{"rules.yaml": ruleFile("", errorsRule)},
			change:  map[string]string{"rules.yaml": ruleFile("", strings.Replace(errorsRule, "> 0", "> 100", 1))},
			sent:    "",
			audited: "",
			after:   "Errors=firing",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newReloadFixture(t, tc.files)
			f.evalUntil(time.Minute)
			f.sent.take()
			for name, content := range tc.change {
				p := filepath.Join(f.dir, name)
				if content == "" {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
					continue
				}
				writeFile(t, p, content)
			}
			if err := f.m.Load(context.Background()); err != nil {
				t.Fatalf("reload: %v", err)
			}
			if got := strings.Join(resolvedSent(f.sent.take()), " "); got != tc.sent {
				t.Errorf("sent resolved %q, want %q", got, tc.sent)
			}
			var audited []string
			for _, k := range f.audit.kinds(engine.AuditResolved) {
				parts := strings.Split(k, "/")
				if parts[2] != engine.RemovedByReason {
					t.Errorf("audit reason %q, want %q", parts[2], engine.RemovedByReason)
				}
				audited = append(audited, parts[1])
			}
			if got := strings.Join(audited, " "); got != tc.audited {
				t.Errorf("audited resolved %q, want %q", got, tc.audited)
			}
			if got := f.states(); got != tc.after {
				t.Errorf("alerts after the reload %q, want %q", got, tc.after)
			}
		})
	}
}

func TestReloadRefusesAnEmptiedRuleFile(t *testing.T) {
	files := map[string]string{"a.yaml": ruleFile("", errorsRule), "b.yaml": strings.Replace(ruleFile("", slowRule), "name: g", "name: h", 1)}
	t.Run("a truncated file among others is refused, the others' rules do not hide it", func(t *testing.T) {
		f := newReloadFixture(t, files)
		f.evalUntil(time.Minute)
		f.sent.take()
		writeFile(t, filepath.Join(f.dir, "b.yaml"), "\n  \n")
		err := f.m.Load(context.Background())
		if !errors.Is(err, engine.ErrReloadRefused) || !strings.Contains(err.Error(), "b.yaml (held 1 rules) is empty") ||
			!strings.Contains(err.Error(), "delete the file or reload with force") {
			t.Fatalf("reload error = %v, want b.yaml refused", err)
		}
		if got := f.states(); got != "Errors=firing Slow=firing" {
			t.Fatalf("after the refused reload: %q", got)
		}
		if err := f.m.Reload(context.Background(), engine.ReloadOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(resolvedSent(f.sent.take()), " "); got != "Slow@10:01:20" {
			t.Errorf("forced: sent resolved %q, want Slow", got)
		}
	})
	t.Run("the first load of empty rule files is not refused: nothing runs yet", func(t *testing.T) {
		f := newReloadFixture(t, map[string]string{"a.yaml": ""})
		if got := f.states(); got != "" {
			t.Fatalf("alerts %q", got)
		}
		writeFile(t, filepath.Join(f.dir, "a.yaml"), ruleFile("", errorsRule))
		if err := f.m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTheFileWatcherNeverForces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(25 * time.Second) // off the minute: 2000-01-01 00:00:25 UTC
		dir := t.TempDir()
		file := filepath.Join(dir, "rules.yaml")
		writeFile(t, file, ruleFile("interval: 1m", "- alert: A\n  expr: count_over_time(events[1m]) > 0"))
		sent := &notifications{}
		m, stop := runWatchedManager(t, file, alwaysAcme, sent)
		time.Sleep(time.Minute)
		synctest.Wait()

		writeFile(t, file, "")
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		if a := groupRule(t, m, "A").Alerts(); len(a) != 1 || a[0].State != engine.StateFiring {
			t.Errorf("A after its file was truncated: %+v, want still firing", a)
		}
		if got := resolvedSent(sent.take()); len(got) != 0 {
			t.Errorf("sent resolved %v after a truncation", got)
		}
		stop()
	})
}
