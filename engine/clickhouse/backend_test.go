package clickhouse_test

import (
	"context"
	"flag"
	"strconv"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/storetest"
)

// seedFlag replays one seed of the randomized suites (also CALLWATCH_SEED).
var seedFlag = flag.String("seed", "", "seed of the randomized SQL suites (default: a fixed seed and one from the clock; also CALLWATCH_SEED)")

// serverDatabase returns a connection to the ClickHouse server the tests
// start (18.16 from Debian) and a fresh database on it. The connection
// parses queries of up to 4 MiB (max_query_size, 256 KiB by default): the
// suites bind a 120 KB label value several times into one statement, and
// 18.16, without query parameters, receives the values in the query's
// text.
func serverDatabase(t *testing.T) (*clickhouse.NativeConn, string) {
	t.Helper()
	s := clickhouse.SharedServer.Get(t)
	db := s.NewDatabase(t)
	conn, err := clickhouse.Open(context.Background(), s.DSN(db)+"?max_query_size=4194304")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, db
}

// TestBackendOnTheServer runs the events-SQL contracts of internal/storetest
// against the server; storage/chdb runs them on embedded ClickHouse. The
// differential and range suites run the fixed seed and one from the clock;
// IncrementalStepAfterStep the fixed seed alone: storage/chdb runs a seed
// from the clock, so the two backends explore as the fixed and the clock
// seed did on the server alone, in about the same time (a seed costs a
// minute of each). IncrementalConcurrent evaluates from two goroutines
// while background reads run (make test runs it under the race detector).
func TestBackendOnTheServer(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Database: func(t *testing.T) (clickhouse.ExecQuerier, string) { return serverDatabase(t) },
		Seeds:    func(t *testing.T) []uint64 { return storetest.Seeds(t, *seedFlag) },
		StepSeeds: func(t *testing.T) []uint64 {
			return storetest.Seeds(t, *seedFlag)[:1]
		},
		Groupings:             clickhouse.IncrementalGroupings,
		IncrementalConcurrent: true,
	})
}

// TestDistributedEventsOnACluster runs the differential suites against a
// Distributed events table over two shards of 18.16 servers (rows spread
// by rand()): every leaf — full, incremental, range — computed through the
// Distributed table must give the memory evaluator's answer, as on one
// server.
func TestDistributedEventsOnACluster(t *testing.T) {
	cluster := chtest.StartCluster(t, chtest.ClusterOptions{Shards: 2})
	db := cluster.NewDatabase(t)
	// Through the first shard's server; an insert returns once its rows are
	// on their shards.
	conn, err := clickhouse.Open(context.Background(), cluster.Shards[0][0].DSN(db)+"?max_query_size=4194304&insert_distributed_sync=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// A third of the generated expressions: every statement is a
	// distributed query, and the whole suite ran for minutes.
	c := storetest.ClusterConn{ExecQuerier: conn, Cluster: cluster, Scale: 1.0 / 3}
	seeds := storetest.Seeds(t, *seedFlag)
	t.Run("Differential", func(t *testing.T) { storetest.Differential(t, c, db, seeds[:1]) })
	t.Run("IncrementalStepAfterStep", func(t *testing.T) {
		storetest.IncrementalStepAfterStep(t, c, db, seeds[len(seeds)-1:], clickhouse.IncrementalGroupings)
	})
	t.Run("RangeMatchesInstants", func(t *testing.T) { storetest.RangeMatchesInstants(t, c, db, seeds[:1]) })
	t.Run("EvidenceAgreesWithMemory", func(t *testing.T) { storetest.EvidenceAgreesWithMemory(t, c, db) })
	split := storetest.EventsSplitAcrossShards(t, cluster, db)
	if len(split) < 4 {
		t.Errorf("events tables on the shards: %v, want one per suite", split)
	}
	t.Logf("rows per shard: %v", split)
	for table, want := range map[string]string{db + ".range_events_" + strconv.FormatUint(seeds[0], 10): "Distributed", db + ".range_events_" + strconv.FormatUint(seeds[0], 10) + storetest.LocalSuffix: "MergeTree"} {
		if got, err := clickhouse.ReadEngine(context.Background(), conn, table); err != nil || got != want {
			t.Errorf("engine of %s = %q, %v; want %s", table, got, err, want)
		}
	}
	if _, err := clickhouse.ReadEngine(context.Background(), conn, db+".nothing"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("engine of a missing table: %v, want an error saying it does not exist", err)
	}
}
