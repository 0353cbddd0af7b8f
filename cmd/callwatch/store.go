package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/storage/chdb"
)

// store is a ClickHouse connection: a server's or the embedded engine's.
type store interface {
	clickhouse.ExecQuerier
	Close() error
}

// openStore connects to the configured ClickHouse: embedded (chDB) when
// clickhouse.embedded.path is set, else the server named by the DSN (whose
// secrets connection errors do not show). The embedded store creates the
// events table when it is missing.
func openStore(ctx context.Context, cfg *config.Config) (store, error) {
	emb := cfg.ClickHouse.Embedded
	if emb.Path == "" {
		conn, err := clickhouse.Open(ctx, cfg.ClickHouse.DSN)
		if err != nil {
			return nil, config.RedactDSNError(cfg.ClickHouse.DSN, err)
		}
		return conn, nil
	}
	conn, err := chdb.Open(ctx, chdb.Options{Path: emb.Path, Library: emb.Library})
	if errors.Is(err, chdb.ErrNoLibrary) {
		return nil, fmt.Errorf("embedded ClickHouse needs chDB's libchdb.so: run `make chdb` (it fetches %s into .cache/chdb/) or set %s: %w",
			chdb.Package, chdb.LibraryEnv, err)
	}
	if err != nil {
		return nil, err
	}
	ddlCtx, cancel := context.WithTimeout(ctx, cfg.ClickHouse.QueryTimeout.D())
	defer cancel()
	if err := conn.Exec(ddlCtx, clickhouse.EventsDDL(cfg.ClickHouse.EventsTable, cfg.Schema.DSL())); err != nil {
		conn.Close()
		return nil, fmt.Errorf("create events table %s: %w", cfg.ClickHouse.EventsTable, err)
	}
	return conn, nil
}

// openQueryStore returns the connection of ad-hoc queries (the query API)
// and of the audit history the API and the status page read: a pool of its
// own next to rules' on a server, so that a flood of queries or history
// reads never takes the connections rules and the DatasourceDown ping need. The
// embedded engine runs one statement at a time whoever sends it, so there
// ad-hoc queries share it, bounded by the API's slots and timeout.
func openQueryStore(ctx context.Context, cfg *config.Config, rules store) (clickhouse.ExecQuerier, func(), error) {
	if cfg.ClickHouse.Embedded.Path != "" {
		return rules, func() {}, nil
	}
	conn, err := clickhouse.OpenPool(ctx, cfg.ClickHouse.DSN, cfg.Limits.MaxConcurrentQueries)
	if err != nil {
		return nil, nil, config.RedactDSNError(cfg.ClickHouse.DSN, err)
	}
	return conn, func() { conn.Close() }, nil
}
