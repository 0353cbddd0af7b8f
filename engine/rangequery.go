package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/callwatch/callwatch/dsl"
)

// RangeLeafSource is implemented by a LeafSource that computes leaves at
// many evaluation times in one pass (for ClickHouse, one aggregation over
// the whole span by buckets). It is optional: a Querier whose source lacks
// it calls EvalLeaves once per step.
type RangeLeafSource interface {
	// EvalLeavesRange computes every leaf at start, start+step, ... up to
	// end included, and returns one LeafResult per step, in time order.
	EvalLeavesRange(ctx context.Context, start, end time.Time, step time.Duration, leaves []*dsl.Leaf) ([]LeafResult, error)
}

// ErrTooManySeries is wrapped by the error of a query whose range function
// returns more groups than QuerierOptions.MaxSeries, and
// ErrTooManySamples by that of a range query whose leaves hold more samples
// than QuerierOptions.MaxSamples.
var (
	ErrTooManySeries  = errors.New("too many series")
	ErrTooManySamples = errors.New("too many samples")
)

// Point is one sample of a series of a range result: a time in
// milliseconds since the epoch and a value.
type Point struct {
	T int64
	V float64
}

// RangeSeries is one labelled series of a range result.
type RangeSeries struct {
	Labels labels.Labels
	Points []Point
}

// RangeResult is an expression evaluated at every step of a range.
type RangeResult struct {
	// Matrix holds the series, sorted by labels; a scalar expression
	// gives one series without labels.
	Matrix []RangeSeries
	// Statements are the backend queries that ran, at most
	// maxRangeStatements of them (the per-step queries repeat).
	Statements []string
}

// maxRangeStatements bounds the statements a range result keeps.
const maxRangeStatements = 10

// Steps returns the number of evaluation times of a range: start,
// start+step, ... up to end included. It returns 0 when step is not
// positive or end is before start.
func Steps(start, end time.Time, step time.Duration) int64 {
	if step <= 0 || end.Before(start) {
		return 0
	}
	return int64(end.Sub(start)/step) + 1
}

// QueryRange evaluates e at start, start+step, ... up to end included, as
// Query would at each of those times, with the querier's own
// SeriesSource. The leaves come from the source's EvalLeavesRange when it
// implements RangeLeafSource, else from one EvalLeaves per step.
func (q *Querier) QueryRange(ctx context.Context, e *dsl.Expr, start, end time.Time, step time.Duration) (RangeResult, error) {
	start, end = start.Truncate(time.Millisecond), end.Truncate(time.Millisecond)
	if step < time.Millisecond {
		return RangeResult{}, fmt.Errorf("step %s is shorter than a millisecond", step)
	}
	n := Steps(start, end, step)
	if n == 0 {
		return RangeResult{}, errors.New("end is before start")
	}
	if err := errors.Join(evalTimeInRange(start), evalTimeInRange(end)); err != nil {
		return RangeResult{}, err
	}
	if end.Sub(start) == time.Duration(math.MaxInt64) {
		return RangeResult{}, errors.New("the range is longer than 292 years: shorten it")
	}
	times := make([]time.Time, n)
	for k := range times {
		times[k] = start.Add(time.Duration(k) * step)
	}
	results, err := q.leavesRange(ctx, q.opts.Source, e.Leaves, start, end, step, times)
	if err != nil {
		return RangeResult{Statements: statements(results)}, err
	}
	st := &rangeStorage{series: map[string]map[uint64]*promql.Series{}}
	for k, ts := range times {
		if len(e.Leaves) > 0 {
			for i, l := range e.Leaves {
				st.add(l.Name, results[k].Vectors[i], ts.UnixMilli())
			}
		}
		if q.opts.Series != nil {
			for _, name := range e.Series {
				st.add(name, q.opts.Series.Series(name, ts), ts.UnixMilli())
			}
		}
		for _, c := range e.Clocks {
			st.add(c.Name, []Sample{{Labels: labels.EmptyLabels(), Value: c.Value(ts)}}, ts.UnixMilli())
		}
	}
	out := RangeResult{Statements: statements(results)}
	// A leaf has a sample at each step only: a lookback shorter than any
	// step keeps PromQL from carrying a group's value into a step at
	// which it had none, so each step equals the instant query there.
	opts := promql.NewPrometheusQueryOpts(false, time.Millisecond, nil)
	qry, err := q.ng.NewRangeQuery(ctx, st, opts, e.Query, start, end, step)
	if err != nil {
		return out, fmt.Errorf("prepare query: %w", err)
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return out, res.Err
	}
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		return out, fmt.Errorf("unexpected result type %s", res.Value.Type())
	}
	out.Matrix = make([]RangeSeries, 0, len(m))
	for _, s := range m {
		rs := RangeSeries{Labels: s.Metric.DropReserved(isMetricName), Points: make([]Point, len(s.Floats))}
		for j, p := range s.Floats {
			rs.Points[j] = Point{T: p.T, V: p.F}
		}
		out.Matrix = append(out.Matrix, rs)
	}
	sort.Slice(out.Matrix, func(i, j int) bool { return labels.Compare(out.Matrix[i].Labels, out.Matrix[j].Labels) < 0 })
	return out, nil
}

// leavesRange computes leaves from src at every time of times: in one call
// when the source can, else step by step.
func (q *Querier) leavesRange(ctx context.Context, src LeafSource, leaves []*dsl.Leaf, start, end time.Time, step time.Duration, times []time.Time) ([]LeafResult, error) {
	if len(leaves) == 0 {
		return nil, nil
	}
	var results []LeafResult
	if rs, ok := src.(RangeLeafSource); ok {
		var err error
		if results, err = rs.EvalLeavesRange(ctx, start, end, step, leaves); err != nil {
			return results, err
		}
		if len(results) != len(times) {
			return results, fmt.Errorf("leaf source returned %d steps for a range of %d", len(results), len(times))
		}
	} else {
		results = make([]LeafResult, 0, len(times))
		samples := 0
		for _, ts := range times {
			if err := ctx.Err(); err != nil {
				return results, err
			}
			lr, err := src.EvalLeaves(ctx, ts, leaves)
			results = append(results, lr)
			if err != nil {
				return results, err
			}
			// Checked as the steps come, so a runaway range stops early.
			for _, v := range lr.Vectors {
				samples += len(v)
			}
			if samples > q.opts.MaxSamples {
				return results, q.tooManySamples(samples, len(results), len(times))
			}
		}
	}
	samples := 0
	for k, lr := range results {
		if len(lr.Vectors) != len(leaves) {
			return results, fmt.Errorf("leaf source returned %d results for %d leaves at step %d", len(lr.Vectors), len(leaves), k)
		}
		for i, v := range lr.Vectors {
			if q.opts.MaxSeries > 0 && len(v) > q.opts.MaxSeries {
				return results, fmt.Errorf("%w: %s returned %d groups at %s, more than limits.max_series_per_rule (%d): group by fewer labels",
					ErrTooManySeries, leaves[i].Func, len(v), times[k].UTC().Format(time.RFC3339), q.opts.MaxSeries)
			}
			samples += len(v)
		}
	}
	if samples > q.opts.MaxSamples {
		return results, q.tooManySamples(samples, len(results), len(times))
	}
	return results, nil
}

func (q *Querier) tooManySamples(samples, steps, of int) error {
	return fmt.Errorf("%w: the range functions returned %d samples in %d of %d steps, more than the maximum of %d: shorten the range, raise the step or group by fewer labels",
		ErrTooManySamples, samples, steps, of, q.opts.MaxSamples)
}

// statements returns the distinct statements of results, at most
// maxRangeStatements.
func statements(results []LeafResult) []string {
	var out []string
	seen := map[string]bool{}
	for _, lr := range results {
		for _, s := range lr.Statements {
			if !seen[s] && len(out) < maxRangeStatements {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// rangeStorage serves the leaves' results (and rule outputs) at every
// step as series with one sample per step, for the PromQL engine.
type rangeStorage struct {
	series map[string]map[uint64]*promql.Series
}

func (s *rangeStorage) add(name string, samples []Sample, t int64) {
	m := s.series[name]
	if m == nil {
		m = map[uint64]*promql.Series{}
		s.series[name] = m
	}
	for _, smp := range samples {
		lb := labels.NewBuilder(smp.Labels)
		lb.Set(model.MetricNameLabel, name)
		lset := lb.Labels()
		h := lset.Hash()
		ser := m[h]
		if ser == nil {
			ser = &promql.Series{Metric: lset}
			m[h] = ser
		}
		if n := len(ser.Floats); n > 0 && ser.Floats[n-1].T == t {
			continue // a source that repeats a group keeps its first value, as the instant path's sort does
		}
		ser.Floats = append(ser.Floats, promql.FPoint{T: t, F: smp.Value})
	}
}

func (s *rangeStorage) Querier(_, _ int64) (storage.Querier, error) { return s, nil }

func (s *rangeStorage) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	name := metricName(ms)
	var out []storage.Series
	for _, ser := range s.series[name] {
		match := true
		for _, m := range ms {
			if !m.Matches(ser.Metric.Get(m.Name)) {
				match = false
				break
			}
		}
		if match {
			out = append(out, promql.NewStorageSeries(*ser))
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &seriesSet{series: out, i: -1}
}

func (s *rangeStorage) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("not supported")
}

func (s *rangeStorage) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("not supported")
}

func (s *rangeStorage) Close() error { return nil }

var (
	_ storage.Queryable = (*rangeStorage)(nil)
	_ storage.Querier   = (*rangeStorage)(nil)
)
