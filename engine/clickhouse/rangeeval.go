package clickhouse

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Range queries: one aggregation over the whole span.
//
// A range query evaluates its leaves at start, start+step, … up to end.
// Stepping the instant path would run one full query per step (1440 for a
// day at 1m). Instead, for each shape (window, offset, grouping), one query
// aggregates the events of the whole span into buckets of B seconds — B
// divides the step, the window and start − offset, so that every step's
// window is a run of whole buckets — as aggregate states (countIfState,
// quantileExactIfState, …), repeats each bucket's states once per step whose
// window holds it (ARRAY JOIN) and merges them per group and step (-Merge).
// ClickHouse so computes each step's aggregates as the instant query does,
// quantileExact included, reading the span once. The work grows with the
// number of steps a bucket belongs to (window ÷ step): a leaf beyond
// maxRangeReplication of them, or off whole seconds, is computed step by
// step by full queries.

// maxRangeReplication bounds the steps one bucket's states are merged into.
const maxRangeReplication = 64

// maxRangeBuckets bounds the buckets of one range statement.
const maxRangeBuckets = 500_000

var _ engine.RangeLeafSource = (*Source)(nil)

// EvalLeavesRange computes leaves at start, start+step, … up to end (see
// engine.RangeLeafSource). It never uses or changes the incremental state:
// a range reads history.
func (s *Source) EvalLeavesRange(ctx context.Context, start, end time.Time, step time.Duration, leaves []*dsl.Leaf) ([]engine.LeafResult, error) {
	n := int(engine.Steps(start, end, step))
	if n <= 0 {
		return nil, fmt.Errorf("empty range: start %s, end %s, step %s", start, end, step)
	}
	results := make([]engine.LeafResult, n)
	for j := range results {
		results[j].Vectors = make([][]engine.Sample, len(leaves))
	}
	var ranged, stepped []int
	for i, l := range leaves {
		if rangeBucket(start, end, step, l) > 0 {
			ranged = append(ranged, i)
		} else {
			stepped = append(stepped, i)
		}
	}
	if len(ranged) > 0 {
		sub := pick(leaves, ranged)
		for _, st := range s.compileRange(start, end, step, n, sub) {
			results[0].Statements = append(results[0].Statements, st.SQL)
			if err := s.runRange(ctx, st, sub, ranged, results); err != nil {
				return results, fmt.Errorf("compute %s: %w", leafNames(st, sub), err)
			}
		}
	}
	if len(stepped) > 0 {
		sub := pick(leaves, stepped)
		for j := range n {
			ts := start.Add(time.Duration(j) * step)
			vectors := make([][]engine.Sample, len(sub))
			for _, st := range Compile(CompileOptions{Table: s.opts.Table, Schema: s.opts.Schema, Columns: s.opts.Columns, Distributed: s.opts.Distributed}, ts, sub) {
				results[j].Statements = append(results[j].Statements, st.SQL)
				if err := s.run(ctx, st, sub, vectors, nil); err != nil {
					return results, fmt.Errorf("compute %s: %w", leafNames(st, sub), err)
				}
			}
			for k, i := range stepped {
				results[j].Vectors[i] = vectors[k]
			}
		}
	}
	for j := range results {
		for i, v := range results[j].Vectors {
			if s.opts.MaxGroups > 0 && len(v) > s.opts.MaxGroups {
				return results, fmt.Errorf("compute %s: %w", leaves[i].Func, s.queryError(tooManyGroups{len(v)}))
			}
			sort.Slice(v, func(a, b int) bool { return labels.Compare(v[a].Labels, v[b].Labels) < 0 })
		}
	}
	return results, nil
}

func pick(leaves []*dsl.Leaf, idx []int) []*dsl.Leaf {
	out := make([]*dsl.Leaf, len(idx))
	for k, i := range idx {
		out[k] = leaves[i]
	}
	return out
}

// rangeBucket returns the bucket width (seconds) that computes l over the
// range in one query, or 0 when it takes the step-by-step path.
func rangeBucket(start, end time.Time, step time.Duration, l *dsl.Leaf) int64 {
	if step%time.Second != 0 || start.Nanosecond() != 0 || l.Range%time.Second != 0 || l.Offset%time.Second != 0 || l.Range <= 0 ||
		l.Calendar != nil { // a calendar window's width changes with the step
		return 0
	}
	st, r, off := int64(step/time.Second), int64(l.Range/time.Second), int64(l.Offset/time.Second)
	if (r+st-1)/st > maxRangeReplication {
		return 0
	}
	b := gcd(gcd(st, r), abs(start.Unix()-off))
	if (end.Sub(start)+l.Range)/time.Second/time.Duration(b) > maxRangeBuckets {
		return 0
	}
	return b
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func abs(a int64) int64 {
	if a < 0 {
		return -a
	}
	return a
}

// compileRange builds one statement per shape of leaves (all of them on
// the range path).
func (s *Source) compileRange(start, end time.Time, step time.Duration, n int, leaves []*dsl.Leaf) []Statement {
	builders := byShape(leaves, false, s.opts.Distributed, s.opts.Schema.Time, s.opts.Columns)
	stmts := make([]Statement, len(builders))
	for i, b := range builders {
		stmts[i] = b.buildRange(s.opts, start, end, step, n)
	}
	return stmts
}

// buildRange writes the statement of a shape over the range: the inner
// query groups the span's events by labels and bucket into aggregate
// states and lists the steps each bucket belongs to; the outer one repeats
// the states per step and merges them by labels and step. Its rows are the
// labels, the leaves' columns (as in build) and the step's index.
func (b *builder) buildRange(opts Options, start, end time.Time, step time.Duration, n int) Statement {
	b.fuseQuantiles()
	l := b.first
	bw := rangeBucket(start, end, step, l)
	st := b.stmt
	st.By = b.by
	st.Width = len(b.by) + len(b.exprs)
	sel := SelectOptions{Table: opts.Table, Time: opts.Schema.Time, Columns: b.cols}
	inner := NewSelect(sel)
	outer := NewSelect(sel)
	for i, name := range b.by {
		alias := "cw_l" + strconv.Itoa(i)
		inner.Label(name, alias)
		outer.LabelOf(alias)
	}
	// Bucket k holds (k·B−B, k·B]. Step j's window is buckets
	// a + j·sB − rB + 1 … a + j·sB, with a = (start − offset)/B, sB and rB
	// the step and the window in buckets: bucket k belongs to the steps
	// ⌈(k−a)/sB⌉ … ⌊(k−a+rB−1)/sB⌋, computed on k − a + M·sB > 0.
	sB, rB := int64(step/time.Second)/bw, int64(l.Range/time.Second)/bw
	a := (start.Unix() - int64(l.Offset/time.Second)) / bw
	m := rB/sB + 2
	k := inner.Bucket(bw)
	inner.Column("cw_k", k.SQL, k.Args...)
	lo := "(intDiv(toInt64(cw_k) + ? + ?, ?) - ?)" // ⌈(k−a)/sB⌉
	hi := "(intDiv(toInt64(cw_k) + ? + ?, ?) - ?)" // ⌊(k−a+rB−1)/sB⌋
	// A bucket belongs to at most ⌈rB/sB⌉ steps: the array is capped at
	// that, whatever the arithmetic's types on a server.
	inner.Column("cw_js", "arrayFilter(x -> x >= 0 AND x < ?, arrayMap(x -> "+lo+" + x, range(toUInt64(least(greatest("+hi+" - "+lo+" + 1, 0), ?)))))",
		n,
		m*sB-a, sB-1, sB, m,
		m*sB-a, rB-1, sB, m,
		m*sB-a, sB-1, sB, m,
		(rB+sB-1)/sB)
	states := map[string]string{}
	for _, e := range b.exprs {
		param := ""
		if e.agg.param != "" {
			param = "(" + e.agg.param + ")"
		}
		state := e.agg.fn + "State" + param + "(" + e.agg.args + ")"
		k := fragment{sql: state, args: e.args}.key()
		alias, ok := states[k]
		if !ok {
			alias = "cw_s" + strconv.Itoa(len(states))
			states[k] = alias
			inner.Column(alias, state, e.args...)
		}
		merge := e.agg.fn + "Merge" + param + "(" + alias + ")"
		if e.agg.elem > 0 {
			merge = "arrayElement(" + merge + ", " + strconv.Itoa(e.agg.elem) + ")"
		}
		if e.agg.finish != "" {
			merge = fmt.Sprintf(e.agg.finish, merge)
		}
		outer.Value("", "toFloat64("+merge+")")
	}
	from := start.Unix() - int64((l.Offset+l.Range)/time.Second)
	last := start.Add(time.Duration(n-1) * step)
	w := inner.Window(from, last.Unix()-int64(l.Offset/time.Second))
	inner.Where(w.SQL, w.Args...)
	b.filter(inner)
	inner.GroupByLabels().GroupBy("cw_k")
	outer.FromSelect(inner).ArrayJoin("cw_js", "cw_j")
	outer.Value("", "toFloat64(cw_j)")
	outer.GroupByLabels().GroupBy("cw_j")
	st.query, st.SQL, st.Args = outer, outer.String(), outer.Args()
	return st
}

// runRange runs a range statement of leaves (the leaves idx of the call)
// into results, one per step.
func (s *Source) runRange(ctx context.Context, st Statement, leaves []*dsl.Leaf, idx []int, results []engine.LeafResult) error {
	values := make([]float64, st.Width)
	absentSeen := make([][]bool, len(results))
	for j := range absentSeen {
		absentSeen[j] = make([]bool, len(st.Leaves))
	}
	err := s.scan(ctx, st.query, 0, func(groupValues []string, vals []float64) error {
		j := int(vals[len(vals)-1])
		if j < 0 || j >= len(results) {
			return fmt.Errorf("range row of step %v, outside the %d steps", vals[len(vals)-1], len(results))
		}
		copy(values[len(st.By):], vals[:len(vals)-1])
		for k, li := range st.Leaves {
			l, cols := leaves[li], st.Columns[k]
			if values[cols.Count] == 0 {
				continue
			}
			if l.Agg == dsl.AggAbsent {
				absentSeen[j][k] = true
				continue
			}
			var state dsl.State
			cols.fill(&state, values)
			v := &results[j].Vectors[idx[li]]
			*v = append(*v, engine.Sample{Labels: l.GroupLabels(groupValues), Value: l.Finish(&state)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for j := range results {
		for k, li := range st.Leaves {
			if l := leaves[li]; l.Agg == dsl.AggAbsent && !absentSeen[j][k] {
				results[j].Vectors[idx[li]] = append(results[j].Vectors[idx[li]], engine.Sample{Labels: l.Labels(), Value: 1})
			}
		}
	}
	return nil
}
