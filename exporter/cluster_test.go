package exporter

import (
	"context"
	"fmt"
	"testing"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
)

// TestCountersOverADistributedTable runs the counter tests against a
// Distributed events table over two shards of 18.16 servers (rows spread
// by rand()): the exporter's update and cardinality queries, read through
// it, give what they give on one server.
func TestCountersOverADistributedTable(t *testing.T) {
	cluster := chtest.StartCluster(t, chtest.ClusterOptions{Shards: 2})
	for name, f := range map[string]func(*testing.T, *backend){
		"late rows are counted once":            testLateRowsAreCountedOnce,
		"counters never decrease":               testCountersNeverDecreaseAcrossUpdates,
		"a zero late window reads new rows":     testZeroLateWindowReadsOnlyNewRows,
		"the duration histogram":                testDurationHistogramMatchesClientGolang,
		"labels beyond the cap fold into other": testLabelsBeyondTheCapAreFoldedIntoOther,
	} {
		t.Run(name, func(t *testing.T) { f(t, newClusterBackend(t, cluster)) })
	}
}

// newClusterBackend creates, in a fresh database, calls_local (EventsDDL)
// on every server of cluster and calls, a Distributed table over them, and
// returns a backend over calls through the first server, whose inserts are
// on their shards when they return (insert_distributed_sync).
func newClusterBackend(t *testing.T, cluster *chtest.Cluster) *backend {
	t.Helper()
	db := cluster.NewDatabase(t)
	cluster.Exec(t, clickhouse.EventsDDL(db+".calls_local", dsl.DefaultSchema()))
	cluster.Exec(t, fmt.Sprintf("CREATE TABLE %s.calls AS %[1]s.calls_local ENGINE = Distributed(%s, %[1]s, calls_local, rand())", db, cluster.Name))
	conn, err := clickhouse.Open(context.Background(), cluster.Shards[0][0].DSN(db)+"?insert_distributed_sync=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &backend{db: db, table: db + ".calls", conn: conn, exec: func(t *testing.T, sql string, args ...any) {
		t.Helper()
		if err := conn.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("exec %q: %v", sql, err)
		}
	}}
}
