package storetest

// The differential suite: random events and random expressions from a
// seed, every expression evaluated at a few times by the memory evaluator
// and by the backend, which must give the same answer.

import (
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/storetest/gen"
)

const (
	// diffExprs is the number of expressions generated per seed (more when
	// needed to cover every feature of the language).
	diffExprs = 300
	// diffWorkers evaluate expressions concurrently: ClickHouse's latency,
	// not the CPU, bounds the suite on a server.
	diffWorkers = 4
	// diffMaxReports bounds the mismatches printed in full per seed.
	diffMaxReports = 5
)

// exprTolerance is that of expressions that contain an approximate leaf
// (see leafExact): ClickHouse adds floats in another order (and merges
// partial states of avg and stddev), so results agree to about 1e-13
// relative, checked at 1e-9. Where an expression subtracts approximate
// values the exact answer may be 0, where a relative bound means nothing:
// operands stay below ~1e5 and differ by ≤ ~1e-12 relative, so such a
// difference is off by at most ~1e-7, and the absolute 1e-6 admits it. The
// generator never multiplies or divides such a difference, which would
// scale the error beyond that floor.
var exprTolerance = tolerance{rel: 1e-9, abs: 1e-6}

// Differential generates, for each seed, random events (gen.NewData) and
// random expressions over every feature of the language (gen.Pinned, then
// gen.Exprs), evaluates every expression at every evaluation time with the
// memory evaluator and with the backend, on the full path, and requires
// the same answer: the leaves, the result, the errors. Then it evaluates
// every leaf of every expression in one call, fused into few statements.
// A failure prints the seed and the command that replays it (see Seeds).
func Differential(t *testing.T, conn clickhouse.ExecQuerier, db string, seeds []uint64) {
	forEachSeed(t, seeds, func(t *testing.T, seed uint64) {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		differential(t, conn, db, seed)
	})
}

func differential(t *testing.T, conn clickhouse.ExecQuerier, db string, seed uint64) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	schema := dsl.DefaultSchema()
	data := gen.NewData(rng, schema)

	// The same events in memory and in a table of their own.
	mem := memory.New(schema)
	mem.Add(data.Events...)
	table := fmt.Sprintf("%s.diff_events_%d", db, seed)
	createEventsTable(t, conn, table, schema)
	// Shuffled, in a few inserts: several parts, read by several threads,
	// so ClickHouse adds in another order than the memory evaluator.
	rows := slices.Clone(data.Events)
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for part := range 4 {
		insertEvents(t, conn, table, schema, rows[part*len(rows)/4:(part+1)*len(rows)/4])
	}
	checkStoredCosts(t, conn, table, data.Events)
	ch, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Distributed: distributed(conn)})
	if err != nil {
		t.Fatal(err)
	}

	// Expressions, until there are diffExprs of them and every feature is covered.
	g := gen.NewExprs(gen.Options{Rand: rng, Schema: schema, Exact: leafExact})
	inputs := slices.Clone(gen.Pinned)
	n := exprsFor(conn, diffExprs)
	for len(inputs) < len(gen.Pinned)+n || (len(g.Missing()) > 0 && len(inputs) < 5*diffExprs) {
		inputs = append(inputs, g.Expr())
	}
	if m := g.Missing(); len(m) > 0 {
		t.Errorf("after %d expressions the generator has not produced %v", len(inputs), m)
	}
	var exprs []*dsl.Expr
	var bad []string
	for _, in := range inputs {
		e, err := dsl.Parse(in, dsl.Options{Schema: schema})
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s\n    %v", in, err))
			continue
		}
		exprs = append(exprs, e)
	}
	for i, b := range bad {
		if i == 10 {
			t.Logf("... and %d more", len(bad)-10)
			break
		}
		t.Logf("generated expression does not parse: %s", b)
	}
	if len(exprs) < len(inputs)*95/100 {
		t.Errorf("only %d of %d generated expressions parse; fix the generator", len(exprs), len(inputs))
	}

	// Every expression at every evaluation time, concurrently.
	type job struct {
		i  int
		ts time.Time
	}
	jobs := make(chan job)
	var (
		mu                              sync.Mutex
		mismatches                      []diffMismatch
		compared, exact, errored, stmts int
		nonEmpty, samples, inexact      int
		errs                            = map[string]int{}
	)
	var wg sync.WaitGroup
	for range diffWorkers {
		wg.Go(func() {
			memQ, memLeaves := recordingQuerier(mem)
			chQ, chLeaves := recordingQuerier(ch)
			for j := range jobs {
				e := exprs[j.i]
				var m, c diffEval
				isExact := exprExact(e)
				problem := func() (problem string) {
					// A panic is a mismatch too, reported with the seed.
					defer func() {
						if r := recover(); r != nil {
							problem = fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
						}
					}()
					// An expression without leaves does not call the sources.
					*memLeaves, *chLeaves = engine.LeafResult{}, engine.LeafResult{}
					m.res, m.err = memQ.Query(context.Background(), e, j.ts)
					m.leaves = *memLeaves
					c.res, c.err = chQ.Query(context.Background(), e, j.ts)
					c.leaves = *chLeaves
					return compareEvals(e, isExact, m, c)
				}()
				mu.Lock()
				compared++
				stmts += len(c.leaves.Statements)
				if isExact {
					exact++
				}
				if m.err != nil && c.err != nil {
					errored++
					errs[m.err.Error()]++
				}
				if !isExact && problem == "" && compareEvals(e, true, m, c) != "" {
					inexact++
				}
				if n := len(m.res.Vector); n > 0 || (m.res.IsScalar && !math.IsNaN(m.res.Scalar)) {
					nonEmpty++
					samples += max(n, 1)
				}
				if problem != "" {
					mismatches = append(mismatches, diffMismatch{expr: e, n: j.i, ts: j.ts, problem: problem, mem: m, ch: c})
				}
				mu.Unlock()
			}
		})
	}
	for i := range exprs {
		for _, ts := range data.EvalTimes {
			jobs <- job{i, ts}
		}
	}
	close(jobs)
	wg.Wait()

	sort.Slice(mismatches, func(i, j int) bool {
		a, b := mismatches[i], mismatches[j]
		if a.n != b.n {
			return a.n < b.n
		}
		return a.ts.Before(b.ts)
	})
	for i, mm := range mismatches {
		if i == diffMaxReports {
			t.Errorf("... and %d more mismatches", len(mismatches)-diffMaxReports)
			break
		}
		t.Errorf("seed %d: memory and ClickHouse disagree\n%s", seed, mm.report(table, schema))
	}
	// Every leaf of every expression in one call: many selectors fused
	// into each statement.
	var all []*dsl.Leaf
	for _, e := range exprs {
		all = append(all, e.Leaves...)
	}
	fused := 0
	for _, ts := range data.EvalTimes {
		m, merr := mem.EvalLeaves(context.Background(), ts, all)
		c, cerr := ch.EvalLeaves(context.Background(), ts, all)
		if merr != nil || cerr != nil {
			t.Errorf("seed %d: all %d leaves at %s: memory error %v, ClickHouse error %v", seed, len(all), ts.Format(time.RFC3339Nano), merr, cerr)
			continue
		}
		fused += len(c.Statements)
		for i, l := range all {
			if p := compareVectors(leafExact(l), exprTolerance, m.Vectors[i], c.Vectors[i]); p != "" {
				t.Errorf("seed %d: all %d leaves in one call at %s: leaf %s differs: %s", seed, len(all), ts.Format(time.RFC3339Nano), leafString(l), p)
				break
			}
		}
	}
	msgs := slices.Sorted(maps.Keys(errs))
	for i, msg := range msgs {
		if i == 3 {
			t.Logf("... and %d more errors", len(msgs)-3)
			break
		}
		short := msg
		if len(short) > 160 {
			short = short[:160] + "…"
		}
		t.Logf("both sides failed %d times with: %s", errs[msg], short)
	}
	t.Logf("seed %d: %d events; %d expressions (%d pinned, %d generated), %d parse; %d comparisons (%d exact; %d tolerant, %d of them not bit-identical; %d with a result, %d samples; %d erred on both sides); %d SQL statements; %d leaves fused into %d statements per time; %d mismatches; %v",
		seed, len(data.Events), len(inputs), len(gen.Pinned), len(inputs)-len(gen.Pinned), len(exprs), compared, exact, compared-exact, inexact, nonEmpty, samples, errored, stmts, len(all), fused/len(data.EvalTimes), len(mismatches), time.Since(start).Round(time.Millisecond))
	if errored > compared/4 {
		t.Errorf("%d of %d evaluations erred on both sides: the generator builds too many invalid matchings", errored, compared)
	}
	if nonEmpty < compared/3 {
		t.Errorf("only %d of %d evaluations have a result: the comparison is too often of nothing", nonEmpty, compared)
	}
}

// checkStoredCosts verifies that ClickHouse stored exactly the generated
// costs (insertEvents stores their bits: the text parser of 18.16 reads
// 0.159511 as 0.15951100000000001), which would otherwise make min, max and
// quantiles of cost differ for a reason outside callwatch.
func checkStoredCosts(t *testing.T, conn clickhouse.ExecQuerier, table string, events []memory.Event) {
	t.Helper()
	got := queryColumn[float64](t, conn, "SELECT toFloat64(`cost`) FROM "+table+" ORDER BY `cost`")
	want := make([]float64, len(events))
	for i, ev := range events {
		want[i] = ev.Nums["cost"]
	}
	sort.Float64s(want)
	if len(got) != len(want) {
		t.Fatalf("ClickHouse holds %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ClickHouse stored cost %v as %v: events must be inserted exactly",
				strconv.FormatFloat(want[i], 'g', -1, 64), strconv.FormatFloat(got[i], 'g', -1, 64))
		}
	}
}

// recordingQuerier returns a Querier over src and where the leaf results of
// its last query are kept (a Querier per goroutine, so no locking).
func recordingQuerier(src engine.LeafSource) (*engine.Querier, *engine.LeafResult) {
	last := new(engine.LeafResult)
	rec := engine.LeafSourceFunc(func(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (engine.LeafResult, error) {
		res, err := src.EvalLeaves(ctx, ts, leaves)
		*last = res
		return res, err
	})
	return engine.NewQuerier(engine.QuerierOptions{Source: rec}), last
}

// diffEval is one evaluation by one backend.
type diffEval struct {
	res    engine.Result
	err    error
	leaves engine.LeafResult
}

type diffMismatch struct {
	expr    *dsl.Expr
	n       int
	ts      time.Time
	problem string
	mem, ch diffEval
}

func (mm diffMismatch) report(table string, schema dsl.Schema) string {
	var b strings.Builder
	fmt.Fprintf(&b, "expression #%d: %s\n", mm.n, mm.expr.Input)
	fmt.Fprintf(&b, "at:         %s (exact comparison: %v)\n", mm.ts.Format(time.RFC3339Nano), exprExact(mm.expr))
	fmt.Fprintf(&b, "problem:    %s\n", mm.problem)
	b.WriteString(formatEvals(exprExact(mm.expr), mm.mem, mm.ch, ""))
	for i, l := range mm.expr.Leaves {
		var mv, cv []engine.Sample
		if i < len(mm.mem.leaves.Vectors) {
			mv = mm.mem.leaves.Vectors[i]
		}
		if i < len(mm.ch.leaves.Vectors) {
			cv = mm.ch.leaves.Vectors[i]
		}
		fmt.Fprintf(&b, "leaf %s = %s (grouped: %v, by: %v)\n", l.Name, mm.expr.Input[l.Pos.Start:l.Pos.End], l.Grouped, l.By)
		b.WriteString(formatEvals(leafExact(l), diffEval{res: engine.Result{Vector: mv}}, diffEval{res: engine.Result{Vector: cv}}, "    "))
	}
	b.WriteString("SQL:\n")
	for _, st := range clickhouse.Compile(clickhouse.CompileOptions{Table: table, Schema: schema}, mm.ts.Truncate(time.Millisecond), mm.expr.Leaves) {
		fmt.Fprintf(&b, "%s\n-- args: %#v\n", st.SQL, st.Args)
	}
	return b.String()
}

// formatEvals shows both evaluations: in full when they are short, else
// only the samples that differ.
func formatEvals(exact bool, m, c diffEval, indent string) string {
	one := func(ev diffEval) string {
		switch {
		case ev.err != nil:
			return "error: " + ev.err.Error()
		case ev.res.IsScalar:
			return "scalar " + strconv.FormatFloat(ev.res.Scalar, 'g', -1, 64)
		}
		parts := make([]string, len(ev.res.Vector))
		for i, s := range ev.res.Vector {
			parts[i] = s.Labels.String() + " " + strconv.FormatFloat(s.Value, 'g', -1, 64)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	if m.err != nil || c.err != nil || m.res.IsScalar || c.res.IsScalar || len(m.res.Vector)+len(c.res.Vector) <= 12 {
		return fmt.Sprintf("%smemory:     %s\n%sclickhouse: %s\n", indent, one(m), indent, one(c))
	}
	type pair struct {
		m, c     float64
		inM, inC bool
	}
	byLabels := map[string]*pair{}
	var keys []string
	get := func(k string) *pair {
		if byLabels[k] == nil {
			byLabels[k] = &pair{}
			keys = append(keys, k)
		}
		return byLabels[k]
	}
	for _, s := range m.res.Vector {
		p := get(s.Labels.String())
		p.m, p.inM = s.Value, true
	}
	for _, s := range c.res.Vector {
		p := get(s.Labels.String())
		p.c, p.inC = s.Value, true
	}
	sort.Strings(keys)
	var b strings.Builder
	differ := 0
	for _, k := range keys {
		p := byLabels[k]
		if p.inM && p.inC && sameValue(exact, exprTolerance, p.m, p.c) {
			continue
		}
		if differ++; differ > 10 {
			continue
		}
		switch {
		case !p.inC:
			fmt.Fprintf(&b, "%s  %s: only in memory (%v)\n", indent, k, p.m)
		case !p.inM:
			fmt.Fprintf(&b, "%s  %s: only in ClickHouse (%v)\n", indent, k, p.c)
		default:
			fmt.Fprintf(&b, "%s  %s: memory %v, ClickHouse %v\n", indent, k, p.m, p.c)
		}
	}
	return fmt.Sprintf("%s%d samples in memory, %d in ClickHouse, %d differ:\n%s", indent, len(m.res.Vector), len(c.res.Vector), differ, b.String())
}

// leafString describes a leaf.
func leafString(l *dsl.Leaf) string {
	ms := make([]string, len(l.Selector.Matchers))
	for i, m := range l.Selector.Matchers {
		ms[i] = m.String()
	}
	return fmt.Sprintf("%s φ=%v threshold=%v %s{%s}[%s] offset %s grouped=%v by %v", l.Func, l.Quantile, l.Threshold, l.Selector.Field,
		strings.Join(ms, ", "), gen.PromDuration(l.Range), gen.PromDuration(l.Offset), l.Grouped, l.By)
}

// exprExact reports whether an expression's result must be identical: all
// its leaves are exact, and the PromQL engine above them is the same code
// on the same input.
func exprExact(e *dsl.Expr) bool {
	for _, l := range e.Leaves {
		if !leafExact(l) {
			return false
		}
	}
	return true
}

// compareEvals returns what differs between the two evaluations, or "".
func compareEvals(e *dsl.Expr, exact bool, m, c diffEval) string {
	if (m.err == nil) != (c.err == nil) {
		return "only one backend failed"
	}
	if m.err != nil {
		if m.err.Error() != c.err.Error() {
			return "the backends failed differently"
		}
		return ""
	}
	for i, l := range e.Leaves {
		if p := compareVectors(leafExact(l), exprTolerance, m.leaves.Vectors[i], c.leaves.Vectors[i]); p != "" {
			return fmt.Sprintf("leaf %s: %s", l.Name, p)
		}
	}
	if m.res.IsScalar != c.res.IsScalar {
		return "result types differ"
	}
	if m.res.IsScalar {
		if !sameValue(exact, exprTolerance, m.res.Scalar, c.res.Scalar) {
			return "scalars differ"
		}
		return ""
	}
	if m.res.NoData != c.res.NoData {
		return "NoData differs"
	}
	return compareVectors(exact, exprTolerance, m.res.Vector, c.res.Vector)
}
