package chstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// LeaseStore keeps the heartbeats of callwatch replicas in a ClickHouse
// table, for engine.Elector: one row per beat, timed by the server's clock
// (so the replicas' clocks need not agree), in a ReplacingMergeTree that
// keeps one row per replica as parts merge. It works on 18.16 and 26.x.
// When the table disappears while callwatch runs, the next beat re-creates
// it, so the election does not stay broken until a restart.
type LeaseStore struct {
	conn  clickhouse.ExecQuerier
	table string
	place placement
	keep  *recreator
}

var _ engine.LeaseStore = (*LeaseStore)(nil)

// NewLeaseStore returns a LeaseStore over table (table or database.table).
func NewLeaseStore(conn clickhouse.ExecQuerier, table string) (*LeaseStore, error) {
	if conn == nil {
		return nil, errors.New("lease store: no connection")
	}
	if !validTable(table) {
		return nil, fmt.Errorf("lease store: %q is not a table name", table)
	}
	s := &LeaseStore{conn: conn, table: table, place: newPlacement(table)}
	s.keep = &recreator{table: table, migrate: s.Migrate}
	return s, nil
}

// LeaseDDL is the CREATE TABLE of the lease table on one server.
func LeaseDDL(table string) string { return leaseDef(table).ddl("")[0] }

// LeaseClusterDDL are the statements that create the lease table on
// cluster (see SetCluster): a ReplicatedReplacingMergeTree table_local on
// every server and the Distributed table in front, both ON CLUSTER.
func LeaseClusterDDL(table, cluster string) []string { return leaseDef(table).ddl(cluster) }

func leaseDef(table string) tableDef {
	return tableDef{table: table, columns: []string{"`replica` String", "`at` DateTime"}, engine: "ReplacingMergeTree", args: []string{"`at`"}, tail: "\nORDER BY `replica`"}
}

// SetCluster keeps the heartbeats on a ClickHouse cluster (the name of one
// in the servers' remote_servers; "" is one server, the default): Migrate
// creates the tables ON CLUSTER (LeaseClusterDDL), a beat is written into
// the replicated table on the server callwatch is connected to, and the
// live set is read through the Distributed table, so replicas of callwatch
// connected to different servers see each other's beats and elect one
// sender. Call it before Migrate.
func (s *LeaseStore) SetCluster(cluster string) error {
	if err := s.place.setCluster(cluster); err != nil {
		return fmt.Errorf("lease table %s: %w", s.table, err)
	}
	return nil
}

// SetLogger sets where the store logs what it does on its own, such as
// re-creating its table (default: nowhere). Call it before using the store.
func (s *LeaseStore) SetLogger(l *slog.Logger) { s.keep.logger = l }

// Migrate creates the table when it is missing.
func (s *LeaseStore) Migrate(ctx context.Context) error {
	if _, err := s.place.create(ctx, s.conn, leaseDef(s.table), s.keep.logger); err != nil {
		return fmt.Errorf("create lease table %s: %w", s.table, err)
	}
	return nil
}

// Beat records that replica is alive now, by the server's clock.
func (s *LeaseStore) Beat(ctx context.Context, replica string) error {
	// INSERT … SELECT with bound values: the form that works on 18.16
	// through clickhouse-go (INSERT … VALUES with arguments hangs there).
	sql := fmt.Sprintf("INSERT INTO %s (`replica`, `at`) SELECT ?, now()", clickhouse.QuoteTable(s.place.write))
	return s.keep.do(ctx, func(ctx context.Context) error { return s.conn.Exec(ctx, sql, replica) })
}

// Alive returns the replicas whose last beat is at most ttl old, by the
// server's clock, sorted by name.
func (s *LeaseStore) Alive(ctx context.Context, ttl time.Duration) ([]string, error) {
	return read(ctx, s.keep, func(ctx context.Context) ([]string, error) { return s.alive(ctx, ttl) })
}

func (s *LeaseStore) alive(ctx context.Context, ttl time.Duration) ([]string, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT `replica` FROM %s GROUP BY `replica` HAVING max(`at`) >= now() - toInt64(?) ORDER BY `replica`", clickhouse.QuoteTable(s.place.read)),
		int64(max(ttl.Round(time.Second), time.Second)/time.Second))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
