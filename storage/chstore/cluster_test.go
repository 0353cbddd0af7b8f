package chstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/docpage"
	"github.com/callwatch/callwatch/storage/chstore"
)

// TestStoresOnAClusterShareTheirRows runs two 18.16 servers as two
// replicas of one shard, kept by a private ZooKeeper, with callwatch's
// tables created ON CLUSTER: a record audited through one server is read
// through the other, and two callwatch replicas heartbeating through
// different servers see each other and elect the same sender.
func TestStoresOnAClusterShareTheirRows(t *testing.T) {
	cluster, db := chtest.StartReplicated(t, "calls")
	ctx := context.Background()
	var conns []*clickhouse.NativeConn
	for _, s := range cluster.Servers() {
		conn, err := clickhouse.Open(ctx, s.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conns = append(conns, conn)
	}
	// within polls until ok holds, for what replication brings within
	// seconds.
	within := func(what string, ok func() (bool, string)) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			good, got := ok()
			if good {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %s after 30s", what, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	t.Run("a record audited through one server is read through the other", func(t *testing.T) {
		var stores []*chstore.AuditStore
		for _, conn := range conns {
			s, err := chstore.NewAuditStore(conn, db+".audit")
			if err != nil {
				t.Fatal(err)
			}
			// Both replicas of callwatch migrate: the second finds the
			// tables there.
			migrateOnCluster(t, s, cluster.Name)
			stores = append(stores, s)
		}
		for _, s := range cluster.Servers() {
			engines := tableEngines(t, s, db)
			if engines["audit_local"] != "ReplicatedMergeTree" || engines["audit"] != "Distributed" {
				t.Fatalf("tables on %s: %v; want audit_local ReplicatedMergeTree and audit Distributed", s.Addr, engines)
			}
		}
		at := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
		rec := engine.AuditRecord{Time: at, Kind: engine.AuditAcknowledged, Fingerprint: "00000000000000ff", Rule: "Errors", By: "alice", Comment: "on it"}
		if err := stores[0].Record(ctx, rec); err != nil {
			t.Fatal(err)
		}
		within("the acknowledgement read through the second server", func() (bool, string) {
			got, err := stores[1].History(ctx, engine.AuditQuery{})
			if err != nil {
				t.Fatal(err)
			}
			return len(got) == 1 && got[0].By == "alice" && got[0].Comment == "on it" && got[0].Time.Equal(at), describe(got)
		})
		// The Distributed table reads the shard once: a second record is
		// not read twice through either server.
		if err := stores[1].Record(ctx, engine.AuditRecord{Time: at.Add(time.Second), Kind: engine.AuditManualResolve, Fingerprint: "00000000000000ff", Rule: "Errors", By: "bob"}); err != nil {
			t.Fatal(err)
		}
		for i, s := range stores {
			within("both records through server "+cluster.Servers()[i].Addr, func() (bool, string) {
				got, err := s.History(ctx, engine.AuditQuery{})
				if err != nil {
					t.Fatal(err)
				}
				return len(got) == 2 && got[0].By == "bob" && got[1].By == "alice", describe(got)
			})
		}
	})

	t.Run("heartbeats through different servers elect one sender", func(t *testing.T) {
		names := []string{"callwatch-a", "callwatch-b"}
		var electors []*engine.Elector
		var leases []*chstore.LeaseStore
		for i, conn := range conns {
			// Unqualified: in the connection's database.
			lease, err := chstore.NewLeaseStore(conn, "replicas")
			if err != nil {
				t.Fatal(err)
			}
			migrateOnCluster(t, lease, cluster.Name)
			if err := lease.Beat(ctx, names[i]); err != nil {
				t.Fatal(err)
			}
			leases = append(leases, lease)
			electors = append(electors, engine.NewElector(engine.ElectorOptions{Store: lease, Replica: names[i], Interval: time.Second, TTL: time.Minute}))
		}
		// Each replica's view, through its own server, holds both.
		for i, lease := range leases {
			within("the live set through server "+cluster.Servers()[i].Addr, func() (bool, string) {
				alive, err := lease.Alive(ctx, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return slices.Equal(alive, names), "[" + strings.Join(alive, " ") + "]"
			})
		}
		now := time.Now()
		for _, e := range electors {
			e.Round(ctx, now)
		}
		if !electors[0].Leader() || electors[1].Leader() {
			t.Fatalf("senders: callwatch-a %v, callwatch-b %v; want callwatch-a alone", electors[0].Leader(), electors[1].Leader())
		}
	})
}

// tableEngines returns the engines of db's tables on s, by name.
func tableEngines(t *testing.T, s *chtest.Server, db string) map[string]string {
	t.Helper()
	rows, err := s.Conn(t, db).Query(context.Background(), "SELECT name, engine FROM system.tables WHERE database = ?", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, eng string
		if err := rows.Scan(&name, &eng); err != nil {
			t.Fatal(err)
		}
		out[name] = eng
	}
	return out
}

// describe lists records by who made them, for messages.
func describe(recs []engine.AuditRecord) string {
	var b strings.Builder
	b.WriteString("[")
	for i, r := range recs {
		if i > 0 {
			b.WriteString(" ")
		}
		b.WriteString(string(r.Kind) + " by " + r.By)
	}
	return b.String() + "]"
}

// TestDocsShowTheClusterDDL: the statements docs/operations.md shows for
// users who create callwatch's tables on a cluster themselves are those
// Migrate runs.
func TestDocsShowTheClusterDDL(t *testing.T) {
	doc := docpage.Read(t, "operations.md")
	ddl := append(chstore.AuditClusterDDL("callwatch.callwatch_alert_log", "calls"), chstore.LeaseClusterDDL("callwatch.callwatch_replicas", "calls")...)
	want := "```sql\n" + strings.Join(ddl, ";\n\n") + ";\n```"
	if !strings.Contains(doc, want) {
		t.Errorf("docs/operations.md does not show the cluster DDL; it should show\n%s", want)
	}
}

// TestAnOldAuditTableOnAClusterGetsTheNewColumns: Migrate adds the columns
// a newer callwatch needs to an audit table created ON CLUSTER by an
// older one, on the replicated tables and the Distributed table of every
// server, and a record written then is read with them through the other
// server.
func TestAnOldAuditTableOnAClusterGetsTheNewColumns(t *testing.T) {
	cluster, db := chtest.StartReplicated(t, "calls")
	ctx := context.Background()
	first := cluster.Servers()[0]
	first.Exec(t, "CREATE TABLE "+db+".audit_local ON CLUSTER calls (`time` DateTime, `nanos` Int64, `kind` String) "+
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/"+db+".audit_local', '{replica}') ORDER BY (`time`, `nanos`)")
	first.Exec(t, "CREATE TABLE "+db+".audit ON CLUSTER calls AS "+db+".audit_local ENGINE = Distributed(calls, '"+db+"', 'audit_local', rand())")
	var stores []*chstore.AuditStore
	for _, s := range cluster.Servers() {
		stores = append(stores, openClusterStore(t, s, db))
	}
	if err := stores[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].Migrate(ctx); err != nil {
		t.Fatalf("a second replica's migration, after the first: %v", err)
	}
	if err := stores[0].Record(ctx, engine.AuditRecord{Time: time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC), Kind: engine.AuditAcknowledged, Fingerprint: "00000000000000ff", By: "alice", Replica: "callwatch-a"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := stores[1].History(ctx, engine.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].By == "alice" && got[0].Replica == "callwatch-a" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("through the second server: %s, want the acknowledgement by alice from callwatch-a", describe(got))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMigrateWithAServerOfTheClusterDown: a server of the cluster down
// when callwatch starts does not hold the migration past the wait for a
// statement ON CLUSTER (18.16's queue answers only when every server has
// reported, and a replica's report can stay pending): the server
// callwatch is connected to gets the new columns, records are written
// and read, and the other server, started again, takes the columns from
// ZooKeeper and reads the record through its Distributed table.
func TestMigrateWithAServerOfTheClusterDown(t *testing.T) {
	old := chstore.SetClusterWait(3 * time.Second)
	t.Cleanup(func() { chstore.SetClusterWait(old) })
	cluster, db := chtest.StartReplicated(t, "calls")
	ctx := context.Background()
	first, second := cluster.Servers()[0], cluster.Servers()[1]
	// The tables of the release before evidence: a replica that missed an
	// ALTER takes it from ZooKeeper at start when it differs by at most
	// two columns (18.16 refuses more: see docs/operations.md).
	for _, ddl := range chstore.AuditClusterDDL(db+".audit", "calls") {
		before := strings.Replace(ddl, ",\n    `evidence` String", "", 1)
		if before == ddl && strings.Contains(ddl, "evidence") {
			t.Fatalf("no evidence column to leave out in %s", ddl)
		}
		first.Exec(t, before)
	}
	if err := second.Kill(); err != nil {
		t.Fatal(err)
	}
	store := openClusterStore(t, first, db)
	start := time.Now()
	if err := store.Migrate(ctx); err != nil {
		t.Fatalf("migrate with the second server down: %v", err)
	}
	t.Logf("migrated in %v with a server down", time.Since(start).Round(time.Millisecond))
	rec := engine.AuditRecord{Time: time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC), Kind: engine.AuditAcknowledged, Fingerprint: "00000000000000ff", By: "alice", Replica: "callwatch-a"}
	if err := store.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := second.Restart(); err != nil {
		t.Fatal(err)
	}
	other := openClusterStore(t, second, db)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := other.History(ctx, engine.AuditQuery{})
		if err == nil && len(got) == 1 && got[0].By == "alice" && got[0].Replica == "callwatch-a" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("through the restarted server: %s, %v; want the acknowledgement by alice from callwatch-a", describe(got), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// migrateOnCluster places a store's table on cluster and migrates it.
func migrateOnCluster(t *testing.T, store interface {
	SetCluster(string) error
	Migrate(context.Context) error
}, cluster string) {
	t.Helper()
	if err := store.SetCluster(cluster); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// openClusterStore is an audit store on db.audit of cluster calls,
// connected to s.
func openClusterStore(t *testing.T, s *chtest.Server, db string) *chstore.AuditStore {
	t.Helper()
	conn, err := clickhouse.Open(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	store, err := chstore.NewAuditStore(conn, db+".audit")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetCluster("calls"); err != nil {
		t.Fatal(err)
	}
	return store
}
