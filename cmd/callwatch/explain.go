package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/common/model"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/rulefmt"
)

// runExplain runs `callwatch explain EXPR` and `callwatch explain --rule
// NAME FILE`: the range functions of an expression with their groupings
// and windows, which path each takes in serve and why, the SQL of a full
// evaluation, the labels of the result and the static checks' findings;
// with --run, the statements run against ClickHouse with the rows and
// bytes they read and their time.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", stderr, "usage: callwatch explain [--config.file F] [--time T] [--run] 'EXPR'",
		"       callwatch explain [--config.file F] [--time T] [--run] --rule NAME FILE")
	configFile := configFileFlag(fs, ": schema, limits, incremental options and, with --run, the ClickHouse DSN")
	rule := fs.String("rule", "", "explain the expression of the rule of this name in the rule file given instead of an expression")
	at := fs.String("time", "", "evaluation time, RFC 3339 or unix seconds (default now)")
	runIt := fs.Bool("run", false, "run the statements against the configured ClickHouse and report rows and bytes read and time")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"give one quoted expression, or --rule NAME and one rule file"}
	}
	cfg, err := loadConfig(*configFile)
	if err != nil {
		return err
	}
	ts, err := parseTimeFlag(*at, time.Now().Truncate(time.Minute))
	if err != nil {
		return err
	}
	schema := cfg.Schema.DSL()
	var expr *dsl.Expr
	var warnings []error
	if *rule != "" {
		groups, err := rulefmt.LoadFiles([]string{fs.Arg(0)}, rulefmt.LoadOptions{Schema: schema, Limits: cfg.Limits.DSL()})
		if err != nil {
			return err
		}
		for _, g := range groups {
			for _, r := range g.Rules {
				if r.Name() == *rule && expr == nil {
					expr, warnings = r.Expr, r.Warnings
					if q := r.Quality; q != nil && q.Value != nil {
						expr = q.Value
					}
				}
			}
		}
		if expr == nil {
			return fmt.Errorf("%s: no rule named %q", fs.Arg(0), *rule)
		}
	} else {
		if expr, err = dsl.Parse(fs.Arg(0), dsl.Options{Schema: schema, Limits: cfg.Limits.DSL()}); err != nil {
			return exprError(fs.Arg(0), err)
		}
		for _, f := range expr.Findings {
			warnings = append(warnings, f)
		}
	}
	w := stdout
	fmt.Fprintf(w, "expression: %s\n", strings.TrimSpace(expr.Input))
	fmt.Fprintf(w, "evaluated at: %s\n", ts.UTC().Format(time.RFC3339))
	if expr.ResultKnown {
		fmt.Fprintf(w, "result labels: {%s}\n", strings.Join(expr.ResultLabels, ", "))
	} else {
		fmt.Fprintln(w, "result labels: not known before evaluation (recording-rule outputs, label_replace, group_left, …)")
	}
	inc := incremental(cfg)
	fmt.Fprintf(w, "\nrange functions: %d\n", len(expr.Leaves))
	for i, l := range expr.Leaves {
		fmt.Fprintf(w, "%d. %s\n", i+1, expr.Input[l.Pos.Start:l.Pos.End])
		if l.Calendar != nil {
			from, to := l.Window(ts)
			fmt.Fprintf(w, "   window the calendar month so far in %s, (%s, %s], offset %s; %s\n", l.Calendar,
				from.Format(time.RFC3339), to.In(l.Calendar).Format(time.RFC3339), model.Duration(l.Offset), grouping(l))
		} else {
			fmt.Fprintf(w, "   window %s, offset %s; %s\n", model.Duration(l.Range), model.Duration(l.Offset), grouping(l))
		}
		if l.Sub != nil {
			start, end, step := l.Sub.Times(ts)
			fmt.Fprintf(w, "   inside a subquery [%s:%s]: evaluated at %d times from %s, in one query per window and grouping\n",
				model.Duration(l.Sub.Range), model.Duration(step), (end-start)/step.Milliseconds()+1, time.UnixMilli(start).UTC().Format(time.RFC3339))
		}
		switch {
		case inc == nil:
			fmt.Fprintln(w, "   path in serve: full at every evaluation (clickhouse.incremental.enabled is false)")
		case l.Sub != nil:
			fmt.Fprintln(w, "   path in serve: a range query over the subquery's times at every evaluation")
		default:
			if reason := inc.PathOf(ts, l); reason != "" {
				fmt.Fprintf(w, "   path in serve: full at every evaluation: %s\n", reason)
			} else if l.Agg == dsl.AggQuantile {
				fmt.Fprintln(w, "   path in serve: incremental (value counts per bucket), after one full first evaluation")
			} else {
				fmt.Fprintln(w, "   path in serve: incremental (partial aggregates per bucket), after one full first evaluation")
			}
		}
	}
	if len(warnings) > 0 {
		fmt.Fprintf(w, "\nstatic checks: %d findings\n", len(warnings))
		for _, f := range warnings {
			fmt.Fprintf(w, "- %v\n", f)
		}
	} else {
		fmt.Fprintln(w, "\nstatic checks: no findings")
	}
	var plain []*dsl.Leaf
	for _, l := range expr.Leaves {
		if l.Sub == nil {
			plain = append(plain, l)
		}
	}
	var conn store
	var cols clickhouse.Columns // nil: every column guarded, as without a server
	if *runIt {
		if conn, err = openStore(ctx, cfg); err != nil {
			return err
		}
		defer conn.Close()
		if cols, err = eventsColumns(ctx, cfg, conn); err != nil {
			return err
		}
	}
	stmts := clickhouse.Compile(clickhouse.CompileOptions{Table: cfg.ClickHouse.EventsTable, Schema: schema, Columns: cols}, ts, plain)
	fmt.Fprintf(w, "\nSQL of a full evaluation (%d statements, one per window and grouping; ? bound as listed):\n", len(stmts))
	for i, st := range stmts {
		fmt.Fprintf(w, "\n-- statement %d\n%s\n-- arguments: %v\n", i+1, st.SQL, st.Args)
		if conn == nil {
			continue
		}
		rows, bytes, n, d, err := runMeasured(ctx, conn, st, cfg)
		if err != nil {
			return fmt.Errorf("statement %d: %w", i+1, config.RedactDSNError(cfg.ClickHouse.DSN, err))
		}
		fmt.Fprintf(w, "-- ran in %s: read %d rows, %d bytes; returned %d groups\n", d.Round(time.Microsecond), rows, bytes, n)
	}
	return nil
}

func grouping(l *dsl.Leaf) string {
	switch {
	case l.Grouped && len(l.By) > 0:
		return "grouped by " + strings.Join(l.By, ", ")
	case l.Grouped:
		return "one group (an enclosing aggregation without labels)"
	}
	lbls := l.Labels()
	if lbls.Len() == 0 {
		return "one group, no labels"
	}
	return "one group, labelled " + lbls.String()
}

// runMeasured runs a statement and returns the rows and bytes ClickHouse
// read (its progress), the rows it returned and the time.
func runMeasured(ctx context.Context, conn store, st clickhouse.Statement, cfg *config.Config) (rows, bytes uint64, n int, d time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Limits.QueryTimeout.D())
	defer cancel()
	ctx = chgo.Context(ctx, chgo.WithProgress(func(p *chgo.Progress) {
		rows += p.Rows
		bytes += p.Bytes
	}))
	start := time.Now()
	rs, err := conn.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer rs.Close()
	for rs.Next() {
		n++
	}
	return rows, bytes, n, time.Since(start), rs.Err()
}
