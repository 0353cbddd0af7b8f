// Command callwatch turns AI/LLM call events in ClickHouse into Prometheus
// metrics, alert rules, notifications and an audit trail.
//
// This file is the composition root: flags, configuration and wiring only.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
)

const usage = `usage: callwatch <command> [flags] [args]

commands:
  serve         evaluate rules.d against ClickHouse, serve the API and /metrics
  query         evaluate an expression once, over ClickHouse or a JSON Lines events file
  explain       show an expression's range functions, their path, SQL and result labels (--run: rows and bytes read)
  check rules   check rule files: YAML, expressions, templates, durations, duplicates
  test rules    run promtool-style unit tests of rules, in memory (or --clickhouse)
  backtest      evaluate rules over history and print when alerts would have fired
  demo          write demo call traffic with scripted incidents into ClickHouse

Run 'callwatch <command> -h' for the flags of a command.
`

func main() {
	// callwatch exports no traces: the spans of the PromQL engine go to a
	// no-op provider, as in a Prometheus with no tracing configured,
	// not to OpenTelemetry's global one, which allocates for each.
	otel.SetTracerProvider(noop.NewTracerProvider())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "query":
		err = runQuery(ctx, args[1:], stdout, stderr)
	case "explain":
		err = runExplain(ctx, args[1:], stdout, stderr)
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "backtest":
		err = runBacktest(ctx, args[1:], stdout, stderr)
	case "check", "test":
		if len(args) < 2 || args[1] != "rules" {
			fmt.Fprintf(stderr, "callwatch: did you mean '%s rules'?\n", args[0])
			return 2
		}
		if args[0] == "check" {
			return runCheckRules(ctx, args[2:], stdout, stderr)
		}
		return runTestRules(ctx, args[2:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "callwatch: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if ue := (usageError{}); errors.As(err, &ue) {
			fmt.Fprintf(stderr, "callwatch %s: %s\n", args[0], ue.msg)
			return 2
		}
		fmt.Fprintf(stderr, "callwatch %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError is a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
