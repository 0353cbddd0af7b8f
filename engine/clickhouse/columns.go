package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/callwatch/callwatch/dsl"
)

// Columns are the types of the events table's columns by name, as
// ClickHouse writes them (Nullable(String), UInt32, …). The SQL written for
// a column depends on its type, so that bad data never silences a rule:
//
//   - a label column that is Nullable reads NULL as "" (ifNull), in
//     matchers, grouping and results alike;
//   - a field column that is Nullable reads NULL as 0;
//   - a field that can hold NaN or ±Inf (floating point) keeps only finite
//     values: a non-finite value is skipped, as if the event had no value
//     for that field, so max_over_time over one NaN and many finite values
//     is the maximum of the finite ones (ClickHouse 18.16 says NaN,
//     current releases the maximum; the memory evaluator agrees with the
//     skip);
//   - a field whose integer sum could wrap around (Int64, UInt64) is
//     summed as Float64.
//
// A nil Columns (or a column missing from it) is of unknown type and gets
// every guard; ReadColumns gives the real types, so a table without
// Nullable or floating-point columns gets plain SQL.
type Columns map[string]string

// ReadColumns reads the column types of table (table or database.table).
// It returns an error that names the table when the table does not exist.
func ReadColumns(ctx context.Context, conn Conn, table string) (Columns, error) {
	where, args := tableIs(table, "table")
	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := Columns{}
	for rows.Next() {
		var n, t string
		if err := rows.Scan(&n, &t); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", table, err)
		}
		cols[n] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	if len(cols) == 0 {
		return nil, noTableError{table}
	}
	return cols, nil
}

// ReadEngine reads the engine of table (table or database.table):
// MergeTree, Distributed, … It returns an error that names the table when
// the table does not exist.
func ReadEngine(ctx context.Context, conn Conn, table string) (string, error) {
	where, args := tableIs(table, "name")
	rows, err := conn.Query(ctx, "SELECT engine FROM system.tables WHERE "+where, args...)
	if err != nil {
		return "", fmt.Errorf("read the engine of %s: %w", table, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("read the engine of %s: %w", table, err)
		}
		return "", fmt.Errorf("the table %s does not exist", table)
	}
	var engine string
	if err := rows.Scan(&engine); err != nil {
		return "", fmt.Errorf("read the engine of %s: %w", table, err)
	}
	return engine, rows.Err()
}

// tableIs is the condition of a system table's rows that describe table
// (table or database.table, an unqualified one in the current database),
// whose name is in column col, and its values.
func tableIs(table, col string) (string, []any) {
	db, name, ok := strings.Cut(table, ".")
	if !ok {
		return "database = currentDatabase() AND " + col + " = ?", []any{table}
	}
	return "database = ? AND " + col + " = ?", []any{db, name}
}

// ErrNoTable matches (errors.Is) ReadColumns' error for a table that does
// not exist.
var ErrNoTable = errors.New("the table does not exist")

type noTableError struct{ table string }

func (e noTableError) Error() string {
	return fmt.Sprintf("the events table %s does not exist: create it (docs/language.md, \"The events table\", gives the DDL) or set clickhouse.events_table", e.table)
}

func (noTableError) Is(target error) bool { return target == ErrNoTable }

// Check reports, in one error, every column of schema that the table lacks
// or whose type cannot serve its role: the time column must be DateTime or
// DateTime64, labels strings, fields numbers.
func (c Columns) Check(table string, schema dsl.Schema) error {
	var probs []string
	have := func() string {
		names := make([]string, 0, len(c))
		for n := range c {
			names = append(names, n)
		}
		sort.Strings(names)
		return strings.Join(names, ", ")
	}
	check := func(col, role, want string, ok func(base string) bool) {
		t, found := c[col]
		switch {
		case !found:
			probs = append(probs, fmt.Sprintf("column %q (%s) is missing; map an existing column in %s, or add it: ALTER TABLE %s ADD COLUMN %s %s",
				col, role, roleKey(role), quoteTable(table), quoteIdent(col), EventsColumns(schema)[col]))
		case !ok(baseType(t)):
			probs = append(probs, fmt.Sprintf("column %q (%s) has type %s; it must be %s", col, role, t, want))
		}
	}
	check(schema.Time, "the time column", "DateTime or DateTime64", func(b string) bool { return strings.HasPrefix(b, "DateTime") })
	for _, l := range schema.Labels {
		check(l, "a label", "String, FixedString, LowCardinality(String) or an Enum", func(b string) bool {
			return b == "String" || strings.HasPrefix(b, "FixedString") || strings.HasPrefix(b, "Enum")
		})
		if t := c[l]; strings.Contains(t, "Nullable(Enum") {
			// toString of a Nullable Enum reads the Enum's value under
			// each NULL, 0, which ClickHouse 18.16 refuses.
			probs = append(probs, fmt.Sprintf("column %q (a label) has type %s; a Nullable Enum cannot be read as names on every ClickHouse version: make it String, or an Enum with a value for the unknown case", l, t))
		}
	}
	for _, col := range schema.NumericColumns() {
		check(col, "a field", "a number (Int*, UInt*, Float*, Decimal*)", isNumeric)
	}
	if schema.RequestID != "" {
		check(schema.RequestID, "the request-id column", "String, FixedString, LowCardinality(String) or a UUID", func(b string) bool {
			return b == "String" || b == "UUID" || strings.HasPrefix(b, "FixedString")
		})
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("the events table %s does not fit the schema:\n  %s\n(the table has: %s)", table, strings.Join(probs, "\n  "), have())
}

func roleKey(role string) string {
	switch role {
	case "the time column":
		return "schema.time"
	case "a label":
		return "schema.labels"
	case "the request-id column":
		return "schema.request_id"
	}
	return "schema.fields"
}

// baseType strips Nullable(…) and LowCardinality(…) from a type.
func baseType(t string) string {
	for {
		switch {
		case strings.HasPrefix(t, "Nullable(") && strings.HasSuffix(t, ")"):
			t = t[len("Nullable(") : len(t)-1]
		case strings.HasPrefix(t, "LowCardinality(") && strings.HasSuffix(t, ")"):
			t = t[len("LowCardinality(") : len(t)-1]
		default:
			return t
		}
	}
}

func isNumeric(b string) bool {
	for _, p := range []string{"Int", "UInt", "Float", "Decimal"} {
		if strings.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// nullable reports whether col may hold NULL (true when unknown).
func (c Columns) nullable(col string) bool {
	t, ok := c[col]
	return !ok || strings.Contains(t, "Nullable(")
}

// mayBeNonFinite reports whether col may hold NaN or ±Inf (true when unknown).
func (c Columns) mayBeNonFinite(col string) bool {
	t, ok := c[col]
	return !ok || strings.HasPrefix(baseType(t), "Float")
}

// wide reports whether an integer sum of col could wrap around (true when unknown).
func (c Columns) wide(col string) bool {
	t, ok := c[col]
	if !ok {
		return true
	}
	return slices.Contains([]string{"Int64", "UInt64", "Int128", "UInt128", "Int256", "UInt256"}, baseType(t))
}

// Label is the SQL of a label column, a String whatever the column's
// type: an Enum reads as its name (so a matcher on a name the Enum lacks
// matches nothing instead of failing, and regexps apply), a FixedString
// without its padding NULs (toStringCutToZero), a UUID (a request-id
// column) in its text form, and NULL as "".
func (c Columns) Label(name string) string {
	p := quoteIdent(name)
	switch b := baseType(c[name]); {
	case strings.HasPrefix(b, "Enum"):
		p = "toString(" + p + ")"
	case strings.HasPrefix(b, "FixedString"):
		p = "toStringCutToZero(" + p + ")"
	case b == "UUID": // a request-id column
		p = "toString(" + p + ")"
	}
	if c.nullable(name) {
		return "ifNull(" + p + ", '')"
	}
	return p
}

// Value is the SQL value of a field: its column, or the sum of its
// columns; NULL is 0, and wide integers are Float64 so sums do not wrap.
// ClickHouse widens narrower integer sums itself (UInt32 + UInt32 is
// UInt64).
func (c Columns) Value(cols []string) string {
	if len(cols) == 0 {
		return ""
	}
	parts := make([]string, len(cols))
	for i, col := range cols {
		// A NULL (in a user's Nullable column) is 0, as a key missing from
		// a JSON event is in the memory evaluator.
		p := quoteIdent(col)
		if c.wide(col) || strings.HasPrefix(baseType(c[col]), "Decimal") {
			// Decimals too: ifNull and the variance functions take
			// no Decimal.
			p = "toFloat64(" + p + ")"
		}
		if c.nullable(col) {
			p = "ifNull(" + p + ", 0)"
		}
		parts[i] = p
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, " + ") + ")"
}

// leafCondition is the condition of a leaf's events: its matchers and, for
// a field that may hold non-finite values, isFinite of the value, so NaN
// and ±Inf are skipped (see Columns).
func (c Columns) leafCondition(l *dsl.Leaf) fragment {
	cond := c.condition(l.Selector.Matchers)
	finite := c.Finite(l.Selector.Columns)
	if l.Selector.Field == dsl.EventsSelector || finite == "" {
		return cond
	}
	if cond.sql == "" {
		return fragment{sql: finite}
	}
	return fragment{sql: cond.sql + " AND " + finite, args: cond.args}
}

// Finite is the condition that a field's value is finite, or "" when its
// columns cannot hold NaN or ±Inf.
func (c Columns) Finite(cols []string) string {
	if len(cols) == 0 || !slices.ContainsFunc(cols, c.mayBeNonFinite) {
		return ""
	}
	return "isFinite(" + c.Value(cols) + ")"
}
