package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/callwatch/callwatch/rulefmt"
)

// runCheckRules runs `callwatch check rules FILE...`: exit 0 when every file
// is clean, 1 when any has problems, 2 on usage errors (promtool's codes).
func runCheckRules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check rules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config.file", "", "configuration file, for the schema and the channel names (default: built-in defaults)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callwatch check rules [--config.file F] FILE...")
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
		fmt.Fprintf(stderr, "callwatch check rules: %v\n", err)
		return 2
	}
	opts := rulefmt.LoadOptions{Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL()}
	if *configFile != "" {
		opts.Channels = cfg.ChannelNames()
	}
	failed := false
	for _, f := range fs.Args() {
		groups, err := rulefmt.LoadFiles([]string{f}, opts)
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "Checking %s\n  FAILED:\n", f)
			var errs rulefmt.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintf(stdout, "%s\n", e)
				}
			} else {
				fmt.Fprintf(stdout, "%s\n", err)
			}
			fmt.Fprintln(stdout)
			continue
		}
		n := 0
		for _, g := range groups {
			n += len(g.Rules)
		}
		if len(groups) == 0 {
			fmt.Fprintf(stdout, "Checking %s\n  SUCCESS: 0 rules found (no file matches or the file is empty)\n\n", f)
			continue
		}
		fmt.Fprintf(stdout, "Checking %s\n  SUCCESS: %d rules found\n\n", f, n)
	}
	if failed {
		return 1
	}
	return 0
}
