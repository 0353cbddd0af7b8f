package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/zktest"
)

// TestHAReplicasOnAClusterElectOneSender runs two replicas of callwatch,
// each connected to its own server of a ClickHouse cluster (two 18.16
// replicas of one shard, a private ZooKeeper) with clickhouse.cluster set:
// both evaluate the rule over a Distributed events table, they elect one
// sender through the lease table they share across the servers, and the
// firing alert reaches the webhook once.
func TestHAReplicasOnAClusterElectOneSender(t *testing.T) {
	zk := zktest.Start(t)
	cluster := chtest.StartCluster(t, chtest.ClusterOptions{Name: "calls", Replicas: 2, ZooKeeper: zk.Addr})
	db := cluster.NewDatabase(t)
	first := cluster.Servers()[0]
	ddl := strings.Replace(clickhouse.EventsDDL(db+".ai_call_events_local", dsl.DefaultSchema()), " (", " ON CLUSTER calls (", 1)
	ddl = strings.Replace(ddl, "ENGINE = MergeTree", "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/"+db+".ai_call_events_local', '{replica}')", 1)
	first.Exec(t, ddl)
	first.Exec(t, "CREATE TABLE "+db+".ai_call_events ON CLUSTER calls AS "+db+".ai_call_events_local ENGINE = Distributed(calls, '"+db+"', 'ai_call_events_local', rand())")
	first.InsertJSONEachRow(t, db, "ai_call_events_local", acmeErrors(5))

	got := newHook(t)
	dir := t.TempDir()
	writeErrorsRule(t, dir, "30s")
	config := func(replica string, s *chtest.Server) string {
		f := filepath.Join(dir, replica+".yaml")
		writeFile(t, f, fmt.Sprintf(`clickhouse:
  dsn: %s
  cluster: calls
notifiers:
  - {name: pager, type: webhook, url: %q, timeout: 2s}
default_notify: [pager]
ha: {enabled: true, replica: %s, heartbeat: 200ms, ttl: 2s}
rule_files: [rules.yaml]
`, s.DSN(db), got.URL, replica))
		return f
	}
	a := startProc(t, config("replica-a", cluster.Servers()[0]))
	b := startProc(t, config("replica-b", cluster.Servers()[1]))
	for _, p := range []*proc{a, b} {
		waitFor(t, "both replicas to evaluate the alert as firing", 20*time.Second, func() bool {
			return metric(t, p.base, `ALERTS{alertname="Errors",alertstate="firing",tenant_id="acme"}`) == 1
		})
	}
	waitFor(t, "the firing alert at the webhook", 15*time.Second, func() bool { return got.get("Errors/firing") >= 1 })
	// Each sees the other's heartbeats, through its own server.
	waitFor(t, "one sender", 10*time.Second, func() bool {
		return metric(t, a.base, "callwatch_ha_sender")+metric(t, b.base, "callwatch_ha_sender") == 1
	})
	if v := metric(t, a.base, "callwatch_ha_sender"); v != 1 {
		t.Fatalf("replica a: callwatch_ha_sender = %v, want 1 (the smaller name)", v)
	}
	time.Sleep(2 * time.Second)
	if n := got.get("Errors/firing"); n != 1 {
		t.Fatalf("two replicas on two servers sent the firing alert %d times, want once", n)
	}
	for _, s := range cluster.Servers() {
		var n uint64
		if err := s.Conn(t, db).QueryRow(t.Context(), "SELECT count() FROM callwatch_replicas_local").Scan(&n); err != nil || n == 0 {
			t.Errorf("the lease table's replica on %s holds %d beats (%v), want the beats of both", s.Addr, n, err)
		}
	}
}
