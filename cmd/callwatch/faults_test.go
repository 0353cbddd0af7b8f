package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/chtest"
)

// outageConfig writes the configuration of the ClickHouse outage tests:
// short query timeouts and health checks, a webhook channel, and a rule
// that fires on the events of errorEvents.
func outageConfig(t *testing.T, dsn, hookURL string) string {
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, fmt.Sprintf(`clickhouse:
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
`, dsn+"?dial_timeout=1s&read_timeout=2s", hookURL))
	writeErrorsRule(t, dir, "10m")
	return cfgFile
}

// startOutageServe writes error events into a new database (db) of s and
// starts `callwatch serve` on it with outageConfig's rules and a webhook
// receiving its notifications, and waits for the Errors alert to be
// delivered: the starting point of a fault test.
func startOutageServe(t *testing.T, s *chtest.Server) (db string, got *hook, p *proc) {
	t.Helper()
	db = errorEvents(t, s, 5)
	got = newHook(t)
	p = startProc(t, outageConfig(t, s.DSN(db), got.URL))
	waitFor(t, "the Errors alert to be delivered", 20*time.Second, func() bool { return got.get("Errors/firing") == 1 })
	return db, got, p
}

// ruleHealth returns the health and state of the rule name as serve's
// /api/v1/rules at base shows them ("" when it shows no such rule).
func ruleHealth(t *testing.T, base, name string) (health, state string) {
	t.Helper()
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name, Health, State string } `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, base+"/api/v1/rules", &rules)
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			if r.Name == name {
				return r.Health, r.State
			}
		}
	}
	return "", ""
}

// TestFaultClickHouseHangs is the fault suite's ClickHouse outage: while
// serve runs, the server hangs (SIGSTOP) and comes back. Run by
// `make test-faults`, which prints the report lines.
func TestFaultClickHouseHangs(t *testing.T) {
	s := chtest.Start(t) // its own server: this test stops it
	_, got, p := startOutageServe(t, s)
	goroutinesBefore := metric(t, p.base, "go_goroutines")

	// Fault: ClickHouse hangs.
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	faultAt := time.Now()
	waitFor(t, "DatasourceDown to be delivered", 30*time.Second, func() bool { return got.get("DatasourceDown/firing") >= 1 })
	waitFor(t, "the rule to show error health", 10*time.Second, func() bool { h, st := ruleHealth(t, p.base, "Errors"); return h == "err" && st == "firing" })
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
	waitFor(t, "the rule to be healthy again", 30*time.Second, func() bool { h, _ := ruleHealth(t, p.base, "Errors"); return h == "ok" })
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
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
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
	cfgFile := writeConfig(t, dir, fmt.Sprintf(`clickhouse:
  dsn: %s
notifiers:
  - {name: pager, type: %s, url: "http://%s/hook", timeout: 1s}
default_notify: [pager]
notification:
  max_attempts: 8
rule_files: [rules.yaml]
`, s.DSN(db), typ, addr))
	writeFile(t, filepath.Join(dir, "rules.yaml"), "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Errors\n        expr: count_over_time(events{status=\"error\"}[10m]) > 2\n")
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
	db, got, p := startOutageServe(t, s)
	health := func() (string, string) { return ruleHealth(t, p.base, "Errors") }

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

// alertHistory reads the audit rows of a rule from /api/v1/alerts/history.
func alertHistory(t *testing.T, base, query string) []struct{ Kind, Rule, Reason, By string } {
	t.Helper()
	var out struct {
		Data []struct{ Kind, Rule, Reason, By string } `json:"data"`
	}
	if code := getJSON(t, base+"/api/v1/alerts/history?"+query, &out); code != http.StatusOK {
		t.Fatalf("history: HTTP %d", code)
	}
	return out.Data
}

// TestFaultReloadToEmpty: while an alert fires, its rule file is truncated
// to 0 bytes and callwatch is told to reload (SIGHUP, then POST /-/reload).
// The reload is refused, the alert keeps firing and nothing is resolved;
// a forced reload (POST /-/reload?force=true) then removes the rule and
// resolves its alert, sent to the receiver and written to the audit table.
func TestFaultReloadToEmpty(t *testing.T) {
	s := server.Get(t)
	_, got, p := startOutageServe(t, s)
	firing := func() bool {
		for _, al := range apiAlerts(t, p.base).Data.Alerts {
			if al.Labels["alertname"] == "Errors" && al.State == "firing" {
				return true
			}
		}
		return false
	}

	// Fault: the rule file is truncated, and callwatch reloads.
	if err := os.Truncate(filepath.Join(filepath.Dir(p.cfgFile), "rules.yaml"), 0); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP reload to be refused", 10*time.Second, func() bool {
		return strings.Contains(p.log.String(), "the new rule files contain no rules")
	})
	code, body := post(t, p.base+"/-/reload", "")
	if code == http.StatusOK || !strings.Contains(body, "the running 1 rules keep running") || !strings.Contains(body, "force") {
		t.Fatalf("POST /-/reload of an empty rule file: HTTP %d %q, want it refused", code, body)
	}
	if v := metric(t, p.base, "callwatch_config_last_reload_successful"); v != 0 {
		t.Errorf("callwatch_config_last_reload_successful = %v after a refused reload, want 0", v)
	}
	time.Sleep(2 * time.Second) // evaluations go on: the alert must stay, unresolved
	if !firing() {
		t.Fatal("the Errors alert is gone after a refused reload")
	}
	falseResolves := got.get("Errors/resolved")
	if falseResolves != 0 {
		t.Fatalf("a refused reload resolved the Errors alert (%d resolved notifications)", falseResolves)
	}

	// Forced: the rule goes, and its alert is resolved, sent and audited.
	forcedAt := time.Now()
	if code, body := post(t, p.base+"/-/reload?force=true", ""); code != http.StatusOK {
		t.Fatalf("forced reload: HTTP %d %s", code, body)
	}
	waitFor(t, "the resolved notification", 20*time.Second, func() bool { return got.get("Errors/resolved") == 1 })
	took := time.Since(forcedAt)
	if firing() {
		t.Error("the Errors alert still fires after the forced reload")
	}
	var audited int
	for _, r := range alertHistory(t, p.base, "rule=Errors&kind=resolved") {
		if r.Reason == "rule removed by reload" {
			audited++
		}
	}
	time.Sleep(time.Second)
	dups := got.get("Errors/firing") - 1 + got.get("Errors/resolved") - 1
	t.Logf("FAULT REPORT: faults injected: 1 (rule file truncated to 0 bytes, reloaded by SIGHUP and POST /-/reload: refused); alerts lost: 0; false resolves: %d; duplicate notifications: %d; forced reload: resolved sent in %s, audited %d",
		falseResolves, dups, took.Round(100*time.Millisecond), audited)
	if audited != 1 || dups != 0 {
		t.Fatalf("audited %d resolved rows (want 1), %d duplicate notifications", audited, dups)
	}
}

// TestFaultAuditTableDropped: while an alert fires, the audit table is
// dropped; the next acknowledgement re-creates it and succeeds, and is
// audited.
func TestFaultAuditTableDropped(t *testing.T) {
	s := server.Get(t)
	db, _, p := startOutageServe(t, s)
	a := apiAlerts(t, p.base)
	fp := ""
	for _, al := range a.Data.Alerts {
		if al.Labels["alertname"] == "Errors" {
			fp = al.Fingerprint
		}
	}
	if fp == "" {
		t.Fatalf("no Errors alert in %+v", a)
	}

	// Fault: the audit table disappears.
	s.Exec(t, "DROP TABLE "+db+".callwatch_alert_log")
	droppedAt := time.Now()
	code, body := post(t, p.base+"/api/v1/alerts/"+fp+"/ack", `{"by":"alice","comment":"after the drop"}`)
	if code != http.StatusOK {
		t.Fatalf("ack after the audit table was dropped: HTTP %d %s", code, body)
	}
	took := time.Since(droppedAt)
	acks := alertHistory(t, p.base, "rule=Errors&kind=acknowledged")
	if len(acks) != 1 || acks[0].By != "alice" {
		t.Fatalf("acknowledgements in the audit table: %+v, want alice's", acks)
	}
	if !strings.Contains(p.log.String(), "re-created a table that disappeared") {
		t.Error("the re-creation was not logged")
	}
	t.Logf("FAULT REPORT: faults injected: 1 (audit table dropped while running); acknowledgements lost: 0; failed requests: 0; time to recover: %s (the next write re-created the table)",
		took.Round(10*time.Millisecond))
}
