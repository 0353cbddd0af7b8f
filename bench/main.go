// Command bench measures callwatch's evaluation of a 100-rule pack against
// the two ways the same work can be done without it, on one private
// ClickHouse server and one dataset, in one run (`make bench`, or
// `go run ./bench` from the repository root):
//
//   - naive: each rule as its own query, latency rows pulled into the
//     process and sorted there (the replaced service's method);
//   - handwritten: one fused SQL per window and grouping, every rule an -If
//     aggregate (a full re-evaluation done as well as plain SQL can);
//   - callwatch: the rule files loaded with rulefmt.LoadFiles and every group
//     evaluated with Group.Eval over the ClickHouse source, first cold, then
//     one interval later after a minute of new events (steady).
//
// It also times /metrics of the exporter at about 10k series and
// `callwatch test rules alerts_test/*.yaml`, reads the process's peak RSS,
// prints a table with the targets of issue 7 and writes bench/results.json.
// BENCHMARKS.md records the figures; bench/README.md explains the method.
//
// The dataset is generated inside ClickHouse by INSERT … SELECT FROM
// numbers(N), its pseudo-randomness taken from cityHash64 of the row
// number, so every run on every server version loads the same rows.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/exporter"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/rulefmt"
)

// benchNow is the fixed end of the dataset: the evaluation time of the cold
// pass. The dataset covers (benchNow − 24h, benchNow].
var benchNow = time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	database = "bench"
	table    = database + ".events"
	// datasetSpan is the event time the dataset covers.
	datasetSpan = 24 * time.Hour
	// tenants, apps and models are the dataset's label cardinalities.
	tenants = 50
	apps    = 7
	// errorBasisPoints is the error share, 300 of 10000 = 3%.
	errorBasisPoints = 300
	// rssTarget is the 200 MB, read strictly as 200·10⁶ bytes.
	rssTarget = 200e6
)

type options struct {
	events      int64
	reps        int
	scrapes     int
	tenantLimit int
	naive       bool
	verify      bool
	callwatch   string
	rulesDir    string
	out         string
	writeRules  bool
	dumpMetrics string
	exporterAge time.Duration
	hold        bool
	cpuProfile  string
	// steadyProfile profiles only the steady evaluations.
	steadyProfile string
}

func main() {
	o := options{}
	defEvents := int64(10_000_000)
	if v := os.Getenv("BENCH_EVENTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1440 {
			fmt.Fprintf(os.Stderr, "bench: BENCH_EVENTS=%q: write a number of events, at least 1440\n", v)
			os.Exit(2)
		}
		defEvents = n
	}
	flag.Int64Var(&o.events, "events", defEvents, "events in the 24h dataset (default: $BENCH_EVENTS or 10M)")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of the handwritten, cold, steady and test-rules measurements (the median is reported)")
	flag.IntVar(&o.scrapes, "scrapes", 200, "GET /metrics this many times")
	flag.IntVar(&o.tenantLimit, "tenant-limit", 11, "exporter label_limits.tenant_id (the others keep the default); 11 gives about 10k series")
	flag.BoolVar(&o.naive, "naive", true, "measure the naive method (slow: it pulls every latency row of every latency rule)")
	flag.BoolVar(&o.verify, "verify", true, "check that naive, handwritten and callwatch compute the same values for every rule (untimed)")
	flag.StringVar(&o.callwatch, "callwatch", "", "callwatch binary for test_rules_seconds (make bench passes bin/callwatch); empty: go build ./cmd/callwatch into a temporary directory")
	flag.StringVar(&o.rulesDir, "rules", "bench/rules", "directory of the rule pack")
	flag.StringVar(&o.out, "out", "bench/results.json", "where to write the results")
	flag.DurationVar(&o.exporterAge, "exporter-age", time.Hour, "the exporter counts the events of this long before the scrapes, as if callwatch had been running that long")
	flag.BoolVar(&o.hold, "hold", false, "keep the ClickHouse server and its data after the run, until Ctrl-C, for experiments")
	flag.StringVar(&o.dumpMetrics, "dump-metrics", "", "write one /metrics response to this file")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	flag.StringVar(&o.steadyProfile, "steady-cpuprofile", "", "write a CPU profile of the steady evaluations of the whole pack (incremental) to this file")
	flag.BoolVar(&o.writeRules, "write-rules", false, "regenerate the rule pack in -rules from its definition in this program and exit")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.writeRules {
		if err := writeRules(o.rulesDir, pack()); err != nil {
			log.Error("writing the rule pack failed", "err", err)
			os.Exit(1)
		}
		log.Info("rule pack written", "dir", o.rulesDir, "rules", len(pack()))
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o, log)
	stop()
	if err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// result is one entry of bench/results.json.
type result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// report collects what the run measured, for the table and the JSON file.
type report struct {
	events, minuteEvents int64
	serverVersion        string
	insertDur, optimize  time.Duration
	rules, groups        int

	naiveT                      timing
	naiveRows                   int64
	coldAll, steadyAll, handAll []timing
	// The same pack with incremental evaluation off (full), and only its
	// decomposable rules (no quantile or stddev), incremental.
	coldFullAll, steadyFullAll []timing
	coldDecAll, steadyDecAll   []timing
	// The SLO pack (sloRules): cold and steady, and its leaves by path.
	sloColdAll, sloSteadyAll []timing
	sloStats                 clickhouse.IncrementalStats
	sloSeries, sloRules      int
	requeries                int
	// valueCounts are the value counts the incremental path holds for
	// exact quantiles after the steady evaluations; quantileLeaves the
	// quantile leaves it computed from them.
	valueCounts, quantileLeaves int
	// fillAll are the waits for the background reads of value counts
	// after each cold evaluation.
	fillAll []time.Duration
	// rangeAll and rangeHandAll time the range query of a day at a 1m
	// step and the hand-written GROUP BY tenant, minute over that day;
	// rangeSteps is the number of steps, rangeChecked the steps checked
	// against instant queries.
	rangeAll, rangeHandAll   []time.Duration
	rangeSteps, rangeChecked int
	decRules                 int

	scrapeP50, scrapeP99 time.Duration
	plainP50, plainP99   time.Duration // without gzip
	scrapeCPU            float64       // CPU seconds per scrape, server and client
	series, scrapeBytes  int
	exporterFirst        time.Duration
	exporterNext         time.Duration

	rss       int64
	rssEval   int64 // after the rule evaluations, before the exporter
	testRules time.Duration
	testOK    bool

	work     map[string]work // what each phase cost (per evaluation)
	verified string

	loadBefore [3]float64
	loadMin    float64
	loadMax    float64
	loadMean   float64
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository root: go run ./bench")
	}
	if o.reps < 1 || o.scrapes < 1 || o.tenantLimit < 1 {
		return errors.New("-reps, -scrapes and -tenant-limit must be at least 1")
	}
	if o.events < 1440 {
		return errors.New("-events: at least 1440, so that a minute has an event")
	}
	rep := &report{events: o.events, work: map[string]work{}}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep.loadBefore = loadAvg()
	stopLoad := sampleLoad(rep)
	defer stopLoad()

	// The callwatch binary first, so that a tree that does not build
	// fails before the long part.
	bin := o.callwatch
	if bin == "" {
		dir, err := os.MkdirTemp("", "callwatch-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "callwatch")
		log.Info("building callwatch", "out", bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/callwatch")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/callwatch: %w", err)
		}
	} else if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("-callwatch: %w", err)
	}

	rules := pack()
	specs, err := rulefmt.LoadFiles([]string{filepath.Join(o.rulesDir, "*.yaml")}, rulefmt.LoadOptions{Schema: dsl.DefaultSchema()})
	if err != nil {
		return fmt.Errorf("load the rule pack: %w", err)
	}
	if err := checkPack(specs, rules); err != nil {
		return err
	}
	rep.groups = len(specs)
	rep.rules = len(rules)

	log.Info("starting a private ClickHouse server")
	srv, err := chtest.StartServer("")
	if err != nil {
		return err
	}
	defer srv.Close()
	conn, err := clickhouse.Open(ctx, srv.DSN("default")+"?dial_timeout=10s&read_timeout=30m")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := queryRow(ctx, conn, "SELECT version()", &rep.serverVersion); err != nil {
		return err
	}

	// 1. The dataset.
	rep.minuteEvents = int64(math.Round(float64(o.events) * float64(time.Minute) / float64(datasetSpan)))
	if err := load(ctx, conn, o.events, rep, log); err != nil {
		return err
	}

	// 2, 3. Handwritten (one fused query per window and grouping) and
	// callwatch cold (fresh source, querier and groups each time),
	// interleaved so that both see the same machine: it is shared, and its
	// load comes and goes.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := engine.NewMetrics(reg)
	// clock is the wall clock of the evaluations: the dataset ends at
	// benchNow, and each evaluation runs a second after its time, as serve's
	// do, so the late window of the incremental path is read again.
	var clock time.Time
	var (
		handVals   values
		groups     []*engine.Group
		fullGroups []*engine.Group
		decGroups  []*engine.Group
		handRead   work
		coldRead   work
	)
	inc := &clickhouse.Incremental{Now: func() time.Time { return clock }}
	var incSrc *clickhouse.Source
	decSpecs := decomposable(specs)
	for _, g := range decSpecs {
		rep.decRules += len(g.Rules)
	}
	log.Info("handwritten and callwatch cold, interleaved", "groups", len(specs), "reps", o.reps)
	for range o.reps {
		before := probe(ctx, conn)
		v, t, err := handwritten(ctx, conn, rules, benchNow)
		if err != nil {
			return fmt.Errorf("handwritten: %w", err)
		}
		handRead = handRead.add(probe(ctx, conn).sub(before))
		rep.handAll = append(rep.handAll, t)
		handVals = v

		clock = benchNow.Add(time.Second)
		var src *clickhouse.Source
		if groups, src, err = newGroups(conn, specs, metrics, inc); err != nil {
			return err
		}
		before = probe(ctx, conn)
		t, err = evalAll(ctx, groups, benchNow)
		if err != nil {
			return fmt.Errorf("cold evaluation: %w", err)
		}
		coldRead = coldRead.add(probe(ctx, conn).sub(before))
		rep.coldAll = append(rep.coldAll, t)
		rep.requeries = src.IncrementalStats().Requeries
		incSrc = src
		// The first evaluation of a quantile's long window is a full
		// query; its value counts are read in the background, here
		// waited for so they compete with no other measurement.
		fillStart := time.Now()
		src.WaitFills()
		rep.fillAll = append(rep.fillAll, time.Since(fillStart))

		if fullGroups, _, err = newGroups(conn, specs, metrics, nil); err != nil {
			return err
		}
		if t, err = evalAll(ctx, fullGroups, benchNow); err != nil {
			return fmt.Errorf("cold evaluation, incremental off: %w", err)
		}
		rep.coldFullAll = append(rep.coldFullAll, t)
		var decSrc *clickhouse.Source
		if decGroups, decSrc, err = newGroups(conn, decSpecs, metrics, inc); err != nil {
			return err
		}
		if t, err = evalAll(ctx, decGroups, benchNow); err != nil {
			return fmt.Errorf("cold evaluation, decomposable rules: %w", err)
		}
		rep.coldDecAll = append(rep.coldDecAll, t)
		// Its background reads must not run into the next measurement.
		decSrc.WaitFills()
	}
	rep.work["handwritten"], rep.work["cold"] = handRead.div(o.reps), coldRead.div(o.reps)

	// 3b. The SLO pack: 50 per-tenant 30-day SLOs, cold.
	sloSpecs, err := rulefmt.ParseRuleFile("slo.yaml", []byte(sloRules), rulefmt.LoadOptions{Schema: dsl.DefaultSchema()})
	if err != nil {
		return fmt.Errorf("the SLO pack: %w", err)
	}
	sloGroups, sloSrc, err := newGroups(conn, sloSpecs, metrics, &clickhouse.Incremental{Now: func() time.Time { return clock }})
	if err != nil {
		return err
	}
	rep.sloRules = len(sloSpecs[0].Rules)
	log.Info("callwatch: the SLO pack, cold", "slos", tenants, "rules", rep.sloRules)
	clock = benchNow.Add(time.Second)
	t, err := evalAll(ctx, sloGroups, benchNow)
	if err != nil {
		return fmt.Errorf("cold evaluation of the SLO pack: %w", err)
	}
	rep.sloColdAll = append(rep.sloColdAll, t)
	sloSrc.WaitFills()

	// 4. callwatch, steady: the groups of the last cold pass, one interval
	// later each time, after a minute of new events.
	log.Info("callwatch: steady evaluation after a minute of new events", "events_per_minute", rep.minuteEvents, "reps", o.reps)
	var steadyRead work
	for k := 1; k <= o.reps; k++ {
		after := benchNow.Add(time.Duration(k-1) * time.Minute)
		offset := o.events + int64(k-1)*rep.minuteEvents
		if err := conn.Exec(ctx, generateSQL(rep.minuteEvents, offset, after, time.Minute)); err != nil {
			return fmt.Errorf("insert minute %d: %w", k, err)
		}
		before := probe(ctx, conn)
		clock = after.Add(time.Minute + time.Second)
		stopProfile, err := startProfile(o.steadyProfile, k)
		if err != nil {
			return err
		}
		t, err := evalAll(ctx, groups, after.Add(time.Minute))
		stopProfile()
		if err != nil {
			return fmt.Errorf("steady evaluation: %w", err)
		}
		steadyRead = steadyRead.add(probe(ctx, conn).sub(before))
		rep.steadyAll = append(rep.steadyAll, t)
		if t, err = evalAll(ctx, fullGroups, after.Add(time.Minute)); err != nil {
			return fmt.Errorf("steady evaluation, incremental off: %w", err)
		}
		rep.steadyFullAll = append(rep.steadyFullAll, t)
		if t, err = evalAll(ctx, decGroups, after.Add(time.Minute)); err != nil {
			return fmt.Errorf("steady evaluation, decomposable rules: %w", err)
		}
		rep.steadyDecAll = append(rep.steadyDecAll, t)
		if t, err = evalAll(ctx, sloGroups, after.Add(time.Minute)); err != nil {
			return fmt.Errorf("steady evaluation of the SLO pack: %w", err)
		}
		rep.sloSteadyAll = append(rep.sloSteadyAll, t)
		sloSrc.WaitFills()
	}
	rep.sloStats = sloSrc.IncrementalStats()
	for _, g := range sloGroups {
		for _, r := range g.Rules() {
			if rr, ok := r.(*engine.RecordingRule); ok && rr.Name() == rulefmt.SLISeries {
				samples, _ := rr.Samples()
				rep.sloSeries = len(samples)
			}
		}
	}
	rep.work["steady"] = steadyRead.div(o.reps)
	rep.rssEval = peakRSS()

	// 4b. A range query, as Grafana sends it: a day of the per-tenant p95
	// at a 1m step, against one hand-written GROUP BY tenant, minute.
	if err := rangeQuery(ctx, conn, o, rep, log); err != nil {
		return fmt.Errorf("range query: %w", err)
	}
	st := incSrc.IncrementalStats()
	rep.valueCounts, rep.quantileLeaves = st.ValueCounts, st.QuantileLeaves

	// 5. The exporter's /metrics, wired as serve wires it.
	if err := scrape(ctx, conn, reg, groups, o, rep, log); err != nil {
		return fmt.Errorf("scrape: %w", err)
	}

	// 6. callwatch test rules, in a subprocess.
	if err := testRules(ctx, bin, o, rep, log); err != nil {
		return fmt.Errorf("test rules: %w", err)
	}

	// 7. Peak RSS of callwatch's work so far, before the naive method pulls
	// rows into this process.
	rep.rss = peakRSS()
	runtime.GC()

	// 8. Naive: one query per rule, latency rows sorted in Go.
	var naiveVals values
	if o.naive {
		log.Info("naive: one query per rule, latency rows pulled into the process")
		before := probe(ctx, conn)
		naiveVals, rep.naiveRows, rep.naiveT, err = naive(ctx, conn, rules, benchNow)
		if err != nil {
			return fmt.Errorf("naive: %w", err)
		}
		rep.work["naive"] = probe(ctx, conn).sub(before)
	}

	// 9. The three methods must agree, or the comparison means nothing.
	if o.verify {
		log.Info("verifying that the methods compute the same values")
		rep.verified, err = verify(ctx, conn, rules, benchNow, handVals, naiveVals)
		if err != nil {
			return err
		}
	}
	stopLoad()
	if err := rep.write(o); err != nil {
		return err
	}
	if o.hold {
		log.Info("the server keeps running until Ctrl-C", "client", fmt.Sprintf("clickhouse-client --port %d", srv.Port), "table", table)
		<-ctx.Done()
	}
	return nil
}

// load creates the events table and fills it with the dataset.
func load(ctx context.Context, conn *clickhouse.NativeConn, events int64, rep *report, log *slog.Logger) error {
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + database, clickhouse.EventsDDL(table, dsl.DefaultSchema())} {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create the events table: %w", err)
		}
	}
	log.Info("loading the dataset server-side", "events", events, "span", datasetSpan, "now", benchNow)
	start := time.Now()
	if err := conn.Exec(ctx, generateSQL(events, 0, benchNow.Add(-datasetSpan), datasetSpan)); err != nil {
		return fmt.Errorf("load the dataset: %w", err)
	}
	rep.insertDur = time.Since(start)
	// Merge the inserted parts so that the measurements do not race the
	// background merges, and warm the page cache with every column.
	start = time.Now()
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active", database, "events")
	if err != nil {
		return err
	}
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return err
		}
		parts = append(parts, p)
	}
	rows.Close()
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return fmt.Errorf("unexpected partition %q", p)
		}
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" PARTITION "+p+" FINAL"); err != nil {
			return fmt.Errorf("optimize partition %s: %w", p, err)
		}
	}
	rep.optimize = time.Since(start)
	var n, sum float64
	if err := queryRow(ctx, conn, "SELECT toFloat64(count()), toFloat64(sum(latency_ms + input_tokens + output_tokens)) + sum(cost) + toFloat64(sum(length(tenant_id) + length(app_code) + length(model) + length(provider) + length(status) + length(error_code))) FROM "+table, &n, &sum); err != nil {
		return err
	}
	if int64(n) != events {
		return fmt.Errorf("the table holds %d events, want %d", int64(n), events)
	}
	log.Info("dataset loaded", "insert", rep.insertDur.Round(time.Millisecond), "optimize", rep.optimize.Round(time.Millisecond))
	return nil
}

// generateSQL returns the INSERT … SELECT that generates count events with
// times spread evenly over (after, after+span], the row numbers offset by
// offset so that later batches differ from earlier ones. It runs on
// ClickHouse 18.16: no toStartOfInterval, no DateTime64, and cityHash64 of
// the row number rather than rand(), so the rows are the same every run.
//
//   - tenants t0…t49 with a skewed share (tenant ⌊50·u²⌋: t0 gets 14%,
//     t7 2.6%, t49 1%), apps a0…a6 and three models (with their provider)
//     uniform;
//   - 3% of calls have status error (else ok) and an error_code;
//   - latency_ms is lognormal, exp(μ_model + 0.8·z) with μ = 6.9, 7.1, 6.6
//     (medians 1.0 s, 1.2 s, 0.7 s, p99 ≈ 6–8 s), capped at 10 minutes;
//   - input and output tokens are lognormal (medians 665 and 245), cost is
//     their price per model.
//
// z are standard normals from the Box–Muller transform of two hashes.
func generateSQL(count, offset int64, after time.Time, span time.Duration) string {
	u := func(seed int) string {
		return fmt.Sprintf("((cityHash64(number + %d, %d) %% 4294967296) + 0.5) / 4294967296", offset, seed)
	}
	return fmt.Sprintf(`INSERT INTO %[1]s (created_at, tenant_id, app_code, model, provider, status, error_code, latency_ms, input_tokens, output_tokens, cost)
SELECT
    toDateTime(%[2]d + 1 + intDiv(n * %[3]d, %[4]d)) AS created_at,
    concat('t', toString(toUInt32(floor(pow(u1, 2) * %[5]d)))) AS tenant_id,
    concat('a', toString(h2 %% %[6]d)) AS app_code,
    arrayElement(['gpt-4o', 'claude-sonnet', 'qwen-max'], m + 1) AS model,
    arrayElement(['openai', 'anthropic', 'alibaba'], m + 1) AS provider,
    if(h3 %% 10000 < %[7]d, 'error', 'ok') AS status,
    if(h3 %% 10000 < %[7]d, arrayElement(['timeout', 'rate_limited', 'upstream_5xx'], intDiv(h3, 10000) %% 3 + 1), '') AS error_code,
    toUInt32(least(exp(arrayElement([6.9, 7.1, 6.6], m + 1) + 0.8 * r1 * cos(t1)), 600000)) AS latency_ms,
    toUInt32(least(exp(6.5 + 0.9 * r1 * sin(t1)), 200000)) AS input_tokens,
    toUInt32(least(exp(5.5 + 0.8 * r2 * cos(t2)), 32000)) AS output_tokens,
    (input_tokens * arrayElement([17.5, 21.0, 2.4], m + 1) + output_tokens * arrayElement([70.0, 105.0, 9.6], m + 1)) / 1000000 AS cost
FROM
(
    SELECT
        number AS n,
        %[8]s AS u1,
        cityHash64(number + %[12]d, 2) AS h2,
        intDiv(h2, %[6]d) %% 3 AS m,
        cityHash64(number + %[12]d, 3) AS h3,
        sqrt(-2 * log(%[9]s)) AS r1,
        2 * pi() * %[10]s AS t1,
        sqrt(-2 * log(%[11]s)) AS r2,
        2 * pi() * %[13]s AS t2
    FROM numbers(%[4]d)
)`, table, after.Unix(), int64(span/time.Second), count, tenants, apps, errorBasisPoints,
		u(1), u(4), u(5), u(6), offset, u(7))
}

// newGroups builds the groups as serve does: a ClickHouse source, a querier
// and engine.NewGroup with the querier's QueryWith and Batch, and one
// Coalescer, so the groups due at the same time compute their leaves
// together. No notifier or audit
// sink: sending is asynchronous in serve and not part of evaluation.
// newGroups builds the groups over a fresh source; inc nil turns
// incremental evaluation off. serve's default is incremental with 1m
// buckets and a 2m late window.
func newGroups(conn clickhouse.Conn, specs []*rulefmt.GroupSpec, metrics *engine.Metrics, inc *clickhouse.Incremental) ([]*engine.Group, *clickhouse.Source, error) {
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: dsl.DefaultSchema(), Columns: clickhouse.EventsColumns(dsl.DefaultSchema()), Incremental: inc})
	if err != nil {
		return nil, nil, err
	}
	querier := engine.NewQuerier(engine.QuerierOptions{Source: src})
	coalescer := engine.NewCoalescer(querier)
	groups := make([]*engine.Group, 0, len(specs))
	for _, spec := range specs {
		groups = append(groups, engine.NewGroup(spec, engine.GroupOptions{
			Query: querier.QueryWith, Batch: querier.Batch, Coalescer: coalescer, Schema: dsl.DefaultSchema(), Metrics: metrics,
		}))
	}
	coalescer.SetGroups(groups)
	return groups, src, nil
}

// decomposable returns the groups with only their rules whose leaves are
// all decomposable (no quantile, no stddev): the rules the incremental path
// computes entirely.
func decomposable(specs []*rulefmt.GroupSpec) []*rulefmt.GroupSpec {
	var out []*rulefmt.GroupSpec
	for _, g := range specs {
		ng := *g
		ng.Rules = nil
		for _, r := range g.Rules {
			ok := true
			for _, l := range r.Expr.Leaves {
				if ps := l.Partials(); slices.Contains(ps, dsl.PartialValues) || slices.Contains(ps, dsl.PartialMoments) {
					ok = false
				}
			}
			if ok {
				ng.Rules = append(ng.Rules, r)
			}
		}
		if len(ng.Rules) > 0 {
			out = append(out, &ng)
		}
	}
	return out
}

// evalAll evaluates every group at ts, one after the other, and returns the
// time taken, in total and per window (the groups are named
// bench-<window>-<scope>). A rule that failed fails the measurement.
// startProfile starts a CPU profile into path (path.K for repetition k > 1)
// when path is not empty, and returns the function that stops it.
func startProfile(path string, k int) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	if k > 1 {
		path = fmt.Sprintf("%s.%d", path, k)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// rangeExpr is the range query of the bench: what a Grafana panel of
// exact per-tenant p95s sends.
const rangeExpr = "max by (tenant_id) (p95(latency_ms[5m]))"

// rangeQuery times rangeExpr over the last day at a 1m step through a
// querier as the query API builds it (a source without incremental
// state), and the hand-written query it stands against; it checks a few
// steps against instant queries.
func rangeQuery(ctx context.Context, conn clickhouse.Conn, o options, rep *report, log *slog.Logger) error {
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: dsl.DefaultSchema(), Columns: clickhouse.EventsColumns(dsl.DefaultSchema())})
	if err != nil {
		return err
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: src, MaxSamples: 50_000_000})
	e, err := dsl.Parse(rangeExpr, dsl.Options{Schema: dsl.DefaultSchema()})
	if err != nil {
		return err
	}
	end := benchNow
	start := end.Add(-datasetSpan + 5*time.Minute)
	hand := fmt.Sprintf("SELECT tenant_id, intDiv(toUInt32(created_at), 60) AS m, quantileExact(0.95)(latency_ms) FROM %s WHERE created_at > toDateTime(%d) AND created_at <= toDateTime(%d) GROUP BY tenant_id, m",
		table, start.Add(-5*time.Minute).Unix(), end.Unix())
	log.Info("range query: a day at a 1m step", "expr", rangeExpr, "reps", o.reps)
	var res engine.RangeResult
	for range o.reps {
		t0 := time.Now()
		rows, err := conn.Query(ctx, hand)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		rep.rangeHandAll = append(rep.rangeHandAll, time.Since(t0))
		t0 = time.Now()
		if res, err = q.QueryRange(ctx, e, start, end, time.Minute); err != nil {
			return err
		}
		rep.rangeAll = append(rep.rangeAll, time.Since(t0))
	}
	rep.rangeSteps = int(engine.Steps(start, end, time.Minute))
	// Exact: three steps equal the instant query at their time.
	for _, k := range []int{0, rep.rangeSteps / 2, rep.rangeSteps - 1} {
		ts := start.Add(time.Duration(k) * time.Minute)
		inst, err := q.Query(ctx, e, ts)
		if err != nil {
			return err
		}
		for _, smp := range inst.Vector {
			found := false
			for _, sr := range res.Matrix {
				if labels.Equal(sr.Labels, smp.Labels) {
					for _, p := range sr.Points {
						if p.T == ts.UnixMilli() {
							found = p.V == smp.Value
						}
					}
				}
			}
			if !found {
				return fmt.Errorf("range step %s of %s differs from the instant query (%s = %v)", ts.Format(time.RFC3339), rangeExpr, smp.Labels, smp.Value)
			}
		}
		rep.rangeChecked++
	}
	return nil
}

func evalAll(ctx context.Context, groups []*engine.Group, ts time.Time) (timing, error) {
	var t timing
	for _, g := range groups {
		start := time.Now()
		g.Eval(ctx, ts)
		d := time.Since(start)
		t.total += d
		t.addPart(g.Name(), d)
		if w := windowOf(g.Name()); w >= 0 {
			t.perWindow[w] += d
		}
	}
	if err := ctx.Err(); err != nil {
		return t, err
	}
	for _, g := range groups {
		for _, r := range g.Rules() {
			st := r.Status()
			if st.Health != engine.HealthGood || !st.LastEval.Equal(ts) {
				err := st.LastError
				if err == nil {
					err = errors.New("not evaluated at this step")
				}
				return t, fmt.Errorf("group %q, rule %q: health %s at %s: %w", g.Name(), r.Name(), st.Health, st.LastEval, err)
			}
		}
	}
	return t, nil
}

// windowOf returns the window index of a group of the pack, or -1.
func windowOf(group string) int {
	for i, w := range windows {
		if strings.HasPrefix(group, "bench-"+w.text+"-") {
			return i
		}
	}
	return -1
}

// ruleGroups serves the bench's groups to the exporter (serve passes its
// rule manager).
type ruleGroups []*engine.Group

func (r ruleGroups) Groups() []*engine.Group { return r }

var _ exporter.Rules = ruleGroups(nil)

// scrape runs the exporter as serve wires it (registry with the Go and
// process collectors, rule metrics, recording rules and ALERTS), serves the
// registry with promhttp on a local port and times GET /metrics.
func scrape(ctx context.Context, conn clickhouse.Conn, reg *prometheus.Registry, groups []*engine.Group, o options, rep *report, log *slog.Logger) error {
	now := benchNow.Add(time.Duration(o.reps)*time.Minute + 10*time.Second)
	e, err := exporter.New(exporter.Options{
		Config:  config.Exporter{LabelLimits: map[string]int{"tenant_id": o.tenantLimit}},
		Conn:    conn,
		Table:   table,
		Schema:  dsl.DefaultSchema(),
		Columns: clickhouse.EventsColumns(dsl.DefaultSchema()),
		Rules:   ruleGroups(groups),
		Start:   now.Add(-o.exporterAge),
		Now:     func() time.Time { return now },
	})
	if err != nil {
		return err
	}
	if err := e.Register(reg); err != nil {
		return err
	}
	log.Info("exporter: first update", "counting", o.exporterAge)
	start := time.Now()
	if err := e.Update(ctx, now); err != nil {
		return fmt.Errorf("exporter update: %w", err)
	}
	rep.exporterFirst = time.Since(start)
	start = time.Now()
	if err := e.Update(ctx, now.Add(15*time.Second)); err != nil {
		return fmt.Errorf("exporter update: %w", err)
	}
	rep.exporterNext = time.Since(start)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/metrics"
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(gzip bool) (string, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", 0, err
		}
		if !gzip {
			req.Header.Set("Accept-Encoding", "identity")
		}
		// Prometheus' default scrape Accept header (text formats; the
		// Go client adds Accept-Encoding: gzip, as Prometheus does).
		req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		return string(body), d, err
	}
	body, _, err := get(true) // warm-up, and the series count
	if err != nil {
		return err
	}
	rep.scrapeBytes = len(body)
	if o.dumpMetrics != "" {
		if err := os.WriteFile(o.dumpMetrics, []byte(body), 0o644); err != nil {
			return err
		}
	}
	for _, l := range strings.Split(body, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			rep.series++
		}
	}
	log.Info("scraping /metrics", "series", rep.series, "bytes", rep.scrapeBytes, "times", o.scrapes)
	durs := make([]time.Duration, 0, o.scrapes)
	cpu := processCPU()
	for range o.scrapes {
		_, d, err := get(true)
		if err != nil {
			return err
		}
		durs = append(durs, d)
	}
	rep.scrapeCPU = (processCPU() - cpu) / float64(o.scrapes)
	rep.scrapeP50, rep.scrapeP99 = percentile(durs, 0.5), percentile(durs, 0.99)
	// The same without gzip, to tell encoding from compression.
	durs = durs[:0]
	for range max(o.scrapes/4, 1) {
		_, d, err := get(false)
		if err != nil {
			return err
		}
		durs = append(durs, d)
	}
	rep.plainP50, rep.plainP99 = percentile(durs, 0.5), percentile(durs, 0.99)
	return nil
}

// testRules times `callwatch test rules alerts_test/*.yaml`.
func testRules(ctx context.Context, bin string, o options, rep *report, log *slog.Logger) error {
	files, err := filepath.Glob("alerts_test/*.yaml")
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no alerts_test/*.yaml")
	}
	var durs []time.Duration
	rep.testOK = true
	for range o.reps {
		cmd := exec.CommandContext(ctx, bin, append([]string{"test", "rules"}, files...)...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		durs = append(durs, time.Since(start))
		if err != nil {
			rep.testOK = false
			log.Warn("callwatch test rules failed; timed anyway", "err", err, "output", out.String())
		}
	}
	rep.testRules = median(durs)
	return nil
}

// peakRSS returns VmHWM, the process's peak resident set, in bytes.
func peakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// work is what a phase cost besides wall time: the SELECT queries the
// server ran and the granules (marks) of at most 8192 rows (the table's
// index_granularity) they read (ProfileEvents SelectQuery, SelectedMarks;
// 18.16 counts neither rows nor, behind its uncompressed cache, bytes
// reliably), the CPU time of the server's query threads (UserTime and
// SystemTimeMicroseconds) and the CPU time of this process. CPU time is
// much less disturbed than wall time by other load on a shared machine.
type work struct{ queries, marks, serverCPU, benchCPU float64 }

func (a work) sub(b work) work {
	// The probe that read a counts itself as a query.
	return work{a.queries - b.queries - 1, a.marks - b.marks, a.serverCPU - b.serverCPU, a.benchCPU - b.benchCPU}
}

func (a work) add(b work) work {
	return work{a.queries + b.queries, a.marks + b.marks, a.serverCPU + b.serverCPU, a.benchCPU + b.benchCPU}
}

func (a work) div(n int) work {
	f := float64(n)
	return work{a.queries / f, a.marks / f, a.serverCPU / f, a.benchCPU / f}
}

func (a work) String() string {
	return fmt.Sprintf("%s queries read %s granules (≈%s rows); CPU: server %.2f s, callwatch/client %.2f s",
		human(a.queries), human(a.marks), human(a.marks*8192), a.serverCPU, a.benchCPU)
}

// probe returns the server's cumulative SELECT counters (NaN when
// unavailable) and this process's CPU time so far.
func probe(ctx context.Context, conn clickhouse.Conn) work {
	w := work{benchCPU: processCPU()}
	if err := queryRow(ctx, conn, `SELECT toFloat64(sumIf(value, event = 'SelectQuery')), toFloat64(sumIf(value, event = 'SelectedMarks')),
    toFloat64(sumIf(value, event IN ('UserTimeMicroseconds', 'SystemTimeMicroseconds'))) / 1e6 FROM system.events`,
		&w.queries, &w.marks, &w.serverCPU); err != nil {
		w.queries, w.marks, w.serverCPU = math.NaN(), math.NaN(), math.NaN()
	}
	return w
}

// processCPU returns the user and system CPU time of this process, in
// seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func queryRow(ctx context.Context, conn clickhouse.Conn, sql string, dest ...any) error {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return fmt.Errorf("%s: no row", sql)
	}
	return rows.Scan(dest...)
}

// procField returns the value of the first "key: value" line of a /proc
// file, or "?".
func procField(file, key string) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// memTotal returns the machine's memory, in GiB.
func memTotal() string {
	kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64)
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(kb/(1<<20), 'f', 1, 64) + " GiB"
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(data))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// sampleLoad samples the 1-minute load average every 10s until stopped.
func sampleLoad(rep *report) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var sum float64
		n := 0
		rep.loadMin = math.Inf(1)
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			l := loadAvg()[0]
			sum += l
			n++
			rep.loadMin, rep.loadMax, rep.loadMean = min(rep.loadMin, l), max(rep.loadMax, l), sum/float64(n)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		once.Do(func() { close(done); wg.Wait() })
	}
}

func median(ds []time.Duration) time.Duration { return percentile(ds, 0.5) }

// timing is one measurement: the total and its share per window (5m, 1h,
// 1d).
type timing struct {
	total     time.Duration
	perWindow [3]time.Duration
	// parts are the times of the queries (handwritten) or groups
	// (callwatch), by name.
	parts map[string]time.Duration
}

func (t *timing) addPart(name string, d time.Duration) {
	if t.parts == nil {
		t.parts = map[string]time.Duration{}
	}
	t.parts[name] += d
}

// windowMedian returns the median over the measurements of window w.
func windowMedian(ts []timing, w int) time.Duration {
	ds := make([]time.Duration, len(ts))
	for i, t := range ts {
		ds[i] = t.perWindow[w]
	}
	return median(ds)
}

// partMedians returns the median of every part over the measurements, in
// the order of names.
func partMedians(ts []timing) (names []string, ds []time.Duration) {
	if len(ts) == 0 {
		return nil, nil
	}
	for n := range ts[0].parts {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var all []time.Duration
		for _, t := range ts {
			all = append(all, t.parts[n])
		}
		ds = append(ds, median(all))
	}
	return names, ds
}

// medianTiming returns the measurement whose total is the median.
func medianTiming(ts []timing) timing {
	if len(ts) == 0 {
		return timing{}
	}
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b timing) int { return int(a.total - b.total) })
	return s[(len(s)+1)/2-1]
}

func totals(ts []timing) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = strconv.FormatFloat(t.total.Seconds(), 'f', 3, 64)
	}
	return strings.Join(s, " ")
}

// percentile returns the nearest-rank φ-percentile of ds.
func percentile(ds []time.Duration, phi float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(phi*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// medianDuration returns the median of ds (0 when empty).
func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// durations writes ds in seconds, in order.
func durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.3f", d.Seconds())
	}
	return strings.Join(parts, " ")
}

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
		"naive_seconds":               fmt.Sprintf("%s; %s rows pulled", r.work["naive"], human(float64(r.naiveRows))),
		"handwritten_seconds":         fmt.Sprintf("%s; runs %s", r.work["handwritten"], totals(r.handAll)),
		"cold_seconds":                fmt.Sprintf("%s; runs %s", r.work["cold"], totals(r.coldAll)),
		"steady_seconds":              fmt.Sprintf("%s; runs %s", r.work["steady"], totals(r.steadyAll)),
		"cold_full_seconds":           fmt.Sprintf("incremental evaluation off; runs %s", totals(r.coldFullAll)),
		"steady_full_seconds":         fmt.Sprintf("incremental evaluation off; runs %s", totals(r.steadyFullAll)),
		"cold_decomposable_seconds":   fmt.Sprintf("the %d rules without quantile or stddev, incremental; runs %s", r.decRules, totals(r.coldDecAll)),
		"steady_decomposable_seconds": fmt.Sprintf("the same %d rules one minute later; runs %s", r.decRules, totals(r.steadyDecAll)),
		"slo_cold_seconds": fmt.Sprintf("the SLO pack: one 30d availability SLO by tenant_id, %d per-tenant SLOs (%d SLI series), its %d generated rules; first evaluation",
			tenants, r.sloSeries, r.sloRules),
		"slo_steady_seconds": fmt.Sprintf("the same one minute later; runs %s; leaves %d incremental, %d full (a long window's first evaluation is full; then it slides on its cold state)",
			totals(r.sloSteadyAll), r.sloStats.Leaves, r.sloStats.FullLeaves),
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

// sloRules is the SLO pack: one availability SLO per tenant over 30 days
// (the dataset's 50 tenants), compiled by rulefmt into a group of 9
// recording and 4 burn-rate alerting rules.
const sloRules = `slos:
  - name: tenant-availability
    objective: 99.9
    window: 30d
    by: [tenant_id]
    sli: {errors: '{status="error"}', total: events}
`

// ---------------------------------------------------------------------------
// The rule pack.

// kind is a baseline rule type (latency split by statistic, and the error
// ratio added).
type kind struct {
	name      string // rule name prefix
	alertType string // the baseline's rule type, as the alert_type label
	// thresholds per window (5m, 1h, 1d).
	thresholds [3]float64
}

var kinds = []kind{
	{"ErrorCount", "error_rate", [3]float64{100, 1000, 20000}},
	{"ErrorRatio", "error_rate", [3]float64{0.05, 0.05, 0.05}},
	{"CallCount", "call_count", [3]float64{10000, 100000, 2000000}},
	{"TokenUsage", "token_usage", [3]float64{5e6, 5e7, 1e9}},
	{"Cost", "cost_threshold", [3]float64{100, 1000, 20000}},
	{"LatencyAvg", "latency", [3]float64{3000, 3000, 3000}},
	{"LatencyP95", "latency", [3]float64{5000, 5000, 5000}},
	{"LatencyP99", "latency", [3]float64{10000, 10000, 10000}},
	{"LatencyMax", "latency", [3]float64{120000, 120000, 120000}},
}

var windows = []struct {
	text string
	d    time.Duration
}{{"5m", 5 * time.Minute}, {"1h", time.Hour}, {"1d", 24 * time.Hour}}

// scope is where a rule looks: one tenant, one app, the whole platform, or
// every tenant (grouped).
type scope struct {
	name    string // in rule and group names
	label   string // matcher label, "" for platform and grouped
	value   string
	grouped bool
}

var (
	scopeTenant   = scope{name: "t7", label: "tenant_id", value: "t7"}
	scopeApp      = scope{name: "a3", label: "app_code", value: "a3"}
	scopeByTenant = scope{name: "by_tenant", grouped: true}
	scopePlatform = scope{name: "platform"}
)

// benchRule is one rule of the pack.
type benchRule struct {
	name   string
	kind   kind
	window int // index into windows
	scope  scope
	// guard adds the minimum-volume guard of rules.d's TenantErrorRatio.
	guard bool
}

// pack returns the 100 rules: the 9 rule types × 3 windows × {tenant t7,
// app a3, by tenant} (81), the 9 types platform-wide at 5m and 1h (18) and
// the per-tenant error ratio with a minimum-volume guard (1).
func pack() []benchRule {
	var out []benchRule
	for w := range windows {
		scopes := []scope{scopeTenant, scopeApp, scopeByTenant, scopePlatform}
		if windows[w].text == "1d" {
			scopes = scopes[:3]
		}
		for _, s := range scopes {
			for _, k := range kinds {
				out = append(out, benchRule{name: k.name + "_" + s.name + "_" + windows[w].text, kind: k, window: w, scope: s})
			}
			if w == 0 && s == scopeByTenant {
				out = append(out, benchRule{name: "ErrorRatioGuarded_by_tenant_5m", kind: kinds[1], window: w, scope: s, guard: true})
			}
		}
	}
	return out
}

// group returns the name of the rule's group: one per window and scope.
func (r benchRule) group() string { return "bench-" + windows[r.window].text + "-" + r.scope.name }

// valueExpr is the rule's expression without its comparison.
func (r benchRule) valueExpr() string {
	w := windows[r.window].text
	sel := func(field string, extra ...string) string {
		var ms []string
		ms = append(ms, extra...)
		if r.scope.label != "" {
			ms = append(ms, r.scope.label+`="`+r.scope.value+`"`)
		}
		if len(ms) == 0 {
			return field + "[" + w + "]"
		}
		return field + "{" + strings.Join(ms, ", ") + "}[" + w + "]"
	}
	wrap := func(agg, inner string) string {
		if r.scope.grouped {
			return agg + " by (tenant_id) (" + inner + ")"
		}
		return inner
	}
	switch r.kind.name {
	case "ErrorCount":
		return wrap("sum", "count_over_time("+sel("events", `status="error"`)+")")
	case "ErrorRatio":
		// sum drops the status label that the equality matcher adds to
		// an ungrouped leaf, so numerator and denominator match.
		agg := "sum"
		if r.scope.grouped {
			agg = "sum by (tenant_id) "
		}
		return agg + "(count_over_time(" + sel("events", `status="error"`) + ")) / " + agg + "(count_over_time(" + sel("events") + "))"
	}
	k, ok := oneFunctionKinds[r.kind.name]
	if !ok {
		panic("unknown kind " + r.kind.name)
	}
	return wrap(k.agg, k.fn+"("+sel(k.field)+")")
}

// oneFunctionKinds are the rule kinds whose value is one range function of
// one field, aggregated across tenants by agg.
var oneFunctionKinds = map[string]struct{ agg, fn, field string }{
	"CallCount":  {"sum", "count_over_time", "events"},
	"TokenUsage": {"sum", "sum_over_time", "total_tokens"},
	"Cost":       {"sum", "sum_over_time", "cost"},
	"LatencyAvg": {"max", "avg_over_time", "latency_ms"},
	"LatencyP95": {"max", "p95", "latency_ms"},
	"LatencyP99": {"max", "p99", "latency_ms"},
	"LatencyMax": {"max", "max_over_time", "latency_ms"},
}

func (r benchRule) threshold() float64 { return r.kind.thresholds[r.window] }

// expr is the rule's full expression.
func (r benchRule) expr() string {
	e := r.valueExpr() + " > " + strconv.FormatFloat(r.threshold(), 'f', -1, 64)
	if r.guard {
		e += "\n  and sum by (tenant_id) (count_over_time(events[" + windows[r.window].text + "])) >= 20"
	}
	return e
}

// writeRules writes the pack as one rule file per window.
func writeRules(dir string, rules []benchRule) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for w := range windows {
		var b strings.Builder
		fmt.Fprintf(&b, "# Generated by `go run ./bench -write-rules`; do not edit.\n")
		fmt.Fprintf(&b, "# The bench's rule pack, window %s: the baseline rule types, scoped to\n# tenant t7 or app a3, grouped by tenant, or platform-wide.\ngroups:\n", windows[w].text)
		last := ""
		for _, r := range rules {
			if r.window != w {
				continue
			}
			if g := r.group(); g != last {
				fmt.Fprintf(&b, "  - name: %s\n    interval: 1m\n    rules:\n", g)
				last = g
			}
			expr := r.expr()
			if strings.Contains(expr, "\n") {
				expr = "|\n          " + strings.ReplaceAll(expr, "\n", "\n          ")
			}
			fmt.Fprintf(&b, "      - alert: %s\n        expr: %s\n        severity: warning\n", r.name, expr)
			fmt.Fprintf(&b, "        labels:\n          alert_type: %s\n", r.kind.alertType)
			fmt.Fprintf(&b, "        annotations:\n          summary: \"%s is {{ $value }} (threshold %s)\"\n",
				r.name, strconv.FormatFloat(r.threshold(), 'f', -1, 64))
		}
		if err := os.WriteFile(filepath.Join(dir, windows[w].text+".yaml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkPack checks that the rule files hold exactly the pack defined here.
func checkPack(specs []*rulefmt.GroupSpec, rules []benchRule) error {
	want := map[string]string{}
	for _, r := range rules {
		want[r.name] = r.expr()
	}
	n := 0
	for _, g := range specs {
		for _, r := range g.Rules {
			n++
			if e, ok := want[r.Name()]; !ok || strings.TrimSpace(r.ExprText) != e {
				return fmt.Errorf("bench/rules differ from the pack defined in bench/main.go (rule %q); run go run ./bench -write-rules", r.Name())
			}
		}
	}
	if n != len(rules) {
		return fmt.Errorf("bench/rules hold %d rules, the pack %d; run go run ./bench -write-rules", n, len(rules))
	}
	return nil
}

// ---------------------------------------------------------------------------
// Handwritten and naive evaluation.

// values are the rules' values by rule name and group (the tenant for a
// grouped rule, "" otherwise). A group with no event has no value.
type values map[string]map[string]float64

func (v values) set(rule, group string, x float64) {
	if v[rule] == nil {
		v[rule] = map[string]float64{}
	}
	v[rule][group] = x
}

// stats are the aggregates one scope needs for every rule type.
type stats struct {
	errors, calls, tokens, cost, avg, p95, p99, max float64
}

// value returns a rule's value from its scope's aggregates.
func (s stats) value(k kind) float64 {
	switch k.name {
	case "ErrorCount":
		return s.errors
	case "ErrorRatio":
		return s.errors / s.calls
	case "CallCount":
		return s.calls
	case "TokenUsage":
		return s.tokens
	case "Cost":
		return s.cost
	case "LatencyAvg":
		return s.avg
	case "LatencyP95":
		return s.p95
	case "LatencyP99":
		return s.p99
	case "LatencyMax":
		return s.max
	}
	panic("unknown kind " + k.name)
}

func sqlCond(s scope) string {
	if s.label == "" {
		return ""
	}
	return s.label + " = '" + s.value + "'"
}

func windowCond(w int, ts time.Time) string {
	return fmt.Sprintf("created_at > toDateTime(%d) AND created_at <= toDateTime(%d)", ts.Add(-windows[w].d).Unix(), ts.Unix())
}

// handwritten evaluates the pack as a person fluent in ClickHouse would by
// hand: per window, one query for the ungrouped scopes (each rule an -If
// aggregate) and one GROUP BY tenant_id query, and the comparisons in Go.
// It returns the values and the time taken.
func handwritten(ctx context.Context, conn clickhouse.Conn, rules []benchRule, ts time.Time) (values, timing, error) {
	out := values{}
	var t timing
	for w := range windows {
		start := time.Now()
		var scopes []scope
		grouped := false
		for _, r := range rules {
			if r.window != w {
				continue
			}
			if r.scope.grouped {
				grouped = true
			} else if !slices.Contains(scopes, r.scope) {
				scopes = append(scopes, r.scope)
			}
		}
		byScope := map[string]stats{}
		if len(scopes) > 0 {
			// Without a platform-wide rule, the WHERE clause keeps only
			// the scopes' rows.
			var cols, narrow []string
			for _, s := range scopes {
				c := sqlCond(s)
				cols = append(cols, aggregates(c)...)
				narrow = append(narrow, c)
			}
			where := windowCond(w, ts)
			if !slices.Contains(narrow, "") {
				where += " AND (" + strings.Join(narrow, " OR ") + ")"
			}
			sql := "SELECT\n    " + strings.Join(cols, ",\n    ") + "\nFROM " + table + "\nWHERE " + where
			qstart := time.Now()
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				return nil, t, err
			}
			dest := make([]stats, len(scopes))
			qs := make([][]float64, len(scopes))
			var ptrs []any
			for i := range scopes {
				d := &dest[i]
				ptrs = append(ptrs, &d.errors, &d.calls, &d.tokens, &d.cost, &d.avg, &qs[i], &d.max)
			}
			if !rows.Next() {
				rows.Close()
				return nil, t, fmt.Errorf("no row: %w", rows.Err())
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, t, err
			}
			rows.Close()
			t.addPart(windows[w].text+"-ungrouped", time.Since(qstart))
			for i, s := range scopes {
				dest[i].p95, dest[i].p99 = qs[i][0], qs[i][1]
				byScope[s.name] = dest[i]
			}
		}
		byTenant := map[string]stats{}
		if grouped {
			sql := "SELECT\n    tenant_id,\n    " + strings.Join(aggregates(""), ",\n    ") + "\nFROM " + table +
				"\nWHERE " + windowCond(w, ts) + "\nGROUP BY tenant_id"
			qstart := time.Now()
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				return nil, t, err
			}
			for rows.Next() {
				var tenant string
				var d stats
				var q []float64
				if err := rows.Scan(&tenant, &d.errors, &d.calls, &d.tokens, &d.cost, &d.avg, &q, &d.max); err != nil {
					rows.Close()
					return nil, t, err
				}
				d.p95, d.p99 = q[0], q[1]
				byTenant[tenant] = d
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, t, err
			}
			t.addPart(windows[w].text+"-by_tenant", time.Since(qstart))
		}
		for _, r := range rules {
			if r.window != w {
				continue
			}
			if !r.scope.grouped {
				if s := byScope[r.scope.name]; s.calls > 0 {
					out.set(r.name, "", s.value(r.kind))
				}
				continue
			}
			for tenant, s := range byTenant {
				if r.guard && s.calls < 20 {
					continue
				}
				out.set(r.name, tenant, s.value(r.kind))
			}
		}
		t.perWindow[w] = time.Since(start)
		t.total += t.perWindow[w]
	}
	return out, t, nil
}

// aggregates are the columns of one scope in a handwritten query: errors,
// calls, tokens, cost, avg latency, [p95, p99] latency, max latency, each
// conditional on the scope when cond is not empty.
func aggregates(cond string) []string {
	if cond == "" {
		return []string{
			"toFloat64(countIf(status = 'error'))",
			"toFloat64(count())",
			"toFloat64(sum(input_tokens + output_tokens))",
			"toFloat64(sum(cost))",
			"toFloat64(avg(latency_ms))",
			"arrayMap(x -> toFloat64(x), quantilesExact(0.95, 0.99)(latency_ms))",
			"toFloat64(max(latency_ms))",
		}
	}
	return []string{
		"toFloat64(countIf(status = 'error' AND " + cond + "))",
		"toFloat64(countIf(" + cond + "))",
		"toFloat64(sumIf(input_tokens + output_tokens, " + cond + "))",
		"toFloat64(sumIf(cost, " + cond + "))",
		"toFloat64(avgIf(latency_ms, " + cond + "))",
		"arrayMap(x -> toFloat64(x), quantilesExactIf(0.95, 0.99)(latency_ms, " + cond + "))",
		"toFloat64(maxIf(latency_ms, " + cond + "))",
	}
}

// naive evaluates the pack as the replaced service did: each rule its own
// query; counts and sums as SELECT count()/sum() (GROUP BY tenant_id for a
// grouped rule); every latency statistic from the rows pulled into the
// process (with their tenant for a grouped rule), sorted for quantiles at
// index ⌊φ·n⌋. It returns the values, the number of rows pulled and the
// time taken.
func naive(ctx context.Context, conn clickhouse.Conn, rules []benchRule, ts time.Time) (values, int64, timing, error) {
	out := values{}
	var t timing
	var pulled int64
	// scalar runs a count or sum query, grouped by tenant for a grouped rule.
	scalar := func(r benchRule, agg string, extra string) (map[string]float64, error) {
		where := windowCond(r.window, ts)
		if c := sqlCond(r.scope); c != "" {
			where += " AND " + c
		}
		if extra != "" {
			where += " AND " + extra
		}
		sel, group := "'' AS g", ""
		if r.scope.grouped {
			sel, group = "tenant_id AS g", " GROUP BY g"
		}
		rows, err := conn.Query(ctx, "SELECT "+sel+", toFloat64("+agg+") FROM "+table+" WHERE "+where+group)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		m := map[string]float64{}
		for rows.Next() {
			var g string
			var v float64
			if err := rows.Scan(&g, &v); err != nil {
				return nil, err
			}
			m[g] = v
		}
		return m, rows.Err()
	}
	for _, r := range rules {
		start := time.Now()
		switch r.kind.name {
		case "ErrorCount", "CallCount", "TokenUsage", "Cost":
			agg, extra := "count()", ""
			switch r.kind.name {
			case "ErrorCount":
				extra = "status = 'error'"
			case "TokenUsage":
				agg = "sum(input_tokens + output_tokens)"
			case "Cost":
				agg = "sum(cost)"
			}
			m, err := scalar(r, agg, extra)
			if err != nil {
				return nil, 0, t, err
			}
			calls := m
			if r.kind.name != "CallCount" && !r.scope.grouped {
				// An ungrouped sum over no row is 0, not absent: the
				// group exists only when it has calls.
				if calls, err = scalar(r, "count()", ""); err != nil {
					return nil, 0, t, err
				}
			}
			for g, v := range m {
				if calls[g] > 0 {
					out.set(r.name, g, v)
				}
			}
		case "ErrorRatio":
			errs, err := scalar(r, "count()", "status = 'error'")
			if err != nil {
				return nil, 0, t, err
			}
			calls, err := scalar(r, "count()", "")
			if err != nil {
				return nil, 0, t, err
			}
			for g, c := range calls {
				if c > 0 && (!r.guard || c >= 20) {
					out.set(r.name, g, errs[g]/c)
				}
			}
		default:
			lat, n, err := pullLatencies(ctx, conn, r, ts)
			if err != nil {
				return nil, 0, t, err
			}
			pulled += n
			for g, l := range lat {
				out.set(r.name, g, latencyStat(r.kind.name, l))
			}
		}
		d := time.Since(start)
		t.perWindow[r.window] += d
		t.total += d
	}
	return out, pulled, t, nil
}

// pullLatencies reads the latency_ms of every call in the rule's window and
// scope, by tenant for a grouped rule.
func pullLatencies(ctx context.Context, conn clickhouse.Conn, r benchRule, ts time.Time) (map[string][]uint32, int64, error) {
	where := windowCond(r.window, ts)
	if c := sqlCond(r.scope); c != "" {
		where += " AND " + c
	}
	cols := "latency_ms"
	if r.scope.grouped {
		cols = "tenant_id, latency_ms"
	}
	rows, err := conn.Query(ctx, "SELECT "+cols+" FROM "+table+" WHERE "+where)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[string][]uint32{}
	var n int64
	var g string
	var v uint32
	dest := []any{&v}
	if r.scope.grouped {
		dest = []any{&g, &v}
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, err
		}
		out[g] = append(out[g], v)
		n++
	}
	return out, n, rows.Err()
}

// latencyStat computes a latency statistic the baseline's way.
func latencyStat(k string, l []uint32) float64 {
	switch k {
	case "LatencyAvg":
		var s float64
		for _, x := range l {
			s += float64(x)
		}
		return s / float64(len(l))
	case "LatencyMax":
		return float64(slices.Max(l))
	}
	phi := 0.95
	if k == "LatencyP99" {
		phi = 0.99
	}
	slices.Sort(l)
	return float64(l[min(int(math.Floor(phi*float64(len(l)))), len(l)-1)])
}

// verify evaluates every rule's value expression with callwatch's querier
// and checks that the handwritten and naive values (when measured) agree
// with it, group by group. A group callwatch returns nothing for must be
// absent or zero in the others (PromQL has no series for a count of no
// event).
func verify(ctx context.Context, conn clickhouse.Conn, rules []benchRule, ts time.Time, hand, naive values) (string, error) {
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: dsl.DefaultSchema(), Columns: clickhouse.EventsColumns(dsl.DefaultSchema())})
	if err != nil {
		return "", err
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: src})
	methods := []struct {
		name string
		v    values
	}{{"handwritten", hand}, {"naive", naive}}
	compared := 0
	for _, r := range rules {
		e, err := dsl.Parse(r.valueExpr(), dsl.Options{Schema: dsl.DefaultSchema()})
		if err != nil {
			return "", fmt.Errorf("verify %s: %w", r.name, err)
		}
		res, err := q.Query(ctx, e, ts)
		if err != nil {
			return "", fmt.Errorf("verify %s: %w", r.name, err)
		}
		got := map[string]float64{}
		for _, s := range res.Vector {
			g := ""
			if r.scope.grouped {
				g = s.Labels.Get("tenant_id")
			}
			got[g] = s.Value
		}
		if r.guard {
			// The guard is not part of the value expression.
			for g := range got {
				if _, ok := hand[r.name][g]; !ok {
					delete(got, g)
				}
			}
		}
		for _, m := range methods {
			if m.v == nil {
				continue
			}
			want := m.v[r.name]
			for g, x := range got {
				y, ok := want[g]
				if !ok || !approxEqual(x, y) {
					return "", fmt.Errorf("verify %s, group %q: callwatch %v, %s %v (present %v)", r.name, g, x, m.name, y, ok)
				}
				compared++
			}
			for g, y := range want {
				if _, ok := got[g]; !ok && y != 0 {
					return "", fmt.Errorf("verify %s, group %q: callwatch has no value, %s %v", r.name, g, m.name, y)
				}
			}
		}
	}
	names := "handwritten"
	if naive != nil {
		names += " and naive"
	}
	return fmt.Sprintf("callwatch, %s agree on all %d rules (%d group values compared)", names, len(rules), compared), nil
}

func approxEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
