package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/amtest"
)

// TestFaultSenderReplicaKilled is the high-availability scenario for
// direct channels: two replicas with the same rules and the same webhook,
// sharing one ClickHouse. Only the elected replica messages the webhook,
// so the firing alert arrives once, not twice; when that replica is killed
// (SIGKILL), the other takes over within the lease's TTL and sends the
// resolve — once, without repeating the firing message it reads from the
// audit trail.
func TestFaultSenderReplicaKilled(t *testing.T) {
	s := server.Get(t)
	db := eventsTable(t, s, "ai_call_events", dsl.DefaultSchema(), acmeErrors(5))

	got := newHook(t)

	dir := t.TempDir()
	writeErrorsRule(t, dir, "20s")
	config := func(replica string) string { return haConfig(t, dir, s.DSN(db), got.URL, replica, "") }

	a := startProc(t, config("replica-a"))
	waitFor(t, "replica a to deliver the firing alert", 15*time.Second, func() bool { return got.get("Errors/firing") == 1 })
	b := startProc(t, config("replica-b"))
	waitFor(t, "replica b to evaluate the alert as firing", 15*time.Second, func() bool {
		return metric(t, b.base, `ALERTS{alertname="Errors",alertstate="firing",tenant_id="acme"}`) == 1
	})
	if v := metric(t, a.base, "callwatch_ha_sender"); v != 1 {
		t.Fatalf("replica a: callwatch_ha_sender = %v, want 1", v)
	}
	if v := metric(t, b.base, "callwatch_ha_sender"); v != 0 {
		t.Fatalf("replica b: callwatch_ha_sender = %v, want 0", v)
	}
	time.Sleep(2 * time.Second)
	if n := got.get("Errors/firing"); n != 1 {
		t.Fatalf("two replicas sent the firing alert %d times, want once", n)
	}

	// The sender dies.
	a.cmd.Process.Kill()
	a.cmd.Wait()
	killed := time.Now()
	waitFor(t, "replica b to take over", 10*time.Second, func() bool { return metric(t, b.base, "callwatch_ha_sender") == 1 })
	takeover := time.Since(killed)
	waitFor(t, "replica b to deliver the resolve", 40*time.Second, func() bool { return got.get("Errors/resolved") >= 1 })
	time.Sleep(2 * time.Second)
	firing, resolved := got.get("Errors/firing"), got.get("Errors/resolved")
	if firing != 1 || resolved != 1 {
		t.Fatalf("webhook got %d firing and %d resolved messages, want 1 and 1", firing, resolved)
	}
	t.Logf("FAULT REPORT: faults injected: 1 (the sender replica killed); alerts lost: 0; duplicate notifications: %d; time to recover: %s (takeover)",
		firing+resolved-2, takeover.Round(10*time.Millisecond))
}

// TestHAReplicasThroughAnAlertmanagerPair is Prometheus' HA pattern: two
// replicas with the same rules both send to both members of an
// Alertmanager cluster, which deduplicates: the receiver behind it is
// notified once, and both members show the alert (amtool).
func TestHAReplicasThroughAnAlertmanagerPair(t *testing.T) {
	s := server.Get(t)
	db := errorEvents(t, s, 5)
	hook := newHook(t)
	ams := amtest.StartCluster(t, 2, hook.URL)

	dir := t.TempDir()
	writeErrorsRule(t, dir, "10m")
	for _, replica := range []string{"a", "b"} {
		f := filepath.Join(dir, replica+".yaml")
		writeFile(t, f, fmt.Sprintf(`clickhouse:
  dsn: %s
notifiers:
  - {name: am, type: alertmanager, urls: [%q, %q]}
default_notify: [am]
ha: {replica: %s}
rule_files: [rules.yaml]
`, s.DSN(db), ams[0].URL, ams[1].URL, replica))
		startProc(t, f)
	}
	waitFor(t, "the receiver to be notified", 30*time.Second, func() bool { return len(hook.messages()) >= 1 })
	// Both members hold the alert; they gossip the notification log, so
	// neither notifies again (peer timeout 2s, group interval 1s).
	for i, am := range ams {
		got := am.Query(t, "alertname=Errors")
		if len(got) != 1 || got[0].Labels["tenant_id"] != "acme" {
			t.Fatalf("alertmanager %d shows %+v, want the one Errors alert of acme", i, got)
		}
	}
	time.Sleep(6 * time.Second)
	if messages := hook.messages(); len(messages) != 1 || messages[0] != "firing" {
		t.Fatalf("the receiver got %v, want one firing message from two replicas × two Alertmanagers", messages)
	}
}

// TestHAReplicasShareActions: an acknowledgement and a silence made on one
// replica take effect on the other within seconds, through the audit
// table, without a restart.
func TestHAReplicasShareActions(t *testing.T) {
	s := server.Get(t)
	db := errorEvents(t, s, 5)
	dir := t.TempDir()
	writeErrorsRule(t, dir, "10m")
	var procs []*proc
	for _, replica := range []string{"a", "b"} {
		procs = append(procs, startProc(t, haConfig(t, dir, s.DSN(db), "", replica, "")))
	}
	a, b := procs[0], procs[1]
	for _, p := range procs {
		waitFor(t, "both replicas to fire", 20*time.Second, func() bool { return len(apiAlerts(t, p.base).Data.Alerts) == 1 })
	}

	fp := apiAlerts(t, b.base).Data.Alerts[0].Fingerprint
	if code, body := post(t, b.base+"/api/v1/alerts/"+fp+"/ack", `{"by":"alice","comment":"on it"}`); code != 200 {
		t.Fatalf("ack on replica b: HTTP %d %s", code, body)
	}
	acked := time.Now()
	waitFor(t, "replica a to see b's acknowledgement", 10*time.Second, func() bool { return apiAlerts(t, a.base).Data.Alerts[0].AckedBy == "alice" })
	t.Logf("an acknowledgement on b reached a in %s", time.Since(acked).Round(10*time.Millisecond))

	if code, body := post(t, a.base+"/api/v1/silences", `{"matchers":"{tenant_id=\"acme\"}","duration":"1h","createdBy":"bob"}`); code != 200 {
		t.Fatalf("silence on replica a: HTTP %d %s", code, body)
	}
	waitFor(t, "replica b to list a's silence", 10*time.Second, func() bool {
		var sil struct {
			Data []struct {
				CreatedBy string `json:"createdBy"`
			} `json:"data"`
		}
		getJSON(t, b.base+"/api/v1/silences", &sil)
		return len(sil.Data) == 1 && sil.Data[0].CreatedBy == "bob"
	})
}

// TestHAReplicasShareGroups: with ha.share_groups, two replicas divide the
// rule groups: each group is evaluated by exactly one of them, each alert
// reaches the webhook once, and both replicas' /api/v1/alerts show every
// alert. When one replica is killed, the other takes its groups over
// within the lease's TTL, keeping each alert's start and sending nothing
// twice.
func TestHAReplicasShareGroups(t *testing.T) {
	s := server.Get(t)
	db := eventsTable(t, s, "ai_call_events", dsl.DefaultSchema(), nil)
	tenants := []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	got := newHook(t)
	dir := t.TempDir()
	var rules strings.Builder
	rules.WriteString("groups:\n")
	for _, tenant := range tenants {
		fmt.Fprintf(&rules, `  - name: %s
    interval: 1s
    rules:
      - alert: Errors_%s
        expr: sum by (tenant_id) (count_over_time(events{status="error",tenant_id=%q}[10m])) > 2
`, tenant, tenant, tenant)
	}
	writeFile(t, filepath.Join(dir, "rules.yaml"), rules.String())
	var procs []*proc
	for _, replica := range []string{"a", "b"} {
		procs = append(procs, startProc(t, haConfig(t, dir, s.DSN(db), got.URL, replica, ", share_groups: true")))
	}
	a, b := procs[0], procs[1]
	owned := func(p *proc, group string) float64 {
		return metric(t, p.base, `callwatch_rule_group_owned{rule_group="`+filepath.Join(dir, "rules.yaml")+`;`+group+`"}`)
	}
	waitFor(t, "the replicas to divide the groups", 15*time.Second, func() bool {
		for _, g := range tenants {
			if owned(a, g)+owned(b, g) != 1 {
				return false
			}
		}
		return true
	})
	var onA int
	for _, g := range tenants {
		onA += int(owned(a, g))
	}
	// The errors start once the replicas have divided the groups: a
	// group that moves while its alert's first message is in flight (b
	// joining right after a fired it) may be sent twice, which the
	// at-least-once contract allows and this test does not measure.
	now := time.Now().UTC()
	var rows []map[string]any
	for _, tenant := range tenants {
		for range 3 {
			rows = append(rows, map[string]any{"created_at": now, "tenant_id": tenant, "status": "error"})
		}
	}
	s.InsertJSONEachRow(t, db, "ai_call_events", rows)
	if onA == 0 || onA == len(tenants) {
		t.Errorf("replica a evaluates %d of %d groups: the hash gave one replica everything", onA, len(tenants))
	}
	allAlerts := func(p *proc) map[string]string {
		out := apiAlerts(t, p.base)
		m := map[string]string{}
		for _, al := range out.Data.Alerts {
			if al.State == "firing" {
				m[al.Labels["tenant_id"]] = al.ActiveAt
			}
		}
		return m
	}
	// The status page, to an operator who has given a name (no admin
	// token here), counts the firing alerts in its title, offers
	// Acknowledge on each, and says which replica evaluates the alerts it
	// does not hold.
	page := func(p *proc) string {
		req := newRequest(t, http.MethodGet, p.base+"/", nil)
		req.AddCookie(&http.Cookie{Name: "callwatch_user", Value: "alice"})
		_, body := do(t, req)
		return body
	}
	for i, p := range procs {
		waitFor(t, "every alert on both replicas' API", 20*time.Second, func() bool { return len(allAlerts(p)) == len(tenants) })
		body := page(p)
		n := "0"
		if m := regexp.MustCompile(`<title>\((\d+) firing\)`).FindStringSubmatch(body); m != nil {
			n = m[1]
		}
		if n != strconv.Itoa(len(tenants)) {
			t.Errorf("the status page of %s shows %s firing alerts, want %d (the groups the other replica evaluates too)", p.base, n, len(tenants))
		}
		own := onA
		if i == 1 {
			own = len(tenants) - onA
		}
		other := []string{"b", "a"}[i]
		if got := strings.Count(body, `class="ack"`); got != len(tenants) {
			t.Errorf("the status page of replica %s offers Acknowledge on %d alerts, want all %d", []string{"a", "b"}[i], got, len(tenants))
		}
		if got := strings.Count(body, "evaluated by "+other+":"); got != len(tenants)-own {
			t.Errorf("the status page of replica %s says %d alerts are evaluated by replica %s, want %d", []string{"a", "b"}[i], got, other, len(tenants)-own)
		}
	}
	// An acknowledgement made on the replica that does not evaluate the
	// alert reaches the one that does, through the audit trail.
	var remoteFP, owner string
	for _, al := range apiAlerts(t, b.base).Data.Alerts {
		if g := al.Labels["tenant_id"]; owned(a, g) == 0 {
			remoteFP, owner = al.Fingerprint, g
			break
		}
	}
	if remoteFP == "" {
		t.Fatal("no alert of a group replica b evaluates")
	}
	if code, body := post(t, a.base+"/api/v1/alerts/"+remoteFP+"/ack", `{"by":"alice","comment":"seen on a"}`); code != 200 {
		t.Fatalf("acknowledging %s's alert (evaluated by b) on replica a: %d %s", owner, code, body)
	}
	ackedBy := func(p *proc) string {
		for _, al := range apiAlerts(t, p.base).Data.Alerts {
			if al.Fingerprint == remoteFP {
				return al.AckedBy
			}
		}
		return ""
	}
	waitFor(t, "replica b to apply the acknowledgement made on a", 10*time.Second, func() bool { return ackedBy(b) == "alice" })
	// And replica a, which does not hold the alert, shows it acknowledged.
	if got := ackedBy(a); got != "alice" {
		t.Errorf("replica a shows the alert it acknowledged for b acknowledged by %q, want alice", got)
	}
	activeAt := allAlerts(b)
	waitFor(t, "every alert delivered", 10*time.Second, func() bool {
		for _, tenant := range tenants {
			if got.get("Errors_"+tenant+"/firing") < 1 {
				return false
			}
		}
		return true
	})

	a.cmd.Process.Kill()
	a.cmd.Wait()
	waitFor(t, "replica b to take every group", 10*time.Second, func() bool {
		for _, g := range tenants {
			if owned(b, g) != 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second)
	after := allAlerts(b)
	for _, tenant := range tenants {
		if after[tenant] != activeAt[tenant] {
			t.Errorf("%s's alert: active since %s before the takeover, %s after; want it kept", tenant, activeAt[tenant], after[tenant])
		}
		if n := got.get("Errors_" + tenant + "/firing"); n != 1 {
			t.Errorf("%s's alert reached the webhook %d times, want once", tenant, n)
		}
	}
}

// haConfig writes dir/REPLICA.yaml, the configuration of one replica of a
// high-availability pair over the database of dsn: the rules of
// dir/rules.yaml, a quick lease (200ms heartbeat, 1s TTL) and more keys of
// the ha section (", share_groups: true"); with a hookURL, a webhook
// channel pager is the default channel. It returns the file.
func haConfig(t *testing.T, dir, dsn, hookURL, replica, more string) string {
	t.Helper()
	var notifiers string
	if hookURL != "" {
		notifiers = fmt.Sprintf("notifiers:\n  - {name: pager, type: webhook, url: %q, timeout: 2s}\ndefault_notify: [pager]\n", hookURL)
	}
	f := filepath.Join(dir, replica+".yaml")
	writeFile(t, f, fmt.Sprintf("clickhouse:\n  dsn: %s\n%sha: {enabled: true, replica: %s, heartbeat: 200ms, ttl: 1s%s}\nrule_files: [rules.yaml]\n", dsn, notifiers, replica, more))
	return f
}
