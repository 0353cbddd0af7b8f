package chtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
	"github.com/callwatch/callwatch/internal/zktest"
)

// ClusterOptions describe a cluster of local servers.
type ClusterOptions struct {
	// Name is the cluster's name in remote_servers (default
	// "callwatch_test").
	Name string
	// Shards and Replicas count the shards and the replicas of each
	// (default 1 each).
	Shards, Replicas int
	// ZooKeeper is the host:port of the ZooKeeper that keeps replicated
	// tables and the queue of ON CLUSTER statements (see package zktest);
	// without it neither works, but Distributed tables do.
	ZooKeeper string
}

// Cluster is a set of servers that name each other in remote_servers
// (over loopback ports), each with the macros {cluster}, {shard} (1, 2,
// …) and {replica} (the server's "shard-replica", such as 1-2) that
// replicated tables take their ZooKeeper path and replica name from.
type Cluster struct {
	// Name is the cluster's name, for Distributed(…) and ON CLUSTER.
	Name string
	// Shards are the servers, by shard and then by replica.
	Shards [][]*Server

	dir       string
	closeOnce sync.Once
}

// StartCluster starts a cluster for one test and kills its servers when
// the test ends. When ClickHouse is not installed it skips the test, or
// fails it when the environment variable CI is "true".
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	c, err := StartClusterServers(t.TempDir(), opts)
	if err != nil {
		proctest.SkipOrFatal(t, err, ErrNotInstalled)
	}
	t.Cleanup(c.Close)
	// A failed test shows the end of each server's error log (the cause of
	// a statement ON CLUSTER that never finished is in some server's log,
	// not in the error the client got). Registered after Close, it runs
	// before it.
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range c.Servers() {
				t.Logf("server %s (port %d):\n%s", s.Dir, s.Port, proctest.LogTail(filepath.Join(s.Dir, "log", "err.log")))
			}
		}
	})
	return c
}

// StartReplicated starts, for one test, a private ZooKeeper and a cluster
// named name of two replicas of one shard that keep their replicated
// tables and statements ON CLUSTER in it, and returns the cluster with a
// new database created on every server.
func StartReplicated(t testing.TB, name string) (*Cluster, string) {
	t.Helper()
	zk := zktest.Start(t)
	c := StartCluster(t, ClusterOptions{Name: name, Replicas: 2, ZooKeeper: zk.Addr})
	return c, c.NewDatabase(t)
}

// StartClusterServers starts a cluster whose files live under dir (a new
// temporary directory, removed by Close, when dir is empty). The caller
// must Close it. It returns ErrNotInstalled when no server binary is
// found.
func StartClusterServers(dir string, opts ClusterOptions) (*Cluster, error) {
	bin, err := serverCommand()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "callwatch_test"
	}
	opts.Shards, opts.Replicas = max(opts.Shards, 1), max(opts.Replicas, 1)
	ownDir := dir == ""
	if ownDir {
		if dir, err = os.MkdirTemp("", "chtest-cluster-"); err != nil {
			return nil, fmt.Errorf("start clickhouse cluster: %w", err)
		}
	}
	c, err := proctest.Retry(func() (*Cluster, error) { return startCluster(bin, dir, opts) })
	if err != nil {
		if ownDir {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	if ownDir {
		c.dir = dir
	}
	return c, nil
}

func startCluster(bin []string, dir string, opts ClusterOptions) (*Cluster, error) {
	n := opts.Shards * opts.Replicas
	// Per server: native, HTTP and interserver HTTP (replicas fetch parts
	// from each other through it).
	ports, err := proctest.FreePorts(3 * n)
	if err != nil {
		return nil, fmt.Errorf("start clickhouse cluster: %w", err)
	}
	var remote strings.Builder
	fmt.Fprintf(&remote, "    <remote_servers>\n        <%s>\n", opts.Name)
	for sh := range opts.Shards {
		remote.WriteString("            <shard>\n                <internal_replication>true</internal_replication>\n")
		for r := range opts.Replicas {
			fmt.Fprintf(&remote, "                <replica><host>127.0.0.1</host><port>%d</port></replica>\n", ports[3*(sh*opts.Replicas+r)])
		}
		remote.WriteString("            </shard>\n")
	}
	fmt.Fprintf(&remote, "        </%s>\n    </remote_servers>\n", opts.Name)
	var zk string
	if opts.ZooKeeper != "" {
		host, port, ok := strings.Cut(opts.ZooKeeper, ":")
		if !ok {
			return nil, fmt.Errorf("start clickhouse cluster: ZooKeeper %q is not host:port", opts.ZooKeeper)
		}
		zk = fmt.Sprintf("    <zookeeper>\n        <node><host>%s</host><port>%s</port></node>\n        <session_timeout_ms>10000</session_timeout_ms>\n    </zookeeper>\n"+
			"    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n", host, port)
	}

	c := &Cluster{Name: opts.Name, Shards: make([][]*Server, opts.Shards)}
	for sh := range opts.Shards {
		for r := range opts.Replicas {
			p := ports[3*(sh*opts.Replicas+r):]
			extra := remote.String() + zk + fmt.Sprintf(
				"    <interserver_http_port>%d</interserver_http_port>\n    <interserver_http_host>127.0.0.1</interserver_http_host>\n"+
					"    <macros><cluster>%s</cluster><shard>%d</shard><replica>%d-%d</replica></macros>\n",
				p[2], opts.Name, sh+1, sh+1, r+1)
			s, err := prepare(dir, p[0], p[1], extra)
			if err != nil {
				c.kill()
				return nil, err
			}
			c.Shards[sh] = append(c.Shards[sh], s)
		}
	}
	// The servers start one after another: on two cores, a cluster of
	// ClickHouse processes starting at once would miss StartTimeout.
	for _, s := range c.Servers() {
		if err := s.startProc(bin); err != nil {
			c.kill()
			return nil, fmt.Errorf("start clickhouse cluster (%s): %w", strings.Join(bin, " "), err)
		}
	}
	return c, nil
}

// Servers returns every server, shard after shard.
func (c *Cluster) Servers() []*Server {
	var out []*Server
	for _, shard := range c.Shards {
		out = append(out, shard...)
	}
	return out
}

// kill kills the servers started so far.
func (c *Cluster) kill() {
	for _, s := range c.Servers() {
		if s.proc != nil {
			_ = s.proc.Kill()
		}
	}
}

// Close kills every server and removes the files when StartClusterServers
// created the directory. It is safe to call more than once.
func (c *Cluster) Close() {
	c.closeOnce.Do(func() {
		c.kill()
		if c.dir != "" {
			os.RemoveAll(c.dir)
		}
	})
}

// Exec runs a statement on every server and fails the test on error.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	for _, s := range c.Servers() {
		s.Exec(t, sql, args...)
	}
}

// NewDatabase creates a database of a fresh name (test_<random>) on every
// server, dropped when the test ends, and returns its name.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := newDatabaseName(t)
	c.Exec(t, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		for _, s := range c.Servers() {
			_ = s.exec("DROP DATABASE IF EXISTS " + name)
		}
	})
	return name
}

// WaitReplicated waits until every replica of db.table has fetched what
// the others have (SYSTEM SYNC REPLICA on each server), so that a read on
// any replica sees every insert made before the call.
func (c *Cluster) WaitReplicated(t testing.TB, table string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range c.Servers() {
		conn, err := s.open("default")
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Exec(ctx, "SYSTEM SYNC REPLICA "+table)
		conn.Close()
		if err != nil {
			t.Fatalf("sync replica %s on %s: %v", table, s.Addr, err)
		}
	}
}
