package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/callwatch/callwatch/rulefmt"
)

// runCheckRules runs `callwatch check rules FILE...`: exit 0 when every file
// is clean, 1 when any has problems, 2 on usage errors (promtool's codes).
func runCheckRules(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check rules", stderr, "usage: callwatch check rules [--config.file F] [--lint warn|fatal|none] FILE...")
	configFile := configFileFlag(fs, ", for the schema and the channel names")
	lint := fs.String("lint", "warn", "what the static checks' findings (an expression that is always empty) do: warn, fatal (fail like a problem, as promtool's --lint-fatal) or none")
	if code, ok := parseFileFlags(fs, args); !ok {
		return code
	}
	switch *lint {
	case "warn", "fatal", "none":
	default:
		fmt.Fprintf(stderr, "callwatch check rules: --lint %q: write warn, fatal or none\n", *lint)
		return 2
	}
	cfg, err := loadConfig(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "callwatch check rules: %v\n", err)
		return 2
	}
	opts := rulefmt.LoadOptions{Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL()}
	if inc := incremental(cfg); inc != nil {
		opts.Bucket, opts.LateWindow = inc.Bucket, inc.LateWindow
	}
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
		n, slos, budgets := 0, 0, 0
		var warnings []error
		for _, g := range groups {
			n += len(g.Rules)
			if g.SLO != nil {
				slos++
			}
			if g.Budget != nil {
				budgets++
			}
			for _, r := range g.Rules {
				warnings = append(warnings, r.Warnings...)
			}
		}
		if *lint == "none" {
			warnings = nil
		}
		sortByPosition(warnings)
		if len(warnings) > 0 && *lint == "fatal" {
			failed = true
			fmt.Fprintf(stdout, "Checking %s\n  FAILED (--lint fatal):\n", f)
			for _, w := range warnings {
				fmt.Fprintf(stdout, "%s\n", w)
			}
			fmt.Fprintln(stdout)
			continue
		}
		if len(groups) == 0 {
			fmt.Fprintf(stdout, "Checking %s\n  SUCCESS: 0 rules found (no file matches or the file is empty)\n\n", f)
			continue
		}
		generated := ""
		if slos+budgets > 0 {
			generated = fmt.Sprintf(" (%d generated from SLOs (%d) and budgets (%d))", generatedRules(groups), slos, budgets)
		}
		fmt.Fprintf(stdout, "Checking %s\n  SUCCESS: %d rules found%s\n", f, n, generated)
		if len(warnings) > 0 {
			fmt.Fprintf(stdout, "  WARNING: %d findings:\n", len(warnings))
			for _, w := range warnings {
				fmt.Fprintf(stdout, "%s\n", w)
			}
		}
		fmt.Fprintln(stdout)
	}
	if failed {
		return 1
	}
	return 0
}

// generatedRules counts the rules of the groups generated from SLOs and
// budgets.
func generatedRules(groups []*rulefmt.GroupSpec) int {
	n := 0
	for _, g := range groups {
		if g.SLO != nil || g.Budget != nil {
			n += len(g.Rules)
		}
	}
	return n
}

// sortByPosition orders findings as the file reads, by line and column
// (each rule's checks find them in their own order).
func sortByPosition(errs []error) {
	pos := func(err error) (int, int) {
		var fe *rulefmt.FileError
		if errors.As(err, &fe) {
			return fe.Pos.Line, fe.Pos.Col
		}
		return 0, 0
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		la, ca := pos(a)
		lb, cb := pos(b)
		return cmp.Or(cmp.Compare(la, lb), cmp.Compare(ca, cb))
	})
}
