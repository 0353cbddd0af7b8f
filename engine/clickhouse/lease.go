package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/callwatch/callwatch/engine"
)

// LeaseStore keeps the heartbeats of callwatch replicas in a ClickHouse
// table, for engine.Elector: one row per beat, timed by the server's clock
// (so the replicas' clocks need not agree), in a ReplacingMergeTree that
// keeps one row per replica as parts merge. It works on 18.16 and 26.x.
type LeaseStore struct {
	conn  ExecQuerier
	table string
}

var _ engine.LeaseStore = (*LeaseStore)(nil)

// NewLeaseStore returns a LeaseStore over table (table or database.table).
func NewLeaseStore(conn ExecQuerier, table string) (*LeaseStore, error) {
	if conn == nil {
		return nil, errors.New("lease store: no connection")
	}
	if !validTable(table) {
		return nil, fmt.Errorf("lease store: %q is not a table name", table)
	}
	return &LeaseStore{conn: conn, table: table}, nil
}

// Migrate creates the table when it is missing.
func (s *LeaseStore) Migrate(ctx context.Context) error {
	ddl := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n    `replica` String,\n    `at` DateTime\n) ENGINE = ReplacingMergeTree(`at`)\nORDER BY `replica`", quoteTable(s.table))
	if err := s.conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create lease table %s: %w", s.table, err)
	}
	return nil
}

// Beat records that replica is alive now, by the server's clock.
func (s *LeaseStore) Beat(ctx context.Context, replica string) error {
	// INSERT … SELECT with bound values: the form that works on 18.16
	// through clickhouse-go (INSERT … VALUES with arguments hangs there).
	return s.conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s (`replica`, `at`) SELECT ?, now()", quoteTable(s.table)), replica)
}

// Alive returns the replicas whose last beat is at most ttl old, by the
// server's clock, sorted by name.
func (s *LeaseStore) Alive(ctx context.Context, ttl time.Duration) ([]string, error) {
	rows, err := s.conn.Query(ctx, fmt.Sprintf("SELECT `replica` FROM %s GROUP BY `replica` HAVING max(`at`) >= now() - toInt64(?) ORDER BY `replica`", quoteTable(s.table)),
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
