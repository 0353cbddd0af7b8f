package dsl

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
)

// LeafPrefix starts the synthetic metric name that stands for a leaf in the
// rewritten query. User expressions may not use names with this prefix.
const LeafPrefix = "__leaf_"

// Options configure Parse.
type Options struct {
	// Schema maps the events table; the zero value means DefaultSchema().
	Schema Schema
	// Series reports whether name is an instant series that exists apart from
	// the events (a recording rule's output, ALERTS); nil means none does.
	Series func(name string) bool
	// Limits bound what the expression may cost; the zero value applies
	// the default caps on size and nesting and no window limit.
	Limits Limits
}

// Limits bound an expression. Rules, `check rules`, `callwatch query` and
// the query API all parse with the same Limits (config.Limits.DSL), so an
// expression one of them accepts is accepted by all.
type Limits struct {
	// MaxRange, when positive, is the longest window plus offset a range
	// function may look back: a guard against scanning too much. Whatever
	// it is, neither a window nor an offset may exceed MaxLookback.
	MaxRange time.Duration
	// MaxBytes bounds the expression's length (0: DefaultMaxBytes).
	MaxBytes int
	// MaxDepth bounds the nesting of brackets and of operators
	// (0: DefaultMaxDepth).
	MaxDepth int
	// MaxLeaves bounds the distinct range functions of one expression
	// (0: DefaultMaxLeaves): each is a column or a query in ClickHouse.
	MaxLeaves int
}

// The default caps of Limits, and the ceiling of every window and offset.
// They are far above any rule's needs and far below what makes the parser
// suffer (PromQL's parser spends seconds on tens of thousands of nested
// parentheses). MaxLookback keeps window plus offset within a
// time.Duration (292 years): [290y] offset 3y would wrap around.
const (
	DefaultMaxBytes  = 16 << 10
	DefaultMaxDepth  = 100
	DefaultMaxLeaves = 64
	MaxLookback      = 100 * 365 * 24 * time.Hour
)

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxLeaves <= 0 {
		l.MaxLeaves = DefaultMaxLeaves
	}
	return l
}

// Expr is a checked and planned expression.
type Expr struct {
	// Input is the expression as written.
	Input string
	// Query is the PromQL query in which every leaf is replaced by an
	// instant selector named Leaf.Name.
	Query string
	// Leaves are the pooled range functions the query needs, deduplicated.
	Leaves []*Leaf
	// Series are the names of instant series the query reads (see Options.Series).
	Series []string
	// Clocks are the values of the evaluation time the query reads
	// (month_progress), each served as a one-sample series named Clock.Name.
	Clocks []*Clock
	// Type is the result type: vector or scalar.
	Type parser.ValueType
	// Findings are what the static checks prove about the expression (see
	// lint.go): a binary operation whose sides never match, so the
	// expression is always empty. They are warnings in a rule file and
	// errors for an ad-hoc query.
	Findings []*Error
	// ResultLabels are the label names the result's samples carry, when
	// ResultKnown (the static checks could follow them): a template that
	// reads another label of the events reads an empty string.
	ResultLabels []string
	ResultKnown  bool
	// Unit is the unit of the result's values when it follows from
	// Schema.Units (ms for p95(latency_ms[5m]) > 5000), "" for a count,
	// a ratio, a rate or when unknown (see unit.go).
	Unit string
}

// Selector selects events: a field (or events) and label matchers.
type Selector struct {
	// Field is the selected field, or EventsSelector.
	Field string
	// Columns are the numeric columns whose sum is the field's value; nil for events.
	Columns []string
	// Matchers are the label matchers, sorted, never on __name__.
	Matchers []*labels.Matcher
}

// Leaf is a range function over pooled events: the unit a backend computes.
type Leaf struct {
	// Name is the synthetic series name standing for the leaf in Expr.Query.
	Name string
	// Func is the function as written (p95, rate, ...), for messages.
	Func string
	// Agg is the aggregate; Quantile is φ for AggQuantile, Threshold the
	// le or gt of AggCountLE and AggCountGT (a number, never NaN).
	Agg       Agg
	Quantile  float64
	Threshold float64
	Selector  Selector
	// Range is the window width w; Offset shifts the window into the past.
	Range, Offset time.Duration
	// By are the grouping labels (sorted); nil pools every event into one group.
	By []string
	// Grouped is true when the leaf sits under an aggregation; its groups are
	// then labelled by By only. Otherwise the single group is labelled by the
	// selector's equality matchers.
	Grouped bool
	// Pos is the leaf's position in Expr.Input.
	Pos posrange.PositionRange
	// Sub is the subquery the leaf sits in, nil outside one: the leaf is
	// then evaluated at every step of the subquery (see Subquery.Times).
	Sub *Subquery
	// Calendar, when set, restricts the window to the calendar month so
	// far in this zone (month_to_date, see calendar.go): Range is then the
	// longest the window can be, not its width.
	Calendar *time.Location
}

// Subquery is a subquery expr[Range:Step] offset Offset: its expression is
// evaluated at the times Times returns, and a range function of PromQL
// (max_over_time, …) reads the results.
type Subquery struct {
	Range, Step, Offset time.Duration
}

// DefaultSubqueryStep is the step of a subquery written without one
// ([1h:]), as Prometheus takes its evaluation interval.
const DefaultSubqueryStep = time.Minute

// Times returns the times, in unix milliseconds, at which a subquery read
// at ts evaluates its expression: the multiples of Step in
// [ts − Offset − Range, ts − Offset], as Prometheus aligns them.
func (s *Subquery) Times(ts time.Time) (start, end int64, step time.Duration) {
	step = s.Step
	if step <= 0 {
		step = DefaultSubqueryStep
	}
	iv := step.Milliseconds()
	end = ts.UnixMilli() - s.Offset.Milliseconds()
	from := end - s.Range.Milliseconds()
	start = iv * (from / iv)
	if start < from {
		start += iv
	}
	return start, end, step
}

// Window returns the leaf's window at evaluation time ts: events with
// from < time <= to are pooled.
func (l *Leaf) Window(ts time.Time) (from, to time.Time) {
	to = ts.Add(-l.Offset)
	if l.Calendar != nil {
		return MonthStart(to, l.Calendar), to
	}
	return to.Add(-l.Range), to
}

// Labels returns the label set of the single group of an ungrouped leaf:
// its non-empty equality matchers. It returns nil for grouped leaves.
func (l *Leaf) Labels() labels.Labels {
	if l.Grouped {
		return labels.EmptyLabels()
	}
	b := labels.NewScratchBuilder(len(l.Selector.Matchers))
	seen := map[string]bool{}
	for _, m := range l.Selector.Matchers {
		if m.Type == labels.MatchEqual && m.Value != "" && !seen[m.Name] {
			seen[m.Name] = true
			b.Add(m.Name, m.Value)
		}
	}
	b.Sort()
	return b.Labels()
}

// GroupLabels builds the label set of one group of a grouped leaf from the
// values of its By labels (same order as By); empty values are left out, as
// PromQL does.
func (l *Leaf) GroupLabels(values []string) labels.Labels {
	if !l.Grouped {
		return l.Labels()
	}
	b := labels.NewScratchBuilder(len(l.By))
	for i, name := range l.By {
		if values[i] != "" {
			b.Add(name, values[i])
		}
	}
	return b.Labels()
}

// Key identifies the leaf's computation: the same key means the same result.
func (l *Leaf) Key() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d|%v|%v|%s|", l.Agg, l.Quantile, l.Threshold, l.Selector.Field)
	for _, m := range l.Selector.Matchers {
		sb.WriteString(m.String())
		sb.WriteByte(',')
	}
	fmt.Fprintf(&sb, "|%d|%d|%v|%s", l.Range, l.Offset, l.Grouped, strings.Join(l.By, ","))
	if l.Sub != nil {
		fmt.Fprintf(&sb, "|sub %d:%d offset %d", l.Sub.Range, l.Sub.Step, l.Sub.Offset)
	}
	if l.Calendar != nil {
		fmt.Fprintf(&sb, "|month in %s", l.Calendar)
	}
	return sb.String()
}

// Error is a load-time error in an expression: where (line and column,
// 1-based, within the expression), what is wrong, and what to write instead.
type Error struct {
	Line, Col int
	Msg       string
	Hint      string
	// Limit names the limit the expression exceeds (max_window,
	// max_bytes, max_depth, max_leaves), empty when it exceeds none, so
	// the query API can count refusals by limit.
	Limit string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

func newError(input string, pos posrange.Pos, hint, format string, args ...any) *Error {
	line, col := LineCol(input, int(pos))
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// limitError marks err, an *Error, as exceeding the named limit.
func limitError(limit string, err error) error {
	if e := (*Error)(nil); errors.As(err, &e) {
		e.Limit = limit
	}
	return err
}

// LineCol converts a byte offset in s into a 1-based line and column. The
// column counts characters, not bytes, as editors and YAML positions do, so a
// label value such as "租户" before the error does not shift it.
func LineCol(s string, off int) (line, col int) {
	if off > len(s) {
		off = len(s)
	}
	if off < 0 {
		off = 0
	}
	line = 1 + strings.Count(s[:off], "\n")
	col = 1 + utf8.RuneCountInString(s[strings.LastIndexByte(s[:off], '\n')+1:off])
	return line, col
}

// Parse parses, checks and plans an expression. Every problem is reported
// here, at load time, as an *Error with a position and a hint.
func Parse(input string, opts Options) (*Expr, error) {
	if opts.Schema.Time == "" {
		opts.Schema = DefaultSchema()
	}
	opts.Limits = opts.Limits.withDefaults()
	if strings.TrimSpace(input) == "" {
		return nil, &Error{Line: 1, Col: 1, Msg: "empty expression", Hint: `write e.g. p95(latency_ms[5m]) > 5000`}
	}
	// The caps are checked before PromQL's parser runs: its cost grows
	// faster than the input with nesting.
	if len(input) > opts.Limits.MaxBytes {
		return nil, &Error{Line: 1, Col: 1, Msg: fmt.Sprintf("the expression is %d bytes long, more than the maximum of %d", len(input), opts.Limits.MaxBytes),
			Hint: "split it into recording rules and refer to their outputs by name", Limit: "max_bytes"}
	}
	if off := tooDeep(input, opts.Limits.MaxDepth); off >= 0 {
		return nil, limitError("max_depth", newError(input, posrange.Pos(off), "split it into recording rules, or remove redundant parentheses",
			"brackets are nested more than %d deep", opts.Limits.MaxDepth))
	}
	ast, err := newParser().ParseExpr(input)
	if err != nil {
		return nil, convertParseError(input, err)
	}
	c := &checker{input: input, opts: opts, byKey: map[string]*Leaf{}}
	ast, err = c.visit(ast, nil, 0)
	if err != nil {
		return nil, err
	}
	switch ast.Type() {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
	default:
		return nil, newError(input, ast.PositionRange().Start, "a rule's expression must give a number or a vector",
			"expression of type %s", ast.Type())
	}
	sort.Strings(c.series)
	findings, resultLabels, known := lint(input, ast, c.leaves)
	byName := make(map[string]*Leaf, len(c.leaves))
	for _, l := range c.leaves {
		byName[l.Name] = l
	}
	return &Expr{Input: input, Query: ast.String(), Leaves: c.leaves, Series: slices.Compact(c.series), Clocks: c.clocks, Type: ast.Type(),
		Findings: findings, ResultLabels: resultLabels, ResultKnown: known, Unit: unitOf(ast, byName, c.opts.Schema.Units)}, nil
}

func convertParseError(input string, err error) error {
	var perrs parser.ParseErrors
	if !errors.As(err, &perrs) || len(perrs) == 0 {
		return &Error{Line: 1, Col: 1, Msg: err.Error(), Hint: "check the expression against docs/language.md"}
	}
	pe := perrs[0]
	msg := pe.Err.Error()
	// Every parse error gets a hint: the specific ones below, else a pointer
	// to the shape of a valid expression.
	hint := "write an expression such as max by (tenant_id) (p95(latency_ms[5m])) > 5000 (see docs/language.md)"
	switch {
	case strings.Contains(msg, `in call to function "count_`), strings.Contains(msg, `argument(s) in call to "count_`):
		hint = "count_le_over_time and count_gt_over_time take a range selector and a threshold, a number literal: write e.g. count_le_over_time(latency_ms[5m], 2000)"
	case strings.Contains(msg, "expected type range vector"):
		hint = "range functions take a window: write e.g. p95(latency_ms[5m]) or count_over_time(events[5m])"
	case strings.Contains(msg, "@ modifier"):
		hint = "the @ modifier is not supported: write offset 1h inside the range function to look into the past"
	case strings.Contains(msg, "offset modifier"):
		hint = "put offset inside the range function, after the window: count_over_time(events[5m] offset 1h)"
	case strings.Contains(msg, "error parsing regexp"):
		hint = `regex matchers use RE2 syntax and are fully anchored, e.g. model=~"gpt-4o.*"`
	case strings.Contains(msg, "experimental"):
		// Prometheus suggests its own --enable-feature flag, which callwatch does not have.
		if i := strings.Index(msg, " and must be enabled"); i >= 0 {
			msg = msg[:i] + " in Prometheus and not enabled in callwatch"
		}
		hint = "callwatch does not enable Prometheus' experimental features; " + hintForFunction("")
	case strings.Contains(msg, "unknown function"), strings.Contains(msg, "is not enabled"):
		name := msg[strings.Index(msg, `"`)+1:]
		name = strings.TrimSuffix(strings.TrimSpace(name), `"`)
		if i := strings.IndexByte(name, '"'); i >= 0 {
			name = name[:i]
		}
		hint = hintForFunction(name)
	case strings.Contains(msg, "unexpected end of input"), strings.Contains(msg, "unclosed"):
		hint = "the expression is incomplete; check brackets and quotes"
	}
	line, col := LineCol(input, int(pe.PositionRange.Start))
	return &Error{Line: line, Col: col, Msg: msg, Hint: hint}
}

// grouping is the by/without of the nearest aggregation enclosing a node.
type grouping struct {
	by []string
	// without are the labels a without (...) names, kept to check them:
	// by already leaves them out.
	without []string
	pos     posrange.Pos
}

type checker struct {
	input  string
	opts   Options
	leaves []*Leaf
	byKey  map[string]*Leaf
	series []string
	// sub is the subquery being visited, nil outside one.
	sub *Subquery
	// calendar is the zone of the month_to_date being visited, nil
	// outside one; clocks are the month_progress clocks met so far.
	calendar *time.Location
	clocks   []*Clock
}

func (c *checker) errf(pos posrange.Pos, hint, format string, args ...any) error {
	return newError(c.input, pos, hint, format, args...)
}

func (c *checker) visit(node parser.Expr, g *grouping, depth int) (parser.Expr, error) {
	if depth++; depth > c.opts.Limits.MaxDepth {
		return nil, limitError("max_depth", c.errf(node.PositionRange().Start, "split it into recording rules and refer to their outputs by name",
			"operators and functions are nested more than %d deep", c.opts.Limits.MaxDepth))
	}
	var err error
	switch n := node.(type) {
	case *parser.NumberLiteral:
		return n, nil
	case *parser.StringLiteral:
		return n, nil
	case *parser.ParenExpr:
		n.Expr, err = c.visit(n.Expr, g, depth)
		return n, err
	case *parser.UnaryExpr:
		n.Expr, err = c.visit(n.Expr, g, depth)
		return n, err
	case *parser.BinaryExpr:
		if n.LHS, err = c.visit(n.LHS, g, depth); err != nil {
			return nil, err
		}
		n.RHS, err = c.visit(n.RHS, g, depth)
		return n, err
	case *parser.AggregateExpr:
		if n.Param != nil {
			if n.Param, err = c.visit(n.Param, nil, depth); err != nil {
				return nil, err
			}
		}
		inner := &grouping{pos: n.PosRange.Start}
		if n.Without {
			inner.without = n.Grouping
			for _, l := range c.opts.Schema.Labels {
				if !slices.Contains(n.Grouping, l) {
					inner.by = append(inner.by, l)
				}
			}
		} else {
			inner.by = slices.Clone(n.Grouping)
		}
		// by (a, a) groups by a: without Compact, leaves would label their
		// groups with a duplicated name, which is not a valid label set.
		sort.Strings(inner.by)
		inner.by = slices.Compact(inner.by)
		n.Expr, err = c.visit(n.Expr, inner, depth)
		return n, err
	case *parser.Call:
		switch n.Func.Name {
		case FuncMonthToDate:
			return c.monthToDate(n, g)
		case FuncMonthProgress:
			return c.monthProgress(n)
		}
		if rf, ok := rangeFuncs[n.Func.Name]; ok {
			return c.leaf(n, rf, g)
		}
		if !instantFuncs[n.Func.Name] {
			return nil, c.errf(n.PosRange.Start, hintForFunction(n.Func.Name), "function %q is not supported", n.Func.Name)
		}
		for i, a := range n.Args {
			if n.Args[i], err = c.visit(a, g, depth); err != nil {
				return nil, err
			}
		}
		return n, nil
	case *parser.VectorSelector:
		return n, c.instantSelector(n)
	case *parser.MatrixSelector:
		return nil, c.errf(n.PositionRange().Start,
			"put it inside a range function, e.g. count_over_time(events[5m]) or p95(latency_ms[5m])",
			"a range selector is not a result by itself")
	case *parser.SubqueryExpr:
		return nil, c.errf(n.PositionRange().Start,
			"read a subquery with a range function, e.g. max_over_time(p95(latency_ms[5m])[1h:5m])",
			"a subquery is not a result by itself")
	default:
		return nil, c.errf(node.PositionRange().Start, "", "%T is not supported here", node)
	}
}

// instantSelector checks a selector used as an instant vector: only names of
// series that exist apart from the events (recording rules) are allowed.
func (c *checker) instantSelector(vs *parser.VectorSelector) error {
	pos := vs.PosRange.Start
	if err := c.noAtNoOffset(vs); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(vs.Name, "__"):
		return c.errf(pos, "names starting with __ are reserved", "selector %q is not allowed", vs.Name)
	case vs.Name == EventsSelector || c.opts.Schema.Fields[vs.Name] != nil:
		return c.errf(pos, fmt.Sprintf("wrap it in a range function over a window, e.g. count_over_time(%s[5m]) or avg_over_time(latency_ms[5m])", vs.Name),
			"%q selects raw call events, which have no value at an instant", vs.Name)
	case vs.Name == "":
		return c.errf(pos, `name a field or events, e.g. count_over_time(events{tenant_id="acme"}[5m])`, "a selector needs a name")
	case c.opts.Series != nil && c.opts.Series(vs.Name):
		c.series = append(c.series, vs.Name)
		return nil
	}
	return c.errf(pos, c.selectorHint(vs.Name), "unknown selector %q", vs.Name)
}

func (c *checker) selectorHint(name string) string {
	hint := "select one of the fields " + strings.Join(c.opts.Schema.FieldNames(), ", ") +
		" or events (for counting), inside a range function: p95(latency_ms[5m])"
	if s := Closest(name, append(c.opts.Schema.FieldNames(), EventsSelector)); s != "" {
		hint = fmt.Sprintf("did you mean %q? ", s) + hint
	}
	return hint
}

// labelHint is the hint of an unknown label name: the closest label, if
// any, and then what to write.
func (c *checker) labelHint(name, hint string) string {
	if s := Closest(name, c.opts.Schema.Labels); s != "" {
		return fmt.Sprintf("did you mean %q? ", s) + hint
	}
	return hint
}

func (c *checker) noAtNoOffset(vs *parser.VectorSelector) error {
	if vs.Timestamp != nil || vs.StartOrEnd != 0 {
		return c.errf(vs.PosRange.Start, "write offset 1h to look into the past", "the @ modifier is not supported")
	}
	if vs.Anchored || vs.Smoothed {
		return c.errf(vs.PosRange.Start, "remove the modifier: range functions pool the raw events of (t−w, t] exactly",
			"the anchored and smoothed modifiers are not supported")
	}
	return nil
}

// leaf checks a range function call and replaces it by a leaf selector.
func (c *checker) leaf(call *parser.Call, rf rangeFunc, g *grouping) (parser.Expr, error) {
	pos := call.PosRange.Start
	name := call.Func.Name
	leaf := &Leaf{Func: name, Agg: rf.agg, Quantile: rf.quantile, Pos: call.PosRange}
	args := call.Args
	if rf.param {
		if len(args) != 2 {
			return nil, c.errf(pos, "write quantile_over_time(0.95, latency_ms[5m])", "%s takes φ and a range selector", name)
		}
		num, ok := unparen(args[0]).(*parser.NumberLiteral)
		if !ok {
			return nil, c.errf(args[0].PositionRange().Start, "write a number between 0 and 1, e.g. 0.95", "φ of %s must be a number literal", name)
		}
		if num.Val < 0 || num.Val > 1 || math.IsNaN(num.Val) {
			return nil, c.errf(args[0].PositionRange().Start, "write a number between 0 and 1, e.g. 0.95", "φ %v is out of range", num.Val)
		}
		leaf.Quantile = num.Val
		args = args[1:]
	}
	if rf.threshold {
		if err := c.threshold(call, leaf); err != nil {
			return nil, err
		}
		args = args[:1]
	}
	if len(args) != 1 {
		return nil, c.errf(pos, "", "%s takes one range selector", name)
	}
	ms, ok := unparen(args[0]).(*parser.MatrixSelector)
	if !ok {
		if sq, sub := unparen(args[0]).(*parser.SubqueryExpr); sub {
			return c.subquery(call, rf, sq, g)
		}
		return nil, c.errf(args[0].PositionRange().Start, "write e.g. "+name+"(latency_ms[5m])", "%s takes a range selector over a field or events", name)
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok {
		return nil, c.errf(pos, "", "unsupported range selector")
	}
	if err := c.noAtNoOffset(vs); err != nil {
		return nil, err
	}
	if ms.RangeExpr != nil || vs.OriginalOffsetExpr != nil {
		return nil, c.errf(pos, "write a plain duration such as [5m] or offset 1d", "duration expressions are not supported")
	}
	leaf.Range, leaf.Offset = ms.Range, vs.OriginalOffset
	if leaf.Range <= 0 {
		return nil, c.errf(pos, "write a window such as [5m]", "the window must be longer than zero")
	}
	if leaf.Offset < 0 {
		return nil, c.errf(pos, "write a positive offset such as offset 1d", "negative offsets look into the future")
	}
	// Each part is checked on its own before they are added, so the sum
	// cannot overflow: [290y] offset 3y would wrap around to a negative
	// look-back that passes any maximum.
	for _, part := range []struct {
		what string
		d    time.Duration
	}{{"window", leaf.Range}, {"offset", leaf.Offset}} {
		if part.d > MaxLookback {
			return nil, c.errf(pos, fmt.Sprintf("write a %s of at most %s", part.what, model.Duration(MaxLookback)),
				"the %s of %s is %s, longer than callwatch allows", part.what, name, model.Duration(part.d))
		}
	}
	if maxRange := c.opts.Limits.MaxRange; maxRange > 0 && leaf.Range+leaf.Offset > maxRange {
		return nil, limitError("max_window", c.errf(pos, fmt.Sprintf("shorten the window, or raise limits.max_window (now %s)", model.Duration(maxRange)),
			"%s looks back %s, more than the configured maximum", name, model.Duration(leaf.Range+leaf.Offset)))
	}
	if leaf.Range%time.Second != 0 || leaf.Offset%time.Second != 0 {
		return nil, c.errf(pos, "event times have second resolution: write whole seconds, e.g. [5m] or [90s]", "window and offset must be whole seconds")
	}
	if c.calendar != nil {
		if err := c.calendarWindow(pos, leaf); err != nil {
			return nil, err
		}
	}
	sel := Selector{Field: vs.Name}
	switch {
	case vs.Name == EventsSelector:
		if !rf.events {
			return nil, c.errf(vs.PosRange.Start, fmt.Sprintf("events have no value to aggregate: write count_over_time(events[...]) or %s(latency_ms[...])", name),
				"%s needs a field, not events", name)
		}
	case c.opts.Schema.Fields[vs.Name] != nil:
		sel.Columns = slices.Clone(c.opts.Schema.Fields[vs.Name])
	case vs.Name == "":
		return nil, c.errf(vs.PosRange.Start, `name a field or events, e.g. count_over_time(events{tenant_id="acme"}[5m])`, "a selector needs a name")
	case c.opts.Series != nil && c.opts.Series(vs.Name):
		return nil, c.errf(vs.PosRange.Start, "range functions apply to call events only; use the recorded series directly or recompute it from events",
			"%q is a recorded series, which keeps no history", vs.Name)
	default:
		return nil, c.errf(vs.PosRange.Start, c.selectorHint(vs.Name), "unknown selector %q", vs.Name)
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel {
			if m.Type == labels.MatchEqual && m.Value == vs.Name {
				continue
			}
			return nil, c.errf(vs.PosRange.Start, "write the field name before the braces, e.g. latency_ms{...}", "matchers on __name__ are not supported")
		}
		if !c.opts.Schema.IsLabel(m.Name) {
			return nil, c.errf(vs.PosRange.Start, c.labelHint(m.Name, "labels are "+strings.Join(c.opts.Schema.Labels, ", ")+" (map more in schema.labels)"),
				"%q is not a label of call events", m.Name)
		}
		sel.Matchers = append(sel.Matchers, m)
	}
	sort.SliceStable(sel.Matchers, func(i, j int) bool {
		a, b := sel.Matchers[i], sel.Matchers[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Value < b.Value
	})
	leaf.Selector = sel
	if g != nil {
		for _, l := range slices.Concat(g.by, g.without) {
			if !c.opts.Schema.IsLabel(l) {
				return nil, c.errf(g.pos, c.labelHint(l, "group by labels of call events: "+strings.Join(c.opts.Schema.Labels, ", ")),
					"%q is not a label of call events", l)
			}
		}
		leaf.Grouped, leaf.By = true, g.by
	}
	leaf.Sub = c.sub
	if prev, ok := c.byKey[leaf.Key()]; ok {
		leaf = prev
	} else {
		if len(c.leaves) >= c.opts.Limits.MaxLeaves {
			return nil, limitError("max_leaves", c.errf(pos, "split it into recording rules and refer to their outputs by name",
				"the expression has more than %d distinct range functions", c.opts.Limits.MaxLeaves))
		}
		leaf.Name = LeafPrefix + strconv.Itoa(len(c.leaves))
		c.byKey[leaf.Key()] = leaf
		c.leaves = append(c.leaves, leaf)
	}
	return &parser.VectorSelector{
		Name:          leaf.Name,
		LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, leaf.Name)},
		PosRange:      call.PosRange,
	}, nil
}

// threshold reads the threshold of count_le_over_time and
// count_gt_over_time, the second argument, into leaf: a number literal,
// not NaN (±Inf is allowed: every value is at or below +Inf).
func (c *checker) threshold(call *parser.Call, leaf *Leaf) error {
	name := call.Func.Name
	example := fmt.Sprintf("write e.g. %s(latency_ms[5m], 2000)", name)
	if len(call.Args) != 2 {
		return c.errf(call.PosRange.Start, example, "%s takes a range selector and a threshold", name)
	}
	arg := call.Args[1]
	num, ok := unparen(arg).(*parser.NumberLiteral)
	if !ok {
		return c.errf(arg.PositionRange().Start, "the threshold is fixed when the rule loads: "+example,
			"the threshold of %s must be a number literal", name)
	}
	if math.IsNaN(num.Val) {
		return c.errf(arg.PositionRange().Start, "no value compares with NaN: "+example, "the threshold of %s is NaN", name)
	}
	leaf.Threshold = num.Val
	return nil
}

// subquery checks a range function over a subquery, f(expr[range:step]):
// f stays PromQL's own function over the subquery's samples, and the range
// functions inside expr become leaves evaluated at every step of the
// subquery (Leaf.Sub), which a backend computes in one query for all the
// steps.
func (c *checker) subquery(call *parser.Call, rf rangeFunc, sq *parser.SubqueryExpr, g *grouping) (parser.Expr, error) {
	pos := sq.PositionRange().Start
	name := call.Func.Name
	switch {
	case c.sub != nil:
		return nil, c.errf(pos, "compute the inner subquery in a recording rule and read its output", "subqueries cannot be nested")
	case rf.agg == AggRate || rf.agg == AggIncrease:
		return nil, c.errf(call.PosRange.Start, "a subquery's samples are not a counter: read them with avg_over_time, max_over_time, sum_over_time, …",
			"%s over a subquery is not supported", name)
	case rf.threshold:
		return nil, c.errf(call.PosRange.Start, "count the subquery's samples that pass a filter: count_over_time((expr <= 2000)[1h:5m])",
			"%s over a subquery is not supported", name)
	case sq.Timestamp != nil || sq.StartOrEnd != 0:
		return nil, c.errf(pos, "write offset 1h to look into the past", "the @ modifier is not supported")
	case sq.OriginalOffsetExpr != nil || sq.RangeExpr != nil || sq.StepExpr != nil:
		return nil, c.errf(pos, "write plain durations such as [1h:5m] offset 1d", "duration expressions are not supported")
	case sq.Range <= 0 || sq.OriginalOffset < 0 || sq.Step < 0:
		return nil, c.errf(pos, "write a subquery such as [1h:5m]", "the subquery's range must be longer than zero and its offset not negative")
	case sq.Range > MaxLookback || sq.OriginalOffset > MaxLookback:
		return nil, c.errf(pos, fmt.Sprintf("write a range and an offset of at most %s", model.Duration(MaxLookback)), "the subquery looks back too far")
	}
	sub := &Subquery{Range: sq.Range, Step: sq.Step, Offset: sq.OriginalOffset}
	if _, _, step := sub.Times(time.Unix(0, 0)); sq.Range/step > 11000 {
		return nil, c.errf(pos, "raise the step or shorten the range", "the subquery has %d steps, more than 11000", sq.Range/step)
	}
	c.sub = sub
	inner, err := c.visit(sq.Expr, g, 1)
	c.sub = nil
	if err != nil {
		return nil, err
	}
	if inner.Type() != parser.ValueTypeVector {
		return nil, c.errf(sq.Expr.PositionRange().Start, "a subquery's expression must give a vector, e.g. p95(latency_ms[5m])", "the subquery's expression gives a %s", inner.Type())
	}
	// The longest look-back: the subquery's, plus that of its leaves.
	if maxRange := c.opts.Limits.MaxRange; maxRange > 0 {
		for _, l := range c.leaves {
			if l.Sub == sub && sub.Range+sub.Offset+l.Range+l.Offset > maxRange {
				return nil, limitError("max_window", c.errf(pos, fmt.Sprintf("shorten the subquery or its windows, or raise limits.max_window (now %s)", model.Duration(maxRange)),
					"the subquery with %s looks back %s, more than the configured maximum", l.Func, model.Duration(sub.Range+sub.Offset+l.Range+l.Offset)))
			}
		}
	}
	sq.Expr = inner
	fn := name
	args := []parser.Expr{sq}
	switch {
	case rf.param:
		args = []parser.Expr{call.Args[0], sq}
	case rf.agg == AggQuantile:
		// pNN over a subquery is PromQL's quantile_over_time of its samples.
		fn = "quantile_over_time"
		args = []parser.Expr{&parser.NumberLiteral{Val: rf.quantile, PosRange: call.PosRange}, sq}
	}
	f := parser.Functions[fn]
	if f == nil {
		return nil, c.errf(call.PosRange.Start, "", "%s over a subquery is not supported", name)
	}
	return &parser.Call{Func: f, Args: args, PosRange: call.PosRange}, nil
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// tooDeep returns the byte offset at which brackets ((, [, {) outside
// string literals and comments nest deeper than limit, or -1.
func tooDeep(s string, limit int) int {
	depth := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			switch {
			case ch == '\\' && quote != '`':
				i++
			case ch == quote:
				quote = 0
			}
		case ch == '"' || ch == '\'' || ch == '`':
			quote = ch
		case ch == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case ch == '(' || ch == '[' || ch == '{':
			if depth++; depth > limit {
				return i
			}
		case ch == ')' || ch == ']' || ch == '}':
			depth--
		}
	}
	return -1
}
