package clickhouse

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
)

// CompileOptions configure Compile.
type CompileOptions struct {
	// Table is the events table, optionally qualified by its database
	// (calls or analytics.calls).
	Table string
	// Schema maps the table's columns; the zero value means dsl.DefaultSchema().
	Schema dsl.Schema
	// Columns are the table's column types (see Columns); nil guards
	// every column against NULL, NaN and wrap-around.
	Columns Columns
	// Seed adds what the incremental path needs to carry a full result
	// forward: the sum of an avg leaf, and the time of a min or max leaf's
	// extreme (argMinIf/argMaxIf).
	Seed bool
	// Distributed says the table is a Distributed table: aggregates whose
	// partial states do not cross between servers intact are computed
	// another way (see distributedSafe).
	Distributed bool
}

// Statement is one compiled query and the map from its result columns back
// to the leaves it computes.
//
// A result row holds len(By) String columns (the group's label values, in
// the order of By) followed by Float64 columns (the leaves' aggregates); an
// ungrouped statement returns exactly one row.
type Statement struct {
	// SQL is the query; every value in it is a ? placeholder.
	SQL string
	// Args are the values of the placeholders, in order: int64 unix seconds
	// for the window bounds and strings for label values and regexps.
	Args []any
	// Leaves are the indexes, into the leaves given to Compile, of the
	// leaves this statement computes.
	Leaves []int
	// By are the grouping label columns.
	By []string
	// Columns locate, for each entry of Leaves, that leaf's aggregates.
	Columns []LeafColumns
	// Width is the number of result columns.
	Width int
	// query is the statement's Select, which Source runs.
	query *Select
}

// LeafColumns locate one leaf's aggregates in a result row, as 0-based
// column indexes: the columns of each of its partial states
// (dsl.Leaf.Partials, computed as fullPartials says). Count, the number
// of the leaf's events in the group, is always among them.
type LeafColumns struct {
	Count    int
	Partials []PartialColumns
	// Time is the column of the time of a min or max leaf's extreme, with
	// CompileOptions.Seed; else -1.
	Time int
}

// PartialColumns are the columns of one partial state.
type PartialColumns struct {
	Partial dsl.Partial
	Cols    []int
}

// Compile turns the leaves, evaluated at ts, into SQL statements: one GROUP
// BY query per distinct (window, offset, grouping). Leaves of the same
// shape are fused into one query in which each leaf's selector becomes the
// condition of -If aggregates, and the WHERE clause keeps only the window
// and, when every fused leaf has matchers, the union of their selectors.
// Leaves grouped by no label and ungrouped leaves have the same shape (a
// single group) and share a query.
func Compile(opts CompileOptions, ts time.Time, leaves []*dsl.Leaf) []Statement {
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	builders := byShape(leaves, opts.Seed, opts.Distributed, opts.Schema.Time, opts.Columns)
	stmts := make([]Statement, len(builders))
	for i, b := range builders {
		stmts[i] = b.build(opts, ts)
	}
	return stmts
}

// byShape puts the leaves into one builder per shape (window, offset,
// grouping), in the order the shapes first appear.
func byShape(leaves []*dsl.Leaf, seed, distributed bool, timeCol string, cols Columns) []*builder {
	type shape struct {
		rng, offset time.Duration
		by          string
		calendar    string
	}
	var builders []*builder
	index := map[shape]*builder{}
	for i, l := range leaves {
		k := shape{l.Range, l.Offset, strings.Join(l.By, ","), ""}
		if l.Calendar != nil {
			k.calendar = l.Calendar.String()
		}
		b, ok := index[k]
		if !ok {
			b = &builder{by: l.By, first: l, exprIndex: map[string]int{}, condIndex: map[string]bool{}, seed: seed, dist: distributed, tcol: quoteIdent(timeCol), cols: cols}
			index[k] = b
			builders = append(builders, b)
		}
		b.add(i, l)
	}
	return builders
}

// fragment is a piece of SQL and the values of its placeholders.
type fragment struct {
	sql  string
	args []any
	// quantile columns remember their value and condition and φ, so that
	// build can compute every φ of the same values with one quantilesExact.
	qvalue string
	qcond  fragment0
	phi    string
	// agg describes an aggregate column, so that a range query can split
	// it into a state per bucket and a merge per step (see CompileRange).
	agg *aggSpec
}

// aggSpec is an aggregate column fn(param)(args): fn with its -If suffix
// when it has a condition, and elem, when positive, the element of the
// array it returns that the column reads.
type aggSpec struct {
	fn, param, args string
	elem            int
	// finish, when set, is applied to the aggregate's value: a format
	// with one %s.
	finish string
}

// fragment0 is a condition kept on a quantile column.
type fragment0 struct {
	sql  string
	args []any
}

func (f fragment) key() string { return fmt.Sprintf("%s\x00%#v", f.sql, f.args) }

// builder collects the leaves of one statement.
type builder struct {
	by    []string
	first *dsl.Leaf // any leaf of the statement, for the window
	stmt  Statement
	// exprs are the aggregate columns after the By columns, deduplicated.
	exprs     []fragment
	exprIndex map[string]int
	// conds are the distinct selector conditions, for the WHERE clause;
	// unfiltered is set when a leaf has no matchers, so the WHERE clause
	// cannot be narrowed by selectors.
	conds      []fragment
	condIndex  map[string]bool
	unfiltered bool
	seed       bool    // CompileOptions.Seed
	dist       bool    // CompileOptions.Distributed
	tcol       string  // the quoted time column
	cols       Columns // CompileOptions.Columns
}

// filter narrows q to the rows some leaf of the statement reads: the
// selectors' conditions ORed, or no condition when a leaf has no matchers.
func (b *builder) filter(q *Select) {
	if !b.unfiltered {
		whereAnyOf(q, b.conds)
	}
}

func (b *builder) add(i int, l *dsl.Leaf) {
	cond := b.cols.leafCondition(l)
	if cond.sql == "" {
		b.unfiltered = true
	} else if !b.condIndex[cond.key()] {
		b.condIndex[cond.key()] = true
		b.conds = append(b.conds, cond)
	}
	value := b.cols.Value(l.Selector.Columns)
	cols := LeafColumns{Count: -1, Time: -1}
	for _, p := range l.Partials() {
		pc := PartialColumns{Partial: p}
		for _, f := range fullPartials[p].columns(l, value, cond) {
			if b.dist {
				f = distributedSafe(f)
			}
			pc.Cols = append(pc.Cols, b.column(f))
		}
		if p == dsl.PartialCount {
			cols.Count = pc.Cols[0]
		}
		cols.Partials = append(cols.Partials, pc)
		if b.seed && (p == dsl.PartialMin || p == dsl.PartialMax) {
			cols.Time = b.column(extremeTime(p, b.tcol, value, cond))
		}
	}
	b.stmt.Leaves = append(b.stmt.Leaves, i)
	b.stmt.Columns = append(b.stmt.Columns, cols)
}

// fullPartial is how the full query computes a partial state: its
// aggregate columns over the leaf's value under its condition, and how
// their values fill a group's state (whose Count is filled first).
type fullPartial struct {
	columns func(l *dsl.Leaf, value string, cond fragment) []fragment
	fill    func(st *dsl.State, vals []float64)
}

// fullPartials are the full query's partial states, one entry per
// dsl.Partial (checkPartials). A quantile is not kept as value counts here:
// quantileExact computes the leaf's own order statistic, which stands for
// the distribution as the one value the leaf reads.
var fullPartials = map[dsl.Partial]fullPartial{
	dsl.PartialCount: {
		func(_ *dsl.Leaf, _ string, cond fragment) []fragment {
			return []fragment{aggregate("count", "", "", cond)}
		},
		func(st *dsl.State, v []float64) { st.Count = v[0] },
	},
	dsl.PartialSum: {
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("sum", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Sum = v[0] },
	},
	dsl.PartialMoments: {
		// varPopStable is the numerically stable (Welford) variance, like
		// the memory evaluator's; M2 = n · variance.
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("avg", "", value, cond), aggregate("varPopStable", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Mean, st.M2 = v[0], v[1]*st.Count },
	},
	dsl.PartialMin: {
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("min", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Min = v[0] },
	},
	dsl.PartialMax: {
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("max", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Max = v[0] },
	},
	dsl.PartialValues: {
		// quantileExact is the baseline's definition: the sorted values'
		// element at index floor(φ·n), clamped to n−1. φ is an aggregate
		// function parameter, which must be a literal: clickhouse-go binds
		// a float64 as cast(φ, 'Float64'), which ClickHouse rejects there,
		// so φ is formatted here. It is a float64 checked by dsl
		// (0 ≤ φ ≤ 1), never user text.
		func(l *dsl.Leaf, value string, cond fragment) []fragment {
			phi := strconv.FormatFloat(l.Quantile, 'g', -1, 64)
			f := aggregate("quantileExact", phi, value, cond)
			f.qvalue, f.qcond, f.phi = value, fragment0{sql: cond.sql, args: cond.args}, phi
			return []fragment{f}
		},
		func(st *dsl.State, v []float64) { st.Values = []dsl.ValueCount{{Value: v[0], Count: st.Count}} },
	},
	dsl.PartialAtOrBelow: {
		func(l *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("count", "", "", atOrBelow(l, value, cond))}
		},
		func(st *dsl.State, v []float64) { st.AtOrBelow = v[0] },
	},
}

// atOrBelow is the leaf's condition and its value at or below its
// threshold (dsl.PartialAtOrBelow). The value is compared as a Float64, as
// the memory evaluator compares it, and the threshold is written as a
// literal (thresholdSQL), so the comparison is the same on every server.
func atOrBelow(l *dsl.Leaf, value string, cond fragment) fragment {
	le := "toFloat64(" + value + ") <= " + thresholdSQL(l.Threshold)
	if cond.sql == "" {
		return fragment{sql: le}
	}
	return fragment{sql: cond.sql + " AND " + le, args: cond.args}
}

// thresholdSQL writes a threshold (a float64 dsl checked, never NaN, never
// user text) as a literal that every server reads back exactly: the
// shortest decimal that round-trips, which ClickHouse 18.16 (strtod) and
// current releases parse to the same float64; inf for the infinities; and,
// for a subnormal, which 18.16 refuses as out of range, its bits.
func thresholdSQL(t float64) string {
	switch {
	case math.IsInf(t, 1):
		return "inf"
	case math.IsInf(t, -1):
		return "-inf"
	case t != 0 && math.Abs(t) < 0x1p-1022:
		return "reinterpretAsFloat64(reinterpretAsString(toUInt64(" + strconv.FormatUint(math.Float64bits(t), 10) + ")))"
	}
	return "(" + strconv.FormatFloat(t, 'g', -1, 64) + ")"
}

// checkPartials reports a partial state that a backend's table lacks.
func checkPartials[T any](backend string, table map[dsl.Partial]T) error {
	return dsl.CheckBackend(backend, func(p dsl.Partial) bool {
		_, ok := table[p]
		return ok
	})
}

// fill sets a group's state from a result row's values.
func (c LeafColumns) fill(st *dsl.State, row []float64) {
	vals := make([]float64, 0, 2)
	for _, pc := range c.Partials {
		vals = vals[:0]
		for _, col := range pc.Cols {
			vals = append(vals, row[col])
		}
		fullPartials[pc.Partial].fill(st, vals)
	}
}

// column adds an aggregate column unless an identical one exists, and
// returns its index in the result row.
func (b *builder) column(f fragment) int {
	k := f.key()
	if i, ok := b.exprIndex[k]; ok {
		return len(b.by) + i
	}
	b.exprs = append(b.exprs, f)
	b.exprIndex[k] = len(b.exprs) - 1
	return len(b.by) + len(b.exprs) - 1
}

// fuseQuantiles rewrites quantile columns over the same values and
// condition with different φ into elements of one quantilesExact(φ1, φ2, …)
// state: ClickHouse computes identical aggregate expressions once, so p95
// and p99 of the same events sort them once instead of twice.
func (b *builder) fuseQuantiles() {
	phis := map[string][]string{}
	for _, e := range b.exprs {
		if e.phi != "" {
			k := e.qvalue + "\x00" + e.qcond.sql + fmt.Sprintf("%#v", e.qcond.args)
			if !slices.Contains(phis[k], e.phi) {
				phis[k] = append(phis[k], e.phi)
			}
		}
	}
	for i, e := range b.exprs {
		if e.phi == "" {
			continue
		}
		list := phis[e.qvalue+"\x00"+e.qcond.sql+fmt.Sprintf("%#v", e.qcond.args)]
		if len(list) < 2 {
			continue
		}
		fn, args := "quantilesExact", []string{e.qvalue}
		if e.qcond.sql != "" {
			fn += "If"
			args = append(args, e.qcond.sql)
		}
		b.exprs[i].sql = fmt.Sprintf("toFloat64(arrayElement(%s(%s)(%s), %d))", fn, strings.Join(list, ", "), strings.Join(args, ", "), slices.Index(list, e.phi)+1)
		b.exprs[i].agg = &aggSpec{fn: fn, param: strings.Join(list, ", "), args: strings.Join(args, ", "), elem: slices.Index(list, e.phi) + 1}
	}
}

func (b *builder) build(opts CompileOptions, ts time.Time) Statement {
	b.fuseQuantiles()
	st := b.stmt
	st.By = b.by
	st.Width = len(b.by) + len(b.exprs)
	q := NewSelect(SelectOptions{Table: opts.Table, Time: opts.Schema.Time, Columns: b.cols})
	for _, l := range b.by {
		q.Label(l, "")
	}
	for _, e := range b.exprs {
		q.Value("", e.sql, e.args...)
	}
	// Unix() floors, as Window wants.
	from, to := b.first.Window(ts)
	w := q.Window(from.Unix(), to.Unix())
	q.Where(w.SQL, w.Args...)
	b.filter(q)
	q.GroupByLabels()
	st.query, st.SQL, st.Args = q, q.String(), q.Args()
	return st
}

// extremeTime is the time (unix seconds) of an event holding the minimum
// (or maximum) value under cond: argMinIf(toUInt32(t), value, cond).
func extremeTime(p dsl.Partial, tcol, value string, cond fragment) fragment {
	fn := "argMax"
	if p == dsl.PartialMin {
		fn = "argMin"
	}
	args := "toUInt32(" + tcol + "), " + value
	if cond.sql != "" {
		fn += "If"
		args += ", " + cond.sql
	}
	return fragment{sql: "toFloat64(" + fn + "(" + args + "))", args: cond.args}
}

// aggregate builds toFloat64(fn(value)) or, with a condition,
// toFloat64(fnIf(value, cond)); param is the aggregate function's parameter
// (φ of quantileExact). Every column is Float64 so rows scan uniformly.
func aggregate(fn, param, value string, cond fragment) fragment {
	var args []string
	if value != "" {
		args = append(args, value)
	}
	if cond.sql != "" {
		fn += "If"
		args = append(args, cond.sql)
	}
	spec := &aggSpec{fn: fn, param: param, args: strings.Join(args, ", ")}
	if param != "" {
		fn += "(" + param + ")"
	}
	return fragment{sql: "toFloat64(" + fn + "(" + strings.Join(args, ", ") + "))", args: cond.args, agg: spec}
}

// distributedSafe returns an aggregate column that a Distributed table
// computes right: the column itself, except the stable variance. The
// partial state of varPopStable (and of every *Stable function) is
// written by ClickHouse 18.16 in a form its reader does not expect, so a
// shard's state breaks the stream it is sent on ("Unknown compression
// method", "Syntax error (data type)"). There the shards send the values
// (groupArray, whose state crosses intact, as quantileExact's does) and
// the server that merges computes the variance over them: the same
// Welford variance, at the cost of moving the values, as a quantile does.
func distributedSafe(f fragment) fragment {
	if f.agg == nil || (f.agg.fn != "varPopStable" && f.agg.fn != "varPopStableIf") {
		return f
	}
	fn := "groupArray" + strings.TrimPrefix(f.agg.fn, "varPopStable")
	const finish = "arrayReduce('varPopStable', %s)"
	f.agg = &aggSpec{fn: fn, args: f.agg.args, finish: finish}
	f.sql = "toFloat64(" + fmt.Sprintf(finish, fn+"("+f.agg.args+")") + ")"
	return f
}

// condition compiles label matchers into a boolean SQL expression; it is
// empty when there are none. Regexps are anchored like PromQL's: ^(?s:re)$.
func (c Columns) condition(ms []*labels.Matcher) fragment {
	var f fragment
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		col := c.Label(m.Name)
		switch m.Type {
		case labels.MatchEqual:
			parts = append(parts, col+" = ?")
			f.args = append(f.args, m.Value)
		case labels.MatchNotEqual:
			parts = append(parts, col+" != ?")
			f.args = append(f.args, m.Value)
		case labels.MatchRegexp:
			parts = append(parts, "match("+col+", ?)")
			f.args = append(f.args, anchor(m.Value))
		case labels.MatchNotRegexp:
			parts = append(parts, "NOT match("+col+", ?)")
			f.args = append(f.args, anchor(m.Value))
		}
	}
	f.sql = strings.Join(parts, " AND ")
	return f
}

// anchor anchors a regexp at both ends, as PromQL does
// (model/labels/regexp.go): the whole value must match. The s flag makes .
// match a newline, which is PromQL's behaviour and also ClickHouse's default
// for match(), so both agree whatever the server's default.
func anchor(re string) string { return "^(?s:" + re + ")$" }

// quoteIdent quotes an identifier with backticks. Schema.Validate already
// restricts names to letters, digits and _; the escaping is a second fence.
func quoteIdent(name string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(name) + "`"
}

// quoteTable quotes a table name that may be qualified by its database.
func quoteTable(table string) string {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = quoteIdent(p)
	}
	return strings.Join(parts, ".")
}

// EventsDDL returns the CREATE TABLE IF NOT EXISTS statement of an events
// table for schema: the time column as DateTime, label columns as String,
// latency_ms and *_tokens columns as UInt32 and every other numeric column
// as Float64, the request-id column (when mapped) as String, in a MergeTree
// partitioned by day and ordered by time. It
// runs on ClickHouse 18.16 and on current releases.
func EventsDDL(table string, schema dsl.Schema) string {
	if schema.Time == "" {
		schema = dsl.DefaultSchema()
	}
	types := EventsColumns(schema)
	var cols []string
	cols = append(cols, quoteIdent(schema.Time)+" "+types[schema.Time])
	for _, l := range schema.Labels {
		cols = append(cols, quoteIdent(l)+" "+types[l])
	}
	for _, c := range schema.NumericColumns() {
		cols = append(cols, quoteIdent(c)+" "+types[c])
	}
	if r := schema.RequestID; r != "" {
		cols = append(cols, quoteIdent(r)+" "+types[r])
	}
	t := quoteIdent(schema.Time)
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n    %s\n) ENGINE = MergeTree\nPARTITION BY toYYYYMMDD(%s)\nORDER BY %s",
		quoteTable(table), strings.Join(cols, ",\n    "), t, t)
}

// EventsColumns returns the column types of the table EventsDDL creates.
func EventsColumns(schema dsl.Schema) Columns {
	if schema.Time == "" {
		schema = dsl.DefaultSchema()
	}
	cols := Columns{schema.Time: "DateTime"}
	for _, l := range schema.Labels {
		cols[l] = "String"
	}
	for _, c := range schema.NumericColumns() {
		cols[c] = numericType(c)
	}
	if schema.RequestID != "" {
		cols[schema.RequestID] = "String"
	}
	return cols
}

// numericType is the ClickHouse type of a numeric column in EventsDDL.
func numericType(col string) string {
	if col == "latency_ms" || strings.HasSuffix(col, "_tokens") {
		return "UInt32"
	}
	return "Float64"
}
