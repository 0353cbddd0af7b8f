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
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
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
	// traceQueries lists the queries of the steady evaluations.
	traceQueries string
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
	flag.StringVar(&o.traceQueries, "trace-queries", "", "write each query of the steady evaluations (time, rows, statement) to this file")
	flag.BoolVar(&o.writeRules, "write-rules", false, "regenerate the rule pack in -rules from its definition in this program and exit")
	flag.Parse()
	// As callwatch serve does: no traces are exported.
	otel.SetTracerProvider(noop.NewTracerProvider())

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
	// steadyFirst, steadyDecFirst and sloSteadyFirst are the first minute
	// after the cold pass (the warm-up, not in the medians).
	steadyFirst, steadyDecFirst, sloSteadyFirst timing
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
	tr := &tracer{conn: conn}
	if o.traceQueries != "" {
		f, err := os.Create(o.traceQueries)
		if err != nil {
			return err
		}
		defer f.Close()
		tr.w, tr.full = f, os.Getenv("BENCH_TRACE_FULL") != ""
	}
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
		if groups, src, err = newGroups(tr, specs, metrics, inc); err != nil {
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

		if fullGroups, _, err = newGroups(tr, specs, metrics, nil); err != nil {
			return err
		}
		if t, err = evalAll(ctx, fullGroups, benchNow); err != nil {
			return fmt.Errorf("cold evaluation, incremental off: %w", err)
		}
		rep.coldFullAll = append(rep.coldFullAll, t)
		var decSrc *clickhouse.Source
		if decGroups, decSrc, err = newGroups(tr, decSpecs, metrics, inc); err != nil {
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
	sloGroups, sloSrc, err := newGroups(tr, sloSpecs, metrics, &clickhouse.Incremental{Now: func() time.Time { return clock }})
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
	// The first minute after the cold pass warms up (its windows' rhythm
	// is not known yet, so nothing was read ahead for it, and the cold
	// states start sliding): it is timed and reported on its own, not in
	// the medians of the steady state.
	var steadyRead work
	for k := 0; k <= o.reps; k++ {
		warm := k == 0
		after := benchNow.Add(time.Duration(k) * time.Minute)
		offset := o.events + int64(k)*rep.minuteEvents
		if err := conn.Exec(ctx, generateSQL(rep.minuteEvents, offset, after, time.Minute)); err != nil {
			return fmt.Errorf("insert minute %d: %w", k, err)
		}
		before := probe(ctx, conn)
		clock = after.Add(time.Minute + time.Second)
		stopProfile, err := startProfile(o.steadyProfile, k)
		if err != nil {
			return err
		}
		tr.set(true, fmt.Sprintf("steady %d", k))
		t, err := evalAll(ctx, groups, after.Add(time.Minute))
		tr.set(false, "")
		stopProfile()
		if err != nil {
			return fmt.Errorf("steady evaluation: %w", err)
		}
		if warm {
			rep.steadyFirst = t
		} else {
			steadyRead = steadyRead.add(probe(ctx, conn).sub(before))
			rep.steadyAll = append(rep.steadyAll, t)
		}
		if t, err = evalAll(ctx, fullGroups, after.Add(time.Minute)); err != nil {
			return fmt.Errorf("steady evaluation, incremental off: %w", err)
		}
		if !warm {
			rep.steadyFullAll = append(rep.steadyFullAll, t)
		}
		tr.set(true, fmt.Sprintf("decomposable %d", k))
		t, err = evalAll(ctx, decGroups, after.Add(time.Minute))
		tr.set(false, "")
		if err != nil {
			return fmt.Errorf("steady evaluation, decomposable rules: %w", err)
		}
		if warm {
			rep.steadyDecFirst = t
		} else {
			rep.steadyDecAll = append(rep.steadyDecAll, t)
		}
		if t, err = evalAll(ctx, sloGroups, after.Add(time.Minute)); err != nil {
			return fmt.Errorf("steady evaluation of the SLO pack: %w", err)
		}
		if warm {
			rep.sloSteadyFirst = t
		} else {
			rep.sloSteadyAll = append(rep.sloSteadyAll, t)
		}
		sloSrc.WaitFills()
		// The quantile windows' leaving buckets of the next minute are
		// read in the background after a step: serve has the minute
		// between evaluations for it, the bench waits for it.
		incSrc.WaitFills()
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

// newGroups builds the groups as serve does, over a fresh source: a
// ClickHouse source, a querier and engine.NewGroup with the querier's
// QueryWith and Batch, and one Coalescer, so the groups due at the same
// time compute their leaves together. No notifier or audit sink: sending
// is asynchronous in serve and not part of evaluation. inc nil turns
// incremental evaluation off; serve's default is incremental with 1m
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
	if k > 0 { // the warm-up (k = 0) writes path itself
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
