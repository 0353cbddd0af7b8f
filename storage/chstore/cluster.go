package chstore

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// LocalSuffix ends the name of the replicated table that holds a store's
// rows on each server of a cluster; the table of the configured name is
// then a Distributed table over them (see SetCluster).
const LocalSuffix = "_local"

// ZooKeeperPath is the ZooKeeper path of a store's replicated table in a
// cluster, %s its name (database.table_local as configured): one per
// shard, through the server's {shard} macro. The replica's name is its
// {replica} macro.
const ZooKeeperPath = "/clickhouse/tables/{shard}/%s"

var clusterRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// clusterDDLTimeout bounds a migration on a cluster, whose statements ON
// CLUSTER return when every server has run them.
const clusterDDLTimeout = 2 * time.Minute

// onCluster is the ON CLUSTER clause of cluster, or "".
func onCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER " + cluster
}

// ValidCluster reports whether name can be a cluster's name in callwatch's
// DDL: letters, digits and _, not starting with a digit.
func ValidCluster(name string) bool { return clusterRe.MatchString(name) }

// tableDef is a table callwatch owns: its columns, its MergeTree engine
// and what follows the engine (PARTITION BY, ORDER BY).
type tableDef struct {
	table   string // table or database.table, as configured
	columns []string
	engine  string   // a MergeTree family engine: MergeTree, ReplacingMergeTree
	args    []string // the engine's arguments (a version column)
	tail    string   // "\nPARTITION BY …\nORDER BY …"
}

// ddl returns the statements that create the table: on a single server one
// CREATE TABLE; in cluster, ON CLUSTER, a Replicated engine table named
// table_local on every server (one ZooKeeper path per shard) and the
// Distributed table of the configured name over them, which reads every
// shard and inserts into one at random.
func (d tableDef) ddl(cluster string) []string {
	cols := "(\n    " + strings.Join(d.columns, ",\n    ") + "\n)"
	if cluster == "" {
		engine := d.engine
		if len(d.args) > 0 {
			engine += "(" + strings.Join(d.args, ", ") + ")"
		}
		return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s %s ENGINE = %s%s", clickhouse.QuoteTable(d.table), cols, engine, d.tail)}
	}
	local := d.table + LocalSuffix
	args := append([]string{"'" + fmt.Sprintf(ZooKeeperPath, local) + "'", "'{replica}'"}, d.args...)
	db, name, _ := strings.Cut(local, ".") // qualified by clusterDDL
	return []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s %s ENGINE = Replicated%s(%s)%s",
			clickhouse.QuoteTable(local), cluster, cols, d.engine, strings.Join(args, ", "), d.tail),
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s ENGINE = Distributed(%s, '%s', '%s', rand())",
			clickhouse.QuoteTable(d.table), cluster, clickhouse.QuoteTable(local), cluster, db, name),
	}
}

// clusterDDL returns d's statements for cluster (see ddl), a table
// without a database qualified by the connection's: a statement ON
// CLUSTER runs on every server in a database of its own choosing, and the
// ZooKeeper path and the Distributed table must name the database.
func (d tableDef) clusterDDL(ctx context.Context, conn clickhouse.Conn, cluster string) ([]string, error) {
	if cluster == "" || strings.Contains(d.table, ".") {
		return d.ddl(cluster), nil
	}
	rows, err := conn.Query(ctx, "SELECT currentDatabase()")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var db string
	if !rows.Next() {
		return nil, fmt.Errorf("no current database: %w", rows.Err())
	}
	if err := rows.Scan(&db); err != nil {
		return nil, err
	}
	d.table = db + "." + d.table
	return d.ddl(cluster), rows.Err()
}

// placement is where a store's rows live: the table it reads (the
// configured one: on a cluster, the Distributed table that reads every
// shard) and the one it writes (on a cluster, the replicated table on the
// server callwatch is connected to, so that a write is stored and on its
// way to the other replicas when it returns, where an insert into the
// Distributed table would only be queued).
type placement struct {
	cluster string
	read    string
	write   string
}

func newPlacement(table string) placement { return placement{read: table, write: table} }

// setCluster places the rows on cluster (or on one server when cluster is
// "").
func (p *placement) setCluster(cluster string) error {
	if cluster != "" && !ValidCluster(cluster) {
		return fmt.Errorf("cluster %q: write the cluster's name from remote_servers (letters, digits, _)", cluster)
	}
	p.cluster, p.write = cluster, p.read
	if cluster != "" {
		p.write = p.read + LocalSuffix
	}
	return nil
}
