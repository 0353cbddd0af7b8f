package engine

// Cases of the instant path (instant.go) found by a review that tried to
// break it: each test runs one query over fixed samples through
// Querier.QueryWith twice, once with the instant path and once with the
// engine only, and fails when the two differ (labels, order, float bits with
// NaN==NaN, error vs answer). Each failed before the fix it names.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
)

var instantTS = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

// instantBothWays evaluates query over in with and without the instant path.
func instantBothWays(ctx context.Context, query string, in namedSeries, maxSamples int) (fast, slow Result, planned bool, fastErr, slowErr error) {
	return instantBothWaysAt(ctx, query, in, QuerierOptions{MaxSamples: maxSamples}, instantTS)
}

func bitsEqual(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// diffResults describes how two results differ, "" when they do not.
func diffResults(fast, slow Result, fastErr, slowErr error) string {
	switch {
	case (fastErr != nil) != (slowErr != nil):
		return fmt.Sprintf("instant path err=%v result=%v; PromQL err=%v result=%v", fastErr, fmtVec(fast), slowErr, fmtVec(slow))
	case fastErr != nil:
		return ""
	case fast.IsScalar != slow.IsScalar || (fast.IsScalar && !bitsEqual(fast.Scalar, slow.Scalar)):
		return fmt.Sprintf("instant path scalar %v (%v), PromQL scalar %v (%v)", fast.Scalar, fast.IsScalar, slow.Scalar, slow.IsScalar)
	case (fast.Vector == nil) != (slow.Vector == nil):
		return fmt.Sprintf("nil-ness of Vector differs: instant path %#v, PromQL %#v", fast.Vector, slow.Vector)
	case fast.NoData != slow.NoData || len(fast.Statements) != len(slow.Statements) || len(fast.Paths) != len(slow.Paths):
		return "NoData/Statements/Paths differ"
	}
	if len(fast.Vector) != len(slow.Vector) {
		return fmt.Sprintf("instant path %s, PromQL %s", fmtVec(fast), fmtVec(slow))
	}
	for i := range fast.Vector {
		f, s := fast.Vector[i], slow.Vector[i]
		if !labels.Equal(f.Labels, s.Labels) || !bitsEqual(f.Value, s.Value) {
			return fmt.Sprintf("instant path %s, PromQL %s", fmtVec(fast), fmtVec(slow))
		}
	}
	return ""
}

func fmtVec(r Result) string {
	if r.IsScalar {
		return fmt.Sprintf("scalar %v", r.Scalar)
	}
	var sb strings.Builder
	sb.WriteString("[")
	for i, s := range r.Vector {
		if i > 0 {
			sb.WriteString(" ")
		}
		// %x shows the sign of zero and exact bits.
		fmt.Fprintf(&sb, "%s=%v(%#016x)", s.Labels, s.Value, math.Float64bits(s.Value))
	}
	sb.WriteString("]")
	return sb.String()
}

// checkSame fails when query is not planned, or when the two ways differ.
func checkSame(t *testing.T, query string, in namedSeries, maxSamples int) {
	t.Helper()
	mustPlanned(t, query)
	checkAt(t, query, in, QuerierOptions{MaxSamples: maxSamples}, instantTS)
}

var negZero = math.Copysign(0, -1)

// 1. Series order. The engine's selector serves series sorted by their
// labels WITH __name__; the instant path sorted them WITHOUT it (it now
// leaves such series to the engine: plainLabels). The two orders differ when a label name sorts before "__name__" (upper-case
// letters, digits, and in UTF-8 names '.', '-', ...) and one label set is a
// prefix of another: {} vs {Region="eu"}, {Region="eu"} vs {Region="eu",
// Zone="z"}. Aggregations are order-sensitive (max/min of ±0, Kahan sums,
// the overflow switch of avg), so results differ in their bits.

func TestInstantPathKeepsPromQLsOrderMaxSignedZero(t *testing.T) {
	in := namedSeries{"a": {
		{Labels: labels.EmptyLabels(), Value: 0},
		{Labels: labels.FromStrings("Region", "eu"), Value: negZero},
	}}
	checkSame(t, `max(a)`, in, 0)
	checkSame(t, `min(a)`, in, 0)
}

func TestInstantPathKeepsPromQLsOrderGrouped(t *testing.T) {
	// The realistic shape: a leaf grouped by (Region, Zone) whose events
	// sometimes lack Zone (GroupLabels leaves empty values out).
	in := namedSeries{"a": {
		{Labels: labels.FromStrings("Region", "eu"), Value: 0},
		{Labels: labels.FromStrings("Region", "eu", "Zone", "z1"), Value: negZero},
	}}
	checkSame(t, `max by (Region) (a)`, in, 0)
}

func TestInstantPathKeepsPromQLsOrderAvgOverflow(t *testing.T) {
	// avg switches to the incremental mean when the running sum overflows:
	// whether it does depends on the order.
	in := namedSeries{"a": {
		{Labels: labels.EmptyLabels(), Value: -2.3367237467610496e+307},
		{Labels: labels.FromStrings("Region", "eu"), Value: 2.7672814808888026e+307},
		{Labels: labels.FromStrings("Region", "eu", "Zone", "z"), Value: 9.94798134373516e+307},
	}}
	checkSame(t, `avg(a)`, in, 0)
}

func TestInstantPathKeepsPromQLsOrderSum(t *testing.T) {
	// Kahan-Neumaier over 4 values is order-sensitive: the instant path
	// adds them in this order, the engine in the reverse order
	// (Zz, Zone and Region all sort before __name__).
	in := namedSeries{"a": {
		{Labels: labels.EmptyLabels(), Value: -1.8735013540549517e-15},
		{Labels: labels.FromStrings("Region", "eu"), Value: 4.850286838831153e-15},
		{Labels: labels.FromStrings("Region", "eu", "Zone", "z"), Value: -11504},
		{Labels: labels.FromStrings("Region", "eu", "Zone", "z", "Zz", "q"), Value: -1.829587348619264e+17},
	}}
	checkSame(t, `sum(a)`, in, 0)
	checkSame(t, `sum(a > -Inf)`, in, 0) // any node above the selector keeps its order
}

// 2. Empty label values. The engine's snapshot (named → Builder.Labels)
// drops labels with an empty value; the instant path kept them in
// selectorNode (it now leaves them to the engine). In-tree leaf sources (dsl.Leaf.GroupLabels) never emit
// them, but SeriesSource / LeafSource are interfaces.

func TestInstantPathEmptyLabelValueDropped(t *testing.T) {
	in := namedSeries{"a": {
		{Labels: labels.FromStrings("app", "", "tenant_id", "t1"), Value: 1},
	}}
	checkSame(t, `a`, in, 0)
	checkSame(t, `a > 0`, in, 0)
}

func TestInstantPathEmptyLabelValueGroups(t *testing.T) {
	in := namedSeries{"a": {
		{Labels: labels.FromStrings("app", "", "tenant_id", "t1"), Value: 1},
		{Labels: labels.FromStrings("tenant_id", "t2"), Value: 2},
	}}
	checkSame(t, `sum by (app) (a)`, in, 0)
}

func TestInstantPathEmptyLabelValueMatches(t *testing.T) {
	in := namedSeries{
		"a": {{Labels: labels.FromStrings("app", "", "tenant_id", "t1"), Value: 1}},
		"b": {{Labels: labels.FromStrings("tenant_id", "t1"), Value: 2}},
	}
	checkSame(t, `a + b`, in, 0)
	checkSame(t, `a and b`, in, 0)
}

func TestInstantPathEmptyLabelValueDuplicate(t *testing.T) {
	// For PromQL these are two series of one label set: a > 0 fails with
	// "vector cannot contain metrics with the same labelset".
	in := namedSeries{"a": {
		{Labels: labels.FromStrings("app", "", "tenant_id", "t1"), Value: 1},
		{Labels: labels.FromStrings("tenant_id", "t1"), Value: 2},
	}}
	checkSame(t, `a > 0`, in, 0)
}

// 3. MaxSamples. The instant path compared the samples of its input with
// the limit; the engine counts what it holds at once: every operand's
// samples plus the result (and 1 per literal). The instant path now
// declines at nodes × input samples, a bound of the engine's count.

func TestInstantPathMaxSamplesBinop(t *testing.T) {
	in := namedSeries{
		"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 2}},
		"b": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 2}},
	}
	checkSame(t, `a + b`, in, 5) // engine peak 2+2+2 = 6 > 5; the input is 4
}

func TestInstantPathMaxSamplesScalarOperand(t *testing.T) {
	in := namedSeries{"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 2}, {Labels: labels.FromStrings("t", "3"), Value: 3}}}
	checkSame(t, `a > 0`, in, 3) // engine: 3 + 1 + 3
}

func TestInstantPathMaxSamplesSelfJoin(t *testing.T) {
	in := namedSeries{"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 2}}}
	checkSame(t, `a / a`, in, 5) // one series in the map, read twice by the engine
}

// 4. A context that is done: the engine fails, the instant path answered.
func TestInstantPathCanceledContext(t *testing.T) {
	in := namedSeries{"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fast, slow, _, fe, se := instantBothWays(ctx, `a > 0`, in, 0)
	if d := diffResults(fast, slow, fe, se); d != "" {
		t.Errorf("a > 0 with a canceled context: %s", d)
	}
}

// 5. Shapes the parser refuses never reach
// compileBinary's scalar cases with a set operator, and unary minus on a
// literal folds into it.
func TestInstantPathParserShapes(t *testing.T) {
	p := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	for _, q := range []string{`a and 1`, `1 and a`, `1 unless 2`, `1 > 2`, `a and bool b`, `a + bool b`, `sum(1)`, `a and on(x) group_left b`} {
		if _, err := p.ParseExpr(q); err == nil {
			t.Errorf("%s parses", q)
		}
	}
	in := namedSeries{"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: math.NaN()}}}
	for _, q := range []string{`-0`, `-1 * a`, `- -1`, `+a`, `-NaN`, `0x10 + a`, `1 > bool NaN`, `a == bool NaN`, `-0 < bool a`, `(a) != (a)`, `a unless on() a`, `a and ignoring(t) a`} {
		fast, slow, _, fe, se := instantBothWays(context.Background(), q, in, 0)
		if d := diffResults(fast, slow, fe, se); d != "" {
			t.Errorf("%s: %s", q, d)
		}
	}
}

// 6. Concurrency: one Querier, its plans and the input samples shared by
// many goroutines (as batches share them). Run with -race; the input must
// come back unchanged.
func TestInstantPathConcurrentSharedInput(t *testing.T) {
	in := namedSeries{}
	for _, n := range []string{"a", "b", "c"} {
		var v []Sample
		for i := range 50 {
			v = append(v, Sample{Labels: labels.FromStrings("tenant_id", fmt.Sprint(i%7), "app", fmt.Sprint(i)), Value: float64(i) - 20})
		}
		in[n] = v
	}
	snapshot := map[string][]Sample{}
	for n, v := range in {
		snapshot[n] = append([]Sample(nil), v...)
	}
	q := NewQuerier(QuerierOptions{Series: in})
	queries := []string{`a > 0`, `a + on(tenant_id, app) b`, `sum by (tenant_id) (a) / sum by (tenant_id) (b)`, `a unless b < 0`, `(a > 3) and on(app) (c < 10)`, `a * 2 > bool 3`}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				query := queries[(g+i)%len(queries)]
				e := &dsl.Expr{Query: query, Series: []string{"a", "b", "c"}, Type: parser.ValueTypeVector}
				if _, err := q.Query(context.Background(), e, instantTS); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for n, v := range in {
		for i := range v {
			if !labels.Equal(v[i].Labels, snapshot[n][i].Labels) || !bitsEqual(v[i].Value, snapshot[n][i].Value) {
				t.Fatalf("input %s[%d] changed: %v → %v", n, i, snapshot[n][i], v[i])
			}
		}
	}
}

// 7. Empty results, a name no series has,
// scalars, and literals written as durations.
func TestInstantPathEmptyAndScalarResults(t *testing.T) {
	in := namedSeries{"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}}}
	for _, q := range []string{`a > 100`, `zzz`, `sum(zzz)`, `a and zzz`, `zzz unless a`, `1 + 2`, `(NaN)`, `1 == bool 1`, `a > 1m`} {
		fast, slow, _, fe, se := instantBothWays(context.Background(), q, in, 0)
		if d := diffResults(fast, slow, fe, se); d != "" {
			t.Errorf("%s: %s", q, d)
		}
	}
}

func TestInstantPathMaxSamplesScalarPlan(t *testing.T) {
	// A scalar plan returns before the limit is looked at; the engine holds
	// 1 + 1 + 1 samples for 1 + 2.
	checkSame(t, `1 + 2`, namedSeries{}, 2)
	checkSame(t, `(1 + 2) * 3`, namedSeries{}, 4)
}

// ---------------------------------------------------------------------
// The probes below come from a second review that tried
// to break it. Each test runs queries both ways through Querier.QueryWith
// (or Batch) and fails when the instant path and the engine differ. Far
// times and recorded series failed before their fixes; the others held.

// instantBothWaysAt is instantBothWays with querier options and an evaluation
// time of the caller's choosing.
func instantBothWaysAt(ctx context.Context, query string, in namedSeries, opts QuerierOptions, ts time.Time) (fast, slow Result, planned bool, fastErr, slowErr error) {
	p := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	parsed, err := p.ParseExpr(query)
	typ := parser.ValueTypeVector
	if err == nil {
		typ = parsed.Type()
		planned = compileInstant(parsed) != nil
	}
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	e := &dsl.Expr{Query: query, Series: names, Type: typ}
	opts.Series = in
	withPath := NewQuerier(opts)
	engineOnly := NewQuerier(opts)
	engineOnly.plans = nil
	fast, fastErr = withPath.Query(ctx, e, ts)
	slow, slowErr = engineOnly.Query(ctx, e, ts)
	return
}

// checkAt fails when the two ways differ; a query the instant path
// does not plan is still compared (it must then be the engine's anyway).
func checkAt(t *testing.T, query string, in namedSeries, opts QuerierOptions, ts time.Time) {
	t.Helper()
	fast, slow, _, fe, se := instantBothWaysAt(context.Background(), query, in, opts, ts)
	if d := diffResults(fast, slow, fe, se); d != "" {
		t.Errorf("%s at %s\n  input %v\n  %s", query, ts.Format(time.RFC3339), in, d)
	}
}

func mustPlanned(t *testing.T, query string) {
	t.Helper()
	p := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	e, err := p.ParseExpr(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if compileInstant(e) == nil {
		t.Fatalf("%s: not planned: the probe checks nothing", query)
	}
}

// ---------------------------------------------------------------------
// A. Evaluation times outside int64 nanoseconds (before 1678, after
// 2262). QueryWith serves the samples at ts.UnixMilli(), but the engine
// evaluates at timeMilliseconds(ts) = ts.UnixNano()/1e6, which overflows:
// the engine finds no sample (an empty vector) where the instant path
// answers with the samples. /api/v1/query accepts times up to ±200,000
// years (web/promapi.go parseTime), backtests take any time.

func TestInstantPathFarTimes(t *testing.T) {
	in := namedSeries{
		"a": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 2}},
		"b": {{Labels: labels.FromStrings("t", "1"), Value: 4}},
	}
	for _, ts := range []time.Time{
		time.Date(2262, 4, 11, 23, 47, 16, 855_000_000, time.UTC), // first ms past int64 ns
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		for _, q := range []string{`a > 0`, `sum(a)`, `a / b`, `a unless b`} {
			mustPlanned(t, q)
			checkAt(t, q, in, QuerierOptions{}, ts)
		}
	}
}

// ---------------------------------------------------------------------
// C. plainLabels: label names around "__name__" in byte order. A name the
// instant path accepts must sort after "__name__", or the engine (which
// sorts series with __name__) adds them in another order: max/min of ±0
// and the sums below tell the orders apart.

func TestInstantPathLabelNamesAroundMetricName(t *testing.T) {
	names := []string{
		"_", "__", "___", "_A", "_Z", "_0", "_.", "_x", "_a", "_~", "a", "z", "~",
		"é", "ä", "日本", "a-b", "a.b", "a b", "a\x00", "A", "Z", "0", ".", "-", " ",
		"\x7f", "\xff", "\xc3", "__name", "__name__x", "__nam", "__type__", "__unit__",
	}
	sums := []float64{-1.8735013540549517e-15, 4.850286838831153e-15, -11504, -1.829587348619264e+17}
	for _, n := range names {
		in := namedSeries{"a": {
			{Labels: labels.EmptyLabels(), Value: 0},
			{Labels: labels.FromStrings(n, "v"), Value: negZero},
		}}
		for _, q := range []string{`max(a)`, `min(a)`, `max(a > -1)`, `max by (zz) (a)`, `max without (zz) (a)`} {
			checkAt(t, q, in, QuerierOptions{}, instantTS)
		}
		in = namedSeries{"a": {
			{Labels: labels.EmptyLabels(), Value: sums[0]},
			{Labels: labels.FromStrings(n, "v"), Value: sums[1]},
			{Labels: labels.FromStrings(n, "v", n+"z", "w"), Value: sums[2]},
			{Labels: labels.FromStrings(n, "v", n+"z", "w", n+"zz", "q"), Value: sums[3]},
		}}
		for _, q := range []string{`sum(a)`, `avg(a)`, `sum(a * 1)`, `a + 0`, `count(a)`} {
			checkAt(t, q, in, QuerierOptions{}, instantTS)
		}
	}
}

// Label values of every byte: the snapshot keeps them as they are.
func TestInstantPathLabelValues(t *testing.T) {
	vals := []string{"\x00", "\xff", "\xfe", " ", "é", strings.Repeat("x", 300), strings.Repeat("x", 254), strings.Repeat("x", 255)}
	var v []Sample
	for i, s := range vals {
		v = append(v, Sample{Labels: labels.FromStrings("t", s), Value: float64(i) * 1e-17})
		v = append(v, Sample{Labels: labels.FromStrings("t", s, "u", s), Value: negZero})
	}
	v = append(v, Sample{Labels: labels.EmptyLabels(), Value: 1e17})
	in := namedSeries{"a": v, "b": v}
	for _, q := range []string{`sum(a)`, `max(a)`, `min(a)`, `sum by (t) (a)`, `a - b`, `a - on(t, u) b`, `a and on(u) b`, `count without (u) (a)`} {
		checkAt(t, q, in, QuerierOptions{}, instantTS)
	}
}

// ---------------------------------------------------------------------
// D. Label sets that break labels.Labels' invariants (duplicate names,
// unsorted): SeriesSource and LeafSource are interfaces, so an
// implementation may hand them over. The instant path accepts them.

func TestInstantPathInvalidLabelSets(t *testing.T) {
	dup := labels.New(labels.Label{Name: "t", Value: "1"}, labels.Label{Name: "t", Value: "2"})
	sb := labels.NewScratchBuilder(2)
	sb.Add("z", "1")
	sb.Add("app", "x")
	unsorted := sb.Labels() // no Sort
	sb.Reset()
	sb.Add("z", "2")
	sb.Add("app", "x")
	unsorted2 := sb.Labels()
	in := namedSeries{
		"a": {
			{Labels: dup, Value: 1},
			{Labels: labels.FromStrings("t", "1"), Value: 2},
			{Labels: unsorted, Value: negZero},
			{Labels: unsorted2, Value: 0},
			{Labels: labels.FromStrings("app", "x", "z", "1"), Value: 5},
		},
		"b": {
			{Labels: labels.FromStrings("t", "2"), Value: 4},
			{Labels: unsorted, Value: 8},
		},
	}
	for _, q := range []string{`a`, `a > 0`, `a * 1`, `sum by (t) (a)`, `sum by (app) (a)`, `max(a)`, `min(a)`,
		`sum without (t) (a)`, `a + on(t) b`, `a + ignoring(z) b`, `a and on(app) b`, `a unless b`, `count by (z) (a)`} {
		checkAt(t, q, in, QuerierOptions{}, instantTS)
	}
}

// ---------------------------------------------------------------------
// E. Grouping: duplicate names, names no series has, names sorting
// before __name__ in by/without, without of every label, UTF-8 names.

func TestInstantPathGrouping(t *testing.T) {
	in := namedSeries{"a": {
		{Labels: labels.EmptyLabels(), Value: 1},
		{Labels: labels.FromStrings("app", "x"), Value: negZero},
		{Labels: labels.FromStrings("app", "x", "tenant_id", "t1"), Value: 3},
		{Labels: labels.FromStrings("tenant_id", "t1"), Value: math.NaN()},
		{Labels: labels.FromStrings("tenant_id", "t2", "é", "1"), Value: math.Inf(1)},
		{Labels: labels.FromStrings("_x", "1", "tenant_id", "t2"), Value: math.Inf(-1)},
		{Labels: labels.FromStrings("_x", "1"), Value: 1e308},
	}}
	for _, g := range []string{
		"by (app, app)", "without (app, app)", "by (zzz)", "without (zzz)", "by (Region)", "without (Region)",
		"by (_x)", "without (_x)", "by (\"é\")", "without (\"é\")", "without (app, tenant_id, _x, \"é\")",
		"by ()", "without ()", "by (tenant_id, app)", "by (app, tenant_id)", "by (_x, app)",
	} {
		for _, op := range []string{"sum", "avg", "min", "max", "count"} {
			q := fmt.Sprintf("%s %s (a)", op, g)
			mustPlanned(t, q)
			checkAt(t, q, in, QuerierOptions{}, instantTS)
			q = fmt.Sprintf("%s %s (a * 2) > bool 0", op, g)
			checkAt(t, q, in, QuerierOptions{}, instantTS)
		}
	}
}

// ---------------------------------------------------------------------
// F. on()/ignoring(): the lhs carries labels absent from the match list,
// names listed twice or absent everywhere, and comparisons whose first
// match is dropped before a second lhs sample of the same signature.

func TestInstantPathMatching(t *testing.T) {
	in := namedSeries{
		"a": {
			{Labels: labels.FromStrings("app", "x", "tenant_id", "t1", "zone", "z"), Value: 1},
			{Labels: labels.FromStrings("app", "y", "tenant_id", "t2"), Value: 5},
			{Labels: labels.FromStrings("tenant_id", "t3", "_x", "1"), Value: negZero},
		},
		"b": {
			{Labels: labels.FromStrings("tenant_id", "t1", "zone", "q"), Value: 2},
			{Labels: labels.FromStrings("app", "q", "tenant_id", "t2"), Value: 3},
			{Labels: labels.FromStrings("tenant_id", "t3"), Value: 0},
		},
		"c": {
			{Labels: labels.FromStrings("app", "x", "tenant_id", "t1"), Value: 1},
			{Labels: labels.FromStrings("app", "y", "tenant_id", "t1"), Value: 9},
		},
	}
	for _, m := range []string{"on(tenant_id)", "on(tenant_id, tenant_id)", "ignoring(app, zone, _x)", "ignoring(app, zone, _x, nothing)", "on(zzz, tenant_id)", "on(_x, tenant_id)", "ignoring(Region, app, zone, _x)"} {
		for _, op := range []string{"+", "/", ">", "<", "== bool", "!= bool", "and", "unless", "atan2", "^", "%"} {
			q := fmt.Sprintf("a %s %s b", op, m)
			checkAt(t, q, in, QuerierOptions{}, instantTS)
			q = fmt.Sprintf("sum by (tenant_id, app) (a) %s %s b", op, m)
			checkAt(t, q, in, QuerierOptions{}, instantTS)
		}
	}
	// c has two samples per tenant: one-to-one on(tenant_id) is many-to-one
	// for the engine even when the comparison drops the first.
	for _, q := range []string{`c > on(tenant_id) b`, `c < on(tenant_id) b`, `c > bool on(tenant_id) b`, `b > on(tenant_id) c`, `c and on(tenant_id) b`, `b unless on(tenant_id) c`} {
		checkAt(t, q, in, QuerierOptions{}, instantTS)
	}
}

// ---------------------------------------------------------------------
// G. MaxSamples: every limit from 1 up, over shapes whose engine peak
// grows differently (nested binops, set ops, aggregations, literals, one
// selector read several times, stale markers and duplicate-free inputs).

func TestInstantPathMaxSamplesSweep(t *testing.T) {
	stale := math.Float64frombits(0x7ff0000000000002)
	in := namedSeries{
		"a": {
			{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 2},
			{Labels: labels.FromStrings("t", "3"), Value: stale}, {Labels: labels.FromStrings("t", "4"), Value: 4},
		},
		"b": {{Labels: labels.FromStrings("t", "1"), Value: 1}, {Labels: labels.FromStrings("t", "2"), Value: 3}},
		"c": {{Labels: labels.FromStrings("t", "9"), Value: stale}},
	}
	queries := []string{
		`a`, `a > 0`, `a + b`, `a / a`, `(a + a) + a`, `a + (a + a)`, `((a + a) + (a + a)) + a`,
		`a and b`, `a unless b`, `(a unless b) and a`, `sum(a)`, `sum by (t) (a)`, `sum(a) + sum(a)`,
		`sum(a + b) > 1`, `a > (1 + 2)`, `(1 + 2) < a`, `1 + 2`, `(1 + 2) * (3 + 4)`, `((1))`, `1`,
		`count(a) > bool count(b)`, `a * 2 > bool 3`, `max(a) + on() max(b)`, `c`, `c + 1`, `sum(c)`, `zzz`,
		`a + on(t) b + on(t) a`, `sum(sum(sum(a)))`, `avg by (t) (a > 0) / avg by (t) (b)`,
	}
	for _, q := range queries {
		for limit := 1; limit <= 80; limit++ {
			checkAt(t, q, in, QuerierOptions{MaxSamples: limit}, instantTS)
		}
	}
}

// ---------------------------------------------------------------------
// H. Leaves: a LeafSource with statements and paths, NoData, a leaf that
// is empty and one that has samples; and a series source that also
// answers for a leaf name.

type sampleLeaves map[string][]Sample

func (l sampleLeaves) EvalLeaves(_ context.Context, _ time.Time, leaves []*dsl.Leaf) (LeafResult, error) {
	out := LeafResult{Vectors: make([][]Sample, len(leaves)), Statements: []string{"SELECT leaves"}}
	out.Paths = make([]LeafPath, len(leaves))
	for i, lf := range leaves {
		out.Vectors[i] = l[lf.Name]
		out.Paths[i] = LeafPath{Leaf: lf.Name, Path: "full"}
	}
	return out, nil
}

func TestInstantPathLeavesStatementsPathsNoData(t *testing.T) {
	src := sampleLeaves{
		"__leaf_0": {{Labels: labels.FromStrings("tenant_id", "t1"), Value: 3}, {Labels: labels.FromStrings("tenant_id", "t2"), Value: negZero}},
		"__leaf_1": {{Labels: labels.FromStrings("tenant_id", "t1"), Value: 2}},
	}
	series := namedSeries{"rec": {{Labels: labels.FromStrings("tenant_id", "t1"), Value: 7}}}
	for _, c := range []struct {
		query  string
		leaves []string
	}{
		{`__leaf_0 > 1`, []string{"__leaf_0"}},
		{`__leaf_0 / __leaf_1`, []string{"__leaf_0", "__leaf_1"}},
		{`__leaf_2 > 1`, []string{"__leaf_2"}}, // no samples: NoData
		{`sum(__leaf_2) + 1`, []string{"__leaf_2"}},
		{`__leaf_0 and rec`, []string{"__leaf_0"}},
		{`1 + 2`, nil},
		{`rec * 2`, nil},
	} {
		mustPlanned(t, c.query)
		var leaves []*dsl.Leaf
		for _, n := range c.leaves {
			leaves = append(leaves, &dsl.Leaf{Name: n})
		}
		e := &dsl.Expr{Query: c.query, Leaves: leaves, Series: []string{"rec"}}
		withPath := NewQuerier(QuerierOptions{Source: src, Series: series})
		engineOnly := NewQuerier(QuerierOptions{Source: src, Series: series})
		engineOnly.plans = nil
		fast, fe := withPath.Query(context.Background(), e, instantTS)
		slow, se := engineOnly.Query(context.Background(), e, instantTS)
		if d := diffResults(fast, slow, fe, se); d != "" {
			t.Errorf("%s: %s", c.query, d)
		}
		if fmt.Sprint(fast.Paths) != fmt.Sprint(slow.Paths) || fmt.Sprint(fast.Statements) != fmt.Sprint(slow.Statements) {
			t.Errorf("%s: paths/statements %v %v vs %v %v", c.query, fast.Paths, fast.Statements, slow.Paths, slow.Statements)
		}
	}
}

// ---------------------------------------------------------------------
// I. Batch: batch queriers share plans; many goroutines query one batch
// (as the Coalescer's groups do) while others plan new texts. Run with
// -race. Each answer must equal the engine's over the same batch.

func TestInstantPathBatchConcurrent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src := sampleLeaves{}
	for i := range 3 {
		var v []Sample
		for j := range 40 {
			v = append(v, Sample{Labels: labels.FromStrings("app", fmt.Sprint(j%5), "tenant_id", fmt.Sprint(j)), Value: r.NormFloat64() * 1e6})
		}
		src[fmt.Sprintf("__leaf_%d", i)] = v
	}
	queries := []string{
		`__leaf_0 > 0`, `sum by (app) (__leaf_0) / sum by (app) (__leaf_1)`, `__leaf_0 + on(tenant_id, app) __leaf_2`,
		`avg(__leaf_1)`, `__leaf_2 unless __leaf_0 < 0`, `max by (app) (__leaf_0 * __leaf_1) > bool 1e9`,
	}
	var exprs []*dsl.Expr
	for _, q := range queries {
		var leaves []*dsl.Leaf
		for i := range 3 {
			n := fmt.Sprintf("__leaf_%d", i)
			if strings.Contains(q, n) {
				leaves = append(leaves, &dsl.Leaf{Name: n, Func: n, Selector: dsl.Selector{Field: n}})
			}
		}
		exprs = append(exprs, &dsl.Expr{Query: q, Leaves: leaves})
	}
	withPath := NewQuerier(QuerierOptions{Source: src})
	engineOnly := NewQuerier(QuerierOptions{Source: src})
	engineOnly.plans = nil
	ctx := context.Background()
	fastQ := withPath.Batch(ctx, instantTS, exprs)
	slowQ := engineOnly.Batch(ctx, instantTS, exprs)
	want := make([]Result, len(exprs))
	for i, e := range exprs {
		var err error
		if want[i], err = slowQ(ctx, e, instantTS, nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fails []string
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				k := (g + i) % len(exprs)
				if i%7 == 0 {
					// a new text each time: planned outside the cache's lock
					e := &dsl.Expr{Query: fmt.Sprintf("__leaf_0 > %d", g*1000+i), Leaves: exprs[0].Leaves}
					if _, err := fastQ(ctx, e, instantTS, nil); err != nil {
						mu.Lock()
						fails = append(fails, err.Error())
						mu.Unlock()
					}
					continue
				}
				got, err := fastQ(ctx, exprs[k], instantTS, nil)
				if d := diffResults(got, want[k], err, nil); d != "" {
					mu.Lock()
					fails = append(fails, exprs[k].Query+": "+d)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for _, f := range fails[:min(len(fails), 5)] {
		t.Error(f)
	}
}

// ---------------------------------------------------------------------
// J. Literals the parser folds or reads specially.

func TestInstantPathLiterals(t *testing.T) {
	in := namedSeries{"a": {
		{Labels: labels.FromStrings("t", "1"), Value: 0},
		{Labels: labels.FromStrings("t", "2"), Value: negZero},
		{Labels: labels.FromStrings("t", "3"), Value: math.NaN()},
		{Labels: labels.FromStrings("t", "4"), Value: math.Inf(-1)},
		{Labels: labels.FromStrings("t", "5"), Value: 5e-324},
	}}
	for _, q := range []string{
		`a > 0x10`, `a > 010`, `a > 1e-400`, `a + 1e400`, `a * -0`, `-0 * a`, `a ^ -0`, `a % -0`, `a atan2 -0`, `-0 atan2 a`,
		`a > 1m`, `a > 1h30m`, `a > 1ms`, `a + -Inf`, `a + +Inf`, `-(1) * a`, `a + - - 1`, `a offset 0s`, `a offset -0s`,
		`a > bool -NaN`, `-NaN`, `2 ^ 3 ^ 2`, `-2 ^ 2`, `2 ^ -1 * a`, `a * (2 > bool 1)`, `(a) > (0)`, `a != a`, `a == bool a`,
		`a @ 0`, `a{}`, `{"a"}`, `{__name__="a"}`, `a{t!="1"}`, `a{__name__="a"}`,
	} {
		checkAt(t, q, in, QuerierOptions{}, instantTS)
	}
}

// ---------------------------------------------------------------------
// K. Many series: the order of Kahan sums and avg's switch to the
// incremental mean over hundreds of series with label names that sort
// just after __name__ ("_x") and far after it (UTF-8).

func TestInstantPathManySeriesOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	names := []string{"_x", "_y", "a", "b", "é", "zz"}
	for round := range 30 {
		seen := map[string]bool{}
		var v []Sample
		for range 200 {
			var kv []string
			for _, n := range names {
				if r.IntN(3) == 0 {
					kv = append(kv, n, fmt.Sprint(r.IntN(3)))
				}
			}
			lset := labels.FromStrings(kv...)
			if seen[lset.String()] {
				continue
			}
			seen[lset.String()] = true
			f := r.NormFloat64() * math.Pow(10, float64(r.IntN(600)-300))
			if r.IntN(10) == 0 {
				f = math.Copysign(1.7e308, r.NormFloat64())
			}
			v = append(v, Sample{Labels: lset, Value: f})
		}
		in := namedSeries{"a": v}
		for _, q := range []string{`sum(a)`, `avg(a)`, `sum by (_x) (a)`, `avg without (a) (a)`, `max(a)`, `min by (é) (a)`} {
			fast, slow, _, fe, se := instantBothWaysAt(context.Background(), q, in, QuerierOptions{}, instantTS)
			if d := diffResults(fast, slow, fe, se); d != "" {
				t.Errorf("round %d %s: %s", round, q, d)
			}
		}
	}
}

// ---------------------------------------------------------------------
// L. Recorded series and clocks. Recording rules keep __name__ in the
// samples they record (RecordingRule.evalSeries, Outputs.Series), and the
// DSL reads clocks through scalar(): neither ever takes the instant path.
// Not a discrepancy; the probe pins it so a change is seen.

func TestInstantPathRecordedSeries(t *testing.T) {
	// Recorded samples carry __name__; the snapshot serves them under the
	// selector's name, and so does the instant path, which drops it.
	rec := namedSeries{"rec": {
		{Labels: labels.FromStrings("__name__", "rec", "tenant_id", "t1"), Value: 2},
		{Labels: labels.FromStrings("__name__", "rec", "tenant_id", "t2"), Value: 0.5},
	}}
	parsed, err := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()}).ParseExpr(`rec > 1`)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := compileInstant(parsed).result(rec, 1000); !ok {
		t.Errorf("rec > 1 over recorded samples with __name__ left to the engine")
	}
	checkAt(t, `rec > 1`, rec, QuerierOptions{}, instantTS)
	checkAt(t, `sum(rec)`, rec, QuerierOptions{}, instantTS)
}

// TestInstantPlansAreBounded floods the plan cache with distinct query
// texts of the largest size an expression may have: it holds at most
// maxInstantPlanBytes of them, and a rule's text planned after the flood
// is planned again.
func TestInstantPlansAreBounded(t *testing.T) {
	c := newInstantPlans(parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()}))
	pad := strings.Repeat(" ", dsl.DefaultMaxBytes-40)
	for i := range 3 * maxInstantPlanBytes / dsl.DefaultMaxBytes {
		c.plan(fmt.Sprintf("a > %d%s", i, pad))
		if c.bytes > maxInstantPlanBytes || len(c.plans) > maxInstantPlans {
			t.Fatalf("after %d texts: %d bytes in %d plans", i+1, c.bytes, len(c.plans))
		}
	}
	if c.plan(`a > 1`) == nil {
		t.Fatal("a > 1 not planned after the flood")
	}
}
