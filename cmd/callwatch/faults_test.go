package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/chtest"
)

// received counts what a webhook receiver got, per alert name and status.
type received struct {
	mu sync.Mutex
	n  map[string]int // "alertname/status"
}

func (r *received) get(k string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[k]
}

// newAlertHook is a webhook receiver that counts the alerts it gets by
// alertname and status; it stops with the test.
func newAlertHook(t *testing.T) (*received, *httptest.Server) {
	got := &received{n: map[string]int{}}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Alerts []struct {
				Status string            `json:"status"`
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		json.NewDecoder(r.Body).Decode(&p)
		got.mu.Lock()
		for _, a := range p.Alerts {
			got.n[a.Labels["alertname"]+"/"+a.Status]++
		}
		got.mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	return got, hook
}

// metric reads one sample value from /metrics text.
func metric(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// outageConfig writes the configuration of the ClickHouse outage tests:
// short query timeouts and health checks, a webhook channel, and a rule
// that fires on the events of errorEvents.
func outageConfig(t *testing.T, dsn, hookURL string) string {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "callwatch.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`clickhouse:
  dsn: %s
  query_timeout: 1s
  health_interval: 1s
  down_after: 2s
notifiers:
  - {name: pager, type: webhook, url: %q, timeout: 2s}
default_notify: [pager]
exporter:
  interval: 1s
rule_files: [rules.yaml]
`, dsn+"?dial_timeout=1s&read_timeout=2s", hookURL)), 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(`groups:
  - name: g
    interval: 1s
    rules:
      - alert: Errors
        expr: sum by (tenant_id) (count_over_time(events{status="error"}[10m])) > 2
`), 0o644)
	return cfgFile
}

// TestFaultClickHouseHangs is the fault suite's ClickHouse outage: while
// serve runs, the server hangs (SIGSTOP) and comes back. Run by
// `make test-faults`, which prints the report lines.
func TestFaultClickHouseHangs(t *testing.T) {
	s := chtest.Start(t) // its own server: this test stops it
	db := errorEvents(t, s, 5)

	got, hook := newAlertHook(t)

	cfgFile := outageConfig(t, s.DSN(db), hook.URL)

	p := startProc(t, cfgFile)
	waitFor(t, "the Errors alert to be delivered", 20*time.Second, func() bool { return got.get("Errors/firing") == 1 })
	goroutinesBefore := metric(t, p.base, "go_goroutines")

	// Fault: ClickHouse hangs.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	faultAt := time.Now()
	waitFor(t, "DatasourceDown to be delivered", 30*time.Second, func() bool { return got.get("DatasourceDown/firing") >= 1 })
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, State string
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	waitFor(t, "the rule to show error health", 10*time.Second, func() bool {
		getJSON(t, p.base+"/api/v1/rules", &rules)
		for _, g := range rules.Data.Groups {
			for _, r := range g.Rules {
				if r.Name == "Errors" {
					return r.Health == "err" && r.State == "firing"
				}
			}
		}
		return false
	})
	waitFor(t, "callwatch_datasource_up to be 0", 10*time.Second, func() bool { return metric(t, p.base, "callwatch_datasource_up") == 0 })
	time.Sleep(3 * time.Second) // a long-ish outage: no false resolve, no growth
	if n := got.get("Errors/resolved"); n != 0 {
		t.Fatalf("the outage resolved the Errors alert (%d resolved notifications)", n)
	}
	goroutinesDuring := metric(t, p.base, "go_goroutines")

	// Recovery.
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	resumedAt := time.Now()
	waitFor(t, "DatasourceDown to resolve", 30*time.Second, func() bool { return got.get("DatasourceDown/resolved") >= 1 })
	waitFor(t, "the rule to be healthy again", 30*time.Second, func() bool {
		getJSON(t, p.base+"/api/v1/rules", &rules)
		for _, g := range rules.Data.Groups {
			for _, r := range g.Rules {
				if r.Name == "Errors" {
					return r.Health == "ok"
				}
			}
		}
		return false
	})
	recovered := time.Since(resumedAt)
	if metric(t, p.base, "callwatch_datasource_up") != 1 {
		waitFor(t, "callwatch_datasource_up to be 1", 10*time.Second, func() bool { return metric(t, p.base, "callwatch_datasource_up") == 1 })
	}
	lost := 0
	if got.get("Errors/resolved") != 0 {
		lost = 1
	}
	dups := got.get("Errors/firing") - 1
	t.Logf("FAULT REPORT: faults injected: 1 (ClickHouse hung %s); alerts lost: %d; duplicate notifications: %d; time to recover: %s; goroutines before/during outage: %.0f/%.0f",
		resumedAt.Sub(faultAt).Round(time.Second), lost, dups, recovered.Round(100*time.Millisecond), goroutinesBefore, goroutinesDuring)
	if lost != 0 || dups != 0 {
		t.Fatalf("lost %d alerts, %d duplicates", lost, dups)
	}
	if goroutinesDuring > goroutinesBefore+50 {
		t.Fatalf("goroutines grew from %.0f to %.0f during the outage", goroutinesBefore, goroutinesDuring)
	}
}

// TestFaultNotifierDown: the receiver fails for a while — HTTP 500,
// answers slower than the channel's timeout, refuses connections, or (a
// WeCom bot) answers HTTP 200 with a non-zero errcode — then recovers; the
// notification arrives once, by retry.
func TestFaultNotifierDown(t *testing.T) {
	for _, mode := range []string{"HTTP 500", "timeout", "connection refused", "WeCom errcode"} {
		t.Run(mode, func(t *testing.T) { notifierDown(t, mode) })
	}
}

func notifierDown(t *testing.T, mode string) {
	s := server.Get(t)
	db := errorEvents(t, s, 5)
	var mu sync.Mutex
	failing, attempts, delivered := true, 0, 0
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		attempts++
		fail := failing
		mu.Unlock()
		switch {
		case fail && mode == "timeout":
			time.Sleep(1500 * time.Millisecond) // the channel gives up after 1s
			return
		case fail && mode == "WeCom errcode":
			w.Write([]byte(`{"errcode":-1,"errmsg":"system busy"}`)) // retried at once; 45009 waits a minute (unit-tested)
			return
		case fail:
			http.Error(w, "upstream down", http.StatusInternalServerError)
			return
		}
		if mode == "WeCom errcode" {
			w.Write([]byte(`{"errcode":0,"errmsg":"ok"}`))
		}
		mu.Lock()
		delivered++
		mu.Unlock()
	})
	hook := httptest.NewUnstartedServer(handler)
	addr := hook.Listener.Addr().String()
	if mode == "connection refused" {
		hook.Listener.Close() // nothing listens until the receiver recovers
	} else {
		hook.Start()
	}
	defer hook.Close()
	typ := "webhook"
	if mode == "WeCom errcode" {
		typ = "wecom"
	}
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "callwatch.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`clickhouse:
  dsn: %s
notifiers:
  - {name: pager, type: %s, url: "http://%s/hook", timeout: 1s}
default_notify: [pager]
notification:
  max_attempts: 8
rule_files: [rules.yaml]
`, s.DSN(db), typ, addr)), 0o644)
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte("groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Errors\n        expr: count_over_time(events{status=\"error\"}[10m]) > 2\n"), 0o644)
	p := startProc(t, cfgFile)
	if mode == "connection refused" {
		waitFor(t, "failed attempts", 20*time.Second, func() bool {
			return metric(t, p.base, `callwatch_notification_latency_seconds_count{channel="pager"}`) >= 2
		})
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
		hook.Listener = ln
		mu.Lock()
		failing = false
		mu.Unlock()
		hook.Start()
	} else {
		waitFor(t, "failed attempts", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return attempts >= 2 })
	}
	mu.Lock()
	failing = false
	recoveredAt := time.Now()
	mu.Unlock()
	waitFor(t, "the delivery after the receiver recovers", 60*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return delivered >= 1 })
	took := time.Since(recoveredAt)
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("FAULT REPORT: faults injected: 1 (%s %s); alerts lost: 0; duplicate notifications: %d; time to recover: %s; attempts: %d",
		typ, mode, delivered-1, took.Round(100*time.Millisecond), attempts)
	if delivered != 1 {
		t.Fatalf("delivered %d times, want once", delivered)
	}
}

// TestFaultClickHouseKilledAndErroring: while serve runs, the ClickHouse
// server is killed (SIGKILL) and restarted on the same data, then answers
// errors (its events table renamed away) and recovers. Neither outage
// resolves the firing alert; the kill fires DatasourceDown and evaluation
// resumes on its own after each.
func TestFaultClickHouseKilledAndErroring(t *testing.T) {
	s := chtest.Start(t) // its own server: this test kills it
	db := errorEvents(t, s, 5)
	got, hook := newAlertHook(t)
	cfgFile := outageConfig(t, s.DSN(db), hook.URL)
	p := startProc(t, cfgFile)
	waitFor(t, "the Errors alert to be delivered", 20*time.Second, func() bool { return got.get("Errors/firing") == 1 })
	health := func() (string, string) {
		var rules struct {
			Data struct {
				Groups []struct {
					Rules []struct{ Name, Health, State string } `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		getJSON(t, p.base+"/api/v1/rules", &rules)
		for _, g := range rules.Data.Groups {
			for _, r := range g.Rules {
				if r.Name == "Errors" {
					return r.Health, r.State
				}
			}
		}
		return "", ""
	}

	// Fault 1: the server is killed, then restarted.
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "DatasourceDown to be delivered", 30*time.Second, func() bool { return got.get("DatasourceDown/firing") >= 1 })
	waitFor(t, "error health while the server is down", 10*time.Second, func() bool { h, st := health(); return h == "err" && st == "firing" })
	if v := metric(t, p.base, "callwatch_datasource_up"); v != 0 {
		t.Fatalf("callwatch_datasource_up = %v while the server is down", v)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitFor(t, "the rule to be healthy after the restart", 30*time.Second, func() bool { h, _ := health(); return h == "ok" })
	recoverKill := time.Since(restarted)
	waitFor(t, "DatasourceDown to resolve", 30*time.Second, func() bool { return got.get("DatasourceDown/resolved") >= 1 })

	// Fault 2: the server answers errors (the events table is gone).
	s.Exec(t, "RENAME TABLE "+db+".ai_call_events TO "+db+".moved")
	waitFor(t, "error health while queries fail", 10*time.Second, func() bool { h, st := health(); return h == "err" && st == "firing" })
	time.Sleep(2 * time.Second)
	s.Exec(t, "RENAME TABLE "+db+".moved TO "+db+".ai_call_events")
	renamed := time.Now()
	waitFor(t, "the rule to be healthy after the errors", 30*time.Second, func() bool { h, _ := health(); return h == "ok" })
	recoverErr := time.Since(renamed)

	if n := got.get("Errors/resolved"); n != 0 {
		t.Fatalf("an outage resolved the Errors alert (%d resolved notifications)", n)
	}
	if n := got.get("Errors/firing"); n != 1 {
		t.Fatalf("Errors was announced %d times, want once", n)
	}
	t.Logf("FAULT REPORT: faults injected: 2 (ClickHouse killed and restarted; ClickHouse answering errors); alerts lost: 0; duplicate notifications: 0; time to recover: %s after the restart, %s after the errors",
		recoverKill.Round(100*time.Millisecond), recoverErr.Round(100*time.Millisecond))
}
