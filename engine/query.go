package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/callwatch/callwatch/dsl"
)

// Sample is one group's value of a leaf, or one sample of a series.
type Sample struct {
	Labels labels.Labels
	Value  float64
}

// AbsentVector is the vector of an absent leaf (dsl.AggAbsent) over the
// number of groups of events its selector found: one sample of value 1,
// with the leaf's labels, when there is none; nil otherwise. The sources
// that fold groups themselves answer with it.
func AbsentVector(l *dsl.Leaf, groups int) []Sample {
	if groups > 0 {
		return nil
	}
	return []Sample{{Labels: l.Labels(), Value: 1}}
}

// LeafResult is what a LeafSource computed for a list of leaves.
type LeafResult struct {
	// Vectors holds one result per leaf, in the order of the request.
	Vectors [][]Sample
	// Statements are the queries that ran (SQL for ClickHouse), for
	// debugging; empty for the memory evaluator.
	Statements []string
	// Paths say, per leaf (in the order of the request) when the source
	// has a choice, how it was computed and why; nil when it has none.
	Paths []LeafPath
}

// LeafPath says how a leaf was computed: Path is "full" (one query over
// the window) or "incremental" (partial aggregates per bucket, value counts
// for quantiles), and Reason why, when the other path was possible.
type LeafPath struct {
	Leaf   string `json:"leaf"`
	Path   string `json:"path"`
	Reason string `json:"reason,omitempty"`
}

// LeafSource computes the pooled range functions (leaves) of expressions at
// one evaluation time. The ClickHouse querier and the memory evaluator
// implement it and must give identical answers.
type LeafSource interface {
	EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (LeafResult, error)
}

// SeriesSource provides instant series that exist apart from the events,
// such as recording-rule outputs. It may be nil.
type SeriesSource interface {
	// Series returns the samples of the named series at ts.
	Series(name string, ts time.Time) []Sample
}

// Result is an evaluated expression: a vector, or a scalar when IsScalar.
type Result struct {
	Vector   []Sample
	Scalar   float64
	IsScalar bool
	// Statements are the backend queries that ran.
	Statements []string
	// Paths say how each leaf was computed (see LeafResult.Paths).
	Paths []LeafPath
	// NoData is true when the expression has leaves and none of them
	// matched any event: there was nothing to judge.
	NoData bool
}

// QuerierOptions configure a Querier.
type QuerierOptions struct {
	Source LeafSource
	Series SeriesSource
	// Timeout bounds one PromQL evaluation above the leaves (default 30s).
	Timeout time.Duration
	// MaxSamples bounds the samples one evaluation may hold (default 5e6).
	MaxSamples int
	// MaxSeries, when positive, bounds the groups one range function may
	// return: a guard against runaway cardinality.
	MaxSeries int
	Logger    *slog.Logger
}

// Querier evaluates planned expressions: its LeafSource computes the leaves,
// and Prometheus' own PromQL engine evaluates everything above them, so
// operators, vector matching and aggregations keep PromQL's exact semantics.
// The common rule shapes (a leaf against a threshold, ratios, sums and
// maxima by labels) skip the engine on the instant path (instant.go), which
// gives the engine's results to the bit.
type Querier struct {
	opts QuerierOptions
	ng   *promql.Engine
	// plans are the instant path's compiled queries (see instant.go),
	// shared with the queriers of batches; nil evaluates every query
	// with the engine.
	plans *instantPlans
	// base is the source the querier was made with: a batch's querier
	// keeps it for the leaves inside subqueries, which are evaluated over
	// ranges of times, never from the batch.
	base LeafSource
}

// NewQuerier returns a Querier.
func NewQuerier(opts QuerierOptions) *Querier {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 5_000_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	ng := promql.NewEngine(promql.EngineOpts{
		Logger:        opts.Logger,
		MaxSamples:    opts.MaxSamples,
		Timeout:       opts.Timeout,
		LookbackDelta: time.Minute,
		// A subquery without a step ([1h:]) steps by dsl's default, the
		// times its leaves are computed for (dsl.Subquery.Times).
		NoStepSubqueryIntervalFn: func(int64) int64 { return dsl.DefaultSubqueryStep.Milliseconds() },
		Parser:                   p,
	})
	return &Querier{opts: opts, ng: ng, base: opts.Source, plans: newInstantPlans(p)}
}

// Query evaluates e at ts, with the querier's own SeriesSource.
func (q *Querier) Query(ctx context.Context, e *dsl.Expr, ts time.Time) (Result, error) {
	return q.QueryWith(ctx, e, ts, q.opts.Series)
}

// QueryWith evaluates e at ts, reading instant series (recording-rule
// outputs) from series, which may be nil.
func (q *Querier) QueryWith(ctx context.Context, e *dsl.Expr, ts time.Time, seriesSrc SeriesSource) (Result, error) {
	ts = ts.Truncate(time.Millisecond)
	if err := evalTimeInRange(ts); err != nil {
		return Result{}, err
	}
	lr := LeafResult{Vectors: make([][]Sample, len(e.Leaves))}
	var plain []*dsl.Leaf
	var plainAt []int
	for i, l := range e.Leaves {
		if l.Sub == nil {
			plain, plainAt = append(plain, l), append(plainAt, i)
		}
	}
	if len(plain) > 0 {
		got, err := q.opts.Source.EvalLeaves(ctx, ts, plain)
		if err != nil {
			return Result{}, err
		}
		if len(got.Vectors) != len(plain) {
			return Result{}, fmt.Errorf("leaf source returned %d results for %d leaves", len(got.Vectors), len(plain))
		}
		lr.Statements = got.Statements
		for k, i := range plainAt {
			lr.Vectors[i] = got.Vectors[k]
			if got.Paths != nil {
				if lr.Paths == nil {
					lr.Paths = make([]LeafPath, len(e.Leaves))
				}
				lr.Paths[i] = got.Paths[k]
			}
		}
		for k, v := range got.Vectors {
			if q.opts.MaxSeries > 0 && len(v) > q.opts.MaxSeries {
				return Result{Statements: lr.Statements}, fmt.Errorf("%w: %s returned %d groups, more than limits.max_series_per_rule (%d): group by fewer labels",
					ErrTooManySeries, plain[k].Func, len(v), q.opts.MaxSeries)
			}
		}
	}
	snap := &snapshot{series: make(map[string][]Sample, len(e.Leaves)+len(e.Series)), ts: ts.UnixMilli()}
	subStmts, err := q.subqueryLeaves(ctx, e, ts, snap)
	lr.Statements = append(lr.Statements, subStmts...)
	if err != nil {
		return Result{Statements: lr.Statements}, err
	}
	series := snap.series
	for i, l := range e.Leaves {
		if l.Sub == nil {
			series[l.Name] = lr.Vectors[i]
		}
	}
	noData := len(e.Leaves) > 0
	for _, v := range lr.Vectors {
		if len(v) > 0 {
			noData = false
		}
	}
	for _, pts := range snap.points {
		for _, p := range pts {
			if len(p.samples) > 0 {
				noData = false
			}
		}
	}
	if seriesSrc != nil {
		for _, name := range e.Series {
			series[name] = seriesSrc.Series(name, ts)
		}
	}
	for _, c := range e.Clocks {
		series[c.Name] = []Sample{{Labels: labels.EmptyLabels(), Value: c.Value(ts)}}
	}
	if len(snap.points) == 0 && ctx.Err() == nil {
		if res, ok := q.plans.plan(e.Query).result(series, q.opts.MaxSamples); ok {
			res.Statements, res.Paths, res.NoData = lr.Statements, lr.Paths, noData
			return res, nil
		}
	}
	// Samples are exactly at the times they were computed for: a lookback
	// shorter than any step keeps PromQL from carrying a group's value into
	// a subquery step at which it had none.
	qry, err := q.ng.NewInstantQuery(ctx, snap, promql.NewPrometheusQueryOpts(false, time.Millisecond, nil), e.Query, ts)
	if err != nil {
		return Result{}, fmt.Errorf("prepare query: %w", err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return Result{Statements: lr.Statements}, res.Err
	}
	out := Result{Statements: lr.Statements, Paths: lr.Paths, NoData: noData}
	switch v := res.Value.(type) {
	case promql.Vector:
		out.Vector = make([]Sample, 0, len(v))
		for _, s := range v {
			out.Vector = append(out.Vector, Sample{Labels: s.Metric.DropReserved(isMetricName), Value: s.F})
		}
		sort.Slice(out.Vector, func(i, j int) bool { return labels.Compare(out.Vector[i].Labels, out.Vector[j].Labels) < 0 })
	case promql.Scalar:
		out.Scalar, out.IsScalar = v.V, true
	default:
		return out, fmt.Errorf("unexpected result type %s", res.Value.Type())
	}
	return out, nil
}

// snapshot serves the leaves' results (and recorded series) as one-sample
// series at the evaluation time, for the PromQL engine.
type snapshot struct {
	series map[string][]Sample
	ts     int64
	// points are the samples of leaves inside subqueries, at each of the
	// subquery's times (unix ms), by leaf name.
	points map[string][]timedSamples
}

// metricName is the metric name the matchers of a selection ask for (the
// last equality matcher on __name__), "" when none does.
func metricName(ms []*labels.Matcher) string {
	var name string
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	return name
}

// timedSamples are a leaf's samples at one time.
type timedSamples struct {
	t       int64
	samples []Sample
}

func (s *snapshot) Querier(_, _ int64) (storage.Querier, error) { return s, nil }

func (s *snapshot) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	name := metricName(ms)
	if pts, ok := s.points[name]; ok {
		return s.selectPoints(name, pts, ms)
	}
	var out []storage.Series
	for _, smp := range s.series[name] {
		if lset, match := named(smp.Labels, name, ms); match {
			out = append(out, promql.NewStorageSeries(promql.Series{Metric: lset, Floats: []promql.FPoint{{T: s.ts, F: smp.Value}}}))
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &seriesSet{series: out, i: -1}
}

// named returns a sample's labels with the series name set, and whether
// they match every matcher.
func named(ls labels.Labels, name string, ms []*labels.Matcher) (labels.Labels, bool) {
	lb := labels.NewBuilder(ls)
	lb.Set(model.MetricNameLabel, name)
	lset := lb.Labels()
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return lset, false
		}
	}
	return lset, true
}

// selectPoints serves a subquery leaf's samples as series with a point at
// each time the leaf had a sample there.
func (s *snapshot) selectPoints(name string, pts []timedSamples, ms []*labels.Matcher) storage.SeriesSet {
	byLabels := map[string]*promql.Series{}
	for _, p := range pts {
		for _, smp := range p.samples {
			lset, match := named(smp.Labels, name, ms)
			if !match {
				continue
			}
			k := lset.String()
			sr := byLabels[k]
			if sr == nil {
				sr = &promql.Series{Metric: lset}
				byLabels[k] = sr
			}
			sr.Floats = append(sr.Floats, promql.FPoint{T: p.t, F: smp.Value})
		}
	}
	out := make([]storage.Series, 0, len(byLabels))
	for _, sr := range byLabels {
		out = append(out, promql.NewStorageSeries(*sr))
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &seriesSet{series: out, i: -1}
}

// subqueryLeaves computes the leaves of e that sit inside subqueries at
// every time their subquery reads at ts, into snap.points: per subquery,
// one range evaluation of the base source (one query per leaf shape on
// ClickHouse, for all the steps), never the batch of ts.
func (q *Querier) subqueryLeaves(ctx context.Context, e *dsl.Expr, ts time.Time, snap *snapshot) ([]string, error) {
	bySub := map[dsl.Subquery][]*dsl.Leaf{}
	var subs []dsl.Subquery
	for _, l := range e.Leaves {
		if l.Sub == nil {
			continue
		}
		if _, ok := bySub[*l.Sub]; !ok {
			subs = append(subs, *l.Sub)
		}
		bySub[*l.Sub] = append(bySub[*l.Sub], l)
	}
	if len(subs) == 0 {
		return nil, nil
	}
	snap.points = map[string][]timedSamples{}
	var stmts []string
	for _, sub := range subs {
		leaves := bySub[sub]
		start, end, step := sub.Times(ts)
		for _, l := range leaves {
			snap.points[l.Name] = nil
		}
		if start > end {
			continue
		}
		from, to := time.UnixMilli(start).UTC(), time.UnixMilli(end).UTC()
		times := make([]time.Time, 0, (end-start)/step.Milliseconds()+1)
		for t := from; !t.After(to); t = t.Add(step) {
			times = append(times, t)
		}
		results, err := q.leavesRange(ctx, q.base, leaves, from, to, step, times)
		stmts = append(stmts, statements(results)...)
		if err != nil {
			return stmts, err
		}
		for k, lr := range results {
			for i, l := range leaves {
				snap.points[l.Name] = append(snap.points[l.Name], timedSamples{t: times[k].UnixMilli(), samples: lr.Vectors[i]})
			}
		}
	}
	return stmts, nil
}

func (s *snapshot) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("not supported")
}

func (s *snapshot) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("not supported")
}

func (s *snapshot) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

var (
	_ storage.Queryable = (*snapshot)(nil)
	_ storage.Querier   = (*snapshot)(nil)
	_ storage.SeriesSet = (*seriesSet)(nil)
)

// LeafSourceFunc adapts a function to LeafSource.
type LeafSourceFunc func(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (LeafResult, error)

// EvalLeaves calls f.
func (f LeafSourceFunc) EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (LeafResult, error) {
	return f(ctx, ts, leaves)
}

var _ LeafSource = LeafSourceFunc(nil)

// Batch computes the leaves of many expressions at ts in one call to the
// source (which fuses leaves of the same window and grouping into one
// query, across rules), and returns a QueryFunc that answers those
// expressions at ts from the batch and anything else as QueryWith does.
// A failed batch makes every expression of it fail with the same error.
func (q *Querier) Batch(ctx context.Context, ts time.Time, exprs []*dsl.Expr) QueryFunc {
	f, _ := q.batch(ctx, ts, exprs)
	return f
}

// batch is Batch, and the error of the batch's leaves (nil when they were
// computed).
func (q *Querier) batch(ctx context.Context, ts time.Time, exprs []*dsl.Expr) (QueryFunc, error) {
	ts = ts.Truncate(time.Millisecond)
	var leaves []*dsl.Leaf
	index := map[string]int{}
	for _, e := range exprs {
		for _, l := range e.Leaves {
			if l.Sub != nil {
				continue // evaluated over its subquery's times by QueryWith
			}
			if _, ok := index[l.Key()]; !ok {
				index[l.Key()] = len(leaves)
				leaves = append(leaves, l)
			}
		}
	}
	var lr LeafResult
	var batchErr error
	if len(leaves) > 0 {
		lr, batchErr = q.opts.Source.EvalLeaves(ctx, ts, leaves)
		if batchErr == nil && len(lr.Vectors) != len(leaves) {
			batchErr = fmt.Errorf("leaf source returned %d results for %d leaves", len(lr.Vectors), len(leaves))
		}
	}
	src := LeafSourceFunc(func(ctx context.Context, at time.Time, ls []*dsl.Leaf) (LeafResult, error) {
		out := LeafResult{Vectors: make([][]Sample, len(ls))}
		var missing []*dsl.Leaf
		var missingAt []int
		for i, l := range ls {
			j, ok := index[l.Key()]
			if !ok || !at.Equal(ts) {
				missing, missingAt = append(missing, l), append(missingAt, i)
				continue
			}
			if batchErr != nil {
				return LeafResult{Statements: lr.Statements}, batchErr
			}
			out.Vectors[i] = lr.Vectors[j]
			if lr.Paths != nil {
				if out.Paths == nil {
					out.Paths = make([]LeafPath, len(ls))
				}
				out.Paths[i] = lr.Paths[j]
			}
		}
		out.Statements = lr.Statements
		if len(missing) > 0 {
			more, err := q.opts.Source.EvalLeaves(ctx, at, missing)
			if err != nil {
				return LeafResult{Statements: append(out.Statements, more.Statements...)}, err
			}
			for k, i := range missingAt {
				out.Vectors[i] = more.Vectors[k]
				if more.Paths != nil {
					if out.Paths == nil {
						out.Paths = make([]LeafPath, len(ls))
					}
					out.Paths[i] = more.Paths[k]
				}
			}
			out.Statements = append(out.Statements, more.Statements...)
		}
		return out, nil
	})
	bq := &Querier{opts: q.opts, ng: q.ng, base: q.base, plans: q.plans}
	bq.opts.Source = src
	return bq.QueryWith, batchErr
}

// evalTimeInRange refuses a time PromQL's engine cannot evaluate at: it
// counts in nanoseconds, which overflow before 1678 and after 2262, and
// would find no sample there rather than fail.
func evalTimeInRange(ts time.Time) error {
	if err := dsl.TimeInRange(ts.Truncate(time.Millisecond)); err != nil {
		return fmt.Errorf("evaluation %w", err)
	}
	return nil
}

// isMetricName picks __name__ out of a sample's reserved labels
// (Labels.DropReserved), so that PromQL's result carries the rule's labels
// without the series name.
func isMetricName(name string) bool { return name == model.MetricNameLabel }
