package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/ruletest"
)

// runTestRules runs `callwatch test rules FILE...` and returns the exit
// code: 0 when every test passes, 1 when any fails, 2 on usage errors
// (promtool's codes).
func runTestRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test rules", stderr, "usage: callwatch test rules [--config.file F] [--run REGEX] [--junit FILE] TEST_FILE...")
	configFile := configFileFlag(fs, ", for the schema")
	junitFile := fs.String("junit", "", "also write a JUnit XML report to this file")
	onServer := fs.Bool("clickhouse", false, "evaluate each test's events in the configured ClickHouse (a temporary table) instead of in memory")
	var runs []string
	fs.Func("run", "run only the tests whose name matches this regular expression (repeatable; any may match)", func(s string) error {
		runs = append(runs, s)
		return nil
	})
	if code, ok := parseFileFlags(fs, args); !ok {
		return code
	}
	cfg, err := loadConfig(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "callwatch test rules: %v\n", err)
		return 2
	}
	opts := ruletest.Options{Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL()}
	if *onServer {
		conn, err := openStore(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "callwatch test rules: --clickhouse: %v\n", err)
			return 2
		}
		defer conn.Close()
		opts.Source = serverEvents(conn, cfg)
	}
	if len(runs) > 0 {
		re, err := regexp.Compile(strings.Join(runs, "|"))
		if err != nil {
			fmt.Fprintf(stderr, "callwatch test rules: --run: %v\n", err)
			return 2
		}
		opts.Run = re
	}
	failed := false
	var results []ruletest.FileResult
	for _, f := range fs.Args() {
		res := ruletest.RunFile(ctx, f, opts)
		results = append(results, res)
		if err := ruletest.WriteText(stdout, res); err != nil {
			fmt.Fprintf(stderr, "callwatch test rules: %v\n", err)
			return 1
		}
		failed = failed || res.Failed()
		if ctx.Err() != nil {
			break
		}
	}
	if *junitFile != "" {
		if err := writeJUnit(*junitFile, results); err != nil {
			fmt.Fprintf(stderr, "callwatch test rules: %v\n", err)
			return 1
		}
	}
	if failed {
		return 1
	}
	return 0
}

func writeJUnit(path string, results []ruletest.FileResult) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	if err := ruletest.WriteJUnit(f, results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serverEvents loads a test's events into a temporary table of the
// configured ClickHouse and evaluates them there, with the same SQL serve
// runs.
func serverEvents(conn store, cfg *config.Config) func(ctx context.Context, events []memory.Event) (engine.LeafSource, func(), error) {
	return func(ctx context.Context, events []memory.Event) (engine.LeafSource, func(), error) {
		schema := cfg.Schema.DSL()
		var id [6]byte
		_, _ = rand.Read(id[:])
		table := "callwatch_ruletest_" + hex.EncodeToString(id[:])
		if db, _, ok := strings.Cut(cfg.ClickHouse.EventsTable, "."); ok {
			table = db + "." + table
		}
		if err := conn.Exec(ctx, clickhouse.EventsDDL(table, schema)); err != nil {
			return nil, nil, err
		}
		cleanup := func() { _ = conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+table) }
		cols := append(append([]string{schema.Time}, schema.Labels...), schema.NumericColumns()...)
		conv := []string{"toDateTime(?)"}
		for range schema.Labels {
			conv = append(conv, "?")
		}
		for range schema.NumericColumns() {
			conv = append(conv, "toFloat64(?)")
		}
		row := "SELECT " + strings.Join(conv, ", ")
		for start := 0; start < len(events); start += 200 {
			batch := events[start:min(start+200, len(events))]
			rows := make([]string, len(batch))
			var args []any
			for i, ev := range batch {
				rows[i] = row
				args = append(args, ev.Time.Unix())
				for _, l := range ev.Labels {
					args = append(args, l)
				}
				for _, c := range schema.NumericColumns() {
					args = append(args, ev.Nums[c])
				}
			}
			sql := "INSERT INTO " + table + " (`" + strings.Join(cols, "`, `") + "`) " + strings.Join(rows, " UNION ALL ")
			if err := conn.Exec(ctx, sql, args...); err != nil {
				cleanup()
				return nil, nil, fmt.Errorf("insert into %s: %w", table, err)
			}
		}
		src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, QueryTimeout: cfg.ClickHouse.QueryTimeout.D()})
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		return src, cleanup, nil
	}
}
