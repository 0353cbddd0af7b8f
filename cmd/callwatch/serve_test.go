package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServe runs `callwatch serve` on a real ClickHouse with the given rule
// file and returns its base URL.
func startServe(t *testing.T, rules string) (base, dir string, out *syncBuffer) {
	t.Helper()
	return startServeWith(t, rules, "")
}

// startServeWith is startServe with more keys of the clickhouse section
// (indented YAML lines).
func startServeWith(t *testing.T, rules, clickhouseKeys string) (base, dir string, out *syncBuffer) {
	t.Helper()
	s := server.Get(t)
	return serveOn(t, s, errorEvents(t, s, 5), rules, clickhouseKeys)
}

// waitForErrorsAlert waits until serveRules' one Errors alert fires with
// its summary.
func waitForErrorsAlert(t *testing.T, base string) {
	t.Helper()
	waitFor(t, "the alert to fire", 15*time.Second, func() bool {
		a := apiAlerts(t, base)
		return len(a.Data.Alerts) == 1 && a.Data.Alerts[0].State == "firing" && a.Data.Alerts[0].Annotations["summary"] == "acme: 5 errors"
	})
}

func TestServeEvaluatesRulesAgainstClickHouse(t *testing.T) {
	base, dir, out := startServe(t, serveRules)

	waitForErrorsAlert(t, base)
	waitFor(t, "the console notification", 5*time.Second, func() bool {
		return strings.Contains(out.String(), "status=firing rule=Errors")
	})

	t.Run("the rule shows its health and the SQL that ran", func(t *testing.T) {
		e := ruleEvaluations(t, base, "Errors").Data[0].Evaluations
		last := e[len(e)-1]
		if last.Err != "" || last.Samples != 1 || len(last.Statements) != 1 || !strings.Contains(last.Statements[0], "countIf") {
			t.Fatalf("last evaluation = %+v", last)
		}
	})

	t.Run("a broken rule file is refused and the running rules stay", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "rules", "r.yaml"), "groups:\n  - name: e2e\n    rules:\n      - alert: Errors\n        expr: p95(latency_ms)\n")
		if code, body := post(t, base+"/-/reload", ""); code != 500 || !strings.Contains(body, "r.yaml:5:") {
			t.Fatalf("reload: %d %s", code, body)
		}
		if a := apiAlerts(t, base); len(a.Data.Alerts) != 1 || a.Data.Alerts[0].State != "firing" {
			t.Fatalf("alerts after a failed reload: %+v", a)
		}
		if metric(t, base, "callwatch_config_last_reload_successful") != 0 {
			t.Fatalf("reload metric not 0")
		}
	})

	t.Run("a fixed rule file is picked up and the alert keeps its state", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "rules", "r.yaml"), serveRules+"      - record: tenant:errors:5m\n        expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[5m]))\n")
		if code, body := post(t, base+"/-/reload", ""); code != 200 {
			t.Fatalf("reload: %d %s", code, body)
		}
		if a := apiAlerts(t, base); len(a.Data.Alerts) != 1 || a.Data.Alerts[0].State != "firing" {
			t.Fatalf("alerts after reload: %+v", a)
		}
	})
}

// TestServeEvaluatesIncrementally runs a rule on the incremental path (1s
// buckets, so every evaluation of a 1s group is on a bucket edge): the
// alert fires with the right value, and once the first evaluation's
// backfill is done the SQL that ran reads partial aggregates per bucket and
// the alert still has its value.
func TestServeEvaluatesIncrementally(t *testing.T) {
	base, _, _ := startServeWith(t, serveRules, "  incremental: {bucket: 1s, late_window: 5s}\n")
	waitForErrorsAlert(t, base)
	// The first evaluation is a full query while the buckets are filled in
	// the background; the next ones read partial aggregates, and say so.
	waitFor(t, "an evaluation from partial aggregates", 10*time.Second, func() bool {
		e := ruleEvaluations(t, base, "Errors").Data[0].Evaluations
		last := e[len(e)-1]
		return len(last.Statements) == 1 && strings.Contains(last.Statements[0], "intDiv") &&
			len(last.Paths) == 1 && last.Paths[0].Path == "incremental" &&
			last.Paths[0].Leaf == `count_over_time(events{status="error"}[5m]) by (tenant_id)`
	})
	if a := apiAlerts(t, base); len(a.Data.Alerts) != 1 || a.Data.Alerts[0].State != "firing" || a.Data.Alerts[0].Annotations["summary"] != "acme: 5 errors" {
		t.Fatalf("alerts after the switch to partial aggregates: %+v", a)
	}
}
