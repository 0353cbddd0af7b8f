package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/callwatch/callwatch/engine/ruletest"
)

// runTestRules runs `callwatch test rules FILE...` and returns the exit
// code: 0 when every test passes, 1 when any fails, 2 on usage errors
// (promtool's codes).
func runTestRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "configuration file, for the schema (default: built-in defaults)")
	junitFile := fs.String("junit", "", "also write a JUnit XML report to this file")
	var runs []string
	fs.Func("run", "run only the tests whose name matches this regular expression (repeatable; any may match)", func(s string) error {
		runs = append(runs, s)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callwatch test rules [--config.file F] [--run REGEX] [--junit FILE] TEST_FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "callwatch test rules: %v\n", err)
		return 2
	}
	opts := ruletest.Options{Schema: cfg.Schema.DSL()}
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
