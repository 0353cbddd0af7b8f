package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

// Pinned are evaluated for every seed before the generated expressions:
// cases that once differed or are easy to get wrong.
var Pinned = []string{
	// Regexps match characters, not bytes (租户 is 2 characters, 6 bytes).
	`count_over_time(events{tenant_id=~".."}[2h])`,
	`count_over_time(events{tenant_id=~"租."}[2h])`,
	`count_over_time(events{tenant_id=~".{6}"}[2h])`,
	`count_over_time(events{tenant_id=~"(?i)O'BRIEN"}[2h])`,
	// . matches a newline.
	`count_over_time(events{model=~"claude 3.\\(beta\\)"}[2h])`,
	`sum by (model) (count_over_time(events{model=~"claude.*"}[2h]))`,
	// Anchoring.
	`count_over_time(events{model=~"gpt-4o"}[2h])`,
	`count_over_time(events{model!~"gpt-4o|"}[2h])`,
	// Repeated grouping labels.
	`topk by (tenant_id, tenant_id) (2, count_over_time(events[2h]))`,
	// Every aggregate of one shape fused into one statement.
	`sum by (app_code) (rate(events[5m]) + increase(total_tokens[5m]) + min_over_time(latency_ms[5m]) + stddev_over_time(latency_ms[5m]) + quantile_over_time(0.5, cost[5m]) + avg_over_time(cost[5m]) + max_over_time(cost[5m]) + present_over_time(events[5m]))`,
	`absent_over_time(events{tenant_id="nobody"}[1s]) or sum(absent_over_time(events[2h]))`,
	// Windows reaching outside ClickHouse's DateTime (1970 to 2106), whose
	// bounds ClickHouse wraps around.
	`count_over_time(events[56y])`,
	`sum by (tenant_id) (sum_over_time(latency_ms[100y]))`,
	`count_over_time(events[1h] offset 4294967296s)`,
	`count_over_time(events[100y] offset 100y)`,
	// Thresholds: on a value many events have (the boundary is in), below
	// every value (groups of 0, not absent), above every value, and the
	// latency SLI's share of calls at or under 2 s.
	`sum by (tenant_id) (count_le_over_time(latency_ms[2h], 1000) + count_gt_over_time(latency_ms[2h], 1000))`,
	`count_le_over_time(latency_ms{status="ok"}[1h], -1) + count_gt_over_time(cost[1h], inf)`,
	`sum by (model) (count_le_over_time(cost[30m], 0.5)) / sum by (model) (count_over_time(cost[30m]))`,
	`count_le_over_time(latency_ms[5m], 2000) / count_over_time(latency_ms[5m])`,
}

// rangeFuncs are the range functions the generator writes: whether they
// take φ first and whether they accept the events selector. A test checks
// this list against dsl.RangeFunctionNames, so a new function must be
// added here.
var rangeFuncs = map[string]struct{ phi, events, threshold bool }{
	"count_over_time":    {events: true},
	"sum_over_time":      {},
	"avg_over_time":      {},
	"min_over_time":      {},
	"max_over_time":      {},
	"stddev_over_time":   {},
	"quantile_over_time": {phi: true},
	"p50":                {},
	"p75":                {},
	"p90":                {},
	"p95":                {},
	"p99":                {},
	"p999":               {},
	"rate":               {events: true},
	"increase":           {events: true},
	"absent_over_time":   {events: true},
	"present_over_time":  {events: true},
	"count_le_over_time": {threshold: true},
	"count_gt_over_time": {threshold: true},
}

// wantFeatures must each appear at least once per seed (Missing).
var wantFeatures = []string{
	"match:=", "match:!=", "match:=~", "match:!~", "offset", "events", "field",
	"agg:sum", "agg:min", "agg:max", "agg:avg", "agg:count", "agg:topk", "agg:bottomk", "agg:quantile",
	"by", "without", "no-grouping",
	"op:+", "op:-", "op:*", "op:/", "op:==", "op:!=", "op:>", "op:<", "op:>=", "op:<=", "bool",
	"op:and", "op:or", "op:unless", "on", "ignoring", "group_left", "group_right",
	"vector-scalar", "scalar-scalar", "literal", "abs", "clamp_min", "clamp_max", "time", "vector", "scalar", "neg",
}

// gnode is a generated expression and what the generator knows about it.
type gnode struct {
	s      string
	scalar bool
	// exact: every leaf below is exact (Options.Exact), so its values are
	// the same bit for bit in both backends.
	exact bool
	// unstable: an approximate value that may be a difference of nearly
	// equal values, so only an absolute error bound holds.
	unstable bool
	// mayNeg: values may be negative, so adding them may cancel.
	mayNeg bool
	// names is a superset of the label names a vector's samples carry.
	names []string
}

// lctx is the grouping leaves get: that of the nearest enclosing aggregation.
type lctx struct {
	grouped bool
	by      []string
}

// Options configure an expression generator.
type Options struct {
	// Rand is the source of randomness; the same seed gives the same
	// expressions.
	Rand *rand.Rand
	// Schema is the events' schema; the zero value means
	// dsl.DefaultSchema().
	Schema dsl.Schema
	// Exact reports whether the backends compute a leaf bit for bit; the
	// generator compares and divides only exact values. nil means every
	// leaf is exact.
	Exact func(*dsl.Leaf) bool
}

// Exprs generates random expressions over every feature of the language:
// every range function, matcher type, grouping, aggregation, operator,
// vector matching and function, windows and offsets on the edges of
// DateTime.
type Exprs struct {
	rng      *rand.Rand
	schema   dsl.Schema
	fields   []string
	features map[string]int
	exact    func(*dsl.Leaf) bool
}

// NewExprs returns a generator.
func NewExprs(opts Options) *Exprs {
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	if opts.Exact == nil {
		opts.Exact = func(*dsl.Leaf) bool { return true }
	}
	return &Exprs{rng: opts.Rand, schema: opts.Schema, fields: opts.Schema.FieldNames(), features: map[string]int{}, exact: opts.Exact}
}

// Missing lists the features and range functions not generated yet.
func (g *Exprs) Missing() []string {
	var m []string
	for _, f := range wantFeatures {
		if g.features[f] == 0 {
			m = append(m, f)
		}
	}
	for _, f := range dsl.RangeFunctionNames() {
		if g.features["fn:"+f] == 0 {
			m = append(m, "fn:"+f)
		}
	}
	return m
}

func (g *Exprs) feat(f string) { g.features[f]++ }

func (g *Exprs) chance(p float64) bool { return g.rng.Float64() < p }

func pick[T any](g *Exprs, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// Expr generates one expression: usually a vector, sometimes a scalar.
func (g *Exprs) Expr() string {
	depth := weighted(g.rng, []int{3, 5, 4, 2})
	if g.chance(0.1) {
		return g.scalar(depth, lctx{}, false).s
	}
	return g.vector(depth, lctx{}).s
}

func (g *Exprs) vector(depth int, ctx lctx) gnode {
	if depth <= 0 {
		return g.leaf(ctx)
	}
	switch weighted(g.rng, []int{2, 5, 5, 3, 2, 1, 1}) {
	case 0:
		return g.leaf(ctx)
	case 1:
		return g.aggregation(depth, ctx)
	case 2:
		return g.vectorBinary(depth, ctx)
	case 3:
		return g.vectorScalar(depth, ctx)
	case 4:
		return g.function(depth, ctx)
	case 5:
		g.feat("vector")
		s := g.scalar(depth-1, ctx, false)
		return gnode{s: "vector(" + s.s + ")", exact: s.exact, unstable: s.unstable, mayNeg: s.mayNeg}
	default:
		g.feat("neg")
		v := g.vector(depth-1, ctx)
		v.s = "-(" + v.s + ")"
		v.mayNeg = true
		return v
	}
}

func (g *Exprs) leaf(ctx lctx) gnode {
	names := dsl.RangeFunctionNames()
	fn := pick(g, names)
	info, ok := rangeFuncs[fn]
	if !ok {
		panic("the differential generator does not know the range function " + fn)
	}
	g.feat("fn:" + fn)
	var b strings.Builder
	b.WriteString(fn + "(")
	if info.phi {
		phi := pick(g, []float64{0, 1, 0.5, 0.25, 0.999, math.Round(g.rng.Float64()*1000) / 1000, g.rng.Float64()})
		b.WriteString(strconv.FormatFloat(phi, 'g', -1, 64) + ", ")
	}
	sel := pick(g, g.fields)
	if info.events && g.chance(0.5) {
		sel = dsl.EventsSelector
		g.feat("events")
	} else {
		g.feat("field")
	}
	b.WriteString(sel)
	var eqNames []string
	if n := weighted(g.rng, []int{7, 7, 4, 2}); n > 0 {
		ms := make([]string, n)
		for i := range ms {
			var eq string
			ms[i], eq = g.matcher()
			if eq != "" {
				eqNames = append(eqNames, eq)
			}
		}
		b.WriteString("{" + strings.Join(ms, ", ") + "}")
	}
	w := pick(g, windows)
	switch p := g.rng.Float64(); {
	case p < 0.02:
		w = pick(g, []time.Duration{56 * 365 * 24 * time.Hour, 100 * 365 * 24 * time.Hour}) // before 1970
	case p < 0.3:
		w = time.Duration(1+g.rng.IntN(7200)) * time.Second
	}
	b.WriteString("[" + PromDuration(w) + "]")
	if g.chance(0.25) {
		g.feat("offset")
		o := pick(g, offsets[1:])
		switch p := g.rng.Float64(); {
		case p < 0.03:
			o = pick(g, []time.Duration{1 << 32 * time.Second, 60 * 365 * 24 * time.Hour}) // before 1970
		case p < 0.3:
			o = time.Duration(1+g.rng.IntN(3600)) * time.Second
		}
		b.WriteString(" offset " + PromDuration(o))
	}
	if info.threshold {
		b.WriteString(", " + g.threshold())
	}
	b.WriteString(")")
	n := gnode{s: b.String(), exact: true}
	// Exactness comes from the parsed leaf, as the comparison decides it.
	if e, err := dsl.Parse(n.s, dsl.Options{Schema: g.schema}); err == nil && len(e.Leaves) == 1 {
		n.exact = g.exact(e.Leaves[0])
	}
	if ctx.grouped {
		n.names = slices.Clone(ctx.by)
	} else {
		n.names = sortedSet(eqNames)
	}
	return n
}

// threshold returns the threshold of count_le_over_time or
// count_gt_over_time: mostly a value that many events have (latencies of
// round hundreds, costs of eighths and of four decimals, zeros), so the
// boundary is tested; below and above every value; the infinities; and a
// subnormal, which ClickHouse 18.16 cannot read as a decimal.
func (g *Exprs) threshold() string {
	var t float64
	switch p := g.rng.IntN(20); {
	case p < 6:
		t = float64(100 * g.rng.IntN(20))
	case p < 9:
		t = float64(g.rng.IntN(800)) / 8
	case p < 12:
		t = float64(g.rng.IntN(10000)) / 10000
	case p < 14:
		t = pick(g, []float64{0, -1, -0.5})
	case p < 16:
		t = float64(g.rng.IntN(8000))
	case p < 17:
		t = pick(g, []float64{1e9, math.Inf(1), math.Inf(-1), 5e-324})
	default:
		t = g.rng.Float64() * 100
	}
	switch {
	case math.IsInf(t, 1):
		return pick(g, []string{"Inf", "+Inf", "inf"})
	case math.IsInf(t, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(t, 'g', -1, 64)
}

// matcher returns a matcher and, for an equality matcher on a non-empty
// value (which labels an ungrouped leaf), its label name.
func (g *Exprs) matcher() (string, string) {
	l := pick(g, g.schema.Labels)
	values := labelValues[l]
	switch g.rng.IntN(4) {
	case 0, 1:
		op := "="
		if g.rng.IntN(2) == 1 {
			op = "!="
		}
		g.feat("match:" + op)
		v := pick(g, values)
		switch g.rng.IntN(6) {
		case 0:
			v = ""
		case 1:
			v = pick(g, []string{"nope", strings.ToUpper(pick(g, values)), "gpt", "a"})
		}
		eq := ""
		if op == "=" && v != "" {
			eq = l
		}
		return l + op + strconv.Quote(v), eq
	default:
		op := "=~"
		if g.rng.IntN(2) == 1 {
			op = "!~"
		}
		g.feat("match:" + op)
		return l + op + strconv.Quote(g.regex(values)), ""
	}
}

// regex returns a regular expression over a label's values, often one whose
// meaning changes without anchoring.
func (g *Exprs) regex(values []string) string {
	v := pick(g, values)
	w := pick(g, values)
	// A prefix and a suffix of whole characters, as literal text.
	r := []rune(v)
	prefix, suffix := regexp.QuoteMeta(v), regexp.QuoteMeta(v)
	if len(r) > 2 {
		prefix = regexp.QuoteMeta(string(r[:1+g.rng.IntN(len(r)-1)]))
		suffix = regexp.QuoteMeta(string(r[len(r)-2:]))
	}
	switch g.rng.IntN(19) {
	case 0:
		return v // gpt-4o must not match gpt-4o-mini
	case 1:
		return regexp.QuoteMeta(v)
	case 2:
		return prefix + ".*"
	case 3:
		return prefix // a prefix matches nothing once anchored
	case 4:
		return ".*" + suffix
	case 5:
		return v + "|" + w
	case 6:
		return v + "|"
	case 7:
		return ""
	case 8:
		return pick(g, []string{".*", ".+"})
	case 9:
		return pick(g, []string{"zz.*|nope", "nope"})
	case 10:
		return "(?i)" + strings.ToUpper(v)
	case 11:
		return "[a-g].*"
	case 12:
		return pick(g, []string{"a", "o", "4", "gpt-4o(-mini)?", "gpt-4.1", "gpt-4.\\d"})
	case 13:
		return ".*" + prefix + ".*"
	case 14:
		return "(" + v + "|" + w + ")"
	case 15:
		// Characters, not bytes: 租户 is two characters of three bytes.
		return pick(g, []string{"..", ".{2}", "租.", "\\p{Han}+", "[^a-z]+", ".{4,6}"})
	case 16:
		return pick(g, []string{"(?i)gpt.*", ".*-mini", "gpt-4o|.*mini", "(gpt|claude).*", "a.*|b.*", "(?i)O'BRIEN|acme", "claude.*", "claude 3.\\(beta\\)"})
	case 17:
		return "(?i)" + strings.ToUpper(prefix) + ".*"
	default:
		return "[^a]*"
	}
}

func (g *Exprs) aggregation(depth int, _ lctx) gnode {
	op := pick(g, []string{"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile"})
	var grouping string
	inner := lctx{grouped: true}
	var byNames, without []string
	switch p := g.rng.IntN(20); {
	case p < 11:
		g.feat("by")
		byNames = g.labelSubset(0, 3)
		if g.chance(0.05) && len(byNames) > 0 {
			byNames = append(byNames, byNames[0]) // by (a, a)
		}
		grouping = "by (" + strings.Join(byNames, ", ") + ")"
		inner.by = sortedSet(byNames)
	case p < 16:
		g.feat("without")
		without = g.labelSubset(1, 4)
		grouping = "without (" + strings.Join(without, ", ") + ")"
		for _, l := range g.schema.Labels {
			if !slices.Contains(without, l) {
				inner.by = append(inner.by, l)
			}
		}
		sort.Strings(inner.by)
	default:
		g.feat("no-grouping")
	}
	v := g.vector(depth-1, inner)
	if (op == "topk" || op == "bottomk") && !v.exact {
		// Which samples topk keeps is not continuous in their values.
		op = "max"
	}
	g.feat("agg:" + op)
	param := ""
	switch op {
	case "topk", "bottomk":
		param = strconv.Itoa(g.rng.IntN(4)) + ", "
	case "quantile":
		param = strconv.FormatFloat(pick(g, []float64{0, 0.5, 0.9, 1, math.Round(g.rng.Float64()*100) / 100}), 'g', -1, 64) + ", "
	}
	n := gnode{exact: v.exact, mayNeg: v.mayNeg}
	// Adding (or interpolating between) values of both signs may cancel.
	n.unstable = v.unstable || (!v.exact && v.mayNeg && (op == "sum" || op == "avg" || op == "quantile"))
	switch {
	case op == "topk" || op == "bottomk":
		n.names = v.names
	case grouping == "":
	case without != nil:
		for _, l := range v.names {
			if !slices.Contains(without, l) {
				n.names = append(n.names, l)
			}
		}
	default:
		n.names = sortedSet(byNames)
	}
	if op == "count" {
		n.exact, n.unstable, n.mayNeg = true, false, false
	}
	switch {
	case grouping == "":
		n.s = op + "(" + param + v.s + ")"
	case g.chance(0.2):
		n.s = op + "(" + param + v.s + ") " + grouping
	default:
		n.s = op + " " + grouping + " (" + param + v.s + ")"
	}
	return n
}

func (g *Exprs) vectorBinary(depth int, ctx lctx) gnode {
	l := g.vector(depth-1, ctx)
	r := g.vector(depth-1, ctx)
	union := sortedSet(slices.Concat(l.names, r.names))
	n := gnode{names: union}
	var op, mod string
	switch p := g.rng.IntN(20); {
	case p < 6 && l.exact && r.exact:
		// Comparisons are not continuous: only between exact values.
		op = pick(g, []string{"==", "!=", ">", "<", ">=", "<="})
		if g.chance(0.5) {
			g.feat("bool")
			op += " bool"
		}
		n.exact = true
		n.mayNeg = !strings.HasSuffix(op, " bool") && (l.mayNeg || r.mayNeg)
	case p < 12:
		op = g.arith(l, r)
		n.exact, n.unstable, n.mayNeg = arithResult(op, l, r)
	default:
		op = pick(g, []string{"and", "or", "unless"})
		n.exact, n.unstable, n.mayNeg = l.exact, l.unstable, l.mayNeg
		if op == "or" {
			n.exact, n.unstable, n.mayNeg = l.exact && r.exact, l.unstable || r.unstable, l.mayNeg || r.mayNeg
		}
	}
	g.feat("op:" + strings.TrimSuffix(op, " bool"))
	switch op {
	case "and", "or", "unless":
		switch g.rng.IntN(4) {
		case 0:
			g.feat("on")
			mod = "on (" + strings.Join(g.labelSubset(0, 3), ", ") + ")"
		case 1:
			g.feat("ignoring")
			mod = "ignoring (" + strings.Join(g.labelSubset(1, 3), ", ") + ")"
		}
	default:
		var include []string
		mod, include = g.matching(l, r)
		n.names = sortedSet(slices.Concat(union, include))
	}
	n.s = "(" + l.s + ") " + op
	if mod != "" {
		n.s += " " + mod
	}
	n.s += " (" + r.s + ")"
	return n
}

// arithResult is what the generator knows of l op r: whether it is exact,
// whether it may be a cancelled difference of approximate values, and
// whether it may be negative.
func arithResult(op string, l, r gnode) (exact, unstable, mayNeg bool) {
	exact = l.exact && r.exact
	unstable = !exact && (l.unstable || r.unstable || op == "-" || (op == "+" && (l.mayNeg || r.mayNeg)))
	return exact, unstable, op == "-" || l.mayNeg || r.mayNeg
}

// arith picks an arithmetic operator; a possibly cancelled difference of
// approximate values is only added to, never scaled (see the absolute
// tolerance of storetest.Differential).
func (g *Exprs) arith(l, r gnode) string {
	op := pick(g, []string{"+", "-", "*", "/"})
	if (op == "*" || op == "/") && (l.unstable || r.unstable) {
		op = "+"
	}
	return op
}

// matching returns the vector matching of an arithmetic or comparison
// operator, usually one PromQL accepts for these operands (the unique side
// is unique on the matching labels), sometimes any.
func (g *Exprs) matching(l, r gnode) (string, []string) {
	union := sortedSet(slices.Concat(l.names, r.names))
	switch p := g.rng.IntN(20); {
	case p < 8:
		return "", nil
	case p < 11:
		g.feat("on")
		return "on (" + strings.Join(sortedSet(slices.Concat(union, g.labelSubset(0, 2))), ", ") + ")", nil
	case p < 13:
		g.feat("ignoring")
		return "ignoring (" + strings.Join(without(g.labelSubset(0, 3), union), ", ") + ")", nil
	case p < 17:
		// Many-to-one: the right side must be unique on the matching labels.
		side, one := "group_left", r
		if p >= 15 {
			side, one = "group_right", l
		}
		g.feat(side)
		var match string
		var on []string
		if g.chance(0.7) {
			g.feat("on")
			on = sortedSet(slices.Concat(one.names, g.labelSubset(0, 2)))
			match = "on (" + strings.Join(on, ", ") + ")"
		} else {
			g.feat("ignoring")
			match = "ignoring (" + strings.Join(without(g.labelSubset(0, 2), one.names), ", ") + ")"
		}
		include := without(g.labelSubset(0, 2), on)
		return match + " " + side + " (" + strings.Join(include, ", ") + ")", include
	default:
		// Anything: PromQL may reject it, and must then reject it on both sides.
		ls := g.labelSubset(0, 3)
		kw := pick(g, []string{"on", "ignoring"})
		g.feat(kw)
		mod := kw + " (" + strings.Join(ls, ", ") + ")"
		if g.chance(0.5) {
			side := pick(g, []string{"group_left", "group_right"})
			g.feat(side)
			var include []string
			if kw == "ignoring" || g.chance(0.3) {
				include = without(g.labelSubset(0, 1), ls)
			}
			return mod + " " + side + " (" + strings.Join(include, ", ") + ")", include
		}
		return mod, nil
	}
}

func (g *Exprs) vectorScalar(depth int, ctx lctx) gnode {
	g.feat("vector-scalar")
	v := g.vector(depth-1, ctx)
	n := gnode{names: v.names}
	var s gnode
	var op string
	if g.chance(0.4) {
		op = pick(g, []string{"==", "!=", ">", "<", ">=", "<="})
		g.feat("op:" + op)
		if v.exact {
			s = g.scalar(depth-1, ctx, true)
		} else {
			// An approximate value is compared only with a threshold it
			// cannot be within 1e-9 of but by a negligible chance.
			s = g.oddLiteral()
		}
		n.exact = v.exact
		if g.chance(0.5) {
			g.feat("bool")
			op += " bool"
		} else {
			// A filter keeps the vector's values.
			n.unstable, n.mayNeg = v.unstable, v.mayNeg
		}
	} else {
		s = g.scalar(depth-1, ctx, false)
		op = g.arith(v, s)
		g.feat("op:" + op)
		n.exact, n.unstable, n.mayNeg = arithResult(op, v, s)
	}
	if g.chance(0.5) {
		n.s = "(" + v.s + ") " + op + " (" + s.s + ")"
	} else {
		n.s = "(" + s.s + ") " + op + " (" + v.s + ")"
	}
	return n
}

func (g *Exprs) function(depth int, ctx lctx) gnode {
	fn := pick(g, []string{"abs", "clamp_min", "clamp_max"})
	g.feat(fn)
	v := g.vector(depth-1, ctx)
	if fn == "abs" {
		v.s = "abs(" + v.s + ")"
		v.mayNeg = false
		return v
	}
	v.s = fn + "(" + v.s + ", " + g.literal().s + ")"
	return v
}

// scalar generates a scalar expression; exact requires an exact one.
func (g *Exprs) scalar(depth int, ctx lctx, exact bool) gnode {
	if depth <= 0 {
		if g.chance(0.2) {
			g.feat("time")
			return gnode{s: "time()", scalar: true, exact: true}
		}
		return g.literal()
	}
	switch g.rng.IntN(5) {
	case 0:
		g.feat("time")
		return gnode{s: "time()", scalar: true, exact: true}
	case 1:
		return g.literal()
	case 2:
		g.feat("scalar-scalar")
		l, r := g.scalar(depth-1, ctx, exact), g.scalar(depth-1, ctx, exact)
		if l.exact && r.exact && g.chance(0.3) {
			op := pick(g, []string{"==", "!=", ">", "<", ">=", "<="})
			g.feat("op:" + op)
			g.feat("bool")
			return gnode{s: "(" + l.s + ") " + op + " bool (" + r.s + ")", scalar: true, exact: true}
		}
		op := g.arith(l, r)
		g.feat("op:" + op)
		n := gnode{s: "(" + l.s + ") " + op + " (" + r.s + ")", scalar: true}
		n.exact, n.unstable, n.mayNeg = arithResult(op, l, r)
		return n
	default:
		v := g.vector(depth-1, ctx)
		if exact && !v.exact {
			return g.literal()
		}
		g.feat("scalar")
		return gnode{s: "scalar(" + v.s + ")", scalar: true, exact: v.exact, unstable: v.unstable, mayNeg: v.mayNeg}
	}
}

// literal is a round number, such as thresholds are.
func (g *Exprs) literal() gnode {
	g.feat("literal")
	v := pick(g, []float64{0, 1, 2, 3, 5, 10, 100, 1000, 5000, 0.5, 0.05})
	return gnode{s: strconv.FormatFloat(v, 'g', -1, 64), scalar: true, exact: true}
}

// oddLiteral is a number with a random 53-bit mantissa.
func (g *Exprs) oddLiteral() gnode {
	g.feat("literal")
	v := g.rng.Float64() * math.Pow(10, float64(g.rng.IntN(6)))
	return gnode{s: strconv.FormatFloat(v, 'g', -1, 64), scalar: true, exact: true}
}

// labelSubset returns between lo and hi distinct labels in random order.
func (g *Exprs) labelSubset(lo, hi int) []string {
	ls := slices.Clone(g.schema.Labels)
	g.rng.Shuffle(len(ls), func(i, j int) { ls[i], ls[j] = ls[j], ls[i] })
	return ls[:lo+g.rng.IntN(hi-lo+1)]
}

func without(xs, drop []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

func sortedSet(xs []string) []string {
	out := slices.Clone(xs)
	sort.Strings(out)
	return slices.Compact(out)
}

// PromDuration writes a whole number of seconds as PromQL does: 1h7m13s.
func PromDuration(d time.Duration) string {
	sec := int64(d / time.Second)
	if sec == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		unit string
	}{{3600, "h"}, {60, "m"}, {1, "s"}} {
		if sec >= u.n {
			fmt.Fprintf(&b, "%d%s", sec/u.n, u.unit)
			sec %= u.n
		}
	}
	return b.String()
}
