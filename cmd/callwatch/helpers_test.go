package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/proctest"
	"github.com/callwatch/callwatch/internal/testrules"
)

// The helpers the tests of callwatch's commands share: running the
// commands (in process, or serve in a process of its own), writing their
// files, filling the events table, reading serve's API and receiving its
// webhooks.

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
type syncBuffer = proctest.Buffer

// runCLI runs callwatch with args, as main does, and returns its exit code
// and what it wrote to standard output and to standard error.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// backtestJSON runs `callwatch backtest --format json` with args, fails the
// test unless it exits 0, and decodes what it prints into v.
func backtestJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	code, out, errOut := runCLI(append([]string{"backtest", "--format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("backtest %v: exit %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatal(err)
	}
}

// sameLines fails the test unless got, what, is want, line for line.
func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// writeFile writes text to path and fails the test when it cannot.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeConfig writes the configuration text to dir/callwatch.yaml and
// returns the file.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	f := filepath.Join(dir, "callwatch.yaml")
	writeFile(t, f, text)
	return f
}

// eventsTable creates the events table table, of schema, in a new
// database of s, inserts rows into it and returns the database.
func eventsTable(t *testing.T, s *chtest.Server, table string, schema dsl.Schema, rows []map[string]any) (db string) {
	t.Helper()
	db = s.NewDatabase(t)
	s.Exec(t, clickhouse.EventsDDL(db+"."+table, schema))
	s.InsertJSONEachRow(t, db, table, rows)
	return db
}

// errorsFile is a rule file of one group evaluated every second whose
// alert Errors fires for each tenant with more than 2 error events in
// window; extra are more lines of the rule (notify: [pager]), as they stand
// below its expr.
func errorsFile(window string, extra ...string) string {
	rule := "- alert: Errors\n  expr: sum by (tenant_id) (count_over_time(events{status=\"error\"}[" + window + "])) > 2\n"
	for _, l := range extra {
		rule += "  " + l + "\n"
	}
	return testrules.File("interval: 1s", rule)
}

// serveRules is the rule file of most serve tests: errorsFile over 5m,
// whose alerts say how many errors their tenant had.
var serveRules = errorsFile("5m", "annotations:", `  summary: "{{ $labels.tenant_id }}: {{ $value }} errors"`)

// writeErrorsRule writes errorsFile(window, extra...) to dir/rules.yaml.
func writeErrorsRule(t *testing.T, dir, window string, extra ...string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "rules.yaml"), errorsFile(window, extra...))
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

// acmeErrors returns n erroring calls of tenant acme, now.
func acmeErrors(n int) []map[string]any {
	now := time.Now().UTC()
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = map[string]any{"created_at": now, "tenant_id": "acme", "status": "error"}
	}
	return rows
}

// proc is callwatch serve in its own process, so a test can SIGKILL it.
type proc struct {
	cmd     *exec.Cmd
	base    string
	log     *syncBuffer
	cfgFile string // the configuration file it serves
}

// startProc runs `callwatch serve` of cfgFile in a process of its own (this
// test binary, re-executed), listening on a free port of 127.0.0.1, and
// returns it once it says where it listens. The process is killed when
// the test ends; a failed test logs its output.
func startProc(t *testing.T, cfgFile string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--config.file", cfgFile, "--web.listen-address", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "CALLWATCH_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: &syncBuffer{}, cfgFile: cfgFile}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("callwatch log:\n%s", p.log.String())
		}
	})
	re := regexp.MustCompile(`address=(http://127\.0\.0\.1:\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.log.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case p.base = <-found:
	case <-time.After(20 * time.Second):
		t.Fatal("callwatch did not start")
	}
	return p
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

// do sends req and returns the response and its body, read and closed; it
// fails the test when req cannot be sent.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// newRequest is http.NewRequest, failing the test when it fails.
func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// httpGet is do of a GET of url.
func httpGet(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	return do(t, newRequest(t, http.MethodGet, url, nil))
}

// getJSON reads url into v (unless v is nil) and returns the HTTP status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, body := httpGet(t, url)
	if v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, body)
		}
	}
	return resp.StatusCode
}

// post sends an empty or JSON POST and returns the status and body.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	req := newRequest(t, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, b := do(t, req)
	return resp.StatusCode, b
}

// metric reads one sample value from /metrics text.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	_, body := httpGet(t, base+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// alertsJSON is /api/v1/alerts, the fields the tests read.
type alertsJSON struct {
	Data struct {
		Alerts []struct {
			Fingerprint string            `json:"fingerprint"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
			ActiveAt    string            `json:"activeAt"`
			AckedBy     string            `json:"ackedBy"`
			Evidence    *engine.Evidence  `json:"evidence"`
		} `json:"alerts"`
	} `json:"data"`
}

// apiAlerts reads /api/v1/alerts of the serve at base.
func apiAlerts(t *testing.T, base string) alertsJSON {
	t.Helper()
	var out alertsJSON
	getJSON(t, base+"/api/v1/alerts", &out)
	return out
}

// evaluationsJSON is /api/v1/rules/evaluations, the fields the tests read.
type evaluationsJSON struct {
	Data []struct {
		Evaluations []struct {
			Time       time.Time `json:"time"`
			Samples    int       `json:"samples"`
			Statements []string  `json:"statements"`
			Paths      []struct {
				Leaf, Path, Reason string
			} `json:"paths"`
			Err string `json:"error"`
		} `json:"evaluations"`
	} `json:"data"`
}

// ruleEvaluations reads /api/v1/rules/evaluations of the rule of the serve
// at base.
func ruleEvaluations(t *testing.T, base, rule string) evaluationsJSON {
	t.Helper()
	var out evaluationsJSON
	getJSON(t, base+"/api/v1/rules/evaluations?rule="+rule, &out)
	return out
}

// hook is a webhook receiver of callwatch's (or Alertmanager's)
// notifications. It keeps the status of each message, and counts the
// alerts it gets by alertname and status and the firing messages of each
// alert by fingerprint; while hang is set it never answers, so a
// notification is fired but not sent. It stops with the test.
type hook struct {
	mu       sync.Mutex
	statuses []string       // each message's
	n        map[string]int // "alertname/status"
	firing   map[string]int // fingerprint: firing messages
	hang     bool
	stop     chan struct{}
	URL      string
}

// newHook starts a webhook receiver, answering.
func newHook(t *testing.T) *hook {
	h := &hook{n: map[string]int{}, firing: map[string]int{}, stop: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		hang := h.hang
		h.mu.Unlock()
		if hang {
			select { // never answers: the notification is fired, not sent
			case <-r.Context().Done():
			case <-h.stop:
			}
			return
		}
		var p struct {
			Status string `json:"status"`
			Alerts []struct {
				Fingerprint string            `json:"fingerprint"`
				Status      string            `json:"status"`
				Labels      map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("webhook body: %v: %s", err, body)
		}
		h.mu.Lock()
		h.statuses = append(h.statuses, p.Status)
		for _, a := range p.Alerts {
			h.n[a.Labels["alertname"]+"/"+a.Status]++
			if a.Status == "firing" {
				h.firing[a.Fingerprint]++
			}
		}
		h.mu.Unlock()
	}))
	h.URL = srv.URL
	t.Cleanup(func() { close(h.stop); srv.Close() })
	return h
}

// setHang makes the receiver hang (true) or answer (false).
func (h *hook) setHang(hang bool) {
	h.mu.Lock()
	h.hang = hang
	h.mu.Unlock()
}

// messages returns the status of each message, in the order they came.
func (h *hook) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.statuses)
}

// get returns how many alerts of k ("alertname/status") arrived.
func (h *hook) get(k string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[k]
}

// count returns how many alerts fired and in how many messages.
func (h *hook) count() (alerts, messages int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.firing {
		alerts++
		messages += n
	}
	return
}

// containsAll says whether s contains every one of parts.
func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
