package engine_test

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

const alertExpr = `expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m])) > 0`

// TestAlertStateMachine drives one alert through Prometheus' state machine at
// explicit timestamps. Each column of values, states and sent is one
// evaluation, one interval apart:
//
//	values: the query result for {tenant_id="acme"} ("_" = no sample)
//	states: - no alert, P pending, F firing, R resolved and still retained
//	sent:   . nothing sent, F sent firing, R sent resolved
func TestAlertStateMachine(t *testing.T) {
	r15 := strings.Repeat("R ", 15)
	cases := []struct {
		name     string
		rule     string // rule keys besides alert and expr
		interval time.Duration
		resend   time.Duration
		values   string
		states   string
		sent     string
	}{
		{
			name:   "an alert without for fires at its first evaluation and is sent at once",
			values: "1 1 1",
			states: "F F F",
			sent:   "F . F",
		},
		{
			name:   "for 2m with a 1m interval is pending, pending, then firing at the third evaluation",
			rule:   "for: 2m",
			values: "1 1 1 1",
			states: "P P F F",
			sent:   ". . F .",
		},
		{
			name:   "a for shorter than the interval fires at the second evaluation",
			rule:   "for: 30s",
			values: "1 1 1",
			states: "P F F",
			sent:   ". F .",
		},
		{
			name:   "a pending alert whose condition stops is dropped, never resolved nor sent",
			rule:   "for: 2m",
			values: "1 1 _ _",
			states: "P P - -",
			sent:   ". . . .",
		},
		{
			name:   "a pending alert is dropped even with keep_firing_for (Prometheus' TestPendingAndKeepFiringFor)",
			rule:   "for: 1m\nkeep_firing_for: 1m",
			values: "1 _",
			states: "P -",
			sent:   ". .",
		},
		{
			name:   "keep_firing_for keeps firing after the condition stops and resolves when it has elapsed",
			rule:   "keep_firing_for: 2m",
			values: "1 _ _ _ _",
			states: "F F F R R",
			sent:   "F . F R .",
		},
		{
			name:   "keep_firing_for restarts when the condition returns",
			rule:   "keep_firing_for: 2m",
			values: "1 _ 1 _ _ _ _",
			states: "F F F F F R R",
			sent:   "F . F . F R .",
		},
		{
			name:   "Prometheus' TestKeepFiringFor: for 1m, keep_firing_for 1m",
			rule:   "for: 1m\nkeep_firing_for: 1m",
			values: "75 85 70 70 _ _",
			states: "P F F F F R",
			sent:   ". F . F . R",
		},
		{
			name:   "a resolved alert is kept and re-sent for 15 minutes, then dropped",
			values: "1 _",
			states: "F " + r15 + "R -",
			sent:   "F R . R . R . R . R . R . R . R . .",
		},
		{
			name:   "an alert that returns after resolving starts over as pending with a new ActiveAt",
			rule:   "for: 1m",
			values: "1 1 _ 1 1",
			states: "P F R P F",
			sent:   ". F R . F",
		},
		{
			name:   "a firing alert is re-sent only once LastSentAt+resend delay is before the evaluation time",
			resend: 3 * time.Minute,
			values: "1 1 1 1 1 1 1 1 1",
			states: "F F F F F F F F F",
			sent:   "F . . . F . . . F",
		},
		{
			name:     "with an interval longer than the resend delay every evaluation re-sends",
			interval: 2 * time.Minute,
			values:   "1 1 1",
			states:   "F F F",
			sent:     "F F F",
		},
		{
			name:   "the resolve is sent at once even within the resend delay",
			resend: 10 * time.Minute,
			values: "1 1 _ _",
			states: "F F R R",
			sent:   "F . R .",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			interval := cmp(tc.interval, time.Minute)
			n := &notifications{}
			sc := newScript(t0, interval, map[string]string{"tenant_id=acme": tc.values})
			g := mustGroup(t, ruleFile("interval: "+interval.String(), "- alert: A\n  "+alertExpr+"\n"+indent(tc.rule)),
				engine.GroupOptions{Query: sc.Query, Notifier: n, ResendDelay: tc.resend})
			r := alertingRule(t, g, "A")
			states, sent := strings.Fields(tc.states), strings.Fields(tc.sent)
			if len(states) != len(sent) {
				t.Fatalf("states has %d steps, sent %d", len(states), len(sent))
			}
			var activeAt time.Time
			for i := range states {
				ts := t0.Add(time.Duration(i) * interval)
				g.Eval(context.Background(), ts)
				alerts := r.Alerts()
				gotState := "-"
				if len(alerts) > 1 {
					t.Fatalf("step %d (%s): %d alerts, want at most 1", i, ts.Format("15:04"), len(alerts))
				}
				if len(alerts) == 1 {
					gotState = stateToken(alerts[0])
					if gotState == "P" && (i == 0 || states[i-1] != "P") {
						activeAt = ts
					}
					if gotState != "R" && !activeAt.IsZero() && !alerts[0].ActiveAt.Equal(activeAt) {
						t.Errorf("step %d: ActiveAt = %s, want %s", i, alerts[0].ActiveAt.Format("15:04"), activeAt.Format("15:04"))
					}
				}
				gotSent := "."
				switch ns := sentAlerts(n.take()); len(ns) {
				case 0:
				case 1:
					gotSent = stateToken(ns[0])
				default:
					t.Fatalf("step %d: sent %d alerts, want at most 1", i, len(ns))
				}
				if gotState != states[i] || gotSent != sent[i] {
					t.Errorf("step %d (%s): state %s sent %s, want state %s sent %s", i, ts.Format("15:04"), gotState, gotSent, states[i], sent[i])
				}
			}
		})
	}
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// indent indents the lines of s as keys of a rules: list item.
func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

func TestAlertTimes(t *testing.T) {
	t.Run("FiredAt, ResolvedAt and KeepFiringSince are the evaluation times of the transitions", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1 1 _ _ _"})
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr+"\n  for: 1m\n  keep_firing_for: 2m"), engine.GroupOptions{Query: sc.Query})
		r := alertingRule(t, g, "A")
		for i := range 5 {
			g.Eval(context.Background(), t0.Add(time.Duration(i)*time.Minute))
		}
		a := r.Alerts()[0]
		want := map[string][2]time.Time{
			"ActiveAt":        {a.ActiveAt, t0},
			"FiredAt":         {a.FiredAt, t0.Add(time.Minute)},
			"KeepFiringSince": {a.KeepFiringSince, t0.Add(2 * time.Minute)},
			"ResolvedAt":      {a.ResolvedAt, t0.Add(4 * time.Minute)},
		}
		for k, v := range want {
			if !v[0].Equal(v[1]) {
				t.Errorf("%s = %s, want %s", k, v[0].Format(time.TimeOnly), v[1].Format(time.TimeOnly))
			}
		}
	})
}

func TestValidUntil(t *testing.T) {
	cases := []struct {
		name             string
		interval, resend time.Duration
		want             time.Duration
	}{
		{"is four resend delays after sending when the resend delay is longer", time.Minute, 3 * time.Minute, 12 * time.Minute},
		{"is four intervals after sending when the interval is longer", 2 * time.Minute, time.Minute, 8 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &notifications{}
			sc := newScript(t0, tc.interval, map[string]string{"tenant_id=acme": "1"})
			g := mustGroup(t, ruleFile("interval: "+tc.interval.String(), "- alert: A\n  "+alertExpr),
				engine.GroupOptions{Query: sc.Query, Notifier: n, ResendDelay: tc.resend})
			g.Eval(context.Background(), t0)
			sent := sentAlerts(n.take())
			if len(sent) != 1 {
				t.Fatalf("sent %d alerts, want 1", len(sent))
			}
			if got := sent[0].ValidUntil.Sub(t0); got != tc.want {
				t.Errorf("ValidUntil = ts+%s, want ts+%s", got, tc.want)
			}
			if !sent[0].LastSentAt.Equal(t0) {
				t.Errorf("LastSentAt = %s, want %s", sent[0].LastSentAt, t0)
			}
		})
	}
}

func TestGroupLimit(t *testing.T) {
	cases := []struct {
		name    string
		values  map[string]string
		wantErr string
		alerts  int
	}{
		{
			name:   "as many alerts as the limit is fine",
			values: map[string]string{"tenant_id=acme": "1", "tenant_id=beta": "1"},
			alerts: 2,
		},
		{
			name:    "one alert more than the limit fails the rule and clears its alerts",
			values:  map[string]string{"tenant_id=acme": "1 1", "tenant_id=beta": "1 1", "tenant_id=gamma": "_ 1"},
			wantErr: "exceeded limit of 2 with 3 alerts",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &notifications{}
			sc := newScript(t0, time.Minute, tc.values)
			g := mustGroup(t, ruleFile("limit: 2", "- alert: A\n  "+alertExpr), engine.GroupOptions{Query: sc.Query, Notifier: n})
			r := alertingRule(t, g, "A")
			g.Eval(context.Background(), t0)
			n.take()
			g.Eval(context.Background(), t0.Add(time.Minute))
			st := r.Status()
			health, err := st.Health, st.LastError
			if tc.wantErr == "" {
				if err != nil || health != engine.HealthGood {
					t.Fatalf("health %s, err %v; want ok", health, err)
				}
			} else {
				if err == nil || err.Error() != tc.wantErr || health != engine.HealthBad {
					t.Fatalf("health %s, err %v; want err %q", health, err, tc.wantErr)
				}
				if got := n.take(); len(got) != 0 {
					t.Errorf("sent %d notifications after the limit was exceeded, want none", len(got))
				}
				if got := g.AlertSamples(); len(got) != 0 {
					t.Errorf("AlertSamples = %v, want none", got)
				}
			}
			if got := len(r.Alerts()); got != tc.alerts {
				t.Errorf("%d alerts, want %d", got, tc.alerts)
			}
		})
	}
	t.Run("a recording rule over the limit fails and records nothing", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1", "tenant_id=beta": "1"})
		g := mustGroup(t, ruleFile("limit: 1", "- record: tenant:errors:1m\n  expr: sum by (tenant_id) (count_over_time(events[1m]))"), engine.GroupOptions{Query: sc.Query})
		g.Eval(context.Background(), t0)
		r := g.Rules()[0].(*engine.RecordingRule)
		if st := r.Status(); st.LastError == nil || st.LastError.Error() != "exceeded limit of 1 with 2 series" {
			t.Errorf("err = %v, want exceeded limit of 1 with 2 series", st.LastError)
		}
		if s, _ := r.Samples(); len(s) != 0 {
			t.Errorf("recorded %v, want nothing", s)
		}
	})
}

func TestDuplicateLabelSet(t *testing.T) {
	t.Run("two samples equal after the rule's labels fail the evaluation and keep the previous state", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme,app_code=chat": "1 1", "tenant_id=acme,app_code=search": "_ 1"})
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr+"\n  labels:\n    app_code: any"), engine.GroupOptions{Query: sc.Query})
		r := alertingRule(t, g, "A")
		g.Eval(context.Background(), t0)
		g.Eval(context.Background(), t0.Add(time.Minute))
		st := r.Status()
		err := st.LastError
		want := `vector contains metrics with the same labelset after applying alert labels: {alertname="A", app_code="any", tenant_id="acme"}`
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
		alerts := r.Alerts()
		if len(alerts) != 1 || alerts[0].State != engine.StateFiring || !alerts[0].ActiveAt.Equal(t0) {
			t.Errorf("alerts = %+v, want the alert of the first evaluation still firing", alerts)
		}
	})
	t.Run("a recording rule whose labels merge two series fails", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1", "tenant_id=beta": "1"})
		g := mustGroup(t, ruleFile("", "- record: errors:1m\n  expr: sum by (tenant_id) (count_over_time(events[1m]))\n  labels:\n    tenant_id: all"), engine.GroupOptions{Query: sc.Query})
		g.Eval(context.Background(), t0)
		st := g.Rules()[0].Status()
		err := st.LastError
		want := `vector contains metrics with the same labelset after applying rule labels: {__name__="errors:1m", tenant_id="all"}`
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v\nwant %s", err, want)
		}
	})
}

func TestAlertLabels(t *testing.T) {
	cases := []struct {
		name   string
		group  string
		rule   string
		sample string
		want   string
	}{
		{
			name:   "the sample's labels and alertname",
			sample: "tenant_id=acme",
			want:   `{alertname="A", tenant_id="acme"}`,
		},
		{
			name:   "group labels are added",
			group:  "labels:\n  team: core\n  env: prod",
			sample: "tenant_id=acme",
			want:   `{alertname="A", env="prod", team="core", tenant_id="acme"}`,
		},
		{
			name:   "rule labels override group labels, and both override the sample's",
			group:  "labels:\n  team: core\n  tenant_id: from-group",
			rule:   "labels:\n  team: payments",
			sample: "tenant_id=acme",
			want:   `{alertname="A", team="payments", tenant_id="from-group"}`,
		},
		{
			name:   "severity becomes the severity label",
			rule:   "severity: warning",
			sample: "tenant_id=acme",
			want:   `{alertname="A", severity="warning", tenant_id="acme"}`,
		},
		{
			name:   "the baseline's priority maps to a severity label",
			rule:   "priority: high",
			sample: "tenant_id=acme",
			want:   `{alertname="A", severity="error", tenant_id="acme"}`,
		},
		{
			name:   "a severity label in the sample is overridden by the rule's severity",
			rule:   "priority: critical",
			sample: "tenant_id=acme,severity=info",
			want:   `{alertname="A", severity="critical", tenant_id="acme"}`,
		},
		{
			name:   "a rule label whose template expands to nothing is left out",
			rule:   "labels:\n  app_code: '{{ $labels.app_code }}'",
			sample: "tenant_id=acme",
			want:   `{alertname="A", tenant_id="acme"}`,
		},
		{
			name:   "alertname cannot be overridden by the sample",
			sample: "tenant_id=acme,alertname=Other",
			want:   `{alertname="A", tenant_id="acme"}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScript(t0, time.Minute, map[string]string{tc.sample: "1"})
			g := mustGroup(t, ruleFile(tc.group, "- alert: A\n  "+alertExpr+"\n"+indent(tc.rule)), engine.GroupOptions{Query: sc.Query})
			g.Eval(context.Background(), t0)
			alerts := alertingRule(t, g, "A").Alerts()
			if len(alerts) != 1 {
				t.Fatalf("%d alerts, want 1", len(alerts))
			}
			if got := alerts[0].Labels.String(); got != tc.want {
				t.Errorf("labels = %s\n         want %s", got, tc.want)
			}
		})
	}
}

func TestAlertTemplates(t *testing.T) {
	cases := []struct {
		name, text string
		value      float64
		want       string
	}{
		{"$labels reads the sample's labels", `{{ $labels.tenant_id }} is failing`, 1, "acme is failing"},
		{"$value is the sample's value", `{{ $value }}`, 12.5, "12.5"},
		{"$externalLabels reads the configured external labels", `{{ $externalLabels.cluster }}`, 1, "cn-east"},
		{"humanize uses metric prefixes", `{{ $value | humanize }}`, 12345.678, "12.35k"},
		{"humanizeDuration reads seconds", `{{ humanizeDuration $value }}`, 90, "1m 30s"},
		{"humanizePercentage", `{{ humanizePercentage $value }}`, 0.256, "25.6%"},
		{"printf formats the value", `{{ printf "%.1f" $value }}ms`, 5123.456, "5123.5ms"},
		{"the Go template language", `{{ if gt $value 100.0 }}high{{ else }}low{{ end }}`, 150, "high"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": fmtF(tc.value)})
			rule := "- alert: A\n  " + alertExpr + "\n  labels:\n    detail: '" + tc.text + "'\n  annotations:\n    summary: '" + tc.text + "'"
			g := mustGroup(t, ruleFile("", rule), engine.GroupOptions{Query: sc.Query, ExternalLabels: map[string]string{"cluster": "cn-east"}})
			g.Eval(context.Background(), t0)
			alerts := alertingRule(t, g, "A").Alerts()
			if len(alerts) != 1 {
				t.Fatalf("%d alerts, want 1", len(alerts))
			}
			if got := alerts[0].Annotations.Get("summary"); got != tc.want {
				t.Errorf("annotation = %q\n        want %q", got, tc.want)
			}
			if got := alerts[0].Labels.Get("detail"); got != tc.want {
				t.Errorf("label = %q\n   want %q", got, tc.want)
			}
		})
	}
	t.Run("a failing template says so in the text instead of failing the rule", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1"})
		rule := "- alert: A\n  " + alertExpr + "\n  annotations:\n    summary: '{{ humanize \"x\" }}'"
		g := mustGroup(t, ruleFile("", rule), engine.GroupOptions{Query: sc.Query})
		g.Eval(context.Background(), t0)
		r := alertingRule(t, g, "A")
		got := r.Alerts()[0].Annotations.Get("summary")
		if !strings.HasPrefix(got, "<error expanding template: ") || !strings.Contains(got, `error calling humanize: strconv.ParseFloat: parsing "x": invalid syntax`) {
			t.Errorf("summary = %q", got)
		}
		if st := r.Status(); st.Health != engine.HealthGood {
			t.Errorf("health %s, want ok", st.Health)
		}
	})
	t.Run("annotations follow the latest value while labels stay those of the alert", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "10 20"})
		rule := "- alert: A\n  " + alertExpr + "\n  annotations:\n    summary: '{{ $value }} errors'"
		g := mustGroup(t, ruleFile("", rule), engine.GroupOptions{Query: sc.Query})
		g.Eval(context.Background(), t0)
		g.Eval(context.Background(), t0.Add(time.Minute))
		a := alertingRule(t, g, "A").Alerts()[0]
		if got := a.Annotations.Get("summary"); got != "20 errors" || a.Value != 20 {
			t.Errorf("summary %q, value %v; want 20 errors, 20", got, a.Value)
		}
	})
}

func TestAlertSamples(t *testing.T) {
	sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1 1 _", "tenant_id=beta": "_ 1 1"})
	g := mustGroup(t, ruleFile("labels:\n  team: core", "- alert: A\n  "+alertExpr+"\n  for: 1m"), engine.GroupOptions{Query: sc.Query})
	steps := []struct {
		name string
		want []string
	}{
		{
			name: "a pending alert has an ALERTS sample with alertstate pending and ALERTS_FOR_STATE holding ActiveAt",
			want: []string{
				`{__name__="ALERTS", alertname="A", alertstate="pending", team="core", tenant_id="acme"} 1 @10:00`,
				`{__name__="ALERTS_FOR_STATE", alertname="A", team="core", tenant_id="acme"} 1763978400 @10:00`,
			},
		},
		{
			name: "a firing alert has alertstate firing and keeps its ActiveAt",
			want: []string{
				`{__name__="ALERTS", alertname="A", alertstate="firing", team="core", tenant_id="acme"} 1 @10:01`,
				`{__name__="ALERTS", alertname="A", alertstate="pending", team="core", tenant_id="beta"} 1 @10:01`,
				`{__name__="ALERTS_FOR_STATE", alertname="A", team="core", tenant_id="acme"} 1763978400 @10:01`,
				`{__name__="ALERTS_FOR_STATE", alertname="A", team="core", tenant_id="beta"} 1763978460 @10:01`,
			},
		},
		{
			name: "a resolved alert has no samples",
			want: []string{
				`{__name__="ALERTS", alertname="A", alertstate="firing", team="core", tenant_id="beta"} 1 @10:02`,
				`{__name__="ALERTS_FOR_STATE", alertname="A", team="core", tenant_id="beta"} 1763978460 @10:02`,
			},
		},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ts := t0.Add(time.Duration(i) * time.Minute)
			g.Eval(context.Background(), ts)
			var got []string
			for _, s := range g.AlertSamples() {
				got = append(got, s.Metric.String()+" "+fmtF(s.F)+" @"+time.UnixMilli(s.T).UTC().Format("15:04"))
			}
			sort.Strings(got)
			if !slices.Equal(got, st.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(st.want, "\n  "))
			}
		})
	}
}

func TestQueryOffset(t *testing.T) {
	t.Run("query_offset moves the query time into the past, not the evaluation time", func(t *testing.T) {
		sc := newScript(t0.Add(-90*time.Second), time.Minute, map[string]string{"tenant_id=acme": "1"})
		g := mustGroup(t, ruleFile("query_offset: 90s", "- alert: A\n  "+alertExpr), engine.GroupOptions{Query: sc.Query})
		g.Eval(context.Background(), t0)
		if got := sc.queried(); len(got) != 1 || !got[0].Equal(t0.Add(-90*time.Second)) {
			t.Fatalf("queried at %v, want %s", got, t0.Add(-90*time.Second))
		}
		a := alertingRule(t, g, "A").Alerts()
		if len(a) != 1 || !a[0].ActiveAt.Equal(t0) {
			t.Fatalf("alerts %+v, want one active since the evaluation time %s", a, t0)
		}
		if last, _ := g.LastEval(); !last.Equal(t0) {
			t.Errorf("LastEval = %s, want %s", last, t0)
		}
	})
}

func TestRecordingRuleFeedsLaterRules(t *testing.T) {
	// Three errors for acme in (09:59, 10:00], one for beta.
	_, q := newMemory(
		event(t0.Add(-50*time.Second), "acme", "error", 100),
		event(t0.Add(-40*time.Second), "acme", "error", 100),
		event(t0.Add(-30*time.Second), "acme", "error", 100),
		event(t0.Add(-20*time.Second), "beta", "error", 100),
		event(t0.Add(-10*time.Second), "beta", "ok", 100),
	)
	file := ruleFile("labels:\n  team: core", `
- record: tenant:errors:1m
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m]))
- record: tenant:error_ratio:1m
  expr: tenant:errors:1m / on (tenant_id) sum by (tenant_id) (count_over_time(events[1m]))
- alert: ManyErrors
  expr: tenant:errors:1m > 2 and on (tenant_id) tenant:error_ratio:1m > 0.5
  annotations:
    summary: '{{ $labels.tenant_id }}: {{ $value }} errors'`)
	g := mustGroup(t, file, engine.GroupOptions{Query: q.QueryWith})
	g.Eval(context.Background(), t0)

	t.Run("a recording rule's output carries its name and the group labels", func(t *testing.T) {
		got, at := g.Rules()[0].(*engine.RecordingRule).Samples()
		var s []string
		for _, x := range got {
			s = append(s, x.Labels.String()+" "+fmtF(x.Value))
		}
		want := []string{`{__name__="tenant:errors:1m", team="core", tenant_id="acme"} 3`, `{__name__="tenant:errors:1m", team="core", tenant_id="beta"} 1`}
		if !slices.Equal(s, want) || !at.Equal(t0) {
			t.Errorf("got %v at %s, want %v at %s", s, at, want, t0)
		}
	})
	t.Run("a later recording rule reads it at the same timestamp", func(t *testing.T) {
		got, _ := g.Rules()[1].(*engine.RecordingRule).Samples()
		var s []string
		for _, x := range got {
			s = append(s, x.Labels.Get("tenant_id")+"="+fmtF(x.Value))
		}
		if want := []string{"acme=1", "beta=0.5"}; !slices.Equal(s, want) {
			t.Errorf("got %v, want %v", s, want)
		}
	})
	t.Run("a later alerting rule reads both at the same timestamp", func(t *testing.T) {
		alerts := alertingRule(t, g, "ManyErrors").Alerts()
		if len(alerts) != 1 {
			t.Fatalf("%d alerts, want 1: %+v", len(alerts), alerts)
		}
		if got, want := alerts[0].Labels.String(), `{alertname="ManyErrors", team="core", tenant_id="acme"}`; got != want {
			t.Errorf("labels %s, want %s", got, want)
		}
		if got := alerts[0].Annotations.Get("summary"); got != "acme: 3 errors" {
			t.Errorf("summary %q", got)
		}
	})
	t.Run("a rule that reads a recording rule listed after it does not load", func(t *testing.T) {
		file := ruleFile("", `
- alert: ManyErrors
  expr: tenant:errors:1m > 2
- record: tenant:errors:1m
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m]))`)
		_, err := rulefmt.ParseRuleFile("rules.yaml", []byte(file), rulefmt.LoadOptions{})
		want := `rules.yaml:5:15: group "g", rule "ManyErrors": expr: unknown selector "tenant:errors:1m"; select one of the fields cost, input_tokens, latency_ms, output_tokens, total_tokens or events (for counting), inside a range function: p95(latency_ms[5m])`
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant  %s", err, want)
		}
	})
}

func TestErrorState(t *testing.T) {
	cases := []struct {
		name   string
		rule   string
		values string
		states map[string]string // alert labels → per step state tokens
		sent   string            // per step: number of alerts sent
		health string            // per step: o ok, e err
	}{
		{
			name:   "keep_last, the default, keeps a firing alert firing through failed evaluations and still re-sends it",
			values: "1 err err err 1 _",
			states: map[string]string{`{alertname="A", tenant_id="acme"}`: "F F F F F R"},
			sent:   "1 0 1 0 1 1",
			health: "o e e e o o",
		},
		{
			name:   "keep_last holds a pending alert through failed evaluations and counts for from its ActiveAt",
			rule:   "for: 2m",
			values: "1 err err 1 1",
			states: map[string]string{`{alertname="A", tenant_id="acme"}`: "P P P F F"},
			sent:   "0 0 0 1 0",
			health: "o e e o o",
		},
		{
			name:   "ok resolves the alert as if the query returned nothing",
			rule:   "error_state: ok",
			values: "1 err 1",
			states: map[string]string{`{alertname="A", tenant_id="acme"}`: "F R F"},
			sent:   "1 1 1",
			health: "o e o",
		},
		{
			name:   "alerting raises an alert marked callwatch_reason=error and keeps the others",
			rule:   "error_state: alerting",
			values: "1 err err _",
			states: map[string]string{
				`{alertname="A", tenant_id="acme"}`:         "F F F R",
				`{alertname="A", callwatch_reason="error"}`: "- F F R",
			},
			sent:   "1 1 1 2",
			health: "o e e o",
		},
		{
			name:   "alerting honours for",
			rule:   "for: 1m\nerror_state: alerting",
			values: "err err _",
			states: map[string]string{`{alertname="A", callwatch_reason="error"}`: "P F R"},
			sent:   "0 1 1",
			health: "e e o",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runStateTable(t, tc.rule, map[string]string{"tenant_id=acme": tc.values}, tc.states, tc.sent, tc.health)
		})
	}
}

func TestNoDataState(t *testing.T) {
	cases := []struct {
		name   string
		rule   string
		values string
		states map[string]string
		sent   string
	}{
		{
			name:   "ok, the default, resolves when no event matched",
			values: "1 nodata",
			states: map[string]string{`{alertname="A", tenant_id="acme"}`: "F R"},
			sent:   "1 1",
		},
		{
			name:   "keep_last keeps the alert firing and re-sent",
			rule:   "no_data_state: keep_last",
			values: "1 nodata nodata _",
			states: map[string]string{`{alertname="A", tenant_id="acme"}`: "F F F R"},
			sent:   "1 0 1 1",
		},
		{
			name:   "keep_last still resolves on data that does not match the condition",
			rule:   "no_data_state: keep_last",
			values: "1 _",
			states: map[string]string{`{alertname="A", tenant_id="acme"}`: "F R"},
			sent:   "1 1",
		},
		{
			name:   "alerting raises an alert marked callwatch_reason=no_data",
			rule:   "no_data_state: alerting",
			values: "nodata nodata 1",
			states: map[string]string{
				`{alertname="A", callwatch_reason="no_data"}`: "F F R",
				`{alertname="A", tenant_id="acme"}`:           "- - F",
			},
			sent: "1 0 2",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runStateTable(t, tc.rule, map[string]string{"tenant_id=acme": tc.values}, tc.states, tc.sent, "")
		})
	}
}

// runStateTable evaluates rule A over the scripted values and checks the
// state of every alert (by labels) and the number of alerts sent at each step.
func runStateTable(t *testing.T, rule string, values, states map[string]string, sent, health string) {
	t.Helper()
	n := &notifications{}
	sc := newScript(t0, time.Minute, values)
	g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr+"\n"+indent(rule)), engine.GroupOptions{Query: sc.Query, Notifier: n})
	r := alertingRule(t, g, "A")
	wantSent := strings.Fields(sent)
	wantHealth := strings.Fields(health)
	for i := range wantSent {
		ts := t0.Add(time.Duration(i) * time.Minute)
		g.Eval(context.Background(), ts)
		got := map[string]string{}
		for _, a := range r.Alerts() {
			got[a.Labels.String()] = stateToken(a)
		}
		for l, s := range states {
			want := strings.Fields(s)[i]
			g := got[l]
			if g == "" {
				g = "-"
			}
			if g != want {
				t.Errorf("step %d: %s is %s, want %s", i, l, g, want)
			}
			delete(got, l)
		}
		for l, s := range got {
			t.Errorf("step %d: unexpected alert %s (%s)", i, l, s)
		}
		if got := len(sentAlerts(n.take())); fmtF(float64(got)) != wantSent[i] {
			t.Errorf("step %d: sent %d alerts, want %s", i, got, wantSent[i])
		}
		if len(wantHealth) > 0 {
			st := r.Status()
			h, err := st.Health, st.LastError
			want := map[string]engine.RuleHealth{"o": engine.HealthGood, "e": engine.HealthBad}[wantHealth[i]]
			if h != want {
				t.Errorf("step %d: health %s (%v), want %s", i, h, err, want)
			}
		}
	}
}

func TestReasonAlertValueIsNaN(t *testing.T) {
	t.Run("the alert raised for a failed query has no value", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "err"})
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr+"\n  error_state: alerting"), engine.GroupOptions{Query: sc.Query})
		g.Eval(context.Background(), t0)
		a := alertingRule(t, g, "A").Alerts()
		if len(a) != 1 || a[0].Labels.Get(engine.ReasonLabel) != "error" || !math.IsNaN(a[0].Value) {
			t.Errorf("alerts %+v, want one callwatch_reason=error alert with value NaN", a)
		}
	})
}

func TestNoDataWithEvents(t *testing.T) {
	// acme has an error event at 09:59:30 and 10:00:30, and an ok event
	// 10 seconds later every minute until 10:05.
	events := append(everyMinute(t0.Add(-30*time.Second), t0.Add(time.Minute), "acme", "error"),
		everyMinute(t0.Add(-20*time.Second), t0.Add(5*time.Minute), "acme", "ok")...)
	cases := []struct {
		name       string
		rule       string
		expr       string
		states     string // {alertname="A", tenant_id="acme"} at 10:00..10:03
		reason     string // the callwatch_reason="no_data" alert, same steps
		lastNoData bool
	}{
		{
			name:       "an error-count rule resolves by default when no error event matches",
			expr:       alertExpr,
			states:     "F F R R",
			reason:     "- - - -",
			lastNoData: true,
		},
		{
			name:       "keep_last keeps it firing while no error event matches",
			rule:       "no_data_state: keep_last",
			expr:       alertExpr,
			states:     "F F F F",
			reason:     "- - - -",
			lastNoData: true,
		},
		{
			name:       "alerting raises the no_data alert beside the kept one",
			rule:       "no_data_state: alerting",
			expr:       alertExpr,
			states:     "F F F F",
			reason:     "- - F F",
			lastNoData: true,
		},
		{
			name:   "events that match a selector but miss the threshold are data, so keep_last resolves",
			rule:   "no_data_state: keep_last",
			expr:   `expr: sum by (tenant_id) (count_over_time(events[1m])) > 1 and on (tenant_id) sum by (tenant_id) (count_over_time(events{status="error"}[1m])) > 0`,
			states: "F F R R",
			reason: "- - - -",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, q := newMemory(events...)
			g := mustGroup(t, ruleFile("", "- alert: A\n  "+tc.expr+"\n"+indent(tc.rule)), engine.GroupOptions{Query: q.QueryWith})
			r := alertingRule(t, g, "A")
			var got, gotReason []string
			for i := range 4 {
				g.Eval(context.Background(), t0.Add(time.Duration(i)*time.Minute))
				s, reason := "-", "-"
				for _, a := range r.Alerts() {
					if a.Labels.Get(engine.ReasonLabel) == "no_data" {
						reason = stateToken(a)
					} else if a.Labels.Get("tenant_id") == "acme" {
						s = stateToken(a)
					}
				}
				got, gotReason = append(got, s), append(gotReason, reason)
			}
			if strings.Join(got, " ") != tc.states || strings.Join(gotReason, " ") != tc.reason {
				t.Errorf("states %v, no_data alert %v; want %s / %s", got, gotReason, tc.states, tc.reason)
			}
			hist := r.History()
			if len(hist) != 4 {
				t.Fatalf("history has %d records, want 4", len(hist))
			}
			if hist[0].NoData || hist[3].NoData != tc.lastNoData {
				t.Errorf("NoData at 10:00 %v, at 10:03 %v; want false, %v", hist[0].NoData, hist[3].NoData, tc.lastNoData)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	t.Run("each evaluation is recorded with its time, sample count, error and statements", func(t *testing.T) {
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1 err _", "tenant_id=beta": "1 1 _"})
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr), engine.GroupOptions{Query: sc.Query})
		r := alertingRule(t, g, "A")
		for i := range 3 {
			g.Eval(context.Background(), t0.Add(time.Duration(i)*time.Minute))
		}
		h := r.History()
		type rec struct {
			at      time.Time
			samples int
			err     string
			stmt    string
		}
		var got []rec
		for _, x := range h {
			got = append(got, rec{x.Time, x.Samples, x.Err, strings.Join(x.Statements, ";")})
		}
		want := []rec{
			{t0, 2, "", "SELECT 1 /* step 0 */"},
			{t0.Add(time.Minute), 0, errQuery.Error(), "SELECT 1 /* step 1 */"},
			{t0.Add(2 * time.Minute), 0, "", "SELECT 1 /* step 2 */"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("history\n got %+v\nwant %+v", got, want)
		}
		st := r.Status()
		health, err, last := st.Health, st.LastError, st.LastEval
		if health != engine.HealthGood || err != nil || !last.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("status %s %v %s, want ok at the last evaluation", health, err, last)
		}
	})
	t.Run("the history keeps the last 20 evaluations, oldest first", func(t *testing.T) {
		sc := newScript(t0, time.Minute, nil)
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr), engine.GroupOptions{Query: sc.Query})
		r := alertingRule(t, g, "A")
		for i := range 25 {
			g.Eval(context.Background(), t0.Add(time.Duration(i)*time.Minute))
		}
		h := r.History()
		if len(h) != 20 || !h[0].Time.Equal(t0.Add(5*time.Minute)) || !h[19].Time.Equal(t0.Add(24*time.Minute)) {
			t.Errorf("history has %d records from %s to %s, want 20 from 10:05 to 10:24", len(h), h[0].Time.Format("15:04"), h[len(h)-1].Time.Format("15:04"))
		}
	})
	t.Run("a rule not yet evaluated has unknown health", func(t *testing.T) {
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr), engine.GroupOptions{Query: newScript(t0, time.Minute, nil).Query})
		if st := alertingRule(t, g, "A").Status(); st.Health != engine.HealthUnknown {
			t.Errorf("health %s, want unknown", st.Health)
		}
	})
}

func TestFailedRecordingRuleDoesNotResolveDependents(t *testing.T) {
	t.Run("an alert reading a recording rule whose query failed keeps firing and is not resolved", func(t *testing.T) {
		// Both rules are answered by the same script: the recording rule's
		// query fails at 10:01, the alert reads its output.
		sc := newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "5 err 5"})
		file := ruleFile("", `
- record: tenant:errors:1m
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m]))
- alert: A
  expr: tenant:errors:1m > 2`)
		n := &notifications{}
		_, q := newMemory()
		query := func(ctx context.Context, e *dsl.Expr, ts time.Time, s engine.SeriesSource) (engine.Result, error) {
			if len(e.Leaves) > 0 {
				return sc.Query(ctx, e, ts, s)
			}
			return q.QueryWith(ctx, e, ts, s)
		}
		g := mustGroup(t, file, engine.GroupOptions{Query: query, Notifier: n})
		r := alertingRule(t, g, "A")
		var states []string
		for i := range 3 {
			g.Eval(context.Background(), t0.Add(time.Duration(i)*time.Minute))
			s := "-"
			if a := r.Alerts(); len(a) == 1 {
				s = stateToken(a[0])
			}
			states = append(states, s)
			if i == 1 {
				if st := r.Status(); st.Health != engine.HealthBad || st.LastError == nil {
					t.Errorf("the dependent alert's health at the failed step is %s (%v), want err", st.Health, st.LastError)
				}
			}
		}
		if got := strings.Join(states, " "); got != "F F F" {
			t.Errorf("states %s, want F F F", got)
		}
		for _, a := range sentAlerts(n.take()) {
			if a.State != engine.StateFiring {
				t.Errorf("sent a %s alert at %s, want only firing ones", a.State, a.LastSentAt.Format("15:04"))
			}
		}
	})
}

func TestCooldown(t *testing.T) {
	cases := []struct {
		name       string
		rule       string
		start      time.Time
		values     map[string]string // tenant → per step
		suppressed map[string]bool   // tenant → suppressed
		sent       []string          // tenants sent, in order; (R) when resolved; no resends (resend delay 1h)
	}{
		{
			name:       "a second alert that starts firing within the cooldown fires but is suppressed",
			rule:       "cooldown: 10m",
			values:     map[string]string{"acme": "1 1 1 1", "beta": "_ _ _ 1"},
			suppressed: map[string]bool{"beta": true},
			sent:       []string{"acme"},
		},
		{
			name:       "an alert that starts firing after the cooldown is sent",
			rule:       "cooldown: 2m",
			values:     map[string]string{"acme": "1 1 1 1", "beta": "_ _ _ 1"},
			suppressed: map[string]bool{},
			sent:       []string{"acme", "beta"},
		},
		{
			name:       "the same alert refiring within the cooldown is suppressed, and so is its resolve",
			rule:       "cooldown: 10m",
			values:     map[string]string{"acme": "1 _ 1 _ _"},
			suppressed: map[string]bool{},
			sent:       []string{"acme", "acme(R)"},
		},
		{
			name:       "two alerts that start firing at the same evaluation: the first by labels is sent",
			rule:       "cooldown: 10m",
			values:     map[string]string{"acme": "1", "beta": "1", "gamma": "1"},
			suppressed: map[string]bool{"beta": true, "gamma": true},
			sent:       []string{"acme"},
		},
		{
			name:       "the firing after max_alerts_per_day within a UTC day is suppressed",
			rule:       "max_alerts_per_day: 2",
			values:     map[string]string{"acme": "1 1 1", "beta": "_ 1 1", "gamma": "_ _ 1"},
			suppressed: map[string]bool{"gamma": true},
			sent:       []string{"acme", "beta"},
		},
		{
			name:       "max_alerts_per_day counts again from UTC midnight",
			rule:       "max_alerts_per_day: 1",
			start:      time.Date(2025, 11, 24, 23, 58, 0, 0, time.UTC),
			values:     map[string]string{"acme": "1 1 1 1", "beta": "_ 1 1 1", "gamma": "_ _ 1 1", "delta": "_ _ _ 1"},
			suppressed: map[string]bool{"beta": true, "delta": true},
			sent:       []string{"acme", "gamma"},
		},
		{
			name:       "max_alerts_per_day suppresses the later of simultaneous firings by labels",
			rule:       "max_alerts_per_day: 2",
			values:     map[string]string{"delta": "1", "beta": "1", "acme": "1"},
			suppressed: map[string]bool{"delta": true},
			sent:       []string{"acme", "beta"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := cmp(tc.start, t0)
			values := map[string]string{}
			steps := 0
			for tenant, v := range tc.values {
				values["tenant_id="+tenant] = v
				steps = max(steps, len(strings.Fields(v)))
			}
			n := &notifications{}
			sc := newScript(start, time.Minute, values)
			g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr+"\n"+indent(tc.rule)),
				engine.GroupOptions{Query: sc.Query, Notifier: n, ResendDelay: time.Hour})
			r := alertingRule(t, g, "A")
			var sent []string
			for i := range steps {
				g.Eval(context.Background(), start.Add(time.Duration(i)*time.Minute))
				for _, a := range sentAlerts(n.take()) {
					s := a.Labels.Get("tenant_id")
					if a.State == engine.StateInactive {
						s += "(R)"
					}
					sent = append(sent, s)
				}
			}
			if !slices.Equal(sent, tc.sent) {
				t.Errorf("sent %v, want %v", sent, tc.sent)
			}
			for _, a := range r.Alerts() {
				tenant := a.Labels.Get("tenant_id")
				if a.State == engine.StateFiring && (a.Suppressed != "") != tc.suppressed[tenant] {
					t.Errorf("%s: Suppressed = %q, want suppressed %v", tenant, a.Suppressed, tc.suppressed[tenant])
				}
			}
		})
	}
}

func TestSentAlertsAreCopies(t *testing.T) {
	t.Run("changing a sent alert does not change the rule's alert", func(t *testing.T) {
		n := &notifications{}
		g := mustGroup(t, ruleFile("", "- alert: A\n  "+alertExpr), engine.GroupOptions{Query: newScript(t0, time.Minute, map[string]string{"tenant_id=acme": "1"}).Query, Notifier: n})
		g.Eval(context.Background(), t0)
		sent := sentAlerts(n.take())
		sent[0].State = engine.StateInactive
		sent[0].Labels = labels.FromStrings("x", "y")
		if a := alertingRule(t, g, "A").Alerts()[0]; a.State != engine.StateFiring || a.Labels.Get("tenant_id") != "acme" {
			t.Errorf("the rule's alert changed: %+v", a)
		}
	})
}

func TestTemplateQuery(t *testing.T) {
	t.Run("query in a template runs a DSL expression at the evaluation time", func(t *testing.T) {
		_, q := newMemory(
			event(t0.Add(-10*time.Second), "acme", "error", 100),
			event(t0.Add(-20*time.Second), "acme", "ok", 100),
			event(t0.Add(-30*time.Second), "beta", "ok", 100),
			event(t0.Add(-90*time.Second), "beta", "ok", 100), // outside the window
		)
		rule := "- alert: A\n  " + alertExpr + "\n  annotations:\n" +
			`    summary: '{{ with query "sum(count_over_time(events[1m]))" }}{{ . | first | value }} calls in all{{ end }}'`
		g := mustGroup(t, ruleFile("", rule), engine.GroupOptions{Query: q.QueryWith})
		g.Eval(context.Background(), t0)
		a := alertingRule(t, g, "A").Alerts()
		if len(a) != 1 || a[0].Annotations.Get("summary") != "3 calls in all" {
			t.Errorf("alerts %+v, want one with summary %q", a, "3 calls in all")
		}
	})
	t.Run("a query in a template is bounded by the rules' limits", func(t *testing.T) {
		_, q := newMemory(event(t0.Add(-10*time.Second), "acme", "error", 100))
		rule := "- alert: A\n  " + alertExpr + "\n  annotations:\n" +
			`    summary: '{{ with query "count_over_time(events[99y])" }}{{ . | first | value }} calls{{ end }}'`
		g := mustGroup(t, ruleFile("", rule), engine.GroupOptions{Query: q.QueryWith, Limits: dsl.Limits{MaxRange: 24 * time.Hour}})
		g.Eval(context.Background(), t0)
		a := alertingRule(t, g, "A").Alerts()
		if len(a) != 1 || strings.Contains(a[0].Annotations.Get("summary"), "1 calls") || !strings.Contains(a[0].Annotations.Get("summary"), "more than the configured maximum") {
			t.Errorf("alerts %+v, want the summary to say the template's window is over max_window", a)
		}
	})
}

// TestEvaluationsAreTheSameFromRunToRun: the label and annotation
// templates of an evaluation expand in the order of their names (a
// template's queries reach ClickHouse in that order); they once followed a
// map. (ALERTS series are listed by labels where a user sees their order:
// web's TestSeriesAreListedByLabels.)
func TestEvaluationsAreTheSameFromRunToRun(t *testing.T) {
	file := ruleFile("interval: 1m", `- alert: A
  expr: count_over_time(events[5m]) > 0
  labels:
    l2: '{{ with query "count_over_time(events{status=\"b\"}[1m])" }}x{{ end }}'
    l1: '{{ with query "count_over_time(events{status=\"a\"}[1m])" }}x{{ end }}'
  annotations:
    a3: '{{ with query "count_over_time(events{status=\"e\"}[1m])" }}x{{ end }}'
    a1: '{{ with query "count_over_time(events{status=\"c\"}[1m])" }}x{{ end }}'
    a2: '{{ with query "count_over_time(events{status=\"d\"}[1m])" }}x{{ end }}'`)
	tenants := []string{"d", "b", "a", "c"}
	want := []string{"a", "b", "c", "d", "e"}
	for run := range 20 {
		var asked []string
		q := func(_ context.Context, e *dsl.Expr, _ time.Time, _ engine.SeriesSource) (engine.Result, error) {
			if e.Input == "count_over_time(events[5m]) > 0" {
				var vec []engine.Sample
				for _, tn := range tenants {
					vec = append(vec, engine.Sample{Labels: labels.FromStrings("tenant_id", tn), Value: 1})
				}
				return engine.Result{Vector: vec}, nil
			}
			asked = append(asked, e.Input)
			return engine.Result{Vector: []engine.Sample{{Value: 1}}}, nil
		}
		g := mustGroup(t, file, engine.GroupOptions{Query: q, Schema: dsl.DefaultSchema()})
		g.Eval(context.Background(), t0)
		if len(asked) != len(tenants)*len(want) {
			t.Fatalf("run %d: %d template queries, want %d", run, len(asked), len(tenants)*len(want))
		}
		for i, in := range asked {
			if status := want[i%len(want)]; !strings.Contains(in, `status="`+status+`"`) {
				t.Fatalf("run %d: template query %d is %s, want the one of status %s (labels l1, l2, then annotations a1, a2, a3)", run, i, in, status)
			}
		}
	}
}

// TestKeptAlertsExpandInLabelOrder: alerts kept without data come from
// the rule's map of alerts or of groups: beside the alert of a failed query
// or of an empty result, and a group's last alert when its group went
// missing (no_data_state: keep_last with noise controls). Their templates
// expand in the order of their labels, as a query's vector's do, so the
// queries those templates make come in the same order every time.
func TestKeptAlertsExpandInLabelOrder(t *testing.T) {
	const template = `  annotations:
    s: '{{ with query (printf "count_over_time(events{tenant_id=%q}[1m])" $labels.tenant_id) }}x{{ end }}'`
	for _, tc := range []struct{ name, rule, step2, others, want string }{
		{"a failed query, alerting", alertExpr + "\n  error_state: alerting", "err", "", "abcd"},
		{"an empty result, alerting", alertExpr + "\n  no_data_state: alerting", "nodata", "", "abcd"},
		{"groups gone missing, keep_last", "expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[1m]))\n  thresholds: [{severity: warning, op: \">\", value: 0}]\n  no_data_state: keep_last", "_", "_ 1", "eabcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for run := range 20 {
				values := map[string]string{}
				for _, tn := range []string{"d", "b", "a", "c"} {
					values["tenant_id="+tn] = "1 " + tc.step2
				}
				if tc.others != "" {
					values["tenant_id=e"] = tc.others
				}
				sc := newScript(t0, time.Minute, values)
				var asked []string
				q := func(ctx context.Context, e *dsl.Expr, ts time.Time, src engine.SeriesSource) (engine.Result, error) {
					if rest, ok := strings.CutPrefix(e.Input, `count_over_time(events{tenant_id="`); ok {
						tn, _, _ := strings.Cut(rest, `"`)
						asked = append(asked, tn)
						return engine.Result{Vector: []engine.Sample{{Value: 1}}}, nil
					}
					return sc.Query(ctx, e, ts, src)
				}
				g := mustGroup(t, ruleFile("", "- alert: A\n  "+tc.rule+"\n"+template), engine.GroupOptions{Query: q})
				g.Eval(context.Background(), t0)
				asked = nil
				g.Eval(context.Background(), t0.Add(time.Minute))
				if got := strings.Join(asked, ""); got != tc.want {
					t.Fatalf("run %d: the templates expanded for tenants %q, want %s", run, got, tc.want)
				}
			}
		})
	}
}
