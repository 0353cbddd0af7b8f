package main

import (
	"context"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// openClickHouseSource connects to the configured ClickHouse server and
// returns the leaf source over its events table.
func openClickHouseSource(ctx context.Context, cfg *config.Config) (engine.LeafSource, func(), error) {
	conn, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	src, err := clickhouse.New(clickhouse.Options{
		Conn:         conn,
		Table:        cfg.ClickHouse.EventsTable,
		Schema:       cfg.Schema.DSL(),
		QueryTimeout: cfg.ClickHouse.QueryTimeout.D(),
	})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return src, func() { conn.Close() }, nil
}
