package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/testrules"
)

// writeErrorsRule writes dir/rules.yaml: one group evaluated every second
// whose alert Errors fires for each tenant with more than 2 error events in
// window; extra is one more key of the rule (notify: [pager]) or "".
func writeErrorsRule(t *testing.T, dir, window, extra string) {
	t.Helper()
	rule := "- alert: Errors\n  expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[" + window + "])) > 2\n"
	if extra != "" {
		rule += "  " + extra + "\n"
	}
	writeFile(t, filepath.Join(dir, "rules.yaml"), testrules.File("interval: 1s", rule))
}

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

// serveOn runs `callwatch serve` on the events table of db.
func serveOn(t *testing.T, s *chtest.Server, db, rules, clickhouseKeys string) (base, dir string, out *syncBuffer) {
	t.Helper()
	dir = t.TempDir()
	cfgFile := serveConfig(t, dir, s.DSN(db), clickhouseKeys)
	os.MkdirAll(filepath.Join(dir, "rules"), 0o755)
	writeFile(t, filepath.Join(dir, "rules", "r.yaml"), rules)
	base, out, _ = serveInProcess(t, serveRun{config: cfgFile, startTimeout: 15 * time.Second})
	return base, dir, out
}

// serveConfig writes the configuration of serve's tests to
// dir/callwatch.yaml: the events table ai_call_events of the database of
// dsn, more keys of the clickhouse section (indented YAML lines) and the
// rule files rules/*.yaml. It returns the file.
func serveConfig(t *testing.T, dir, dsn, clickhouseKeys string) string {
	t.Helper()
	return writeConfig(t, dir, fmt.Sprintf("clickhouse:\n  dsn: %s\n  events_table: ai_call_events\n%srule_files: [rules/*.yaml]\n", dsn, clickhouseKeys))
}

// serveRun says how serveInProcess runs `callwatch serve`: with the
// configuration file config and more arguments args, started within
// startTimeout and stopped within stopTimeout (default 10s each).
type serveRun struct {
	config                    string
	args                      []string
	startTimeout, stopTimeout time.Duration
}

// serveInProcess runs `callwatch serve` in the test's process, listening on a
// free port of 127.0.0.1, and returns its base URL once it says where it
// listens, with its standard output and error. When the test ends it
// cancels serve, which must then exit 0 within the stop timeout; a failed
// test logs serve's output.
func serveInProcess(t *testing.T, r serveRun) (base string, out, errOut *syncBuffer) {
	t.Helper()
	r.startTimeout = cmp.Or(r.startTimeout, 10*time.Second)
	r.stopTimeout = cmp.Or(r.stopTimeout, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut = &syncBuffer{}, &syncBuffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, append([]string{"serve", "--config.file", r.config, "--web.listen-address", "127.0.0.1:0"}, r.args...), out, errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d: %s", code, errOut.String())
			}
		case <-time.After(r.stopTimeout):
			t.Errorf("serve did not stop within %s of cancellation", r.stopTimeout)
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
		}
	})
	re := regexp.MustCompile(`address=(http://127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(r.startTimeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			return m[1], out, errOut
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve did not start: %s", errOut.String())
	return "", nil, nil
}

const serveRules = `groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: Errors
        expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 2
        annotations:
          summary: "{{ $labels.tenant_id }}: {{ $value }} errors"
`

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

// callsTable creates the events table calls (the default schema) in a new
// database of s, inserts rows into it and returns the database.
func callsTable(t *testing.T, s *chtest.Server, rows []map[string]any) (db string) {
	t.Helper()
	return eventsTable(t, s, "calls", dsl.DefaultSchema(), rows)
}

// callsConfig writes, in a new temporary directory, a configuration file
// naming the events table calls of database db on s, and returns its path.
func callsConfig(t *testing.T, s *chtest.Server, db string) string {
	t.Helper()
	return writeConfig(t, t.TempDir(), fmt.Sprintf("clickhouse:\n  dsn: %s\n  events_table: calls\n", s.DSN(db)))
}

// errorEvents creates an events table in a new database of s holding n
// failed calls of tenant acme in the last n seconds, and returns the database.
func errorEvents(t *testing.T, s *chtest.Server, n int) string {
	t.Helper()
	now := time.Now().UTC()
	rows := make([]map[string]any, 0, n)
	for i := range n {
		rows = append(rows, map[string]any{"created_at": now.Add(-time.Duration(i) * time.Second), "tenant_id": "acme", "status": "error", "latency_ms": 100})
	}
	return eventsTable(t, s, "ai_call_events", dsl.DefaultSchema(), rows)
}
