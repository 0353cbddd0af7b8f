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
	"github.com/callwatch/callwatch/engine/memory"
)

func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("query", stderr, "usage: callwatch query [--config.file F] [--events F.jsonl] [--time T] 'EXPR'")
	configFile := fs.String("config.file", "", "configuration file (default: built-in defaults)")
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
	var src engine.LeafSource
	if *eventsFile != "" {
		store, err := loadEvents(*eventsFile, cfg.Schema.DSL())
		if err != nil {
			return err
		}
		src = store
	} else {
		s, closeFn, err := openClickHouseSource(ctx, cfg, nil)
		if err != nil {
			return err
		}
		defer closeFn()
		src = s
	}
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
