package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/exporter"
)

// startExporter builds the /metrics exporter over the events table and the
// running rules (recording-rule results, ALERTS), registers it on reg and
// starts its background updater. stop ends the updater; call it before
// closing conn.
func startExporter(ctx context.Context, cfg *config.Config, ecfg config.Exporter, conn clickhouse.Conn, cols clickhouse.Columns,
	rules exporter.Rules, reg prometheus.Registerer, logger *slog.Logger) (stop func(), err error) {
	e, err := exporter.New(exporter.Options{
		Config:  ecfg,
		Conn:    conn,
		Table:   cfg.ClickHouse.EventsTable,
		Schema:  cfg.Schema.DSL(),
		Columns: cols,
		Rules:   rules,
		Logger:  logger.With("component", "exporter"),
	})
	if err != nil {
		return nil, err
	}
	if err := e.Register(reg); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}, nil
}
