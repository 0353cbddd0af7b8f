package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/storage/chdb"
)

// openClickHouseSource connects to the configured ClickHouse server and
// returns the leaf source over its events table, with incremental
// evaluation when inc is not nil (evaluations step after step: backtest).
func openClickHouseSource(ctx context.Context, cfg *config.Config, inc *clickhouse.Incremental) (engine.LeafSource, func(), error) {
	conn, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	cols, err := eventsColumns(ctx, cfg, conn)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	distributed, err := eventsDistributed(ctx, cfg, conn)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	src, err := clickhouse.New(clickhouse.Options{
		Columns:      cols,
		Distributed:  distributed,
		Conn:         conn,
		Table:        cfg.ClickHouse.EventsTable,
		Schema:       cfg.Schema.DSL(),
		QueryTimeout: cfg.ClickHouse.QueryTimeout.D(),
		MaxGroups:    cfg.Limits.MaxSeriesPerRule,
		Incremental:  inc,
	})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return src, func() { conn.Close() }, nil
}

// incremental returns the incremental-evaluation options of cfg, nil when
// it is off.
func incremental(cfg *config.Config) *clickhouse.Incremental {
	inc := cfg.ClickHouse.Incremental
	if !inc.On() {
		return nil
	}
	return &clickhouse.Incremental{Bucket: inc.Bucket.D(), LateWindow: inc.LateWindow.D(), MaxDistinctValues: inc.MaxDistinctValues}
}

// eventsDistributed reports whether the events table is a Distributed
// table over a cluster's shards, which the SQL of a stddev leaf depends on
// (clickhouse.Options.Distributed).
func eventsDistributed(ctx context.Context, cfg *config.Config, conn clickhouse.Conn) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ClickHouse.QueryTimeout.D())
	defer cancel()
	engine, err := clickhouse.ReadEngine(ctx, conn, cfg.ClickHouse.EventsTable)
	return engine == "Distributed", err
}

// eventsColumns reads the events table's column types and checks them
// against the schema, so that a table that cannot serve the rules stops
// callwatch at start with what to change, rather than failing every
// evaluation.
func eventsColumns(ctx context.Context, cfg *config.Config, conn clickhouse.Conn) (clickhouse.Columns, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.ClickHouse.QueryTimeout.D())
	defer cancel()
	cols, err := clickhouse.ReadColumns(ctx, conn, cfg.ClickHouse.EventsTable)
	if errors.Is(err, clickhouse.ErrNoTable) {
		return nil, &engine.EventsTableError{Err: fmt.Errorf("%w; for this configuration's schema, run:\n%s", err, clickhouse.EventsDDL(cfg.ClickHouse.EventsTable, cfg.Schema.DSL()))}
	}
	if err != nil {
		return nil, err
	}
	if err := cols.Check(cfg.ClickHouse.EventsTable, cfg.Schema.DSL()); err != nil {
		return nil, &engine.EventsTableError{Err: err}
	}
	return cols, nil
}

// pinger returns DatasourceDown's ping: ClickHouse answers SELECT 1, and
// the events table still exists and fits the schema (a table dropped or
// altered after start fails every rule with ClickHouse's message; the
// alert then says the table is the problem, and the log what is missing
// and what to run, once each time the problem changes).
func pinger(cfg *config.Config, conn clickhouse.Conn, logger *slog.Logger) func(ctx context.Context) error {
	var mu sync.Mutex
	last := ""
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		rows, err := conn.Query(ctx, "SELECT 1")
		if errors.Is(err, chdb.ErrBusy) {
			return nil // the embedded engine answers, after the statement it runs
		}
		if err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
		_, err = eventsColumns(ctx, cfg, conn)
		if errors.Is(err, chdb.ErrBusy) {
			return nil
		}
		var te *engine.EventsTableError
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.As(err, &te) && te.Error() != last:
			logger.Error("the events table cannot serve the rules", "table", cfg.ClickHouse.EventsTable, "err", te)
			last = te.Error()
		case err == nil && last != "":
			logger.Info("the events table fits the schema again", "table", cfg.ClickHouse.EventsTable)
			last = ""
		}
		return err
	}
}
