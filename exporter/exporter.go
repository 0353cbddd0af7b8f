package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// Field names the exporter reads from the schema. A field the schema does
// not map leaves its metric out.
const (
	FieldLatency = "latency_ms"
	FieldInput   = "input_tokens"
	FieldOutput  = "output_tokens"
	FieldCost    = "cost"
)

// Query kinds, the kind label of callwatch_query_duration_seconds and
// callwatch_query_errors_total.
const (
	kindUpdate      = "update"
	kindCardinality = "cardinality"
)

// Options configure an Exporter.
type Options struct {
	// Config is the exporter's section of the configuration file; zero
	// fields take their defaults.
	Config config.Exporter
	// Conn runs the queries.
	Conn clickhouse.Conn
	// Table is the events table, optionally qualified by its database.
	Table string
	// Schema maps the table's columns; the zero value means
	// dsl.DefaultSchema().
	Schema dsl.Schema
	// Columns are the table's column types (clickhouse.ReadColumns); nil
	// guards every column against NULL and NaN.
	Columns clickhouse.Columns
	// Rules, when set, are exported too: recording-rule results and ALERTS.
	Rules Rules
	// Logger receives the updater's failures (default: discard).
	Logger *slog.Logger
	// Start is when counting starts: the counters count the events with a
	// time after Start − safety_lag (default: time.Now() in New).
	Start time.Time
	// Now is the clock of Run (default time.Now).
	Now func() time.Time
	// Version and Revision label callwatch_build_info (default: from the
	// binary's build information).
	Version, Revision string
}

// Exporter exports call metrics computed from the events table, kept up to
// date by a background updater, and self-metrics about it. It is a
// prometheus.Collector that reads only memory: Describe sends descriptors
// built once, and Collect sends the values of the last update, so a scrape
// never waits for ClickHouse. Register adds the rules collector too.
type Exporter struct {
	opts   Options
	cfg    config.Exporter
	labels []string // exported label columns
	// statusIdx is the index of the status label in labels, or -1.
	statusIdx int
	d         *descs
	query     updateQuery
	histOpts  histogramOptions
	start     time.Time
	rules     *rulesCollector

	queryDuration *prometheus.HistogramVec
	queryErrors   *prometheus.CounterVec

	// mu serializes updates and guards the updater's state below.
	mu          sync.Mutex
	caps        []*labelCap
	finalized   time.Time
	watermark   time.Time
	final       cells
	pending     cells
	nextRefresh time.Time
	up          bool
	lastUpdate  time.Time
	events      collectorStatus
	cardinality collectorStatus

	// snap is what Collect serves; each update publishes a new one.
	snap atomic.Pointer[snapshot]
}

var _ prometheus.Collector = (*Exporter)(nil)

// collectorStatus is the outcome of a sub-collector's last run.
type collectorStatus struct {
	ok       bool
	duration time.Duration
}

// snapshot is an immutable view of the exporter's state, swapped whole.
type snapshot struct {
	// calls are the call metrics, built at update time.
	calls       []prometheus.Metric
	folded      []float64 // per exported label
	up          bool
	lastUpdate  time.Time
	watermark   time.Time
	events      collectorStatus
	cardinality collectorStatus
}

// descs are the exporter's descriptors, built once in New.
type descs struct {
	calls, errors, input, output, cost, duration *prometheus.Desc
	folded, nonfinite                            *prometheus.Desc
	up, buildInfo, lastUpdate, watermark         *prometheus.Desc
	collectorSuccess, collectorDuration          *prometheus.Desc
}

// New returns an Exporter, or an error when the options are incomplete or
// the configuration is invalid. It does no I/O: call Update or Run.
func New(opts Options) (*Exporter, error) {
	var err error
	if opts.Schema, err = clickhouse.CheckEvents("exporter", opts.Conn, opts.Table, opts.Schema); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.Version == "" || opts.Revision == "" {
		v, r := buildVersion()
		if opts.Version == "" {
			opts.Version = v
		}
		if opts.Revision == "" {
			opts.Revision = r
		}
	}
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(opts.Schema); err != nil {
		return nil, err
	}
	if cfg.Labels == nil {
		for _, l := range config.DefaultExporterLabels() {
			if opts.Schema.IsLabel(l) {
				cfg.Labels = append(cfg.Labels, l)
			}
		}
	}

	e := &Exporter{
		opts:      opts,
		cfg:       cfg,
		labels:    cfg.Labels,
		statusIdx: slices.Index(cfg.Labels, cfg.StatusLabel),
		final:     cells{},
		pending:   cells{},
	}
	field := func(name string) string { return opts.Columns.Value(opts.Schema.Fields[name]) }
	finite := func(name string) string { return opts.Columns.Finite(opts.Schema.Fields[name]) }
	cols := columns{
		from:   clickhouse.SelectOptions{Table: opts.Table, Time: opts.Schema.Time, Columns: opts.Columns},
		labels: e.labels, status: cfg.StatusLabel,
		latency: field(FieldLatency), input: field(FieldInput), output: field(FieldOutput), cost: field(FieldCost),
		finite: [4]string{finite(FieldLatency), finite(FieldInput), finite(FieldOutput), finite(FieldCost)},
	}
	e.query = newUpdateQuery(cols, cfg.DurationBuckets, *cfg.NativeHistogram, int32(*cfg.NativeHistogramSchema))
	// Counting starts at a whole second: event times are DateTime seconds.
	e.start = time.Unix(opts.Start.Add(-cfg.SafetyLag.D()).Unix(), 0)
	e.finalized, e.watermark = e.start, e.start
	e.histOpts = histogramOptions{bounds: cfg.DurationBuckets, native: e.query.native, schema: int32(*cfg.NativeHistogramSchema), created: e.start}
	for _, l := range e.labels {
		e.caps = append(e.caps, newLabelCap(l, opts.Columns.Label(l), cfg.Limit(l)))
	}
	e.d = e.newDescs(cols)
	e.queryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "callwatch", Name: "query_duration_seconds",
		Help:    "Duration of the exporter's ClickHouse queries, by kind (update: new events; cardinality: ranking label values).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"kind"})
	e.queryErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "callwatch", Name: "query_errors_total",
		Help: "Failed ClickHouse queries of the exporter, by kind.",
	}, []string{"kind"})
	for _, k := range []string{kindUpdate, kindCardinality} {
		e.queryDuration.WithLabelValues(k)
		e.queryErrors.WithLabelValues(k)
	}
	if opts.Rules != nil {
		e.rules = &rulesCollector{rules: opts.Rules, d: e.d}
	}
	e.publish(true)
	return e, nil
}

func (e *Exporter) newDescs(cols columns) *descs {
	errLabels := slices.Clone(e.labels)
	if e.statusIdx >= 0 {
		errLabels = slices.Delete(errLabels, e.statusIdx, e.statusIdx+1)
	}
	since := " Counted from the events table since callwatch started (see the README: restarts reset the counters, which rate() and increase() handle)."
	d := &descs{
		calls: prometheus.NewDesc("callwatch_calls_total", "Calls of AI/LLM models."+since, e.labels, nil),
		errors: prometheus.NewDesc("callwatch_call_errors_total",
			fmt.Sprintf("Calls whose %s is %q.%s", e.cfg.StatusLabel, e.cfg.ErrorStatus, since), errLabels, nil),
		folded: prometheus.NewDesc("callwatch_label_values_folded",
			"Distinct values of a label over the cardinality lookback that are folded into the value \"other\" because the label reached its cap.", []string{"label"}, nil),
		nonfinite: prometheus.NewDesc("callwatch_events_nonfinite_values_total",
			"Values of a field that are NaN or ±Inf: left out of its sums here and skipped by the rules' range functions."+since, []string{"field"}, nil),
		up: prometheus.NewDesc("callwatch_datasource_up",
			"Whether the exporter's last ClickHouse query succeeded (1) or failed (0).", nil, nil),
		buildInfo: prometheus.NewDesc("callwatch_build_info",
			"A metric with a constant '1' value labeled by version, revision and goversion from which callwatch was built.",
			[]string{"version", "revision", "goversion"}, nil),
		lastUpdate: prometheus.NewDesc("callwatch_exporter_last_update_timestamp_seconds",
			"When the call metrics were last updated successfully (unix seconds; 0 before the first success).", nil, nil),
		watermark: prometheus.NewDesc("callwatch_exporter_watermark_timestamp_seconds",
			"Event time (unix seconds) up to which calls are counted; calls inserted up to late_window after their time are still counted.", nil, nil),
		collectorSuccess: prometheus.NewDesc("callwatch_exporter_collector_success",
			"Whether a collector succeeded: for events and cardinality, their last background run; for rules, this scrape.", []string{"collector"}, nil),
		collectorDuration: prometheus.NewDesc("callwatch_exporter_collector_duration_seconds",
			"Duration of a collector's last run: for events and cardinality, their last background run; for rules, this scrape.", []string{"collector"}, nil),
	}
	if cols.input != "" {
		d.input = prometheus.NewDesc("callwatch_input_tokens_total", "Input (prompt) tokens of calls."+since, e.labels, nil)
	}
	if cols.output != "" {
		d.output = prometheus.NewDesc("callwatch_output_tokens_total", "Output (completion) tokens of calls."+since, e.labels, nil)
	}
	if cols.cost != "" {
		d.cost = prometheus.NewDesc("callwatch_cost_total",
			fmt.Sprintf("Cost of calls, in %s (the currency of the cost column).%s", e.cfg.CostCurrency, since), e.labels, nil)
	}
	if cols.latency != "" {
		d.duration = prometheus.NewDesc("callwatch_call_duration_seconds",
			"Duration of calls (the latency column, in seconds)."+since, e.labels, nil)
	}
	return d
}

// Register registers the exporter, and the rules collector when there are
// rules, on reg.
func (e *Exporter) Register(reg prometheus.Registerer) error {
	if err := reg.Register(e); err != nil {
		return fmt.Errorf("register exporter: %w", err)
	}
	if e.rules != nil {
		if err := reg.Register(e.rules); err != nil {
			return fmt.Errorf("register rules collector: %w", err)
		}
	}
	return nil
}

// Run updates the call metrics now and then every interval until ctx ends.
// Failures leave the last values in place; the first of a series is logged
// as a warning, the repeats at debug level, and the recovery as info, so an
// outage does not flood the log (callwatch_datasource_up tracks it).
func (e *Exporter) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval.D())
	defer t.Stop()
	failing := false
	for {
		err := e.Update(ctx, e.opts.Now())
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			e.opts.Logger.Warn("updating call metrics failed; serving the last values", "err", err)
		case err != nil:
			e.opts.Logger.Debug("updating call metrics failed again", "err", err)
		case failing:
			e.opts.Logger.Info("updating call metrics works again")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Update advances the call metrics to the events up to now − safety_lag,
// re-reading the late window (see the comment at the top of events.go), and
// refreshes the label ranking when it is due. It is the updater's step,
// deterministic for now, so tests call it directly. A failure leaves the
// previous values in place.
func (e *Exporter) Update(ctx context.Context, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	if !now.Before(e.nextRefresh) {
		start := time.Now()
		err := e.refreshCardinality(ctx, now)
		e.cardinality = collectorStatus{ok: err == nil, duration: time.Since(start)}
		if err != nil {
			errs = append(errs, err)
		} else {
			e.nextRefresh = now.Add(e.cfg.CardinalityRefresh.D())
		}
	}
	start := time.Now()
	changed, err := e.updateEvents(ctx, now)
	e.events = collectorStatus{ok: err == nil, duration: time.Since(start)}
	if err != nil {
		errs = append(errs, err)
	} else {
		e.lastUpdate = now
	}
	e.publish(changed)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// updateEvents runs the update query and folds its result into the state.
func (e *Exporter) updateEvents(ctx context.Context, now time.Time) (bool, error) {
	to := time.Unix(now.Add(-e.cfg.SafetyLag.D()).Unix(), 0)
	if to.Before(e.watermark) {
		// The clock went back: keep the watermark, and wait for it.
		return false, nil
	}
	// to == watermark still re-reads the late window, for rows inserted
	// since the last update.
	final := to.Add(-e.cfg.LateWindow.D())
	if final.Before(e.finalized) {
		final = e.finalized
	}
	var rows []row
	err := e.run(ctx, kindUpdate, func(ctx context.Context) (err error) {
		rows, err = readRows(ctx, e.opts.Conn, e.query, len(e.cfg.DurationBuckets),
			final.Unix(), e.cfg.ErrorStatus, e.finalized.Unix(), to.Unix())
		return err
	})
	if err != nil {
		return false, fmt.Errorf("read calls in (%s, %s]: %w", e.finalized.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), err)
	}
	foldRows(e.caps, rows)
	nb := len(e.cfg.DurationBuckets)
	pending := cells{}
	for _, r := range rows {
		if r.pending {
			pending.addRow(r, nb)
		} else {
			e.final.addRow(r, nb)
		}
	}
	e.pending = pending
	e.finalized, e.watermark = final, to
	return true, nil
}

// refreshCardinality ranks the values of every exported label over the
// lookback, admits the top ones while there is room, and counts the folded
// ones. It stops at the first failure (the next update retries): the
// datasource is most likely down, and the other queries would fail too.
func (e *Exporter) refreshCardinality(ctx context.Context, now time.Time) error {
	to := time.Unix(now.Add(-e.cfg.SafetyLag.D()).Unix(), 0)
	from := to.Add(-e.cfg.CardinalityLookback.D())
	for _, c := range e.caps {
		var volumes map[string]float64
		err := e.run(ctx, kindCardinality, func(ctx context.Context) (err error) {
			volumes, err = rankValues(ctx, e.opts.Conn, e.query.c.from, c, from, to)
			return err
		})
		if err != nil {
			return err
		}
		c.admit(volumes)
		var folded float64
		err = e.run(ctx, kindCardinality, func(ctx context.Context) (err error) {
			folded, err = countFolded(ctx, e.opts.Conn, e.query.c.from, c, from, to)
			return err
		})
		if err != nil {
			return err
		}
		c.folded = folded
	}
	return nil
}

// run runs one query with its own timeout and records its duration, its
// failure and the datasource's health. Cancellation is not a failure.
func (e *Exporter) run(ctx context.Context, kind string, query func(ctx context.Context) error) error {
	qctx, cancel := context.WithTimeout(ctx, e.cfg.QueryTimeout.D())
	defer cancel()
	start := time.Now()
	err := query(qctx)
	e.queryDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		e.up = true
	case ctx.Err() == nil:
		e.up = false
		e.queryErrors.WithLabelValues(kind).Inc()
	}
	return err
}

// publish swaps in a new snapshot; with changed, the call metrics are
// rebuilt from the state, else the last ones are kept.
func (e *Exporter) publish(changed bool) {
	s := &snapshot{
		up: e.up, lastUpdate: e.lastUpdate, watermark: e.watermark,
		events: e.events, cardinality: e.cardinality,
	}
	for _, c := range e.caps {
		s.folded = append(s.folded, c.folded)
	}
	if old := e.snap.Load(); old != nil && !changed {
		s.calls = old.calls
	} else {
		s.calls = e.callMetrics(sumCells(e.final, e.pending))
	}
	e.snap.Store(s)
}

// callMetrics builds the call metrics of all series, in a stable order.
func (e *Exporter) callMetrics(all cells) []prometheus.Metric {
	var out []prometheus.Metric
	counter := func(d *prometheus.Desc, v float64, lv []string) {
		if d != nil {
			out = append(out, prometheus.MustNewConstMetricWithCreatedTimestamp(d, prometheus.CounterValue, v, e.start, lv...))
		}
	}
	errs := cells{}
	for _, k := range all.sortedKeys() {
		c := all[k]
		counter(e.d.calls, c.calls, c.labels)
		counter(e.d.input, c.input, c.labels)
		counter(e.d.output, c.output, c.labels)
		counter(e.d.cost, c.cost, c.labels)
		if e.d.duration != nil {
			out = append(out, newHistogramMetric(e.d.duration, e.histOpts, c.hist, uint64(c.calls), c.latencySum/1000, c.labels...))
		}
		lv := c.labels
		if e.statusIdx >= 0 {
			lv = slices.Delete(slices.Clone(lv), e.statusIdx, e.statusIdx+1)
		}
		ek := seriesKey(lv)
		if errs[ek] == nil {
			errs[ek] = &cell{labels: lv}
		}
		// Every series gets an error counter, 0 until an error happens,
		// so that increase() sees the first error.
		errs[ek].errors += c.errors
	}
	for _, k := range errs.sortedKeys() {
		counter(e.d.errors, errs[k].errors, errs[k].labels)
	}
	var nonfinite [4]float64
	for _, c := range all {
		for k, v := range c.nonfinite {
			nonfinite[k] += v
		}
	}
	for k, name := range []string{FieldLatency, FieldInput, FieldOutput, FieldCost} {
		if e.query.nonfinite[k] {
			counter(e.d.nonfinite, nonfinite[k], []string{name})
		}
	}
	return out
}

// Describe sends the descriptors built in New; it never touches ClickHouse.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		e.d.calls, e.d.errors, e.d.input, e.d.output, e.d.cost, e.d.duration, e.d.folded, e.d.nonfinite,
		e.d.up, e.d.buildInfo, e.d.lastUpdate, e.d.watermark, e.d.collectorSuccess, e.d.collectorDuration,
	} {
		if d != nil {
			ch <- d
		}
	}
	e.queryDuration.Describe(ch)
	e.queryErrors.Describe(ch)
}

// Collect sends the values of the last update (metrics built by the
// updater) and the self-metrics. It reads memory only, so a scrape stays far
// inside any X-Prometheus-Scrape-Timeout-Seconds, and ClickHouse being slow
// or down never delays or empties it.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	s := e.snap.Load()
	for _, m := range s.calls {
		ch <- m
	}
	for i, l := range e.labels {
		ch <- prometheus.MustNewConstMetric(e.d.folded, prometheus.GaugeValue, s.folded[i], l)
	}
	e.queryDuration.Collect(ch)
	e.queryErrors.Collect(ch)
	ch <- prometheus.MustNewConstMetric(e.d.up, prometheus.GaugeValue, boolFloat(s.up))
	ch <- prometheus.MustNewConstMetric(e.d.buildInfo, prometheus.GaugeValue, 1, e.opts.Version, e.opts.Revision, runtime.Version())
	var last float64
	if !s.lastUpdate.IsZero() {
		last = float64(s.lastUpdate.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(e.d.lastUpdate, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(e.d.watermark, prometheus.GaugeValue, float64(s.watermark.Unix()))
	for _, c := range []struct {
		name string
		st   collectorStatus
	}{{"events", s.events}, {"cardinality", s.cardinality}} {
		ch <- prometheus.MustNewConstMetric(e.d.collectorSuccess, prometheus.GaugeValue, boolFloat(c.st.ok), c.name)
		ch <- prometheus.MustNewConstMetric(e.d.collectorDuration, prometheus.GaugeValue, c.st.duration.Seconds(), c.name)
	}
}

// buildVersion returns the module version and VCS revision of the binary.
func buildVersion() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, revision
	}
	if v := bi.Main.Version; v != "" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return version, revision
}
