package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

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
	// QueryTimeout bounds each query (default 30s).
	QueryTimeout time.Duration
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
	if opts.Conn == nil {
		return nil, errors.New("clickhouse source: no connection")
	}
	if opts.Table == "" {
		return nil, errors.New("clickhouse source: no events table")
	}
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	if err := opts.Schema.Validate(); err != nil {
		return nil, fmt.Errorf("clickhouse source: %w", err)
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 30 * time.Second
	}
	s := &Source{opts: opts}
	if opts.Incremental != nil {
		s.inc = newPartials(*opts.Incremental)
	}
	return s, nil
}

// IncrementalStats returns the work of the incremental path so far (zero
// without Options.Incremental).
func (s *Source) IncrementalStats() IncrementalStats {
	if s.inc == nil {
		return IncrementalStats{}
	}
	s.inc.statsMu.Lock()
	defer s.inc.statsMu.Unlock()
	return s.inc.stats
}

// EvalLeaves computes the leaves at ts. Each statement runs with its own
// timeout; the first failure aborts the evaluation. The SQL of the
// statements that ran (or failed) is returned in LeafResult.Statements.
func (s *Source) EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (engine.LeafResult, error) {
	res := engine.LeafResult{Vectors: make([][]engine.Sample, len(leaves))}
	full := leaves
	var fullIdx []int // full's indexes into leaves, when some are incremental
	// seeds are the leaves computed in full now whose results start their
	// cold state on the incremental path.
	seeds := map[int]*seedLeaf{}
	if s.inc != nil {
		full = nil
		byGrid := map[*grid][]int{}
		var grids []*grid
		for i, l := range leaves {
			if !s.inc.eligible(ts, l) {
				full, fullIdx = append(full, l), append(fullIdx, i)
				continue
			}
			g := s.inc.grid(l.By)
			if _, ok := byGrid[g]; !ok {
				grids = append(grids, g)
			}
			byGrid[g] = append(byGrid[g], i)
		}
		for _, g := range grids {
			stmts, deferred, err := s.inc.eval(ctx, s, g, ts, leaves, byGrid[g], res.Vectors)
			res.Statements = append(res.Statements, stmts...)
			if err != nil {
				return res, err
			}
			for _, i := range deferred {
				seeds[len(full)] = &seedLeaf{g: g, l: leaves[i], groups: map[string]*coldGroup{}}
				full, fullIdx = append(full, leaves[i]), append(fullIdx, i)
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
			raw = func(li int, values []string, count, sum, agg, at float64) {
				if sd := seeds[li]; sd != nil {
					sd.groups[strings.Join(values, "\xff")] = &coldGroup{values: slices.Clone(values), count: count, sum: sum, agg: agg, at: int64(at)}
				}
			}
		}
		stmts := Compile(CompileOptions{Table: s.opts.Table, Schema: s.opts.Schema, Seed: s.inc != nil}, ts, full)
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
	for _, v := range res.Vectors {
		sort.Slice(v, func(i, j int) bool { return labels.Compare(v[i].Labels, v[j].Labels) < 0 })
	}
	return res, nil
}

// rawFunc receives a full query's aggregates of leaf li in one group:
// the group's label values, count, sum, the primitive aggregate and the
// time of a min or max (unix seconds).
type rawFunc func(li int, values []string, count, sum, agg, at float64)

// run executes one statement and appends its leaves' samples to vectors.
func (s *Source) run(ctx context.Context, st Statement, leaves []*dsl.Leaf, vectors [][]engine.Sample, raw rawFunc) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	rows, err := s.opts.Conn.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return err
	}
	defer rows.Close()

	groupValues := make([]string, len(st.By))
	values := make([]float64, st.Width)
	dest := make([]any, st.Width)
	for i := range dest {
		if i < len(st.By) {
			dest[i] = &groupValues[i]
		} else {
			dest[i] = &values[i]
		}
	}
	// absentSeen records, per absent_over_time leaf, whether any group had
	// an event; such a leaf has a sample only when none had.
	absentSeen := make([]bool, len(st.Leaves))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		for j, li := range st.Leaves {
			l, cols := leaves[li], st.Columns[j]
			count := values[cols.Count]
			if count == 0 {
				// No event of this leaf in the group: PromQL has no series.
				continue
			}
			if raw != nil {
				var sum, agg, at float64
				if cols.Sum >= 0 {
					sum = values[cols.Sum]
				}
				if cols.Agg >= 0 {
					agg = values[cols.Agg]
				}
				if cols.Time >= 0 {
					at = values[cols.Time]
				}
				raw(li, groupValues, count, sum, agg, at)
			}
			if l.Agg == dsl.AggAbsent {
				absentSeen[j] = true
				continue
			}
			var sum, agg float64
			if cols.Sum >= 0 {
				sum = values[cols.Sum]
			}
			if cols.Agg >= 0 {
				agg = values[cols.Agg]
			}
			vectors[li] = append(vectors[li], engine.Sample{
				Labels: l.GroupLabels(groupValues),
				Value:  l.Value(count, sum, agg),
			})
		}
	}
	if err := rows.Err(); err != nil {
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
