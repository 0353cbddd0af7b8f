package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/rulefmt"
)

func runBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backtest", stderr, "usage: callwatch backtest --from T [--to T] [--step D] [--format table|json] [--events F.jsonl] [--config.file F] [RULE_FILE...]")
	configFile := configFileFlag(fs, "")
	eventsFile := fs.String("events", "", "backtest over this JSON Lines events file in memory instead of ClickHouse")
	fromFlag := fs.String("from", "", "start, RFC 3339 or unix seconds (required)")
	toFlag := fs.String("to", "", "end, RFC 3339 or unix seconds (default now)")
	stepFlag := fs.String("step", "", "evaluation step (default: each group's interval)")
	format := fs.String("format", "table", "output: table or json")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usageError{"--format: write table or json"}
	}
	if *fromFlag == "" {
		return usageError{"--from is required, e.g. --from 2025-11-24T00:00:00Z"}
	}
	from, err := dsl.ParseTime(*fromFlag)
	if err != nil {
		return usageError{"--from: " + err.Error()}
	}
	to := time.Now()
	if *toFlag != "" {
		if to, err = dsl.ParseTime(*toFlag); err != nil {
			return usageError{"--to: " + err.Error()}
		}
	}
	var step time.Duration
	if *stepFlag != "" {
		d, err := model.ParseDuration(*stepFlag)
		if err != nil || d <= 0 {
			return usageError{"--step: write a duration such as 1m"}
		}
		step = time.Duration(d)
	}
	cfg, err := loadConfig(*configFile)
	if err != nil {
		return err
	}
	files := fs.Args()
	if len(files) == 0 {
		files = ruleGlobs(*configFile, cfg)
	}
	specs, err := rulefmt.LoadFiles(files, rulefmt.LoadOptions{Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL()})
	if err != nil {
		return err
	}
	if len(specs) == 0 {
		return fmt.Errorf("no rule groups in %s", strings.Join(files, ", "))
	}
	// History is read as fast as it evaluates: the background reads of a
	// window's value counts (a quantile's first evaluation) run at once and
	// each step waits for them, so the next steps slide on them instead of
	// taking the full path again.
	inc := incremental(cfg)
	if inc != nil {
		inc.FillSettle = -1
	}
	src, closeFn, err := openSource(ctx, cfg, *eventsFile, inc)
	if err != nil {
		return err
	}
	defer closeFn()
	waitFills := func() {}
	if cs, ok := src.(*clickhouse.Source); ok {
		waitFills = cs.WaitFills
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: src})
	bar := progressBar(stderr)
	progress := func(done, total int) {
		waitFills()
		if bar != nil {
			bar(done, total)
		}
	}
	res, err := engine.Backtest(ctx, specs, engine.BacktestOptions{
		GroupOptions: engine.GroupOptions{Query: q.QueryWith, Batch: q.Batch, Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL()},
		From:         from, To: to, Step: step, Progress: progress,
	})
	if err != nil {
		return err
	}
	periods, err := engine.SLOPeriods(ctx, specs, engine.SLOPeriodsOptions{Query: q.Query, Schema: cfg.Schema.DSL(), Limits: cfg.Limits.DSL(), From: from, To: to})
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*engine.BacktestResult
			Periods []engine.SLOPeriod `json:"sloPeriods"`
		}{&res, periods})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tGROUP\tRULE\tLABELS\tFROM\tTO\tVALUE")
	for _, t := range res.Transitions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Time.UTC().Format(time.RFC3339), t.Group, t.Rule, t.Labels, t.From, t.To, engine.FormatValue(t.Value))
	}
	tw.Flush()
	names := make([]string, 0, len(res.Notifications))
	for n := range res.Notifications {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(stdout, "\n%d evaluations, %d failed; messages a direct channel (WeCom, webhook…) would have received:\n", res.Evaluations, res.Errors)
	for _, n := range names {
		if w, ok := res.WithoutControls[n]; ok {
			fmt.Fprintf(stdout, "  %s: %d (without its noise controls: %d)\n", n, res.Notifications[n], w)
			continue
		}
		fmt.Fprintf(stdout, "  %s: %d\n", n, res.Notifications[n])
	}
	printPeriods(stdout, periods)
	return nil
}

// printPeriods writes the SLOs' and budgets' periods: met or missed, and
// the budget each consumed.
func printPeriods(w io.Writer, periods []engine.SLOPeriod) {
	if len(periods) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSLOs and budgets per period (an SLO is met when its error ratio stays within the error budget; consumed: the share of the budget used):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tGROUP\tFROM\tTO\tVALUE\tTARGET\tRESULT\tCONSUMED")
	for _, p := range periods {
		keys := make([]string, 0, len(p.Labels))
		for k, v := range p.Labels {
			keys = append(keys, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(keys)
		// Calendar months come in their zone; rolling periods in UTC.
		to := p.To.Format(time.RFC3339)
		if p.Partial {
			to += " (partial)"
		}
		value, target, result := "SLI "+rounded(p.SLI*100)+"%", rounded(p.Objective)+"%", "met"
		if p.Kind == "budget" {
			value, target = "spent "+rounded(p.Spent), "limit "+rounded(p.Limit)
			result = "within"
		}
		if !p.Met {
			result = map[string]string{"slo": "MISSED", "budget": "EXCEEDED"}[p.Kind]
		}
		fmt.Fprintf(tw, "%s\t%s\t{%s}\t%s\t%s\t%s\t%s\t%s\t%s%%\n", p.Kind, p.Name, strings.Join(keys, ", "), p.From.Format(time.RFC3339), to,
			value, target, result, rounded(p.Consumed*100))
	}
	tw.Flush()
}

// progressBar returns a progress callback drawing on w when the run is long
// enough to need one.
func progressBar(w io.Writer) func(done, total int) {
	f, isFile := w.(*os.File)
	tty := false
	if isFile {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return func(done, total int) {
		if total < 200 || !tty {
			return
		}
		if done%max(total/100, 1) != 0 && done != total {
			return
		}
		const width = 40
		n := width * done / total
		fmt.Fprintf(w, "\r[%s%s] %3d%%", strings.Repeat("#", n), strings.Repeat(".", width-n), 100*done/total)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// rounded writes f with at most three decimals.
func rounded(f float64) string {
	return strconv.FormatFloat(math.Round(f*1000)/1000, 'f', -1, 64)
}
