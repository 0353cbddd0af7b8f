package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

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
type Querier struct {
	opts QuerierOptions
	ng   *promql.Engine
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
	ng := promql.NewEngine(promql.EngineOpts{
		Logger:        opts.Logger,
		MaxSamples:    opts.MaxSamples,
		Timeout:       opts.Timeout,
		LookbackDelta: time.Minute,
		Parser:        parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()}),
	})
	return &Querier{opts: opts, ng: ng}
}

// Query evaluates e at ts, with the querier's own SeriesSource.
func (q *Querier) Query(ctx context.Context, e *dsl.Expr, ts time.Time) (Result, error) {
	return q.QueryWith(ctx, e, ts, q.opts.Series)
}

// QueryWith evaluates e at ts, reading instant series (recording-rule
// outputs) from series, which may be nil.
func (q *Querier) QueryWith(ctx context.Context, e *dsl.Expr, ts time.Time, seriesSrc SeriesSource) (Result, error) {
	ts = ts.Truncate(time.Millisecond)
	lr := LeafResult{}
	if len(e.Leaves) > 0 {
		var err error
		lr, err = q.opts.Source.EvalLeaves(ctx, ts, e.Leaves)
		if err != nil {
			return Result{}, err
		}
		if len(lr.Vectors) != len(e.Leaves) {
			return Result{}, fmt.Errorf("leaf source returned %d results for %d leaves", len(lr.Vectors), len(e.Leaves))
		}
		for i, v := range lr.Vectors {
			if q.opts.MaxSeries > 0 && len(v) > q.opts.MaxSeries {
				return Result{Statements: lr.Statements}, fmt.Errorf("%w: %s returned %d groups, more than limits.max_series_per_rule (%d): group by fewer labels",
					ErrTooManySeries, e.Leaves[i].Func, len(v), q.opts.MaxSeries)
			}
		}
	}
	series := make(map[string][]Sample, len(e.Leaves)+len(e.Series))
	for i, l := range e.Leaves {
		series[l.Name] = lr.Vectors[i]
	}
	noData := len(e.Leaves) > 0
	for _, v := range lr.Vectors {
		if len(v) > 0 {
			noData = false
		}
	}
	if seriesSrc != nil {
		for _, name := range e.Series {
			series[name] = seriesSrc.Series(name, ts)
		}
	}
	qry, err := q.ng.NewInstantQuery(ctx, &snapshot{series: series, ts: ts.UnixMilli()}, nil, e.Query, ts)
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
			out.Vector = append(out.Vector, Sample{Labels: s.Metric.DropMetricName(), Value: s.F})
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
}

func (s *snapshot) Querier(_, _ int64) (storage.Querier, error) { return s, nil }

func (s *snapshot) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var name string
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	var out []storage.Series
	for _, smp := range s.series[name] {
		lb := labels.NewBuilder(smp.Labels)
		lb.Set(labels.MetricName, name)
		lset := lb.Labels()
		match := true
		for _, m := range ms {
			if !m.Matches(lset.Get(m.Name)) {
				match = false
				break
			}
		}
		if match {
			out = append(out, promql.NewStorageSeries(promql.Series{Metric: lset, Floats: []promql.FPoint{{T: s.ts, F: smp.Value}}}))
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &seriesSet{series: out, i: -1}
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
	bq := &Querier{opts: q.opts, ng: q.ng}
	bq.opts.Source = src
	return bq.QueryWith, batchErr
}
