package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// InserterOptions configure an Inserter.
type InserterOptions struct {
	// Exec runs the INSERT statements: a clickhouse.NativeConn, or an
	// embedded engine's connection.
	Exec clickhouse.Execer
	// Table is the events table, optionally database.table.
	Table string
	// Schema maps the table's columns (the zero value means
	// dsl.DefaultSchema()). It must map the baseline table's labels and
	// numeric columns, which the demo fills; the time column may have any
	// name, and columns the demo does not know get their defaults.
	Schema dsl.Schema
	// BatchSize caps the rows of one statement (default 500).
	BatchSize int
	// Timeout bounds each statement (default 30s).
	Timeout time.Duration
}

// Inserter is a Sink that writes events into a ClickHouse table.
type Inserter struct {
	opts InserterOptions
	// head is INSERT INTO t (cols) SELECT conversions FROM system.one
	// ARRAY JOIN; the arrays follow.
	head string
}

var _ Sink = (*Inserter)(nil)

// demoLabels and demoNumbers are the columns the generator fills, in the
// order Inserter binds them.
var (
	demoLabels  = []string{"tenant_id", "app_code", "model", "provider", "status", "error_code"}
	demoNumbers = []string{"latency_ms", "input_tokens", "output_tokens", "cost"}
)

// NewInserter checks the table name and the schema and returns the sink.
func NewInserter(opts InserterOptions) (*Inserter, error) {
	if opts.Exec == nil {
		return nil, fmt.Errorf("demo inserter: no connection")
	}
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	table, err := quoteTable(opts.Table)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, l := range demoLabels {
		if !opts.Schema.IsLabel(l) {
			missing = append(missing, "label "+l)
		}
	}
	nums := opts.Schema.NumericColumns()
	for _, c := range demoNumbers {
		if !slices.Contains(nums, c) {
			missing = append(missing, "numeric column "+c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("demo traffic fills the baseline table's columns, and the schema does not map %s", strings.Join(missing, ", "))
	}
	cols := []string{quoteIdent(opts.Schema.Time)}
	conv := []string{"toDateTime(c0)"}
	for i, l := range demoLabels {
		cols, conv = append(cols, quoteIdent(l)), append(conv, fmt.Sprintf("c%d", i+1))
	}
	for i, c := range demoNumbers {
		cols = append(cols, quoteIdent(c))
		f := "toUInt32"
		if c == "cost" {
			f = "toFloat64"
		}
		conv = append(conv, fmt.Sprintf("%s(c%d)", f, 1+len(demoLabels)+i))
	}
	return &Inserter{
		opts: opts,
		head: fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM system.one ARRAY JOIN ", table, strings.Join(cols, ", "), strings.Join(conv, ", ")),
	}, nil
}

// Write inserts the events, at most BatchSize per statement. A statement
// is one SELECT that ARRAY JOINs a column-wise array literal per column,
// every element a bound value:
//
//	INSERT INTO t (created_at, tenant_id, …) SELECT toDateTime(c0), c1, …
//	FROM system.one ARRAY JOIN [?, ?, …] AS c0, [?, ?, …] AS c1, …
//
// On ClickHouse 18.16 clickhouse-go's batches fail and INSERT … VALUES
// with bound values hangs; INSERT … SELECT works there and embedded, and
// this form parses about ten times faster than one SELECT per row joined
// with UNION ALL. The rows of the batches written before an error stay
// written.
func (s *Inserter) Write(ctx context.Context, events []Event) error {
	for len(events) > 0 {
		n := min(len(events), s.opts.BatchSize)
		if err := s.insert(ctx, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}

func (s *Inserter) insert(ctx context.Context, events []Event) error {
	n, columns := len(events), 1+len(demoLabels)+len(demoNumbers)
	args := make([]any, 0, n*columns)
	for c := range columns {
		for _, e := range events {
			args = append(args, e.column(c))
		}
	}
	placeholders := "[?" + strings.Repeat(", ?", n-1) + "]"
	var b strings.Builder
	b.WriteString(s.head)
	for c := range columns {
		if c > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s AS c%d", placeholders, c)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.opts.Exec.Exec(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("insert %d demo events into %s: %w", n, s.opts.Table, err)
	}
	return nil
}

// column returns the value of column c, in the order of demoLabels and
// demoNumbers after the time.
func (e Event) column(c int) any {
	switch c {
	case 0:
		return e.Time.Unix()
	case 1:
		return e.TenantID
	case 2:
		return e.AppCode
	case 3:
		return e.Model
	case 4:
		return e.Provider
	case 5:
		return e.Status
	case 6:
		return e.ErrorCode
	case 7:
		return e.LatencyMs
	case 8:
		return e.InputTokens
	case 9:
		return e.OutputTokens
	}
	return e.Cost
}

// quoteIdent quotes a column name; dsl.Schema.Validate restricts names to
// letters, digits and _, so the escaping is a second fence.
func quoteIdent(name string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(name) + "`"
}

// quoteTable checks and quotes table or database.table.
func quoteTable(table string) (string, error) {
	parts := strings.Split(table, ".")
	if table == "" || len(parts) > 2 {
		return "", fmt.Errorf("events table %q: write table or database.table", table)
	}
	for i, p := range parts {
		if p == "" {
			return "", fmt.Errorf("events table %q: write table or database.table", table)
		}
		for j, r := range p {
			if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (j > 0 && r >= '0' && r <= '9')) {
				return "", fmt.Errorf("events table %q: write table or database.table (letters, digits and _)", table)
			}
		}
		parts[i] = quoteIdent(p)
	}
	return strings.Join(parts, "."), nil
}
