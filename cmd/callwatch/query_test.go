package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQuery(t *testing.T) {
	s := server.Get(t)
	at := time.Unix(1764000000, 0).UTC()
	var rows []map[string]any
	var jsonl strings.Builder
	for i, lat := range []int{100, 200, 5123, 9000} {
		tenant := "acme"
		if i == 3 {
			tenant = "beta"
		}
		ts := at.Add(-time.Duration(i) * time.Minute)
		rows = append(rows, map[string]any{"created_at": ts, "tenant_id": tenant, "status": "ok", "latency_ms": lat})
		fmt.Fprintf(&jsonl, `{"created_at": %q, "tenant_id": %q, "status": "ok", "latency_ms": %d}`+"\n", ts.Format(time.RFC3339), tenant, lat)
	}
	cfgFile := callsConfig(t, s, callsTable(t, s, rows))
	eventsFile := filepath.Join(filepath.Dir(cfgFile), "events.jsonl")
	writeFile(t, eventsFile, jsonl.String())

	const want = `{"resultType":"vector","result":[{"metric":{"tenant_id":"acme"},"value":[1764000000,"5123"]},{"metric":{"tenant_id":"beta"},"value":[1764000000,"9000"]}]}` + "\n"
	for _, tc := range []struct{ name, flag, file string }{
		{"over ClickHouse", "--config.file", cfgFile},
		{"over a JSON Lines file in memory", "--events", eventsFile},
	} {
		t.Run(tc.name+" it prints the data object of /api/v1/query", func(t *testing.T) {
			code, out, errOut := runCLI("query", tc.flag, tc.file, "--time", "2025-11-24T16:00:00Z",
				"max by (tenant_id) (p95(latency_ms[5m]))")
			if code != 0 || out != want {
				t.Fatalf("exit %d\n got: %s\nwant: %s\nstderr: %s", code, out, want, errOut)
			}
		})
	}
	t.Run("a scalar prints as a scalar", func(t *testing.T) {
		code, out, errOut := runCLI("query", "--events", eventsFile, "--time", "1764000000", "scalar(count_over_time(events[10m])) * 2")
		if code != 0 || out != `{"resultType":"scalar","result":[1764000000,"8"]}`+"\n" {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
	})
	t.Run("a bad expression exits 1 with line:col, a hint and a caret", func(t *testing.T) {
		code, _, msg := runCLI("query", "--events", eventsFile, "sum(\n  irate(latency_ms[5m]))")
		if code != 1 || !strings.Contains(msg, "2:3: function \"irate\" is not supported") || !strings.Contains(msg, "\n    ^") {
			t.Fatalf("exit %d: %q", code, msg)
		}
	})
}

// TestOneLimitCheckForRulesQueriesAndChecks: the configured max_window
// bounds `callwatch query`, `check rules` and `backtest` as it bounds
// serve's rules.
func TestOneLimitCheckForRulesQueriesAndChecks(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callwatch.yaml")
	writeFile(t, cfg, "limits: {max_window: 1d}\n")
	rules := filepath.Join(dir, "r.yaml")
	writeFile(t, rules, "groups:\n  - name: g\n    rules:\n      - alert: Long\n        expr: count_over_time(events[2d]) > 1\n")
	eventsFile := filepath.Join("..", "..", "testdata", "sample_events.jsonl")
	if code, out, errOut := runCLI("check", "rules", "--config.file", cfg, rules); code != 1 ||
		!strings.Contains(out, "more than the configured maximum") {
		t.Errorf("check rules of a 2d window under max_window 1d: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("query", "--config.file", cfg, "--events", eventsFile, "count_over_time(events[2d])"); code == 0 ||
		!strings.Contains(errOut, "more than the configured maximum") {
		t.Errorf("query of a 2d window under max_window 1d: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("backtest", "--config.file", cfg, "--events", eventsFile,
		"--from", "2025-11-24T16:00:00Z", "--to", "2025-11-24T16:10:00Z", rules); code == 0 ||
		!strings.Contains(errOut, "more than the configured maximum") {
		t.Errorf("backtest of a 2d window under max_window 1d: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("query", "--events", eventsFile, "count_over_time(events[290y] offset 3y)"); code == 0 ||
		!strings.Contains(errOut, "longer than callwatch allows") {
		t.Errorf("query of [290y] offset 3y: exit %d\n%s%s", code, out, errOut)
	}
}

// writeErrorRatioRules writes dir/rules.yaml with two error ratios and
// returns the file: ErrorRatio, ungrouped, whose sides never match
// ({status="error"} against {}: a static check's finding at 5:15), and
// ErrorRatioFixed, each side summed to one series.
func writeErrorRatioRules(t *testing.T, dir string) string {
	t.Helper()
	rules := filepath.Join(dir, "rules.yaml")
	writeFile(t, rules, `groups:
  - name: g
    rules:
      - alert: ErrorRatio
        expr: count_over_time(events{status="error"}[5m]) / count_over_time(events[5m]) > 0.05
        severity: warning
      - alert: ErrorRatioFixed
        expr: sum(count_over_time(events{status="error"}[5m])) / sum(count_over_time(events[5m])) > 0.05
        severity: warning
`)
	return rules
}

// TestStaticChecksCatchAnAlwaysEmptyRule: the ungrouped error ratio,
// {status="error"} divided by {}, never fires; check rules warns at its
// position with what to write, --lint fatal fails, and query refuses it.
func TestStaticChecksCatchAnAlwaysEmptyRule(t *testing.T) {
	dir := t.TempDir()
	rules := writeErrorRatioRules(t, dir)
	if code, out, errOut := runCLI("check", "rules", rules); code != 0 ||
		!strings.Contains(out, "SUCCESS: 2 rules found") || !strings.Contains(out, "WARNING: 1 findings") ||
		!strings.Contains(out, rules+`:5:15: group "g", rule "ErrorRatio": expr: the two sides of / never match`) ||
		!strings.Contains(out, "ignoring(status)") || strings.Contains(out, "ErrorRatioFixed") {
		t.Errorf("check rules: exit %d, want 0 with one warning at 5:15 naming ignoring(status)\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCLI("check", "rules", "--lint", "fatal", rules); code != 1 || !strings.Contains(out, "FAILED (--lint fatal)") {
		t.Errorf("check rules --lint fatal: exit %d, want 1\n%s", code, out)
	}
	if code, out, _ := runCLI("check", "rules", "--lint", "none", rules); code != 0 || strings.Contains(out, "WARNING") {
		t.Errorf("check rules --lint none: exit %d, want 0 without warnings\n%s", code, out)
	}
	events := filepath.Join(dir, "events.jsonl")
	writeFile(t, events, "")
	if code, out, errOut := runCLI("query", "--events", events, `count_over_time(events{status="error"}[5m]) / count_over_time(events[5m])`); code == 0 ||
		!strings.Contains(errOut, "never match") {
		t.Errorf("query of an always-empty expression: exit %d, want an error\n%s%s", code, out, errOut)
	}
}

// TestStaticChecksOfRuleFiles: a for shorter than the group's interval and
// tiers out of order are warnings at their line, and fatal with --lint fatal.
func TestStaticChecksOfRuleFiles(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, rules, `groups:
  - name: g
    interval: 2m
    rules:
      - alert: Short
        expr: max by (tenant_id) (p95(latency_ms[5m])) > 5000
        for: 1m
        severity: warning
      - alert: Tiers
        expr: max by (tenant_id) (p95(latency_ms[5m]))
        thresholds:
          - {severity: warning, op: ">", value: 5000}
          - {severity: critical, op: ">", value: 3000}
      - alert: Template
        expr: max by (tenant_id) (p95(latency_ms[5m])) > 5000
        severity: warning
        annotations:
          summary: "{{ $labels.tenant_id }} on {{ $labels.model }} is slow"
      - alert: Window
        expr: count_over_time(events{status="error"}[90s]) > 3
        severity: warning
      - alert: Fine
        expr: max by (tenant_id) (p95(latency_ms[5m]))
        for: 4m
        annotations:
          summary: "{{ $labels.tenant_id }} is slow"
        thresholds:
          - {severity: warning, op: ">", value: 3000}
          - {severity: critical, op: ">", value: 5000}
`)
	code, out, errOut := runCLI("check", "rules", rules)
	for _, want := range []string{
		"WARNING: 4 findings",
		`rule "Window": expr: count_over_time(events{status="error"}[90s]): the window or offset is not a whole number of clickhouse.incremental.bucket (1m)`,
		rules + `:18:20: group "g", rule "Template": annotations.summary reads the label model, but the expression's result carries only tenant_id`,
		rules + `:7:14: group "g", rule "Short": for 1m is shorter than the group's interval 2m`,
		rules + `:12:11: group "g", rule "Tiers": thresholds out of order: critical (> 3000) is not stricter than warning (> 5000)`,
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("check rules: exit %d, want 0 and %q in\n%s%s", code, want, out, errOut)
		}
	}
	if strings.Contains(out, `rule "Fine"`) {
		t.Errorf("a rule with ordered tiers and a long enough for was reported:\n%s", out)
	}
	if code, out, _ := runCLI("check", "rules", "--lint", "fatal", rules); code != 1 {
		t.Errorf("check rules --lint fatal: exit %d, want 1\n%s", code, out)
	}
}
