package storetest

// The suites on a cluster: the events table is a Distributed table over a
// MergeTree table on every shard, so that every statement callwatch
// writes runs as a distributed query over shards that each hold part of
// the events.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
)

// EventsTableCreator is a connection that creates the suites' events
// tables its own way instead of running clickhouse.EventsDDL on itself: a
// cluster's (ClusterConn) creates one on every shard and a Distributed
// table in front.
type EventsTableCreator interface {
	CreateEventsTable(ctx context.Context, table string, schema dsl.Schema) error
	// EventsDistributed reports whether the tables it creates are
	// Distributed tables (clickhouse.Options.Distributed).
	EventsDistributed() bool
}

// distributed reports whether conn's events tables are Distributed tables.
func distributed(conn clickhouse.ExecQuerier) bool {
	c, ok := conn.(EventsTableCreator)
	return ok && c.EventsDistributed()
}

// createEventsTable creates an events table of the default column types
// (clickhouse.EventsDDL) named table (database.table), through conn's
// EventsTableCreator when it has one.
func createEventsTable(t *testing.T, conn clickhouse.ExecQuerier, table string, schema dsl.Schema) {
	t.Helper()
	c, ok := conn.(EventsTableCreator)
	if !ok {
		mustExec(t, conn, clickhouse.EventsDDL(table, schema))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateEventsTable(ctx, table, schema); err != nil {
		t.Fatalf("create events table %s: %v", table, err)
	}
}

// Sizer is a connection that runs the randomized suites on fewer
// generated expressions than the default, where each statement is slow
// (a cluster's distributed queries).
type Sizer interface {
	// SuiteScale is the fraction (0 to 1) of the default number of
	// generated expressions to run.
	SuiteScale() float64
}

// exprsFor is n scaled by conn's Sizer, when it has one, and at least 10.
func exprsFor(conn clickhouse.ExecQuerier, n int) int {
	if s, ok := conn.(Sizer); ok && s.SuiteScale() > 0 {
		return max(10, int(float64(n)*min(s.SuiteScale(), 1)))
	}
	return n
}

// ClusterConn is a connection to one server of a cluster whose events
// tables are Distributed tables: it creates every events table as
// TABLE_local (clickhouse.EventsDDL) on every server and TABLE, a
// Distributed table over them sharded by rand(), on every server. Open its
// connection with insert_distributed_sync=1, so that an insert is on the
// shards when it returns.
type ClusterConn struct {
	clickhouse.ExecQuerier
	Cluster *chtest.Cluster
	// Scale, when positive, is the fraction of the randomized suites'
	// generated expressions to run (see Sizer).
	Scale float64
}

// SuiteScale is c.Scale.
func (c ClusterConn) SuiteScale() float64 { return c.Scale }

var _ EventsTableCreator = ClusterConn{}

// LocalSuffix ends the name of the shards' tables under a Distributed
// events table.
const LocalSuffix = "_local"

// CreateEventsTable creates the shards' tables and the Distributed table.
func (c ClusterConn) CreateEventsTable(ctx context.Context, table string, schema dsl.Schema) error {
	db, name, ok := strings.Cut(table, ".")
	if !ok {
		return fmt.Errorf("events table %q: a cluster's table is database.table", table)
	}
	local := table + LocalSuffix
	for _, s := range c.Cluster.Servers() {
		for _, ddl := range []string{
			clickhouse.EventsDDL(local, schema),
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, rand())",
				clickhouse.QuoteTable(table), clickhouse.QuoteTable(local), c.Cluster.Name,
				clickhouse.QuoteIdent(db), clickhouse.QuoteIdent(name+LocalSuffix)),
		} {
			if err := execOn(ctx, s, ddl); err != nil {
				return err
			}
		}
	}
	return nil
}

// EventsDistributed is true: the events tables are Distributed tables.
func (ClusterConn) EventsDistributed() bool { return true }

// execOn runs one statement on server s.
func execOn(ctx context.Context, s *chtest.Server, sql string) error {
	conn, err := clickhouse.Open(ctx, s.DSN("default"))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s on %s: %w", sql, s.Addr, err)
	}
	return nil
}

// EventsSplitAcrossShards checks that every events table the suites
// created in db on cluster holds rows on every shard, so the suites did
// compare distributed queries over split events: it fails the test when a
// shard of a table that has rows holds none, and returns the rows of each
// table per shard.
func EventsSplitAcrossShards(t *testing.T, cluster *chtest.Cluster, db string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for sh, shard := range cluster.Shards {
		conn := clickhouse.NewNativeConn(shard[0].Conn(t, db))
		names := queryColumn[string](t, conn, "SELECT name FROM system.tables WHERE database = ? AND endsWith(name, ?) ORDER BY name", db, LocalSuffix)
		for _, name := range names {
			n := queryCount(t, conn, "SELECT count() FROM "+clickhouse.QuoteIdent(name))
			if out[name] == nil {
				out[name] = make([]uint64, len(cluster.Shards))
			}
			out[name][sh] = n
		}
	}
	for name, n := range out {
		total := uint64(0)
		for _, x := range n {
			total += x
		}
		for sh, x := range n {
			if x == 0 && total > 0 {
				t.Errorf("%s: shard %d holds none of its %d rows", name, sh+1, total)
			}
		}
	}
	return out
}
