package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
)

func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query", stderr, "usage: callwatch query [--config.file F] [--events F.jsonl] [--time T] 'EXPR'")
	configFile := configFileFlag(fs, "")
	eventsFile := fs.String("events", "", "evaluate in memory over this JSON Lines events file instead of ClickHouse")
	at := fs.String("time", "", "evaluation time, RFC 3339 or unix seconds (default now)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"give exactly one expression, quoted, e.g. 'p95(latency_ms[5m]) > 5000'"}
	}
	input := fs.Arg(0)
	cfg, err := loadConfig(*configFile)
	if err != nil {
		return err
	}
	ts, err := parseTimeFlag(*at, time.Now())
	if err != nil {
		return err
	}
	expr, err := dsl.Parse(input, dsl.Options{Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL()})
	if err != nil {
		return exprError(input, err)
	}
	if len(expr.Findings) > 0 {
		// An expression the static checks prove empty would print
		// nothing, which reads as "all is well".
		return exprError(input, expr.Findings[0])
	}
	src, closeFn, err := openSource(ctx, cfg, *eventsFile, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	res, err := engine.NewQuerier(engine.QuerierOptions{Source: src, MaxSeries: cfg.Limits.MaxSeriesPerRule, Timeout: cfg.Limits.QueryTimeout.D()}).Query(ctx, expr, ts)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(engine.NewQueryData(res, ts))
}

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// exprError shows where an expression is wrong: the message with line:col,
// the offending line and a caret under the column.
func exprError(input string, err error) error {
	var de *dsl.Error
	if !errors.As(err, &de) {
		return err
	}
	lines := strings.Split(input, "\n")
	if de.Line < 1 || de.Line > len(lines) {
		return err
	}
	return fmt.Errorf("%w\n  %s\n  %s^", err, lines[de.Line-1], strings.Repeat(" ", max(de.Col-1, 0)))
}

// openSource returns the events of eventsFile (--events), in memory, or
// when it is "" the configured ClickHouse's, evaluated incrementally by inc
// (nil: not); closeFn releases it.
func openSource(ctx context.Context, cfg *config.Config, eventsFile string, inc *clickhouse.Incremental) (src engine.LeafSource, closeFn func(), err error) {
	if eventsFile == "" {
		return openClickHouseSource(ctx, cfg, inc)
	}
	store, err := loadEvents(eventsFile, cfg.Schema.DSL())
	if err != nil {
		return nil, nil, err
	}
	return store, func() {}, nil
}

// loadEvents reads a JSON Lines events file into a memory store.
func loadEvents(path string, schema dsl.Schema) (*memory.Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	events, err := memory.ReadJSONL(f, schema)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	store := memory.New(schema)
	store.Add(events...)
	return store, nil
}
