package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/managertest"
)

// alwaysAcme answers every query with {tenant_id="acme"} 1.
func alwaysAcme(context.Context, *dsl.Expr, time.Time, engine.SeriesSource) (engine.Result, error) {
	return engine.Result{Vector: []engine.Sample{{Labels: parseLabels("tenant_id=acme"), Value: 1}}}, nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// groupRule finds a manager's alerting rule by name in group "g".
func groupRule(t *testing.T, m *engine.Manager, name string) *engine.AlertingRule {
	t.Helper()
	for _, g := range m.Groups() {
		if g.Name() == "g" {
			return alertingRule(t, g, name)
		}
	}
	t.Fatal(`no group "g"`)
	return nil
}

func evalAll(m *engine.Manager, ts time.Time) {
	for _, g := range m.Groups() {
		g.Eval(context.Background(), ts)
	}
}

// evalMinutes evaluates every group at from and each of the n-1 minutes
// after it.
func evalMinutes(m *engine.Manager, from time.Time, n int) {
	for i := range n {
		evalAll(m, from.Add(time.Duration(i)*time.Minute))
	}
}

// gathered returns the registry's samples of the named metric family as
// "label=value,... value" strings. (client_golang's testutil would need a
// module this repository does not require yet.)
func gathered(t *testing.T, reg *prometheus.Registry, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			out = append(out, strings.TrimSpace(strings.Join(ls, ",")+" "+fmtF(m.GetGauge().GetValue())))
		}
	}
	return out
}

func reloadMetric(t *testing.T, reg *prometheus.Registry, want string) {
	t.Helper()
	if got := gathered(t, reg, "callwatch_config_last_reload_successful"); len(got) != 1 || got[0] != want {
		t.Errorf("callwatch_config_last_reload_successful = %v, want %s", got, want)
	}
}

const twoRules = `
- alert: A
  expr: count_over_time(events[1m]) > 0
- alert: B
  expr: count_over_time(events[1m]) > 1`

func TestManagerReload(t *testing.T) {
	t.Run("a bad file keeps the running groups, all or nothing, and sets the reload metric to 0", func(t *testing.T) {
		dir := t.TempDir()
		a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
		writeFile(t, a, ruleFile("", twoRules))
		reg := prometheus.NewRegistry()
		m := managertest.Load(t, filepath.Join(dir, "*.yaml"), engine.GroupOptions{Query: alwaysAcme, Metrics: engine.NewMetrics(reg)}, func() time.Time { return t0 })
		reloadMetric(t, reg, "1")
		before := m.Groups()
		evalAll(m, t0)

		// a.yaml gains a rule, b.yaml is broken: nothing of it may apply.
		writeFile(t, a, ruleFile("", twoRules+"\n- alert: C\n  expr: count_over_time(events[1m]) > 2"))
		writeFile(t, b, ruleFile("", "- alert: D\n  expr: count_over_time(events[1m]) > 1\n  for: soon"))
		err := m.Load(context.Background())
		if err == nil || !strings.Contains(err.Error(), `b.yaml:6:14: group "g", rule "D": for: "soon" is not a duration`) {
			t.Fatalf("err = %v, want b.yaml's error", err)
		}
		reloadMetric(t, reg, "0")
		after := m.Groups()
		if len(after) != 1 || after[0] != before[0] || len(after[0].Rules()) != 2 {
			t.Fatalf("groups changed after a failed reload: %d groups, %d rules", len(after), len(after[0].Rules()))
		}
		if a := groupRule(t, m, "A").Alerts(); len(a) != 1 || a[0].State != engine.StateFiring {
			t.Errorf("A's alerts after a failed reload: %+v, want one firing", a)
		}

		// Fixing b.yaml (with its own group name) applies both files.
		writeFile(t, b, strings.Replace(ruleFile("", "- alert: D\n  expr: count_over_time(events[1m]) > 1"), "name: g", "name: h", 1))
		if err := m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		reloadMetric(t, reg, "1")
		if got := len(m.Groups()); got != 2 {
			t.Fatalf("%d groups, want 2", got)
		}
		if got := len(m.Groups()[0].Rules()); got != 3 {
			t.Errorf("group g has %d rules, want 3", got)
		}
		want := []string{"rule_group=" + a + ";g 3", "rule_group=" + b + ";h 1"}
		if got := gathered(t, reg, "callwatch_rule_group_rules"); !slices.Equal(got, want) {
			t.Errorf("callwatch_rule_group_rules = %v, want %v", got, want)
		}
	})

	t.Run("a reload keeps the state of rules with the same name and labels and resets the others", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "rules.yaml")
		writeFile(t, f, ruleFile("", twoRules+"\n- alert: C\n  expr: count_over_time(events[1m]) > 2\n  annotations:\n    summary: old"))
		n := &notifications{}
		m := managertest.Load(t, f, engine.GroupOptions{Query: alwaysAcme, Notifier: n}, func() time.Time { return t0 })
		evalAll(m, t0)
		evalAll(m, t0.Add(time.Minute))
		n.take()

		// B's labels change (a new identity); C's expression and annotation
		// change (same identity, as in Prometheus); A stays.
		changed := twoRules + "\n  labels:\n    team: x" + "\n- alert: C\n  expr: count_over_time(events[1m]) > 1\n  annotations:\n    summary: new"
		writeFile(t, f, ruleFile("", changed))
		if err := m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"A", "C"} {
			a := groupRule(t, m, name).Alerts()
			if len(a) != 1 || a[0].State != engine.StateFiring || !a[0].ActiveAt.Equal(t0) || !a[0].LastSentAt.Equal(t0) {
				t.Errorf("%s after reload: %+v, want firing since %s, last sent then", name, a, t0.Format("15:04"))
			}
		}
		if a := groupRule(t, m, "B").Alerts(); len(a) != 0 {
			t.Errorf("B after reload: %+v, want no alerts (its labels changed)", a)
		}
		if h := groupRule(t, m, "A").History(); len(h) != 2 {
			t.Errorf("A's history after reload has %d records, want 2", len(h))
		}

		evalAll(m, t0.Add(2*time.Minute))
		if a := groupRule(t, m, "B").Alerts(); len(a) != 1 || !a[0].ActiveAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("B after the next evaluation: %+v, want active since 10:02", a)
		}
		if a := groupRule(t, m, "C").Alerts(); len(a) != 1 || a[0].Annotations.Get("summary") != "new" {
			t.Errorf("C after the next evaluation: %+v, want the new annotation", a)
		}
		// A keeps its send schedule: last sent at 10:00, re-sent at 10:02;
		// B is new and sent at once.
		var sent []string
		for _, a := range sentAlerts(n.take()) {
			sent = append(sent, a.Labels.Get("alertname"))
		}
		if got := strings.Join(sent, " "); got != "A B C" {
			t.Errorf("sent %q at 10:02, want A B C", got)
		}
	})
}

func TestManagerRestore(t *testing.T) {
	// now is the restart time, 20s after an aligned minute.
	aligned := t0
	now := aligned.Add(20 * time.Second)
	errorsRule := `
- alert: Errors
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m])) > 0
`
	cases := []struct {
		name string
		rule string
		// Error events come once a minute, 30s before each minute from
		// aligned+from until aligned+to: the condition holds at from..to.
		from, to time.Duration
		restore  time.Duration // RestoreWindow; 0 = default
		// afterLoad is the alert right after Load.
		wantState    engine.AlertState
		wantActiveAt time.Duration // relative to aligned
		keeping      bool          // KeepFiringSince is set, at aligned+wantKeep
		wantKeep     time.Duration
		// steps are the states at aligned+1m, +2m, ...: P, F, R, -.
		steps string
		// sent lists the step indexes (0 = aligned+1m) at which a notification goes out.
		sent []int
	}{
		{
			name:         "for continues from the replayed ActiveAt instead of waiting again",
			rule:         errorsRule + "  for: 10m",
			from:         -6 * time.Minute, // true from aligned-6m
			to:           20 * time.Minute,
			wantState:    engine.StatePending,
			wantActiveAt: -6 * time.Minute,
			steps:        "P P P F F",
			sent:         []int{3},
		},
		{
			name:         "keep_firing_for continues its window after a restart",
			rule:         errorsRule + "  keep_firing_for: 10m",
			from:         -20 * time.Minute,
			to:           -3 * time.Minute, // last true at aligned-3m, false from aligned-2m
			wantState:    engine.StateFiring,
			wantActiveAt: -11 * time.Minute, // the first replayed evaluation
			keeping:      true,
			wantKeep:     -2 * time.Minute,
			steps:        "F F F F F F F R R",
			sent:         []int{0, 2, 4, 6, 7},
		},
		{
			name:         "an alert that starts firing at the last replayed evaluation is sent at the first live one",
			rule:         errorsRule + "  for: 2m",
			from:         -2 * time.Minute, // fires at aligned, during the replay
			to:           20 * time.Minute,
			wantState:    engine.StateFiring,
			wantActiveAt: -2 * time.Minute,
			steps:        "F F F",
			sent:         []int{0, 2},
		},
		{
			name:         "without restore the for window starts over",
			rule:         errorsRule + "  for: 10m",
			from:         -6 * time.Minute,
			to:           20 * time.Minute,
			restore:      -1,
			wantState:    engine.StateInactive,
			wantActiveAt: 0,
			steps:        "P P P P P P P P P P F",
			sent:         []int{10},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var events = everyMinute(aligned.Add(tc.from-30*time.Second), aligned.Add(tc.to), "acme", "error")
			_, q := newMemory(events...)
			dir := t.TempDir()
			f := filepath.Join(dir, "rules.yaml")
			writeFile(t, f, ruleFile("interval: 1m", tc.rule))
			n := &notifications{}
			m := engine.NewManager(engine.ManagerOptions{
				GroupOptions:  engine.GroupOptions{Query: q.QueryWith, Notifier: n},
				RuleFiles:     []string{f},
				RestoreWindow: tc.restore,
				Now:           func() time.Time { return now },
			})
			if err := m.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if c := n.count(); c != 0 {
				t.Fatalf("%d notifications sent during restore, want none", c)
			}
			r := groupRule(t, m, "Errors")
			alerts := r.Alerts()
			if tc.wantState == engine.StateInactive {
				if len(alerts) != 0 {
					t.Fatalf("alerts after Load: %+v, want none", alerts)
				}
			} else {
				if len(alerts) != 1 {
					t.Fatalf("%d alerts after Load, want 1", len(alerts))
				}
				a := alerts[0]
				if a.State != tc.wantState || !a.ActiveAt.Equal(aligned.Add(tc.wantActiveAt)) {
					t.Errorf("after Load: %s since %s, want %s since %s", a.State, a.ActiveAt.Format("15:04:05"), tc.wantState, aligned.Add(tc.wantActiveAt).Format("15:04:05"))
				}
				wantKeep := time.Time{}
				if tc.keeping {
					wantKeep = aligned.Add(tc.wantKeep)
				}
				if !a.KeepFiringSince.Equal(wantKeep) {
					t.Errorf("KeepFiringSince = %s, want %s", a.KeepFiringSince.Format("15:04:05"), wantKeep.Format("15:04:05"))
				}
			}
			var states []string
			var sent []int
			for i := range strings.Fields(tc.steps) {
				evalAll(m, aligned.Add(time.Duration(i+1)*time.Minute))
				s := "-"
				if a := r.Alerts(); len(a) == 1 {
					s = stateToken(a[0])
				}
				states = append(states, s)
				if len(n.take()) > 0 {
					sent = append(sent, i)
				}
			}
			if got := strings.Join(states, " "); got != tc.steps {
				t.Errorf("states after Load %s, want %s", got, tc.steps)
			}
			if !equalInts(sent, tc.sent) {
				t.Errorf("sent at steps %v, want %v", sent, tc.sent)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestManagerRestoresOnlyOnce(t *testing.T) {
	t.Run("a reload does not replay again and sends nothing by itself", func(t *testing.T) {
		_, q := newMemory(everyMinute(t0.Add(-7*time.Minute-30*time.Second), t0.Add(time.Hour), "acme", "error")...)
		calls := 0
		query := func(ctx context.Context, e *dsl.Expr, ts time.Time, s engine.SeriesSource) (engine.Result, error) {
			calls++
			return q.QueryWith(ctx, e, ts, s)
		}
		dir := t.TempDir()
		f := filepath.Join(dir, "rules.yaml")
		writeFile(t, f, ruleFile("", "- alert: Errors\n  expr: count_over_time(events{status=\"error\"}[1m]) > 0\n  for: 10m"))
		n := &notifications{}
		m := engine.NewManager(engine.ManagerOptions{
			GroupOptions: engine.GroupOptions{Query: query, Notifier: n},
			RuleFiles:    []string{f},
			Now:          func() time.Time { return t0 },
		})
		if err := m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if calls != 12 {
			t.Errorf("restore ran %d queries, want 12 (for + one interval, both ends included)", calls)
		}
		calls = 0
		if err := m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if calls != 0 || n.count() != 0 {
			t.Errorf("a reload ran %d queries and sent %d notifications, want none", calls, n.count())
		}
	})
}

func TestManagerRun(t *testing.T) {
	// Run's scheduling and file watching are about the passage of time, which
	// only a fake clock can check without sleeping: synctest's.
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(25 * time.Second) // start off the minute: 2000-01-01 00:00:25 UTC
		start := time.Now().UTC()
		dir := t.TempDir()
		f := filepath.Join(dir, "rules.yaml")
		writeFile(t, f, ruleFile("interval: 1m", "- alert: A\n  expr: count_over_time(events[1m]) > 0"))
		var mu sync.Mutex
		var asked []string
		query := func(ctx context.Context, e *dsl.Expr, ts time.Time, s engine.SeriesSource) (engine.Result, error) {
			mu.Lock()
			asked = append(asked, ts.UTC().Format("15:04:05"))
			mu.Unlock()
			return alwaysAcme(ctx, e, ts, s)
		}
		n := &notifications{}
		m, stop := runWatchedManager(t, f, query, n)

		time.Sleep(3 * time.Minute)
		synctest.Wait()
		// Groups are evaluated at timestamps aligned to their interval.
		mu.Lock()
		if want := []string{"00:01:00", "00:02:00", "00:03:00"}; !slices.Equal(asked, want) {
			t.Errorf("evaluated at %v (started %s), want %v", asked, start.Format("15:04:05"), want)
		}
		mu.Unlock()
		if got := n.count(); got != 2 {
			t.Errorf("%d notifications, want 2 (00:01 and the resend at 00:03)", got)
		}

		writeFile(t, f, ruleFile("interval: 1m", "- alert: B\n  expr: count_over_time(events[1m]) > 0"))
		time.Sleep(time.Minute)
		synctest.Wait()
		// A changed rule file is reloaded and its groups run.
		a := groupRule(t, m, "B").Alerts()
		if len(a) != 1 || a[0].ActiveAt.UTC().Format("15:04:05") != "00:04:00" {
			t.Errorf("B's alerts %+v, want one active since 00:04:00", a)
		}
		stop()
	})
}

// runWatchedManager loads a manager over file, evaluating with query and
// notifying n, that checks the file for changes every 5 seconds, and runs
// it; stop ends the run and waits for it.
func runWatchedManager(t *testing.T, file string, query engine.QueryFunc, n engine.Notifier) (m *engine.Manager, stop func()) {
	t.Helper()
	m = engine.NewManager(engine.ManagerOptions{
		GroupOptions:  engine.GroupOptions{Query: query, Notifier: n},
		RuleFiles:     []string{file},
		RestoreWindow: -1,
		WatchInterval: 5 * time.Second,
	})
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	return m, func() {
		cancel()
		<-done
	}
}

func TestDatasourceDownFiresThroughTheNormalPath(t *testing.T) {
	n := &notifications{}
	down := true
	ping := func(context.Context) error {
		if down {
			return errQuery
		}
		return nil
	}
	g := engine.DatasourceDownGroup(ping, time.Minute, time.Minute, engine.GroupOptions{Notifier: n})
	dir := t.TempDir()
	m := engine.NewManager(engine.ManagerOptions{GroupOptions: engine.GroupOptions{Notifier: n}, RuleFiles: []string{dir + "/*.yaml"},
		RestoreWindow: -1, Builtin: []*engine.Group{g}, Now: func() time.Time { return t0 }})
	for range 2 { // a reload keeps the built-in group (and does not deadlock copying it onto itself)
		if err := m.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	g.Eval(context.Background(), t0)
	g.Eval(context.Background(), t0.Add(time.Minute))
	a := alertingRule(t, g, engine.DatasourceDownName).Alerts()
	if len(a) != 1 || a[0].State != engine.StateFiring || a[0].Labels.Get("severity") != "critical" {
		t.Fatalf("alerts = %+v, want DatasourceDown firing", a)
	}
	if len(sentAlerts(n.take())) != 1 {
		t.Fatal("DatasourceDown was not sent")
	}
	down = false
	g.Eval(context.Background(), t0.Add(2*time.Minute))
	if a := alertingRule(t, g, engine.DatasourceDownName).Alerts(); a[0].State != engine.StateInactive {
		t.Fatalf("after ClickHouse answers again: %+v, want resolved", a)
	}
}

// TestDatasourceDownSaysTheEventsTable: when ClickHouse answers but the
// events table is missing, DatasourceDown fires with cause="events_table"
// and a summary about the table, and the check's error (what is missing,
// what to run) is its last evaluation's statement.
func TestDatasourceDownSaysTheEventsTable(t *testing.T) {
	missing := &engine.EventsTableError{Err: errors.New("the events table calls does not exist: create it (docs/language.md, \"The events table\", gives the DDL)")}
	var pingErr error = missing
	g := engine.DatasourceDownGroup(func(context.Context) error { return pingErr }, time.Minute, time.Minute, engine.GroupOptions{})
	g.Eval(context.Background(), t0)
	g.Eval(context.Background(), t0.Add(time.Minute))
	rule := alertingRule(t, g, engine.DatasourceDownName)
	a := rule.Alerts()
	if len(a) != 1 || a[0].State != engine.StateFiring || a[0].Labels.Get("cause") != engine.CauseEventsTable {
		t.Fatalf("alerts = %+v, want DatasourceDown firing with cause=%s", a, engine.CauseEventsTable)
	}
	if s := a[0].Annotations.Get("summary"); !strings.HasPrefix(s, "the events table is missing or does not fit the schema") {
		t.Errorf("summary %q does not say the events table", s)
	}
	if h := rule.History(); len(h) == 0 || len(h[len(h)-1].Statements) != 1 || !strings.Contains(h[len(h)-1].Statements[0], "The events table") {
		t.Errorf("the last evaluation does not carry the check's error: %+v", h)
	}
	// The server itself down: the alert of old, without a cause.
	pingErr = errQuery
	g.Eval(context.Background(), t0.Add(2*time.Minute))
	g.Eval(context.Background(), t0.Add(3*time.Minute))
	for _, a := range rule.Alerts() {
		if a.State == engine.StateFiring && (a.Labels.Has("cause") || !strings.HasPrefix(a.Annotations.Get("summary"), "ClickHouse does not answer")) {
			t.Errorf("with ClickHouse down: %v %v", a.Labels, a.Annotations)
		}
	}
}
