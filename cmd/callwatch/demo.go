package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/demo"
)

// demoOptions are the settings of demo traffic, for `callwatch demo` and
// for serve when it generates its own traffic.
type demoOptions struct {
	Rate     float64
	Seed     uint64
	Backfill time.Duration
}

func runDemo(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlags("demo", stderr, "usage: callwatch demo [--config.file F] [--rate N] [--seed S] [--backfill 10m] [--duration D]",
		"\nWrites realistic call events with scripted incidents into the configured events table.")
	configFile := configFileFlag(fs, "")
	rate := fs.Float64("rate", demo.DefaultRate, "mean calls per second over a day (the daily rhythm varies it); above about 0.4 the hourly and daily thresholds of the demo's rules fire on normal traffic")
	seed := fs.Uint64("seed", 1, "random seed: the same seed writes the same calls for the same seconds")
	backfill := fs.Duration("backfill", 10*time.Minute, "write this much past traffic first, so the rules' windows are not empty")
	duration := fs.Duration("duration", 0, "stop after this long (default: until interrupted)")
	logLevel := logLevelFlag(fs)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *rate <= 0 {
		return usageError{"--rate must be positive"}
	}
	if *backfill < 0 || *duration < 0 {
		return usageError{"--backfill and --duration must not be negative"}
	}
	logger, cfg, err := loggerAndConfig(*logLevel, *configFile, stderr)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse.DSN)
	if err != nil {
		return config.RedactDSNError(cfg.ClickHouse.DSN, err)
	}
	defer conn.Close()
	return runDemoTraffic(ctx, conn, cfg, demoOptions{Rate: *rate, Seed: *seed, Backfill: *backfill}, logger)
}

// runDemoTraffic creates the configured events table when it is missing
// and writes demo traffic into it until ctx ends.
func runDemoTraffic(ctx context.Context, conn clickhouse.Execer, cfg *config.Config, o demoOptions, logger *slog.Logger) error {
	schema := cfg.Schema.DSL()
	table := cfg.ClickHouse.EventsTable
	sink, err := demo.NewInserter(demo.InserterOptions{Exec: conn, Table: table, Schema: schema})
	if err != nil {
		return err
	}
	ddlCtx, cancel := context.WithTimeout(ctx, cfg.ClickHouse.QueryTimeout.D())
	err = conn.Exec(ddlCtx, clickhouse.EventsDDL(table, schema))
	cancel()
	if err != nil {
		return fmt.Errorf("create events table %s: %w", table, err)
	}
	g := demo.New(demo.Options{Seed: o.Seed, Rate: o.Rate})
	logger.Info("writing demo traffic", "table", table, "rate", o.Rate, "backfill", o.Backfill, "tenants", demo.Tenants())
	script := g.Script()
	for _, i := range script.Incidents {
		logger.Info("demo incident scheduled", "kind", i.Kind, "tenant", i.Tenant, "at", g.Start().Add(i.At).Format(time.TimeOnly),
			"duration", i.For, "repeat_every", script.Every)
	}
	return g.Run(ctx, sink, demo.RunOptions{Backfill: o.Backfill, Logger: logger})
}
