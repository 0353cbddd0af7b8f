package engine

import (
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/kahansum"
)

// The instant path evaluates the shapes most rules are written in (a leaf
// compared with a threshold, a ratio of two leaves, sums and maxima by a
// label, and/unless between them) over the leaves' samples directly,
// without a PromQL query: no parse, no series set, no matrix per
// evaluation. It follows Prometheus' engine step by step (the order in which
// groups are summed, Kahan summation, which operations keep __name__, how
// vectors match), so its results are PromQL's bit for bit:
// TestInstantPathMatchesPromQL checks that over random vectors and
// expressions, NaN and ±Inf included. Anything else, and any input on which
// PromQL would fail (duplicate series, many-to-many matches), goes to the
// engine, which gives the error. Two things only the engine does: it
// stops at QuerierOptions.Timeout (the instant path takes microseconds),
// and it cannot evaluate at a time whose nanoseconds overflow int64 (before
// 1678 or after 2262), which QueryWith refuses on both paths.

// instantPlans caches the plan of each query text; a text the instant path
// cannot evaluate is cached as nil. It is bounded: when maxInstantPlans
// texts or maxInstantPlanBytes of them (ad-hoc queries of up to 16 KiB each)
// filled it, it starts over.
type instantPlans struct {
	parser parser.Parser
	mu     sync.RWMutex
	plans  map[string]*instantPlan
	bytes  int
}

const (
	maxInstantPlans     = 2048
	maxInstantPlanBytes = 4 << 20
)

func newInstantPlans(p parser.Parser) *instantPlans {
	return &instantPlans{parser: p, plans: map[string]*instantPlan{}}
}

// plan returns the plan of query, or nil when the instant path cannot
// evaluate it.
func (c *instantPlans) plan(query string) *instantPlan {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	p, ok := c.plans[query]
	c.mu.RUnlock()
	if ok {
		return p
	}
	if expr, err := c.parser.ParseExpr(query); err == nil {
		p = compileInstant(expr)
	}
	c.mu.Lock()
	if len(c.plans) >= maxInstantPlans || c.bytes+len(query) > maxInstantPlanBytes {
		clear(c.plans) // ad-hoc texts filled it: start over, rules come back at once
		c.bytes = 0
	}
	if _, ok := c.plans[query]; !ok {
		c.bytes += len(query)
	}
	c.plans[query] = p
	c.mu.Unlock()
	return p
}

// instantPlan is a compiled expression: a vector node, or a constant scalar.
// nodes counts the expression's nodes, literals included: no node holds
// more samples than the input has, so nodes × the input's samples bounds
// what PromQL would hold at once, and its MaxSamples is checked on that.
type instantPlan struct {
	vec    vecNode
	scalar float64
	nodes  int
}

// isample is a sample on the instant path. Its labels never hold
// __name__: the series name PromQL carries (and drops with arithmetic, bool
// or on()) changes no value, no match and no result of the shapes planned
// here, and the rule's result drops it anyway.
type isample struct {
	labels labels.Labels
	f      float64
}

// vecNode evaluates to a vector over the leaves' samples; ok is false when
// the engine must evaluate the query instead.
type vecNode interface {
	eval(in map[string][]Sample) (out []isample, ok bool)
}

// compileInstant returns the plan of e, or nil.
func compileInstant(e parser.Expr) *instantPlan {
	vec, s, isScalar, ok := compileNode(e)
	if !ok {
		return nil
	}
	nodes := 0
	parser.Inspect(e, func(parser.Node, []parser.Node) error { nodes++; return nil })
	if isScalar {
		return &instantPlan{scalar: s, nodes: nodes}
	}
	return &instantPlan{vec: vec, nodes: nodes}
}

// compileNode compiles e: a vector node, or (isScalar) a constant.
func compileNode(e parser.Expr) (vec vecNode, scalar float64, isScalar, ok bool) {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return compileNode(e.Expr)
	case *parser.NumberLiteral:
		return nil, e.Val, true, true
	case *parser.VectorSelector:
		if e.Name == "" || e.OriginalOffset != 0 || e.OriginalOffsetExpr != nil || e.Offset != 0 || e.Timestamp != nil ||
			e.StartOrEnd != 0 || e.Anchored || e.Smoothed || len(e.LabelMatchers) != 1 {
			return nil, 0, false, false
		}
		if m := e.LabelMatchers[0]; m.Name != model.MetricNameLabel || m.Type != labels.MatchEqual || m.Value != e.Name {
			return nil, 0, false, false
		}
		return selectorNode{name: e.Name}, 0, false, true
	case *parser.AggregateExpr:
		return compileAggregate(e)
	case *parser.BinaryExpr:
		return compileBinary(e)
	}
	return nil, 0, false, false
}

func compileAggregate(e *parser.AggregateExpr) (vecNode, float64, bool, bool) {
	switch e.Op {
	case parser.SUM, parser.AVG, parser.MIN, parser.MAX, parser.COUNT:
	default:
		return nil, 0, false, false
	}
	if e.Param != nil || reservedName(e.Grouping) {
		return nil, 0, false, false
	}
	inner, _, isScalar, ok := compileNode(e.Expr)
	if !ok || isScalar {
		return nil, 0, false, false
	}
	grouping := slices.Clone(e.Grouping)
	if e.Without {
		grouping = append(grouping, model.MetricNameLabel, model.MetricTypeLabel, model.MetricUnitLabel)
	}
	slices.Sort(grouping)
	return aggNode{op: e.Op, without: e.Without, grouping: grouping, inner: inner}, 0, false, true
}

func compileBinary(e *parser.BinaryExpr) (vecNode, float64, bool, bool) {
	if !instantOp(e.Op) && e.Op != parser.LAND && e.Op != parser.LUNLESS {
		return nil, 0, false, false
	}
	lv, ls, lScalar, ok := compileNode(e.LHS)
	if !ok {
		return nil, 0, false, false
	}
	rv, rs, rScalar, ok := compileNode(e.RHS)
	if !ok {
		return nil, 0, false, false
	}
	switch {
	case lScalar && rScalar:
		if !instantOp(e.Op) {
			return nil, 0, false, false
		}
		return nil, scalarOp(e.Op, ls, rs), true, true
	case lScalar:
		return scalarBinNode{op: e.Op, vec: rv, scalar: ls, swap: true, returnBool: e.ReturnBool}, 0, false, true
	case rScalar:
		return scalarBinNode{op: e.Op, vec: lv, scalar: rs, returnBool: e.ReturnBool}, 0, false, true
	}
	m := e.VectorMatching
	if m == nil || len(m.Include) > 0 || m.FillValues.LHS != nil || m.FillValues.RHS != nil || reservedName(m.MatchingLabels) {
		return nil, 0, false, false
	}
	names := slices.Clone(m.MatchingLabels)
	if !m.On {
		names = append(names, model.MetricNameLabel, model.MetricTypeLabel, model.MetricUnitLabel)
	}
	slices.Sort(names)
	match := matcher{on: m.On, names: names, result: m.MatchingLabels}
	switch {
	case e.Op == parser.LAND || e.Op == parser.LUNLESS:
		if m.Card != parser.CardManyToMany {
			return nil, 0, false, false
		}
		return setNode{unless: e.Op == parser.LUNLESS, lhs: lv, rhs: rv, match: match}, 0, false, true
	case m.Card == parser.CardOneToOne:
		return vecBinNode{op: e.Op, lhs: lv, rhs: rv, match: match, returnBool: e.ReturnBool}, 0, false, true
	}
	return nil, 0, false, false
}

// instantOp reports whether op is an arithmetic or comparison operator of
// the instant path.
func instantOp(op parser.ItemType) bool {
	switch op {
	case parser.ADD, parser.SUB, parser.MUL, parser.DIV, parser.POW, parser.MOD, parser.ATAN2,
		parser.EQLC, parser.NEQ, parser.GTR, parser.LSS, parser.GTE, parser.LTE:
		return true
	}
	return false
}

// arithmetic reports whether op makes a new value (PromQL drops the series
// name), not a comparison.
func arithmetic(op parser.ItemType) bool {
	switch op {
	case parser.ADD, parser.SUB, parser.MUL, parser.DIV, parser.POW, parser.MOD, parser.ATAN2:
		return true
	}
	return false
}

// reservedName reports whether names hold a reserved label (__name__ and
// the like): those go to the engine.
func reservedName(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, "__") {
			return true
		}
	}
	return false
}

// scalarOp is PromQL's operation on two scalars.
func scalarOp(op parser.ItemType, l, r float64) float64 {
	switch op {
	case parser.EQLC, parser.NEQ, parser.GTR, parser.LSS, parser.GTE, parser.LTE:
		_, keep := elemOp(op, l, r)
		if keep {
			return 1
		}
		return 0
	}
	f, _ := elemOp(op, l, r)
	return f
}

// elemOp is PromQL's operation on two vector elements: the value, and
// whether a comparison keeps the element.
func elemOp(op parser.ItemType, l, r float64) (float64, bool) {
	switch op {
	case parser.ADD:
		return l + r, true
	case parser.SUB:
		return l - r, true
	case parser.MUL:
		return l * r, true
	case parser.DIV:
		return l / r, true
	case parser.POW:
		return math.Pow(l, r), true
	case parser.MOD:
		return math.Mod(l, r), true
	case parser.ATAN2:
		return math.Atan2(l, r), true
	case parser.EQLC:
		return l, l == r
	case parser.NEQ:
		return l, l != r
	case parser.GTR:
		return l, l > r
	case parser.LSS:
		return l, l < r
	case parser.GTE:
		return l, l >= r
	case parser.LTE:
		return l, l <= r
	}
	panic("engine: instant path: operator " + op.String())
}

// selectorNode is a leaf, recorded series or clock: its samples in label
// order, as the snapshot serves them to PromQL.
type selectorNode struct{ name string }

func (n selectorNode) eval(in map[string][]Sample) ([]isample, bool) {
	src := in[n.name]
	out := make([]isample, 0, len(src))
	for _, s := range src {
		if value.IsStaleNaN(s.Value) {
			continue
		}
		lset := s.Labels
		if lset.Has(model.MetricNameLabel) {
			// A recorded series carries its name; the snapshot serves it
			// under the selector's name, which the instant path leaves out.
			lset = lset.DropReserved(isMetricName)
		}
		if !plainLabels(lset) {
			return nil, false
		}
		out = append(out, isample{labels: lset, f: s.Value})
	}
	slices.SortFunc(out, func(a, b isample) int { return labels.Compare(a.labels, b.labels) })
	for i := 1; i < len(out); i++ {
		if labels.Equal(out[i-1].labels, out[i].labels) {
			return nil, false // two series of one label set: PromQL's to judge
		}
	}
	return out, true
}

// plainLabels reports whether the instant path serves lset as PromQL's
// snapshot does: no reserved label (__name__ and the like), no empty value
// (the snapshot drops it, so the series would match and group as without
// it), and no name that sorts before __name__ (upper-case, digits: with
// __name__ set, PromQL orders the series otherwise, and the order in which
// a sum adds them changes its last bits).
func plainLabels(lset labels.Labels) bool {
	ok := true
	lset.Range(func(l labels.Label) {
		if l.Value == "" || l.Name <= model.MetricNameLabel || strings.HasPrefix(l.Name, "__") {
			ok = false
		}
	})
	return ok
}

// scalarBinNode is an operation between a vector and a scalar
// (VectorscalarBinop).
type scalarBinNode struct {
	op               parser.ItemType
	vec              vecNode
	scalar           float64
	swap, returnBool bool
}

func (n scalarBinNode) eval(in map[string][]Sample) ([]isample, bool) {
	vec, ok := n.vec.eval(in)
	if !ok {
		return nil, false
	}
	out := vec[:0]
	for _, s := range vec {
		l, r := s.f, n.scalar
		if n.swap {
			l, r = r, l
		}
		f, keep := elemOp(n.op, l, r)
		if !arithmetic(n.op) && n.swap {
			f = r // a comparison keeps the vector's value
		}
		if n.returnBool {
			f, keep = boolValue(keep), true
		}
		if !keep {
			continue
		}
		s.f = f
		out = append(out, s)
	}
	return out, true
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// matcher is the vector matching of a binary operation: names are sorted,
// with __name__ and the other metadata labels added for ignoring; result
// are the labels on() keeps or ignoring() drops from a one-to-one result.
type matcher struct {
	on     bool
	names  []string
	result []string
}

// signature is the key two samples match on (PromQL's join signature).
func (m matcher) signature(lset labels.Labels, buf []byte) ([]byte, string) {
	if m.on {
		buf = lset.BytesWithLabels(buf, m.names...)
	} else {
		buf = lset.BytesWithoutLabels(buf, m.names...)
	}
	return buf, string(buf)
}

// index returns the samples of vec by signature, the signature buffer, and
// whether two samples share a signature (the last one is kept).
func (m matcher) index(vec []isample) (map[string]isample, []byte, bool) {
	var buf []byte
	var sig string
	dup := false
	out := make(map[string]isample, len(vec))
	for _, s := range vec {
		buf, sig = m.signature(s.labels, buf)
		if _, ok := out[sig]; ok {
			dup = true
		}
		out[sig] = s
	}
	return out, buf, dup
}

// vecBinNode is a one-to-one operation between two vectors (VectorBinop).
type vecBinNode struct {
	op         parser.ItemType
	lhs, rhs   vecNode
	match      matcher
	returnBool bool
}

// sides evaluates the two sides of a binary operation.
func sides(l, r vecNode, in map[string][]Sample) (lhs, rhs []isample, ok bool) {
	if lhs, ok = l.eval(in); ok {
		rhs, ok = r.eval(in)
	}
	return lhs, rhs, ok
}

func (n vecBinNode) eval(in map[string][]Sample) ([]isample, bool) {
	lhs, rhs, ok := sides(n.lhs, n.rhs, in)
	switch {
	case !ok:
		return nil, false
	case len(lhs) == 0 || len(rhs) == 0:
		return nil, true
	}
	right, buf, dup := n.match.index(rhs)
	if dup {
		return nil, false // many-to-many: PromQL's error
	}
	var sig string
	matched := make(map[string]bool, len(lhs))
	out := lhs[:0]
	var lb *labels.Builder
	for _, s := range lhs {
		buf, sig = n.match.signature(s.labels, buf)
		r, found := right[sig]
		if !found {
			continue
		}
		f, keep := elemOp(n.op, s.f, r.f)
		if n.returnBool {
			f = boolValue(keep)
		}
		if matched[sig] {
			return nil, false // many-to-one without group_left: PromQL's error
		}
		matched[sig] = true
		if !keep && !n.returnBool {
			continue
		}
		if n.match.on || len(n.match.result) > 0 {
			if lb == nil {
				lb = labels.NewBuilder(labels.EmptyLabels())
			}
			lb.Reset(s.labels)
			if n.match.on {
				lb.Keep(n.match.result...)
			} else {
				lb.Del(n.match.result...)
			}
			s.labels = lb.Labels()
		}
		s.f = f
		out = append(out, s)
	}
	return out, true
}

// setNode is and/unless (VectorAnd, VectorUnless).
type setNode struct {
	unless   bool
	lhs, rhs vecNode
	match    matcher
}

func (n setNode) eval(in map[string][]Sample) ([]isample, bool) {
	lhs, rhs, ok := sides(n.lhs, n.rhs, in)
	if !ok {
		return nil, false
	}
	if len(lhs) == 0 || len(rhs) == 0 {
		if n.unless {
			return lhs, true
		}
		return nil, true
	}
	right, buf, _ := n.match.index(rhs)
	var sig string
	out := lhs[:0]
	for _, s := range lhs {
		buf, sig = n.match.signature(s.labels, buf)
		if _, present := right[sig]; present != n.unless {
			out = append(out, s)
		}
	}
	return out, true
}

// aggNode is sum, avg, min, max or count by or without labels
// (rangeEvalAgg and aggregation): groups in the order their first series
// comes, each one's values in series order.
type aggNode struct {
	op       parser.ItemType
	without  bool
	grouping []string
	inner    vecNode
}

// aggGroup is the state of one group, as PromQL's groupedAggregation.
type aggGroup struct {
	labels          labels.Labels
	value, mean, c  float64
	count           float64
	incrementalMean bool
}

func (n aggNode) eval(in map[string][]Sample) ([]isample, bool) {
	vec, ok := n.inner.eval(in)
	if !ok {
		return nil, false
	}
	index := make(map[uint64]int, len(vec))
	var groups []aggGroup
	var buf []byte
	var lb *labels.Builder
	for _, s := range vec {
		var key uint64
		switch {
		case n.without:
			key, buf = s.labels.HashWithoutLabels(buf, n.grouping...)
		case len(n.grouping) > 0:
			key, buf = s.labels.HashForLabels(buf, n.grouping...)
		}
		gi, seen := index[key]
		if !seen {
			var lset labels.Labels
			switch {
			case n.without || len(n.grouping) > 0:
				if lb == nil {
					lb = labels.NewBuilder(labels.EmptyLabels())
				}
				lb.Reset(s.labels)
				if n.without {
					lb.Del(n.grouping...)
				} else {
					lb.Keep(n.grouping...)
				}
				lset = lb.Labels()
			default:
				lset = labels.EmptyLabels()
			}
			index[key] = len(groups)
			groups = append(groups, aggGroup{labels: lset, value: s.f, mean: s.f, count: 1})
			continue
		}
		g := &groups[gi]
		f := s.f
		switch n.op {
		case parser.SUM:
			g.value, g.c = kahansum.Inc(f, g.value, g.c)
		case parser.AVG:
			g.count++
			if !g.incrementalMean {
				v, c := kahansum.Inc(f, g.value, g.c)
				if !math.IsInf(v, 0) {
					g.value, g.c = v, c
					break
				}
				g.incrementalMean = true
				g.mean = g.value / (g.count - 1)
				g.c /= g.count - 1
			}
			q := (g.count - 1) / g.count
			g.mean, g.c = kahansum.Inc(f/g.count, q*g.mean, q*g.c)
		case parser.MAX:
			if g.value < f || math.IsNaN(g.value) {
				g.value = f
			}
		case parser.MIN:
			if g.value > f || math.IsNaN(g.value) {
				g.value = f
			}
		case parser.COUNT:
			g.count++
		}
	}
	out := make([]isample, len(groups))
	for i, g := range groups {
		f := g.value
		switch n.op {
		case parser.SUM:
			f += g.c
		case parser.AVG:
			if g.incrementalMean {
				f = g.mean + g.c
			} else {
				f = g.value/g.count + g.c/g.count
			}
		case parser.COUNT:
			f = g.count
		}
		out[i] = isample{labels: g.labels, f: f}
	}
	return out, true
}

// result evaluates the plan over the named samples; ok is false when the
// engine must evaluate the query.
func (p *instantPlan) result(in map[string][]Sample, maxSamples int) (Result, bool) {
	if p == nil {
		return Result{}, false
	}
	n := 1
	for _, v := range in {
		n += len(v)
	}
	if p.nodes*n > maxSamples {
		return Result{}, false // near PromQL's limit: its count, and its error
	}
	if p.vec == nil {
		return Result{Scalar: p.scalar, IsScalar: true}, true
	}
	vec, ok := p.vec.eval(in)
	if !ok {
		return Result{}, false
	}
	out := Result{Vector: make([]Sample, len(vec))}
	for i, s := range vec {
		out.Vector[i] = Sample{Labels: s.labels, Value: s.f}
	}
	slices.SortFunc(out.Vector, func(a, b Sample) int { return labels.Compare(a.Labels, b.Labels) })
	return out, true
}
