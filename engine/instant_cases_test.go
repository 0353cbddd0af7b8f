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
	withPath := NewQuerier(QuerierOptions{Series: in, MaxSamples: maxSamples})
	engineOnly := NewQuerier(QuerierOptions{Series: in, MaxSamples: maxSamples})
	engineOnly.plans = nil
	fast, fastErr = withPath.Query(ctx, e, instantTS)
	slow, slowErr = engineOnly.Query(ctx, e, instantTS)
	return
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

func checkSame(t *testing.T, query string, in namedSeries, maxSamples int) {
	t.Helper()
	fast, slow, planned, fe, se := instantBothWays(context.Background(), query, in, maxSamples)
	if !planned {
		t.Fatalf("%s: not planned: the probe checks nothing", query)
	}
	if d := diffResults(fast, slow, fe, se); d != "" {
		t.Errorf("%s\n  input %v\n  %s", query, in, d)
	}
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				query := queries[(g+i)%len(queries)]
				e := &dsl.Expr{Query: query, Series: []string{"a", "b", "c"}, Type: parser.ValueTypeVector}
				if _, err := q.Query(context.Background(), e, instantTS); err != nil {
					t.Error(err)
					return
				}
			}
		}()
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
