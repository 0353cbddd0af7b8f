package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// This file is the one way callwatch reads the events table: every query
// on it — the full query of Compile, the incremental path's bucket reads,
// extreme re-reads and value-count reads, and the exporter's update and
// cardinality queries — is a Select, run by Select.Run. So identifiers are
// quoted here (the table and the time column) and in Columns (labels and
// fields, with their NULL, Enum, FixedString and NaN handling), every
// value is a ? placeholder bound in the order the SQL reads, every result
// row is label Strings followed by Float64 values, and the guards a query
// runs under (Limits) are written in one place.

// SelectOptions say which table a Select reads.
type SelectOptions struct {
	// Table is the events table, optionally qualified by its database
	// (calls or analytics.calls).
	Table string
	// Time is the table's time column (DateTime or DateTime64).
	Time string
	// Columns are the table's column types (see Columns); nil guards
	// every column against NULL, NaN and wrap-around.
	Columns Columns
}

// Expr is a piece of SQL and the values of its ? placeholders, in order.
type Expr struct {
	SQL  string
	Args []any
}

// Select builds one SELECT … FROM the events table: its result columns
// (the labels, read as Strings, then the values, read as Float64), its
// conditions (ANDed), its grouping, ordering and limit. The methods add in
// the order the SQL reads, and return the Select so that calls chain.
type Select struct {
	table, time string // quoted
	cols        Columns
	labels      []selectItem
	values      []selectItem
	where       []selectItem
	group       []selectItem
	order       []string
	limit       int
	// from, when set, is the subquery read instead of the table, and
	// arrayJoin the ARRAY JOIN after it.
	from      *Select
	arrayJoin *selectItem
	// text and args are the rendered query, kept until the next change.
	text string
	args []any
}

// selectItem is a column, condition or grouping key of a Select.
type selectItem struct {
	sql   string
	args  []any
	alias string
}

// NewSelect starts a Select of opts.Table.
func NewSelect(opts SelectOptions) *Select {
	return &Select{table: quoteTable(opts.Table), time: quoteIdent(opts.Time), cols: opts.Columns}
}

// Columns are the column types the Select was given.
func (q *Select) Columns() Columns { return q.cols }

// Time is the quoted time column, for expressions on it (a bucket index).
func (q *Select) Time() string { return q.time }

// Label adds a String result column: the label column name as
// Columns.Label reads it (an Enum as its name, a FixedString without its
// padding, NULL as ""), named alias unless alias is "". Labels come first
// in every row, whatever the order of the calls.
func (q *Select) Label(name, alias string) *Select {
	q.labels = append(q.labels, selectItem{sql: q.cols.Label(name), alias: alias})
	q.text = ""
	return q
}

// LabelPrefix adds a String result column: the label (or request-id)
// column name as Columns.Label reads it, cut to its first n bytes
// (substring counts bytes, so the cut may split a character: the reader
// mends it), named alias. It keeps a query's answer small whatever the
// table holds; group and order by the column itself (Columns.Label).
func (q *Select) LabelPrefix(name, alias string, n int) *Select {
	q.labels = append(q.labels, selectItem{sql: "substring(" + q.cols.Label(name) + ", 1, " + strconv.Itoa(n) + ")", alias: alias})
	q.text = ""
	return q
}

// Column adds a result column as written, not converted: a subquery's
// column that an outer Select reads (an aggregate state, a key), never one
// that Run scans.
func (q *Select) Column(alias, sql string, args ...any) *Select {
	q.values = append(q.values, selectItem{sql: sql, args: args, alias: alias})
	q.text = ""
	return q
}

// FromSelect makes the Select read the rows of sub instead of the table
// (its labels are then sub's label aliases, added with LabelOf).
func (q *Select) FromSelect(sub *Select) *Select {
	q.from = sub
	q.text = ""
	return q
}

// LabelOf adds a String result column that is the column alias of the
// subquery (FromSelect), named alias too.
func (q *Select) LabelOf(alias string) *Select {
	q.labels = append(q.labels, selectItem{sql: alias})
	q.text = ""
	return q
}

// ArrayJoin repeats each row once per element of the array sql, as
// alias (ARRAY JOIN sql AS alias).
func (q *Select) ArrayJoin(sql, alias string, args ...any) *Select {
	q.arrayJoin = &selectItem{sql: sql, alias: alias, args: args}
	q.text = ""
	return q
}

// Value adds a Float64 result column, named alias unless alias is "". The
// expression is converted with toFloat64 unless it already is a
// toFloat64(…) call, so that every value scans into a float64.
func (q *Select) Value(alias, sql string, args ...any) *Select {
	if !isFloat64Call(sql) {
		sql = "toFloat64(" + sql + ")"
	}
	q.values = append(q.values, selectItem{sql: sql, args: args, alias: alias})
	q.text = ""
	return q
}

// Where ANDs a condition; an empty one is no condition. A condition after
// the first, or one with an OR at its top level, is parenthesized.
func (q *Select) Where(sql string, args ...any) *Select {
	if sql == "" {
		return q
	}
	q.where = append(q.where, selectItem{sql: sql, args: args})
	q.text = ""
	return q
}

// GroupByLabels groups by the label columns added so far, in their order:
// by alias when they have one, else by their expression.
func (q *Select) GroupByLabels() *Select {
	for _, l := range q.labels {
		key := l.alias
		if key == "" {
			key = l.sql
		}
		q.group = append(q.group, selectItem{sql: key})
	}
	q.text = ""
	return q
}

// GroupBy adds a grouping key: an expression or a column's alias.
func (q *Select) GroupBy(sql string, args ...any) *Select {
	q.group = append(q.group, selectItem{sql: sql, args: args})
	q.text = ""
	return q
}

// OrderBy adds an ordering key (an alias and ASC or DESC); it binds no
// value.
func (q *Select) OrderBy(sql string) *Select {
	q.order = append(q.order, sql)
	q.text = ""
	return q
}

// Limit keeps the first n rows; 0 keeps them all.
func (q *Select) Limit(n int) *Select {
	q.limit = n
	q.text = ""
	return q
}

// Bucket is the index of the bucket of width w seconds that holds the
// row: bucket k holds (k·w−w, k·w], so k = ⌈t/w⌉ = intDiv(t + w − 1, w).
func (q *Select) Bucket(w int64) Expr {
	return Expr{SQL: "intDiv(toUInt64(toUInt32(" + q.time + ")) + ?, ?)", Args: []any{w - 1, w}}
}

// After is the condition that the time column is after sec (unix
// seconds), clipped to the range of DateTime (see Window).
func (q *Select) After(sec int64) Expr {
	return Expr{SQL: q.time + " > toDateTime(?)", Args: []any{clipDateTime(sec)}}
}

// Window is the condition that the time column is in (from, to] (unix
// seconds). DateTime has second resolution and event times are whole
// seconds, so from < time ⇔ floor(from) < time and time <= to ⇔
// time <= floor(to): the caller floors.
//
// DateTime holds unsigned 32-bit seconds and toDateTime wraps a bound
// outside them around (toDateTime(-1) is in 2106), so bounds are clipped
// to that range, which keeps their meaning: nothing is after 2106, and a
// window ending before 1970 selects nothing (> 0 and <= 0). Every DateTime
// is after a start before 1970, including 1970-01-01 00:00:00 itself (the
// clock of rule unit tests starts there), so such a window has no lower
// bound.
func (q *Select) Window(from, to int64) Expr {
	if from < 0 && to >= 0 {
		return Expr{SQL: q.time + " <= toDateTime(?)", Args: []any{clipDateTime(to)}}
	}
	return Expr{SQL: q.time + " > toDateTime(?) AND " + q.time + " <= toDateTime(?)", Args: []any{clipDateTime(from), clipDateTime(to)}}
}

// clipDateTime clips unix seconds to the range of DateTime.
func clipDateTime(sec int64) int64 { return min(max(sec, 0), math.MaxUint32) }

// AnyOf is the condition that one of conds holds: each of them
// parenthesized and ORed, or the single one as it is, or "" for none.
func AnyOf(conds ...Expr) Expr {
	switch len(conds) {
	case 0:
		return Expr{}
	case 1:
		return conds[0]
	}
	var out Expr
	parts := make([]string, len(conds))
	for i, c := range conds {
		parts[i] = "(" + c.SQL + ")"
		out.Args = append(out.Args, c.Args...)
	}
	out.SQL = strings.Join(parts, " OR ")
	return out
}

// String returns the query, with ? placeholders.
func (q *Select) String() string {
	if q.text == "" {
		q.render()
	}
	return q.text
}

// Args returns the values of the placeholders, in the order of the SQL.
func (q *Select) Args() []any {
	if q.text == "" {
		q.render()
	}
	return q.args
}

func (q *Select) render() {
	var sql strings.Builder
	var args []any
	sql.WriteString("SELECT")
	sep := "\n    "
	for _, items := range [][]selectItem{q.labels, q.values} {
		for _, c := range items {
			sql.WriteString(sep + c.sql)
			if c.alias != "" {
				sql.WriteString(" AS " + c.alias)
			}
			args = append(args, c.args...)
			sep = ",\n    "
		}
	}
	if q.from != nil {
		sub := strings.ReplaceAll(q.from.String(), "\n", "\n    ")
		sql.WriteString("\nFROM (\n    " + sub + "\n)")
		args = append(args, q.from.Args()...)
	} else {
		sql.WriteString("\nFROM " + q.table)
	}
	if j := q.arrayJoin; j != nil {
		sql.WriteString("\nARRAY JOIN " + j.sql + " AS " + j.alias)
		args = append(args, j.args...)
	}
	for i, c := range q.where {
		switch {
		case i > 0:
			sql.WriteString("\n    AND (" + c.sql + ")")
		case topLevelOr(c.sql):
			sql.WriteString("\nWHERE (" + c.sql + ")")
		default:
			sql.WriteString("\nWHERE " + c.sql)
		}
		args = append(args, c.args...)
	}
	if len(q.group) > 0 {
		keys := make([]string, len(q.group))
		for i, g := range q.group {
			keys[i] = g.sql
			args = append(args, g.args...)
		}
		sql.WriteString("\nGROUP BY " + strings.Join(keys, ", "))
	}
	if len(q.order) > 0 {
		sql.WriteString("\nORDER BY " + strings.Join(q.order, ", "))
	}
	if q.limit > 0 {
		sql.WriteString("\nLIMIT " + strconv.Itoa(q.limit))
	}
	q.text, q.args = sql.String(), args
}

// Limits are the guards a query runs under.
type Limits struct {
	// Timeout, when positive, bounds the query in callwatch (its context)
	// and in ClickHouse (max_execution_time, whole seconds rounded up), so
	// a query nobody waits for any more does not keep running on the
	// server.
	Timeout time.Duration
	// MaxGroups, when positive, makes a GROUP BY that holds more groups
	// throw (max_rows_to_group_by) before it has read them all.
	MaxGroups int
}

// settings is the SETTINGS clause of lim (ClickHouse 18.16 and current
// releases accept it after GROUP BY, ORDER BY and LIMIT), or "". The values
// are integers computed here, never user text.
func (lim Limits) settings() string {
	var s []string
	if lim.Timeout > 0 {
		secs := int64(math.Ceil(lim.Timeout.Seconds()))
		s = append(s, "max_execution_time = "+strconv.FormatInt(max(secs, 1), 10))
	}
	if lim.MaxGroups > 0 {
		s = append(s, "max_rows_to_group_by = "+strconv.Itoa(lim.MaxGroups+1), "group_by_overflow_mode = 'throw'")
	}
	if len(s) == 0 {
		return ""
	}
	return "\nSETTINGS " + strings.Join(s, ", ")
}

// Run runs the query on conn under lim and calls row with each result
// row: its label values and its values, in the order they were added. The
// slices are reused from row to row (copy what you keep). An error from
// row stops the query and is returned as it is; a failed scan is wrapped
// ("scan: …"); the connection's errors are returned as they are.
func (q *Select) Run(ctx context.Context, conn Conn, lim Limits, row func(labels []string, values []float64) error) error {
	if lim.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lim.Timeout)
		defer cancel()
	}
	rows, err := conn.Query(ctx, q.String()+lim.settings(), q.Args()...)
	if err != nil {
		return err
	}
	defer rows.Close()
	labels, values := make([]string, len(q.labels)), make([]float64, len(q.values))
	dest := make([]any, 0, len(labels)+len(values))
	for i := range labels {
		dest = append(dest, &labels[i])
	}
	for i := range values {
		dest = append(dest, &values[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if err := row(labels, values); err != nil {
			return err
		}
	}
	return rows.Err()
}

// FloatLiteral writes a float64 as a ClickHouse Float64 literal that reads
// back as the same number: the shortest round-tripping decimal, with a
// point or an exponent, negative numbers in parentheses. It is for
// numbers of the configuration that must be literals (a histogram's
// bounds), never for user text.
func FloatLiteral(x float64) string {
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	if x < 0 {
		return "(" + s + ")"
	}
	return s
}

// walkSQL calls f with the index of every byte of sql outside string
// literals and quoted identifiers, and the depth of parentheses after it,
// until f returns true.
func walkSQL(sql string, f func(i, depth int) bool) {
	depth := 0
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; c {
		case '\'', '`', '"':
			for i++; i < len(sql) && sql[i] != c; i++ {
				if sql[i] == '\\' {
					i++
				}
			}
			continue
		case '(':
			depth++
		case ')':
			depth--
		}
		if f(i, depth) {
			return
		}
	}
}

// topLevelOr reports whether sql has an OR outside parentheses, which
// ANDing it with another condition would split.
func topLevelOr(sql string) bool {
	found := false
	walkSQL(sql, func(i, depth int) bool {
		if depth == 0 && i+1 < len(sql) && strings.EqualFold(sql[i:i+2], "OR") &&
			(i == 0 || !isIdentByte(sql[i-1])) && (i+2 == len(sql) || !isIdentByte(sql[i+2])) {
			found = true
		}
		return found
	})
	return found
}

// isFloat64Call reports whether sql is one toFloat64(…) call as a whole.
func isFloat64Call(sql string) bool {
	const call = "toFloat64("
	if !strings.HasPrefix(sql, call) {
		return false
	}
	whole := false
	walkSQL(sql, func(i, depth int) bool {
		if i >= len(call) && depth == 0 {
			whole = i == len(sql)-1
			return true
		}
		return false
	})
	return whole
}

func isIdentByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
