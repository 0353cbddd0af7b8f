package rulefmt_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/rulefmt"
)

// channels are the notifier names the rule file tests configure.
var channels = []string{"ops-wecom"}

func parseFile(t *testing.T, path string) ([]*rulefmt.GroupSpec, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return rulefmt.ParseRuleFile(path, data, rulefmt.LoadOptions{Channels: channels})
}

func TestParseGoodFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.good.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f)+" loads without errors", func(t *testing.T) {
			if _, err := parseFile(t, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseRuleFileFields(t *testing.T) {
	groups, err := parseFile(t, "testdata/rules.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2", len(groups))
	}
	g, g2 := groups[0], groups[1]
	rec, alert, prio := g.Rules[0], g.Rules[1], g2.Rules[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"the group keeps its name and file", g.Name + " " + g.File, "latency testdata/rules.good.yaml"},
		{"interval is parsed", g.Interval, 30 * time.Second},
		{"a group without interval leaves it to the default", g2.Interval, time.Duration(0)},
		{"query_offset is parsed", g.QueryOffset, time.Minute},
		{"limit is parsed", g.Limit, 100},
		{"group labels are kept", g.Labels, map[string]string{"team": "core"}},
		{"a recording rule has its record name", rec.Name() + " " + rec.Record, "tenant:latency_p95:5m tenant:latency_p95:5m"},
		{"an alerting rule may read a recording rule listed before it", alert.Expr.Series, []string{"tenant:latency_p95:5m"}},
		{"for and keep_firing_for are parsed", []time.Duration{alert.For, alert.KeepFiringFor}, []time.Duration{5 * time.Minute, 10 * time.Minute}},
		{"labels are kept as templates", alert.Labels, map[string]string{"tenant": "{{ $labels.tenant_id }}"}},
		{"annotations are kept as templates", alert.Annotations["summary"], "p95 latency of {{ $labels.tenant_id }} is {{ $value | humanize }}ms"},
		{"severity is kept", alert.Severity, rulefmt.SeverityWarning},
		{"priority high maps to severity error", prio.Severity, rulefmt.SeverityError},
		{"cooldown and max_alerts_per_day are parsed", []any{alert.Cooldown, alert.MaxAlertsPerDay}, []any{30 * time.Minute, 10}},
		{"notify lists channels", alert.Notify, []string{"ops-wecom"}},
		{"no_data_state and error_state are parsed", []rulefmt.StatePolicy{alert.NoDataState, alert.ErrorState}, []rulefmt.StatePolicy{rulefmt.KeepLast, rulefmt.Alerting}},
		{"no_data_state defaults to ok and error_state to keep_last", []rulefmt.StatePolicy{prio.NoDataState, prio.ErrorState}, []rulefmt.StatePolicy{rulefmt.OK, rulefmt.KeepLast}},
		{"debug is parsed", alert.Debug, true},
		{"a rule's position is that of its first key", alert.Pos, rulefmt.Position{File: "testdata/rules.good.yaml", Line: 14, Col: 9}},
		{"a block scalar expr is kept as written", prio.ExprText, "sum by (tenant_id) (count_over_time(events{status=\"error\"}[5m]))\n  > 10\n"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !equal(c.got, c.want) {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}
}

func equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]string:
		return maps.Equal(x, b.(map[string]string))
	case []string:
		return slices.Equal(x, b.([]string))
	case []time.Duration:
		return slices.Equal(x, b.([]time.Duration))
	case []rulefmt.StatePolicy:
		return slices.Equal(x, b.([]rulefmt.StatePolicy))
	case []any:
		return slices.Equal(x, b.([]any))
	}
	return a == b
}

// dslEventsErr is the DSL's message for avg_over_time(events[5m]).
const dslEventsErr = `expr: avg_over_time needs a field, not events; events have no value to aggregate: write count_over_time(events[...]) or avg_over_time(latency_ms[...])`

func TestParseBadFiles(t *testing.T) {
	cases := []struct {
		name string
		file string
		want []string // without the "testdata/FILE:" prefix
	}{
		{"an unknown rule key suggests the closest known one", "unknown-rule-key",
			[]string{`6:9: group "g", rule "r": unknown key "anotations"; did you mean "annotations"?`}},
		{"an unknown group key suggests the closest known one", "unknown-group-key",
			[]string{`3:5: group "g": unknown key "intervall"; did you mean "interval"?`}},
		{"an unknown key close to none lists the known keys", "unknown-key-far",
			[]string{`6:9: group "g", rule "r": unknown key "owner"; known keys: alert, record, expr, for, keep_firing_for, labels, annotations, severity, priority, cooldown, max_alerts_per_day, notify, no_data_state, error_state, debug, thresholds, recover_below, recover_above, min_events, new_group_grace, repeat_interval, no_data_window, evidence`}},
		{"a bad duration points at the value", "bad-for",
			[]string{`6:14: group "g", rule "r": for: "5 minutes" is not a duration; write e.g. 30s, 5m, 1h or 1d`}},
		{"a bad interval is reported once", "bad-interval",
			[]string{`3:15: group "g": interval: "5 minutes" is not a duration; write e.g. 30s, 5m, 1h or 1d`}},
		{"a zero interval is refused", "zero-interval",
			[]string{`3:15: group "g": interval must be positive, e.g. 1m`}},
		{"a bad severity lists the severities", "bad-severity",
			[]string{`6:19: group "g", rule "r": severity "urgent": write one of info, warning, error, critical`}},
		{"a bad priority lists the priorities", "bad-priority",
			[]string{`6:19: group "g", rule "r": priority "p1": write one of low, medium, high, critical`}},
		{"severity and priority together are refused", "severity-and-priority",
			[]string{`7:19: group "g", rule "r": give severity or priority, not both`}},
		{"a rule with both alert and record is refused", "alert-and-record",
			[]string{`4:9: group "g", rule "r": a rule is either alert: or record:, not both`}},
		{"a rule without expr is refused", "missing-expr",
			[]string{`4:9: group "g", rule "r": expr: is missing; write e.g. expr: p95(latency_ms[5m]) > 5000`}},
		{"a DSL error in a plain expr points inside it", "dsl-plain",
			[]string{`5:60: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error in a plain expr continued on the next line points at that line", "dsl-plain-multiline",
			[]string{`6:33: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error in a double-quoted expr points inside it", "dsl-double-quoted",
			[]string{`5:61: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error after escaped quotes in a double-quoted expr counts the escapes", "dsl-double-quoted-escapes",
			[]string{`5:84: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error after a \\u escape counts its six characters", "dsl-unicode-escape",
			[]string{`5:88: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error after doubled quotes in a single-quoted expr counts both", "dsl-single-quoted",
			[]string{`5:84: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error after CJK characters counts characters, not bytes", "dsl-unicode",
			[]string{`5:82: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error in a block scalar points at its line", "dsl-block",
			[]string{`6:25: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error on a more-indented line of a block scalar keeps its column", "dsl-block-nested",
			[]string{`7:27: group "g", rule "r": ` + dslEventsErr}},
		{"a DSL error in a folded block scalar points at its source line", "dsl-folded",
			[]string{`7:33: group "g", rule "r": ` + dslEventsErr}},
		{"an alerting rule whose expr is a number is refused", "scalar-alert",
			[]string{`5:15: group "g", rule "r": an alerting rule's expr must give a vector; compare it, e.g. 1 + 1 > 5000`}},
		{"a template that does not parse is refused at load", "template",
			[]string{`7:20: group "g", rule "r": template: annotations.summary:1: unclosed action`}},
		{"a second rule with the same name and labels is a duplicate", "duplicate-rule",
			[]string{`6:9: group "g", rule "r": duplicate rule: another rule of this group has the same name and labels`}},
		{"a group name used twice in a file is refused", "duplicate-group",
			[]string{`6:5: group "g": group name is used twice in this file`}},
		{"notify to a channel that is not configured is refused", "unknown-channel",
			[]string{`6:17: group "g", rule "r": notify: no channel named "pager"; configured channels: ops-wecom`}},
		{"alerting-only keys on a recording rule are refused", "alert-keys-on-record",
			[]string{
				`6:14: group "g", rule "r:count": for applies to alerting rules only`,
				`7:19: group "g", rule "r:count": severity applies to alerting rules only`,
				`9:11: group "g", rule "r:count": recording rules have no annotations`,
			}},
		{"every problem of a file is reported, in order", "many-errors",
			[]string{
				`6:14: group "g", rule "r": for: "soon" is not a duration; write e.g. 30s, 5m, 1h or 1d`,
				`7:9: group "g", rule "bad name": record: "bad name" is not a valid metric name (letters, digits, _ and :)`,
				`9:9: group "g": a rule needs alert: NAME (alerting) or record: NAME (recording)`,
			}},
		{"evidence: names mapped labels, bounded counts, and examples only with a request-id column", "evidence",
			[]string{
				`7:17: group "g", rule "a": evidence.top: "error_cod" is not a label of the schema; did you mean "error_code"?`,
				`7:35: group "g", rule "a": evidence.top lists "model" twice`,
				`8:11: group "g", rule "a": unknown key "limt"; did you mean "limit"?`,
				`9:21: group "g", rule "a": evidence.examples needs the column holding each call's request id: set schema.request_id in the configuration (e.g. request_id: request_id), or leave examples out`,
				`13:18: group "g", rule "b": evidence.limit must be an integer from 1 to 20`,
				`16:19: group "g", rule "c": evidence must be a mapping, e.g. evidence: {top: [error_code, model], limit: 5}`,
				`19:19: group "g", rule "d": evidence asks for nothing: list labels in top (e.g. top: [error_code, model]) or set examples`,
				`22:19: group "g", rule "r:count": evidence applies to alerting rules only`,
			}},
		{"invalid YAML reports its line", "unclosed-quote",
			[]string{`5:1: invalid YAML: found unexpected end of stream`}},
	}
	tested := map[string]bool{}
	for _, tc := range cases {
		tested[tc.file] = true
		t.Run(tc.name, func(t *testing.T) {
			path := "testdata/" + tc.file + ".bad.yaml"
			groups, err := parseFile(t, path)
			if err == nil {
				t.Fatalf("no error; groups %v", groups)
			}
			if groups != nil {
				t.Errorf("groups returned with errors: %v", groups)
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, path+":"+w)
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			var es rulefmt.Errors
			var fe *rulefmt.FileError
			if !errors.As(err, &es) || !errors.As(es[0], &fe) || fe.Pos.File != path {
				t.Errorf("err is %T, want rulefmt.Errors of *rulefmt.FileError", err)
			}
		})
	}
	t.Run("every bad file in testdata has a case", func(t *testing.T) {
		files, _ := filepath.Glob("testdata/*.bad.yaml")
		for _, f := range files {
			if name := strings.TrimSuffix(filepath.Base(f), ".bad.yaml"); !tested[name] {
				t.Errorf("%s has no case", f)
			}
		}
	})
}

func TestParseRuleFileChecks(t *testing.T) {
	cases := []struct {
		name string
		opts rulefmt.LoadOptions
		rule string
		want string // "" for no error
	}{
		{"notify is not checked when no channels are configured", rulefmt.LoadOptions{},
			"- alert: r\n  expr: count_over_time(events[5m]) > 1\n  notify: [anything]", ""},
		{"a recording rule's labels are not templates", rulefmt.LoadOptions{},
			"- record: r:count\n  expr: count_over_time(events[5m])\n  labels:\n    x: '{{ bad'", ""},
		{"an alerting rule's labels are templates", rulefmt.LoadOptions{},
			"- alert: r\n  expr: count_over_time(events[5m]) > 1\n  labels:\n    x: '{{ bad'",
			`rules.yaml:7:14: group "g", rule "r": template: labels.x:1: function "bad" not defined`},
		{"severity conflicting with a severity label is refused", rulefmt.LoadOptions{},
			"- alert: r\n  expr: count_over_time(events[5m]) > 1\n  severity: info\n  labels:\n    severity: critical",
			`rules.yaml:4:9: group "g", rule "r": severity "info" conflicts with labels.severity "critical"; keep one`},
		{"an invalid label name is refused", rulefmt.LoadOptions{},
			"- alert: r\n  expr: count_over_time(events[5m]) > 1\n  labels:\n    __meta: x",
			`rules.yaml:7:11: group "g", rule "r": labels: "__meta" is not a valid label name (letters, digits and _, not starting with a digit or __)`},
		{"a bad no_data_state lists the policies", rulefmt.LoadOptions{},
			"- alert: r\n  expr: count_over_time(events[5m]) > 1\n  no_data_state: resolve",
			`rules.yaml:6:24: group "g", rule "r": no_data_state "resolve": write keep_last, ok or alerting`},
		{"a negative max_alerts_per_day is refused", rulefmt.LoadOptions{},
			"- alert: r\n  expr: count_over_time(events[5m]) > 1\n  max_alerts_per_day: -1",
			`rules.yaml:6:29: group "g", rule "r": max_alerts_per_day must be a non-negative integer (0 = no limit)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rulefmt.ParseRuleFile("rules.yaml", []byte(ruleFile("", tc.rule)), tc.opts)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLoadFiles(t *testing.T) {
	t.Run("a group name used in two files is refused", func(t *testing.T) {
		_, err := rulefmt.LoadFiles([]string{"testdata/dup-group-*.yaml"}, rulefmt.LoadOptions{})
		want := `testdata/dup-group-b.yaml:1:1: group "shared": group name already used in testdata/dup-group-a.yaml; group names must be unique across rule files`
		if err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
	})
	t.Run("good files load in file order", func(t *testing.T) {
		groups, err := rulefmt.LoadFiles([]string{"testdata/*.good.yaml", "testdata/rules.good.yaml"}, rulefmt.LoadOptions{Channels: channels})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range groups {
			names = append(names, g.Name)
		}
		if want := []string{"latency", "errors"}; !slices.Equal(names, want) {
			t.Errorf("groups %v, want %v (a file matched twice loads once)", names, want)
		}
	})
	t.Run("errors of every file are returned together and no groups", func(t *testing.T) {
		groups, err := rulefmt.LoadFiles([]string{"testdata/bad-for.bad.yaml", "testdata/rules.good.yaml", "testdata/bad-severity.bad.yaml"}, rulefmt.LoadOptions{Channels: channels})
		var es rulefmt.Errors
		if groups != nil || !errors.As(err, &es) || len(es) != 2 {
			t.Fatalf("groups %v, err %v; want no groups and two errors", groups, err)
		}
	})
	t.Run("a pattern that matches nothing loads nothing", func(t *testing.T) {
		groups, err := rulefmt.LoadFiles([]string{"testdata/none-*.yaml"}, rulefmt.LoadOptions{})
		if err != nil || len(groups) != 0 {
			t.Errorf("groups %v, err %v", groups, err)
		}
	})
	t.Run("a bad pattern is an error", func(t *testing.T) {
		if _, err := rulefmt.LoadFiles([]string{"testdata/[.yaml"}, rulefmt.LoadOptions{}); err == nil {
			t.Error("no error")
		}
	})
}
