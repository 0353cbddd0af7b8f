package rulefmt_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/rulefmt"
)

const sloFile = `slos:
  - name: chat
    objective: 99.9
    window: 28d
    by: [tenant_id]
    min_events: 20
    sli:
      errors: '{status="error"}'
      total: events
budgets:
  - name: spend
    limit: 50
    period: 30d
    thresholds: [100, 80]
`

func TestSLOAndBudgetCompileToRuleGroups(t *testing.T) {
	groups, err := rulefmt.ParseRuleFile("slo.yaml", []byte(sloFile), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].Name != "slo:chat" || groups[1].Name != "budget:spend" {
		t.Fatalf("groups %v, want slo:chat and budget:spend", groups)
	}
	s, b := groups[0].SLO, groups[1].Budget
	if s == nil || b == nil {
		t.Fatal("the generated groups do not point back to their SLO and budget")
	}
	// 28d: the workbook's windows, with factors scaled as Sloth's
	// (2% of the budget in 1h is 0.02 × 672h / 1h = 13.44×).
	var factors []float64
	for _, a := range s.Alerts {
		factors = append(factors, a.Factor)
	}
	if got, want := factors, []float64{13.44, 5.6, 2.8, 0.933333}; !slices.Equal(got, want) {
		t.Errorf("factors %v, want %v", got, want)
	}
	if got := s.ErrorBudget(); got != 0.001 {
		t.Errorf("error budget %v, want 0.001 (not 100 − 99.9 in floating point)", got)
	}
	byName := map[string][]*rulefmt.RuleSpec{}
	for _, r := range groups[0].Rules {
		byName[r.Name()] = append(byName[r.Name()], r)
	}
	if n := len(byName["slo:burn_rate:ratio"]); n != 7 {
		t.Errorf("%d burn-rate records, want one per window (5m 30m 1h 2h 6h 1d 3d)", n)
	}
	page := byName["SLOBurnRate"][0]
	wantExpr := `((((sum by (tenant_id) (count_over_time(events{status="error"}[1h])) or 0 * sum by (tenant_id) (count_over_time(events[1h]))) / sum by (tenant_id) (count_over_time(events[1h]))) / 0.001) <= ` +
		`(((sum by (tenant_id) (count_over_time(events{status="error"}[5m])) or 0 * sum by (tenant_id) (count_over_time(events[5m]))) / sum by (tenant_id) (count_over_time(events[5m]))) / 0.001) or ` +
		`(((sum by (tenant_id) (count_over_time(events{status="error"}[5m])) or 0 * sum by (tenant_id) (count_over_time(events[5m]))) / sum by (tenant_id) (count_over_time(events[5m]))) / 0.001)) > 13.44`
	if page.ExprText != wantExpr {
		t.Errorf("page expr:\n%s\nwant\n%s", page.ExprText, wantExpr)
	}
	if page.For != 2*time.Minute || page.Severity != rulefmt.SeverityCritical || page.Labels["long"] != "1h" || page.Labels["short"] != "5m" || page.Labels["burn_rate"] != "13.44" {
		t.Errorf("page: for %s, severity %s, labels %v", page.For, page.Severity, page.Labels)
	}
	if q := page.Quality; q == nil || q.MinEvents != 20 || q.Count == nil || q.Count.Input != `sum by (tenant_id) (count_over_time(events[1h]))` {
		t.Errorf("min_events must count the long window's events, got %+v", page.Quality)
	}
	if page.Pos.Line != 2 {
		t.Errorf("a generated rule is at its SLO's line, got %s", page.Pos)
	}
	var thresholds []string
	for _, r := range groups[1].Rules {
		if r.Alert == "BudgetConsumed" {
			thresholds = append(thresholds, r.Labels["threshold"]+":"+string(r.Severity))
		}
	}
	if got := strings.Join(thresholds, " "); got != "80:warning 100:critical" {
		t.Errorf("budget alerts %s, want one per threshold, ascending, critical from 100%%", got)
	}
	if b.PaceWindow != 24*time.Hour {
		t.Errorf("pace window %s, want the period / 30", b.PaceWindow)
	}
}

func TestSLOAndBudgetErrorsArePositioned(t *testing.T) {
	cases := []struct{ name, file, want string }{
		{"an unknown key gets a did-you-mean", "slos:\n  - name: a\n    objectiv: 99\n", `slo.yaml:3:5: unknown key "objectiv"; did you mean "objective"?`},
		{"an objective must be a percent in (0, 100)", "slos:\n  - name: a\n    objective: 100\n    window: 30d\n    sli: {errors: events, total: events}\n", `slo.yaml:3:16: slo "a": objective "100": write a percent strictly between 0 and 100`},
		{"a calendar month's zone must be an IANA zone", "slos:\n  - name: a\n    objective: 99\n    window: month\n    time_zone: Mars/Base\n    sli: {errors: events, total: events}\n", `slo.yaml:5:16: slo "a": time_zone: time zone "Mars/Base" is not a zone of the IANA database; write e.g. UTC, Europe/Berlin or Asia/Shanghai`},
		{"a zone needs a calendar month", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    time_zone: UTC\n    sli: {errors: events, total: events}\n", `slo.yaml:5:16: slo "a": time_zone applies to a calendar month; write window: month, or remove time_zone: for a rolling window`},
		{"a short SLO window is refused", "slos:\n  - name: a\n    objective: 99\n    window: 1d\n    sli: {errors: events, total: events}\n", `slo.yaml:4:13: slo "a": window 1d is shorter than 7d`},
		{"a selector's label is checked against the schema", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {errors: 'events{tenant=\"x\"}', total: events}\n", `slo.yaml:5:20: slo "a": errors: "tenant" is not a label of call events`},
		{"a bare selector's error points into it", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {errors: '{stats=\"x\"}', total: events}\n", `slo.yaml:5:20: slo "a": errors: "stats" is not a label of call events`},
		{"a selector is not an expression", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {errors: 'events + 1', total: events}\n", `slo.yaml:5:19: slo "a": errors must be one selector, such as events{status="error"}, not an expression`},
		{"a ratio SLI selects events", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {errors: 'latency_ms', total: events}\n", `slo.yaml:5:19: slo "a": errors selects "latency_ms"; write a selector of events`},
		{"a by label is checked with a did-you-mean", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    by: [tenantid]\n    sli: {errors: events, total: events}\n", `slo.yaml:5:10: slo "a": by: "tenantid" is not a label of call events; did you mean "tenant_id"?`},
		{"an SLI needs errors and total, or field and le", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {errors: events}\n", `slo.yaml:5:10: slo "a": sli: errors: needs total: too`},
		{"a latency field must be a field", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {field: latency, le: 2000}\n", `slo.yaml:5:18: slo "a": sli: field "latency" is not a numeric field`},
		{"labels the alerts set are refused", "slos:\n  - name: a\n    objective: 99\n    window: 30d\n    sli: {errors: events, total: events}\n    alerting: {labels: {severity: page}}\n", `slo.yaml:6:24: slo "a": labels.severity is set by callwatch`},
		{"a budget needs a positive limit", "budgets:\n  - name: b\n    limit: -1\n    period: 30d\n", `slo.yaml:3:12: budget "b": limit "-1": write a positive number`},
		{"a budget's cost must be a field", "budgets:\n  - name: b\n    cost: price\n    limit: 1\n    period: 30d\n", `slo.yaml:3:11: budget "b": cost: "price" is not a numeric field`},
		{"a budget's zone must be an IANA zone", "budgets:\n  - name: b\n    limit: 1\n    period: month\n    time_zone: Local\n", `slo.yaml:5:16: budget "b": time_zone: time zone "Local" is not a zone: the machine's own zone differs between machines; name an IANA zone`},
		{"a budget's period is a duration or month", "budgets:\n  - name: b\n    limit: 1\n    period: monthly-ish\n", `slo.yaml:4:13: budget "b": period: "monthly-ish" is not a duration; write e.g. 30s, 5m, 1h or 1d; write a rolling window such as 30d, or month for a calendar month`},
		{"SLO and budget names are unique", "slos:\n  - {name: a, objective: 99, window: 30d, sli: {errors: events, total: events}}\n  - {name: a, objective: 99, window: 30d, sli: {errors: events, total: events}}\n", `group "slo:a": group name is used twice in this file`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := rulefmt.ParseRuleFile("slo.yaml", []byte(c.file), rulefmt.LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v\nwant it to contain %s", err, c.want)
			}
		})
	}
}

// A calendar month slides on buckets only where the zone's months start on
// a bucket edge: Asia/Kolkata (UTC+5:30) with 1h buckets never does, and
// check rules says so; Asia/Shanghai (UTC+8) does.
func TestCalendarMonthOffABucketEdgeWarns(t *testing.T) {
	file := `groups:
  - name: g
    rules:
      - record: kolkata
        expr: month_to_date(sum_over_time(cost[31d]), "Asia/Kolkata")
      - record: shanghai
        expr: month_to_date(sum_over_time(cost[31d]), "Asia/Shanghai")
`
	for _, c := range []struct {
		bucket time.Duration
		warned []string
	}{{time.Hour, []string{"kolkata"}}, {15 * time.Minute, nil}} {
		groups, err := rulefmt.ParseRuleFile("month.yaml", []byte(file), rulefmt.LoadOptions{Bucket: c.bucket, LateWindow: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var warned []string
		for _, r := range groups[0].Rules {
			for _, w := range r.Warnings {
				if !strings.Contains(w.Error(), "do not start on a whole number of clickhouse.incremental.bucket") {
					t.Errorf("unexpected warning %v", w)
				}
				warned = append(warned, r.Name())
			}
		}
		if !slices.Equal(warned, c.warned) {
			t.Errorf("bucket %s: warnings on %v, want %v", c.bucket, warned, c.warned)
		}
	}
}
