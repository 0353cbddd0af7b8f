package chstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
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

// clusterWait is how long Migrate waits for a statement ON CLUSTER to be
// reported done by every server before it looks at the connected server
// for itself (see execOnCluster). The server's own bound,
// distributed_ddl_task_timeout, is 180 s by default; callwatch does not
// send it: clickhouse-go writes integer settings to a server as old as
// 18.16 as unsigned varints, which 18.16 reads zigzag-encoded for a
// signed setting such as this one, so 3 s arrived as -2, "wait forever".
var clusterWait = 10 * time.Second

// isDDLTimeout reports whether err is the server's answer that a statement
// ON CLUSTER has not been reported done by every server in time (code 159,
// TIMEOUT_EXCEEDED), or 18.16's "Cannot execute replicated DDL query on
// leader" (code 48) that a replica reports when the leader has not
// finished an ALTER within its own wait: in both the statement goes on in
// the background.
func isDDLTimeout(err error) bool {
	var ex *chgo.Exception
	if errors.As(err, &ex) {
		return ex.Code == 159 || (ex.Code == 48 && strings.Contains(ex.Message, "replicated DDL"))
	}
	return false
}

// execOnCluster runs sql, a statement ON CLUSTER when cluster is not "",
// waiting at most clusterWait for every server to report it done. When
// that wait ends first (one is down, or 18.16's queue leaves a report
// pending long after ZooKeeper carried the change),
// the statement has done its part when done reports so for the connected
// server: it polls done within ctx, and returns the server's answer only
// when done never does. The others run the statement from the queue when
// they can.
func execOnCluster(ctx context.Context, conn clickhouse.ExecQuerier, cluster, sql string, done func(context.Context) bool, logger *slog.Logger) error {
	if cluster == "" {
		return conn.Exec(ctx, sql)
	}
	wait, cancel := context.WithTimeout(ctx, clusterWait)
	err := conn.Exec(wait, sql)
	// Past the wait clickhouse-go answers with the connection's read
	// timeout (set to the wait's deadline) rather than the context's
	// error, at times before the context's own timer has fired: the wait
	// ran out when the error is a timeout and the deadline has passed.
	deadline, _ := wait.Deadline()
	waited := isTimeout(err) && !time.Now().Before(deadline) && ctx.Err() == nil
	cancel()
	if err == nil {
		return nil
	}
	if !waited && !isDDLTimeout(err) {
		return err
	}
	if logger != nil {
		logger.Warn("a statement ON CLUSTER has not been reported done by every server; checking this server", "cluster", cluster, "wait", clusterWait, "err", err)
	}
	// The check is bounded even when ctx is not (serve's start).
	poll, cancel := context.WithTimeout(ctx, clusterDDLTimeout)
	defer cancel()
	for !done(poll) {
		select {
		case <-poll.Done():
			return fmt.Errorf("%w (and not done on this server after %s either: check that this server is in cluster %s and its queue of ON CLUSTER statements runs)", err, clusterDDLTimeout, cluster)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if logger != nil {
		logger.Warn("a statement ON CLUSTER is done on this server; the servers that have not reported run it from the queue when they can", "cluster", cluster)
	}
	return nil
}

// isTimeout reports whether err is a deadline running out: the context's,
// or the connection's read deadline that clickhouse-go sets from it.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// tableColumns returns the names of table's columns (table or
// database.table) on the connected server; none when it does not exist.
func tableColumns(ctx context.Context, conn clickhouse.Conn, table string) (map[string]bool, error) {
	db, name, ok := strings.Cut(table, ".")
	dbExpr, args := "currentDatabase()", []any{}
	if ok {
		dbExpr, args = "?", append(args, db)
	} else {
		name = db
	}
	rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = "+dbExpr+" AND table = ?", append(args, name)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		have[name] = true
	}
	return have, rows.Err()
}

// hasColumns is a done for execOnCluster: table exists on the connected
// server with every column of names (none: it exists, for a CREATE).
func hasColumns(conn clickhouse.Conn, table string, names ...string) func(context.Context) bool {
	return func(ctx context.Context) bool {
		have, err := tableColumns(ctx, conn, table)
		return err == nil && hasAll(have, names)
	}
}

// hasAll reports whether have, a table's columns, is a table (not empty)
// with every column of names.
func hasAll(have map[string]bool, names []string) bool {
	if len(have) == 0 {
		return false
	}
	for _, n := range names {
		if !have[n] {
			return false
		}
	}
	return true
}

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

// create creates def's tables (see tableDef.ddl) where p places them,
// each statement ON CLUSTER waited for until its table is on the server
// connected to (see execOnCluster). It returns the statements it ran.
func (p placement) create(ctx context.Context, conn clickhouse.ExecQuerier, def tableDef, logger *slog.Logger) ([]string, error) {
	ddls, err := def.clusterDDL(ctx, conn, p.cluster)
	if err != nil {
		return nil, err
	}
	for i, ddl := range ddls {
		table := p.write
		if i > 0 {
			table = p.read
		}
		if err := execOnCluster(ctx, conn, p.cluster, ddl, hasColumns(conn, table), logger); err != nil {
			return nil, err
		}
	}
	return ddls, nil
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
