package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/testrules"
)

var server = chtest.NewShared()

// TestMain runs callwatch itself when re-executed by a test that needs a
// process it can kill (CALLWATCH_MAIN=1), and the tests otherwise.
func TestMain(m *testing.M) {
	if os.Getenv("CALLWATCH_MAIN") == "1" {
		main()
	}
	os.Exit(server.Run(m))
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeErrorsRule writes dir/rules.yaml: one group evaluated every second
// whose alert Errors fires for each tenant with more than 2 error events in
// window; extra is one more key of the rule (notify: [pager]) or "".
func writeErrorsRule(t *testing.T, dir, window, extra string) {
	t.Helper()
	rule := "- alert: Errors\n  expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[" + window + "])) > 2\n"
	if extra != "" {
		rule += "  " + extra + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(testrules.File("interval: 1s", rule)), 0o644); err != nil {
		t.Fatal(err)
	}
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
	cfg := fmt.Sprintf("clickhouse:\n  dsn: %s\n  events_table: ai_call_events\n%srule_files: [rules/*.yaml]\n", s.DSN(db), clickhouseKeys)
	os.WriteFile(filepath.Join(dir, "callwatch.yaml"), []byte(cfg), 0o644)
	os.MkdirAll(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(rules), 0o644)
	base, out, _ = serveInProcess(t, serveRun{config: filepath.Join(dir, "callwatch.yaml"), startTimeout: 15 * time.Second})
	return base, dir, out
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

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode
}

// waitFor polls cond (against a real server and real time) until it holds.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
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

// alerts is the part of /api/v1/alerts the serve tests read.
type alerts struct {
	Data struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
		} `json:"alerts"`
	} `json:"data"`
}

// waitForErrorsAlert waits until serveRules' one Errors alert fires with
// its summary.
func waitForErrorsAlert(t *testing.T, base string) {
	t.Helper()
	waitFor(t, "the alert to fire", 15*time.Second, func() bool {
		var a alerts
		getJSON(t, base+"/api/v1/alerts", &a)
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
		var ev struct {
			Data []struct {
				Evaluations []struct {
					Samples    int      `json:"samples"`
					Statements []string `json:"statements"`
					Err        string   `json:"error"`
				} `json:"evaluations"`
			} `json:"data"`
		}
		getJSON(t, base+"/api/v1/rules/evaluations?rule=Errors", &ev)
		e := ev.Data[0].Evaluations
		last := e[len(e)-1]
		if last.Err != "" || last.Samples != 1 || len(last.Statements) != 1 || !strings.Contains(last.Statements[0], "countIf") {
			t.Fatalf("last evaluation = %+v", last)
		}
	})

	t.Run("a broken rule file is refused and the running rules stay", func(t *testing.T) {
		os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte("groups:\n  - name: e2e\n    rules:\n      - alert: Errors\n        expr: p95(latency_ms)\n"), 0o644)
		resp, err := http.Post(base+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || !strings.Contains(string(body), "r.yaml:5:") {
			t.Fatalf("reload: %d %s", resp.StatusCode, body)
		}
		var a alerts
		getJSON(t, base+"/api/v1/alerts", &a)
		if len(a.Data.Alerts) != 1 || a.Data.Alerts[0].State != "firing" {
			t.Fatalf("alerts after a failed reload: %+v", a)
		}
		resp, _ = http.Get(base + "/metrics")
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), "callwatch_config_last_reload_successful 0") {
			t.Fatalf("reload metric not 0")
		}
	})

	t.Run("a fixed rule file is picked up and the alert keeps its state", func(t *testing.T) {
		os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(serveRules+"      - record: tenant:errors:5m\n        expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[5m]))\n"), 0o644)
		resp, err := http.Post(base+"/-/reload", "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("reload: %v %v", err, resp.StatusCode)
		}
		var a alerts
		getJSON(t, base+"/api/v1/alerts", &a)
		if len(a.Data.Alerts) != 1 || a.Data.Alerts[0].State != "firing" {
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
	var ev struct {
		Data []struct {
			Evaluations []struct {
				Statements []string `json:"statements"`
				Paths      []struct {
					Leaf, Path, Reason string
				} `json:"paths"`
			} `json:"evaluations"`
		} `json:"data"`
	}
	// The first evaluation is a full query while the buckets are filled in
	// the background; the next ones read partial aggregates, and say so.
	waitFor(t, "an evaluation from partial aggregates", 10*time.Second, func() bool {
		getJSON(t, base+"/api/v1/rules/evaluations?rule=Errors", &ev)
		e := ev.Data[0].Evaluations
		last := e[len(e)-1]
		return len(last.Statements) == 1 && strings.Contains(last.Statements[0], "intDiv") &&
			len(last.Paths) == 1 && last.Paths[0].Path == "incremental" &&
			last.Paths[0].Leaf == `count_over_time(events{status="error"}[5m]) by (tenant_id)`
	})
	var a alerts
	getJSON(t, base+"/api/v1/alerts", &a)
	if len(a.Data.Alerts) != 1 || a.Data.Alerts[0].State != "firing" || a.Data.Alerts[0].Annotations["summary"] != "acme: 5 errors" {
		t.Fatalf("alerts after the switch to partial aggregates: %+v", a)
	}
}

// callsTable creates the events table calls (the default schema) in a new
// database of s, inserts rows into it and returns the database.
func callsTable(t *testing.T, s *chtest.Server, rows []map[string]any) (db string) {
	t.Helper()
	db = s.NewDatabase(t)
	s.Exec(t, clickhouse.EventsDDL(db+".calls", dsl.DefaultSchema()))
	s.InsertJSONEachRow(t, db, "calls", rows)
	return db
}

// callsConfig writes, in a new temporary directory, a configuration file
// naming the events table calls of database db on s, and returns its path.
func callsConfig(t *testing.T, s *chtest.Server, db string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "callwatch.yaml")
	if err := os.WriteFile(f, []byte(fmt.Sprintf("clickhouse:\n  dsn: %s\n  events_table: calls\n", s.DSN(db))), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// errorEvents creates an events table in a new database of s holding n
// failed calls of tenant acme in the last n seconds, and returns the database.
func errorEvents(t *testing.T, s *chtest.Server, n int) string {
	t.Helper()
	db := s.NewDatabase(t)
	s.Exec(t, clickhouse.EventsDDL(db+".ai_call_events", dsl.DefaultSchema()))
	now := time.Now().UTC()
	rows := make([]map[string]any, 0, n)
	for i := range n {
		rows = append(rows, map[string]any{"created_at": now.Add(-time.Duration(i) * time.Second), "tenant_id": "acme", "status": "error", "latency_ms": 100})
	}
	s.InsertJSONEachRow(t, db, "ai_call_events", rows)
	return db
}
