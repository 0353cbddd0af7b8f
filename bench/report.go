// The printed table and bench/results.json.

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// valueCountSize is the size of a dsl.ValueCount (two float64s).
const valueCountSize = 16

// write prints the table and writes the JSON file.
func (r *report) write(o options) error {
	hand, cold, steady := medianTiming(r.handAll), medianTiming(r.coldAll), medianTiming(r.steadyAll)
	coldFull, steadyFull := medianTiming(r.coldFullAll), medianTiming(r.steadyFullAll)
	coldDec, steadyDec := medianTiming(r.coldDecAll), medianTiming(r.steadyDecAll)
	results := []result{
		{"naive_seconds", r.naiveT.total.Seconds(), "seconds"},
		{"handwritten_seconds", hand.total.Seconds(), "seconds"},
		{"cold_seconds", cold.total.Seconds(), "seconds"},
		{"steady_seconds", steady.total.Seconds(), "seconds"},
		{"cold_full_seconds", coldFull.total.Seconds(), "seconds"},
		{"steady_full_seconds", steadyFull.total.Seconds(), "seconds"},
		{"cold_decomposable_seconds", coldDec.total.Seconds(), "seconds"},
		{"steady_decomposable_seconds", steadyDec.total.Seconds(), "seconds"},
		{"slo_cold_seconds", medianTiming(r.sloColdAll).total.Seconds(), "seconds"},
		{"slo_steady_seconds", medianTiming(r.sloSteadyAll).total.Seconds(), "seconds"},
		{"scrape_p50_seconds", r.scrapeP50.Seconds(), "seconds"},
		{"scrape_p99_seconds", r.scrapeP99.Seconds(), "seconds"},
		{"rss_bytes", float64(r.rss), "bytes"},
		{"value_count_bytes", float64(r.valueCounts * valueCountSize), "bytes"},
		{"quantile_fill_seconds", medianDuration(r.fillAll).Seconds(), "seconds"},
		{"range_seconds", medianDuration(r.rangeAll).Seconds(), "seconds"},
		{"range_handwritten_seconds", medianDuration(r.rangeHandAll).Seconds(), "seconds"},
		{"test_rules_seconds", r.testRules.Seconds(), "seconds"},
	}
	if !o.naive {
		results = results[1:]
	}
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.out, append(data, '\n'), 0o644); err != nil {
		return err
	}

	w := os.Stdout
	fmt.Fprintf(w, "\ncallwatch bench: %d events over %s ending %s (%d per minute), %d rules in %d groups\n",
		r.events, datasetSpan, benchNow.Format(time.RFC3339), r.minuteEvents, r.rules, r.groups)
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s memory, ClickHouse %s, %s\n", runtime.NumCPU(), procField("/proc/cpuinfo", "model name"),
		memTotal(), r.serverVersion, runtime.Version())
	fmt.Fprintf(w, "load: insert %.1f s (%.0f events/s), optimize %.1f s; load average before %.2f %.2f %.2f, during min %.2f mean %.2f max %.2f\n\n",
		r.insertDur.Seconds(), float64(r.events)/r.insertDur.Seconds(), r.optimize.Seconds(),
		r.loadBefore[0], r.loadBefore[1], r.loadBefore[2], r.loadMin, r.loadMean, r.loadMax)

	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "name\tvalue\tunit\tnote")
	notes := map[string]string{
		"naive_seconds":       fmt.Sprintf("%s; %s rows pulled", r.work["naive"], human(float64(r.naiveRows))),
		"handwritten_seconds": fmt.Sprintf("%s; runs %s", r.work["handwritten"], totals(r.handAll)),
		"cold_seconds":        fmt.Sprintf("%s; runs %s", r.work["cold"], totals(r.coldAll)),
		"steady_seconds": fmt.Sprintf("%s; runs %s; the first minute after the cold pass, a warm-up not in the median, %.3f (nothing read ahead for it yet)",
			r.work["steady"], totals(r.steadyAll), r.steadyFirst.total.Seconds()),
		"cold_full_seconds":           fmt.Sprintf("incremental evaluation off; runs %s", totals(r.coldFullAll)),
		"steady_full_seconds":         fmt.Sprintf("incremental evaluation off; runs %s", totals(r.steadyFullAll)),
		"cold_decomposable_seconds":   fmt.Sprintf("the %d rules without quantile or stddev, incremental; runs %s", r.decRules, totals(r.coldDecAll)),
		"steady_decomposable_seconds": fmt.Sprintf("the same %d rules one minute later; runs %s; warm-up %.3f", r.decRules, totals(r.steadyDecAll), r.steadyDecFirst.total.Seconds()),
		"slo_cold_seconds": fmt.Sprintf("the SLO pack: one 30d availability SLO by tenant_id, %d per-tenant SLOs (%d SLI series), its %d generated rules; first evaluation",
			tenants, r.sloSeries, r.sloRules),
		"slo_steady_seconds": fmt.Sprintf("the same one minute later; runs %s; warm-up %.3f; leaves %d incremental, %d full (a long window's first evaluation is full; then it slides on its cold state)",
			totals(r.sloSteadyAll), r.sloSteadyFirst.total.Seconds(), r.sloStats.Leaves, r.sloStats.FullLeaves),
		"scrape_p50_seconds": fmt.Sprintf("%d series, %d bytes, %.1f ms CPU per scrape (handler and client); exporter update: first (%s of events) %.2f s, next %.3f s",
			r.series, r.scrapeBytes, r.scrapeCPU*1e3, o.exporterAge, r.exporterFirst.Seconds(), r.exporterNext.Seconds()),
		"scrape_p99_seconds": fmt.Sprintf("%d scrapes with gzip; without gzip p50 %.4f s, p99 %.4f s (%d scrapes)", o.scrapes, r.plainP50.Seconds(), r.plainP99.Seconds(), max(o.scrapes/4, 1)),
		"range_seconds": fmt.Sprintf("%s over the last day at a 1m step (%d steps; %d checked against instant queries); runs %s",
			rangeExpr, r.rangeSteps, r.rangeChecked, durations(r.rangeAll)),
		"range_handwritten_seconds": fmt.Sprintf("one GROUP BY tenant, minute with quantileExact(0.95) over the day; runs %s", durations(r.rangeHandAll)),
		"quantile_fill_seconds": fmt.Sprintf("after the cold evaluation, the background read of the long windows' value counts (not part of any evaluation); runs %s",
			durations(r.fillAll)),
		"value_count_bytes": fmt.Sprintf("%d value counts of %d B kept for the exact quantiles of the incremental path (%d quantile leaves computed from them)",
			r.valueCounts, valueCountSize, r.quantileLeaves),
		"rss_bytes":          fmt.Sprintf("VmHWM after the callwatch parts (%.1f MiB; %.1f MiB after the rule evaluations, before the exporter)", float64(r.rss)/(1<<20), float64(r.rssEval)/(1<<20)),
		"test_rules_seconds": map[bool]string{true: "passed", false: "FAILED"}[r.testOK],
	}
	for _, res := range results {
		fmt.Fprintf(tw, "%s\t%.6g\t%s\t%s\n", res.Name, res.Value, res.Unit, notes[res.Name])
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tvalue\tgoal\tmet")
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "not met"
	}
	ch := cold.total.Seconds() / hand.total.Seconds()
	sc := steady.total.Seconds() / cold.total.Seconds()
	fmt.Fprintf(tw, "cold / handwritten\t%.2f\t≤ 1.2\t%s\n", ch, met(ch <= 1.2))
	fmt.Fprintf(tw, "steady / cold\t%.3f\t≤ 0.02 (cold/50)\t%s\n", sc, met(sc <= 0.02))
	scd := steadyDec.total.Seconds() / coldDec.total.Seconds()
	fmt.Fprintf(tw, "steady / cold, decomposable rules\t%.3f\t≤ 0.02 (cold/50)\t%s\n", scd, met(scd <= 0.02))
	chf := coldFull.total.Seconds() / hand.total.Seconds()
	fmt.Fprintf(tw, "cold / handwritten, incremental off\t%.2f\t≤ 1.2\t%s\n", chf, met(chf <= 1.2))
	fmt.Fprintf(tw, "steady / steady with incremental off\t%.3f\t(no target)\t\n", steady.total.Seconds()/steadyFull.total.Seconds())
	if o.naive {
		nc := r.naiveT.total.Seconds() / cold.total.Seconds()
		fmt.Fprintf(tw, "naive / cold\t%.2f\t≥ 10\t%s\n", nc, met(nc >= 10))
	}
	fmt.Fprintf(tw, "scrape p99\t%.4f s\t≤ 0.050 s\t%s\n", r.scrapeP99.Seconds(), met(r.scrapeP99.Seconds() <= 0.05))
	fmt.Fprintf(tw, "rss\t%.1f MB\t≤ 200 MB\t%s\n", float64(r.rss)/1e6, met(float64(r.rss) <= rssTarget))
	rq := medianDuration(r.rangeAll).Seconds() / medianDuration(r.rangeHandAll).Seconds()
	fmt.Fprintf(tw, "range / handwritten GROUP BY tenant, minute\t%.2f\t≤ 3\t%s\n", rq, met(rq <= 3))
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seconds by window\tnaive\thandwritten\tcold\tsteady\tcold/handwritten\t")
	for i, win := range windows {
		h, c := windowMedian(r.handAll, i), windowMedian(r.coldAll, i)
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f\t\n", win.text, r.naiveT.perWindow[i].Seconds(), h.Seconds(),
			c.Seconds(), windowMedian(r.steadyAll, i).Seconds(), c.Seconds()/h.Seconds())
	}
	tw.Flush()
	fmt.Fprintf(w, "(medians per window over the runs; naive ran once)\n")
	for _, m := range []struct {
		name string
		ts   []timing
	}{{"handwritten queries", r.handAll}, {"callwatch groups, cold", r.coldAll}, {"callwatch groups, steady", r.steadyAll}} {
		names, ds := partMedians(m.ts)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %.3f", n, ds[i].Seconds())
		}
		fmt.Fprintf(w, "%s (median s): %s\n", m.name, strings.Join(parts, ", "))
	}
	if r.verified != "" {
		fmt.Fprintf(w, "\nverification: %s\n", r.verified)
	}
	fmt.Fprintf(w, "results written to %s\n", o.out)
	return nil
}

func human(v float64) string {
	switch {
	case math.IsNaN(v):
		return "?"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
