package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Conn runs a read-only query with bound ? arguments. NativeConn implements
// it over clickhouse-go; an embedded engine can implement it too.
type Conn interface {
	Query(ctx context.Context, sql string, args ...any) (Rows, error)
}

// Rows iterates over a query's result, like database/sql.Rows. Source scans
// every row into *string (group label columns) and *float64 (aggregates).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// ConnFunc adapts a function to Conn.
type ConnFunc func(ctx context.Context, sql string, args ...any) (Rows, error)

// Query calls f.
func (f ConnFunc) Query(ctx context.Context, sql string, args ...any) (Rows, error) {
	return f(ctx, sql, args...)
}

// Options configure a Source.
type Options struct {
	// Conn runs the queries.
	Conn Conn
	// Table is the events table, optionally qualified by its database.
	Table string
	// Schema maps the table's columns; the zero value means dsl.DefaultSchema().
	Schema dsl.Schema
	// QueryTimeout bounds each query (default 30s), in callwatch and in
	// ClickHouse (max_execution_time), so a query nobody waits for any more
	// does not keep running on the server.
	QueryTimeout time.Duration
	// Columns are the events table's column types (see Columns and
	// ReadColumns); nil guards every column against NULL, NaN and
	// wrap-around.
	Columns Columns
	// MaxGroups, when positive, bounds the groups one leaf may return:
	// ClickHouse stops a GROUP BY soon after it (max_rows_to_group_by)
	// instead of after reading every group, and the error says which
	// limit to raise. The engine's own check (QuerierOptions.MaxSeries)
	// then names the leaf.
	MaxGroups int
	// Distributed says the table is a Distributed table over shards (see
	// ReadEngine): every leaf gives the answer it gives on one server, a
	// stddev leaf at the cost of moving its values to the server that
	// merges (see CompileOptions.Distributed).
	Distributed bool
	// Incremental, when not nil, computes decomposable leaves from
	// per-bucket partial aggregates kept between evaluations (see
	// Incremental); nil computes every leaf with a full query.
	Incremental *Incremental
}

// Source computes leaves in ClickHouse: it compiles them with Compile, runs
// one query per statement and turns the aggregates into samples.
type Source struct {
	opts Options
	inc  *partials // nil without Options.Incremental
}

var _ engine.LeafSource = (*Source)(nil)

// New returns a Source, or an error when the options are incomplete or the
// schema is invalid.
func New(opts Options) (*Source, error) {
	var err error
	if opts.Schema, err = CheckEvents("clickhouse source", opts.Conn, opts.Table, opts.Schema); err != nil {
		return nil, err
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 30 * time.Second
	}
	if err := checkPartials("the ClickHouse full query", fullPartials); err != nil {
		return nil, err
	}
	if err := checkIncremental(); err != nil {
		return nil, err
	}
	s := &Source{opts: opts}
	if opts.Incremental != nil {
		s.inc = newPartials(*opts.Incremental)
		s.inc.dist = opts.Distributed
	}
	return s, nil
}

// CheckEvents checks what every reader of the events table needs: a
// connection, the table and a valid schema. It returns the schema to read
// the table with, dsl.DefaultSchema() for the zero one. Its errors start
// with who, the reader ("clickhouse source: no connection").
func CheckEvents(who string, conn Conn, table string, schema dsl.Schema) (dsl.Schema, error) {
	if conn == nil {
		return dsl.Schema{}, errors.New(who + ": no connection")
	}
	if table == "" {
		return dsl.Schema{}, errors.New(who + ": no events table")
	}
	if schema.Time == "" {
		schema = dsl.DefaultSchema()
	}
	if err := schema.Validate(); err != nil {
		return dsl.Schema{}, fmt.Errorf("%s: %w", who, err)
	}
	return schema, nil
}

// IncrementalStats returns the work of the incremental path so far (zero
// without Options.Incremental).
func (s *Source) IncrementalStats() IncrementalStats {
	if s.inc == nil {
		return IncrementalStats{}
	}
	n := s.inc.valueCounts()
	s.inc.statsMu.Lock()
	defer s.inc.statsMu.Unlock()
	st := s.inc.stats
	st.ValueCounts = n
	return st
}

// WaitFills waits until the value counts that the incremental path reads
// in the background (the first evaluation of a quantile's long window) are
// read: tests and the benchmark call it to measure steady evaluations.
func (s *Source) WaitFills() {
	if s.inc != nil {
		s.inc.waitFills()
	}
}

// EvalLeaves computes the leaves at ts. Each statement runs with its own
// timeout; the first failure aborts the evaluation. The SQL of the
// statements that ran (or failed) is returned in LeafResult.Statements.
func (s *Source) EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (engine.LeafResult, error) {
	if s.inc != nil {
		s.inc.evalStarted()
		defer s.inc.startFills() // after this evaluation's own queries
		defer s.inc.evalDone()
	}
	res := engine.LeafResult{Vectors: make([][]engine.Sample, len(leaves))}
	full := leaves
	var fullIdx []int // full's indexes into leaves, when some are incremental
	// seeds are the leaves computed in full now whose results start their
	// cold state on the incremental path.
	seeds := map[int]*seedLeaf{}
	if s.inc != nil {
		full = nil
		res.Paths = make([]engine.LeafPath, len(leaves))
		toFull := func(i int, reason string) {
			full, fullIdx = append(full, leaves[i]), append(fullIdx, i)
			res.Paths[i] = engine.LeafPath{Leaf: leafText(leaves[i]), Path: "full", Reason: reason}
		}
		byGrid := map[*grid][]int{}
		var grids []*grid
		var quantiles []int
		for i, l := range leaves {
			if reason := s.inc.eligible(ts, l); reason != "" {
				toFull(i, reason)
				continue
			}
			if slices.Contains(l.Partials(), dsl.PartialValues) {
				quantiles = append(quantiles, i)
				res.Paths[i] = engine.LeafPath{Leaf: leafText(l), Path: "incremental", Reason: "value counts per bucket"}
				continue
			}
			res.Paths[i] = engine.LeafPath{Leaf: leafText(l), Path: "incremental", Reason: "partial aggregates per bucket"}
			g := s.inc.grid(l.By, s.opts.Columns)
			if _, ok := byGrid[g]; !ok {
				grids = append(grids, g)
			}
			byGrid[g] = append(byGrid[g], i)
		}
		// The groupings' bucket reads and the value-count reads of each
		// field are independent: they run at the same time,
		// so a steady evaluation waits for its slowest read, not for the
		// sum of them. Each writes only its own leaves' vectors.
		streams := s.inc.streams(leaves, quantiles)
		qouts := make([]quantileOut, len(streams))
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxConcurrentReads)
		if s.serial() {
			// Reads queued behind each other at the connection would
			// spend their timeouts waiting: they run one after another.
			sem = make(chan struct{}, 1)
		}
		// A read takes its place before the next starts: the bucket reads
		// (started first) never wait for a place held by a quantile step
		// that waits for their counts.
		run := func(f func()) {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				f()
			})
		}
		gouts, counts := s.inc.evalGrids(ctx, s, ts, grids, byGrid, leaves, res.Vectors, run, len(quantiles) > 0)
		for k, idx := range streams {
			run(func() {
				o := &qouts[k]
				o.stmts, o.deferred, o.err = s.inc.quantiles(ctx, s, ts, leaves, idx, res.Vectors, counts)
			})
		}
		wg.Wait()
		// In order, for stable statements and the first error; a failed
		// read lists the statements of the reads that ran beside it too.
		for _, o := range gouts {
			res.Statements = append(res.Statements, o.stmts...)
		}
		for _, o := range qouts {
			res.Statements = append(res.Statements, o.stmts...)
		}
		for _, o := range gouts {
			if o.err != nil {
				return res, o.err
			}
		}
		for _, o := range qouts {
			if o.err != nil {
				return res, o.err
			}
		}
		for k, g := range grids {
			o := gouts[k]
			for _, d := range o.deferred {
				seeds[len(full)] = &seedLeaf{g: g, l: leaves[d.i], groups: map[string]*coldGroup{}}
				toFull(d.i, d.why)
			}
		}
		for k, idx := range streams {
			o := qouts[k]
			for _, i := range idx {
				if reason, ok := o.deferred[i]; ok {
					toFull(i, reason)
				}
			}
		}
		s.inc.statsMu.Lock()
		s.inc.stats.FullLeaves += len(full)
		s.inc.statsMu.Unlock()
	}
	if len(full) > 0 {
		vectors := res.Vectors
		if fullIdx != nil {
			vectors = make([][]engine.Sample, len(full))
		}
		var raw rawFunc
		if len(seeds) > 0 {
			raw = func(li int, values []string, st *dsl.State, at float64) {
				if sd := seeds[li]; sd != nil {
					sd.groups[strings.Join(values, "\xff")] = &coldGroup{values: slices.Clone(values), st: *st, at: int64(at)}
				}
			}
		}
		stmts := Compile(CompileOptions{Table: s.opts.Table, Schema: s.opts.Schema, Columns: s.opts.Columns, Seed: s.inc != nil, Distributed: s.opts.Distributed}, ts, full)
		for _, st := range stmts {
			res.Statements = append(res.Statements, st.SQL)
			if err := s.run(ctx, st, full, vectors, raw); err != nil {
				return res, fmt.Errorf("compute %s: %w", leafNames(st, full), err)
			}
		}
		for k, i := range fullIdx {
			res.Vectors[i] = vectors[k]
		}
		byGrid := map[*grid][]*seedLeaf{}
		var grids []*grid
		for k := range full { // in order, for stable statements
			if sd := seeds[k]; sd != nil {
				if _, ok := byGrid[sd.g]; !ok {
					grids = append(grids, sd.g)
				}
				byGrid[sd.g] = append(byGrid[sd.g], sd)
			}
		}
		for _, g := range grids {
			stmts, err := s.inc.seed(ctx, s, g, byGrid[g], ts)
			res.Statements = append(res.Statements, stmts...)
			if err != nil {
				return res, err
			}
		}
	}
	for i, v := range res.Vectors {
		if s.opts.MaxGroups > 0 && len(v) > s.opts.MaxGroups {
			// The incremental path reads groups per bucket, whose limit in
			// ClickHouse is looser; the merged window is checked here.
			return res, fmt.Errorf("compute %s: %w", leaves[i].Func, s.queryError(tooManyGroups{len(v)}))
		}
		sort.Slice(v, func(i, j int) bool { return labels.Compare(v[i].Labels, v[j].Labels) < 0 })
	}
	return res, nil
}

// maxConcurrentReads bounds the reads of one evaluation that run at the
// same time (one per grouping's buckets, one per field's value counts).
const maxConcurrentReads = 4

// serial reports whether the source's connection runs one statement at a
// time (SerialConn).
func (s *Source) serial() bool {
	sc, ok := s.opts.Conn.(SerialConn)
	return ok && sc.Serial()
}

// SerialConn is a Conn that runs one statement at a time (embedded
// ClickHouse): an evaluation's reads then run one after another, each
// with its whole timeout, instead of waiting for each other inside it.
type SerialConn interface {
	Conn
	Serial() bool
}

// quantileOut is what the value-count reads of one stream gave.
type quantileOut struct {
	stmts    []string
	deferred map[int]string
	err      error
}

// rawFunc receives a full query's partial states of leaf li in one group:
// the group's label values, its state and the time of a min or max (unix
// seconds).
type rawFunc func(li int, values []string, st *dsl.State, at float64)

// run executes one statement and appends its leaves' samples to vectors.
func (s *Source) run(ctx context.Context, st Statement, leaves []*dsl.Leaf, vectors [][]engine.Sample, raw rawFunc) error {
	// values are indexed by result column (LeafColumns), labels included.
	values := make([]float64, st.Width)
	// absentSeen records, per absent_over_time leaf, whether any group had
	// an event; such a leaf has a sample only when none had.
	absentSeen := make([]bool, len(st.Leaves))
	maxRows := 0
	if len(st.By) > 0 {
		maxRows = len(st.Leaves) * s.opts.MaxGroups
	}
	err := s.scan(ctx, st.query, maxRows, func(groupValues []string, vals []float64) error {
		copy(values[len(st.By):], vals)
		for j, li := range st.Leaves {
			l, cols := leaves[li], st.Columns[j]
			if values[cols.Count] == 0 {
				// No event of this leaf in the group: PromQL has no series.
				continue
			}
			var state dsl.State
			cols.fill(&state, values)
			if raw != nil {
				var at float64
				if cols.Time >= 0 {
					at = values[cols.Time]
				}
				raw(li, groupValues, &state, at)
			}
			if l.Agg == dsl.AggAbsent {
				absentSeen[j] = true
				continue
			}
			vectors[li] = append(vectors[li], engine.Sample{Labels: l.GroupLabels(groupValues), Value: l.Finish(&state)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for j, li := range st.Leaves {
		if l := leaves[li]; l.Agg == dsl.AggAbsent && !absentSeen[j] {
			vectors[li] = append(vectors[li], engine.Sample{Labels: l.Labels(), Value: 1})
		}
	}
	return nil
}

func leafNames(st Statement, leaves []*dsl.Leaf) string {
	names := make([]string, len(st.Leaves))
	for i, li := range st.Leaves {
		names[i] = leaves[li].Func
	}
	return strings.Join(names, ", ")
}

// scan runs one query of the source and calls row with each row; an
// error from row stops the query and is returned. It is where the source's
// queries meet ClickHouse: each runs under QueryTimeout, in callwatch and
// in ClickHouse, and a GROUP BY that outgrows maxRows groups (when
// MaxGroups is set) fails with ErrTooManyGroups (see Limits).
func (s *Source) scan(ctx context.Context, q *Select, maxRows int, row func(labels []string, values []float64) error) error {
	if s.opts.MaxGroups <= 0 {
		maxRows = 0
	}
	return s.queryError(q.Run(ctx, s.opts.Conn, Limits{Timeout: s.opts.QueryTimeout, MaxGroups: maxRows}, row))
}

// ErrTooManyGroups is returned when a query would return more groups than
// Options.MaxGroups allows.
var ErrTooManyGroups = errors.New("too many groups")

// tooManyGroups is the error of a merged window with n groups.
type tooManyGroups struct{ n int }

func (e tooManyGroups) Error() string { return fmt.Sprintf("%d groups", e.n) }

// queryError explains ClickHouse's refusals in terms of callwatch's
// configuration.
func (s *Source) queryError(err error) error {
	var many tooManyGroups
	var netErr net.Error
	switch {
	case errors.As(err, &many):
		return fmt.Errorf("%w: a range function returns %d groups, more than limits.max_series_per_rule (%d); group by fewer labels or narrow the selector",
			ErrTooManyGroups, many.n, s.opts.MaxGroups)
	case errors.As(err, &netErr) && netErr.Timeout() && !errors.Is(err, context.DeadlineExceeded):
		// clickhouse-go turns the context's deadline into its
		// connection's read deadline, which may fire first.
		return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	switch ErrorCode(err) {
	case codeTooManyRows:
		return fmt.Errorf("%w: a range function returns more than limits.max_series_per_rule (%d) groups; group by fewer labels or narrow the selector (%w)",
			ErrTooManyGroups, s.opts.MaxGroups, err)
	case codeTimeoutExceeded:
		return fmt.Errorf("the query ran longer than its timeout (%s): %w", s.opts.QueryTimeout, context.DeadlineExceeded)
	}
	return err
}

// ClickHouse error codes the source explains.
const (
	codeTooManyRows     = 158
	codeTimeoutExceeded = 159
)

// leafText names a leaf in the paths of an evaluation: its function,
// selector, window and offset.
func leafText(l *dsl.Leaf) string {
	var sb strings.Builder
	sb.WriteString(l.Func + "(")
	if l.Agg == dsl.AggQuantile && l.Func == "quantile_over_time" {
		sb.WriteString(strconv.FormatFloat(l.Quantile, 'g', -1, 64) + ", ")
	}
	sb.WriteString(l.Selector.Field)
	if len(l.Selector.Matchers) > 0 {
		ms := make([]string, len(l.Selector.Matchers))
		for i, m := range l.Selector.Matchers {
			ms[i] = m.String()
		}
		sb.WriteString("{" + strings.Join(ms, ", ") + "}")
	}
	sb.WriteString("[" + model.Duration(l.Range).String() + "]")
	if l.Offset > 0 {
		sb.WriteString(" offset " + model.Duration(l.Offset).String())
	}
	if l.Agg == dsl.AggCountLE || l.Agg == dsl.AggCountGT {
		sb.WriteString(", " + strconv.FormatFloat(l.Threshold, 'g', -1, 64))
	}
	sb.WriteString(")")
	text := l.WrapCalendar(sb.String())
	if l.Grouped {
		text += " by (" + strings.Join(l.By, ", ") + ")"
	}
	return text
}
