package clickhouse

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/chtest"
)

// The differential test generates random events and random expressions from
// a seed, evaluates every expression at a few times with the memory
// evaluator and with ClickHouse, and requires the same answer from both.
//
// Without -seed (or CALLWATCH_SEED) it runs a fixed seed, so a regression
// fails the same way every time, and a seed taken from the clock, so every
// run explores new inputs. A failure prints the seed and the command that
// replays it.
var diffSeed = flag.String("seed", "", "seed of TestDifferential (default: a fixed seed and one from the clock; also CALLWATCH_SEED)")

const (
	// diffFixedSeed is the seed every run starts with.
	diffFixedSeed = 20251124
	// diffExprs is the number of expressions generated per seed (more when
	// needed to cover every feature of the language).
	diffExprs = 300
	// diffWorkers evaluate expressions concurrently: ClickHouse's latency,
	// not the CPU, bounds the test.
	diffWorkers = 4
	// diffMaxReports bounds the mismatches printed in full per seed.
	diffMaxReports = 5
)

// Tolerances for expressions that contain an approximate leaf (see
// leafExact): ClickHouse adds floats in another order (and merges
// partial states of avg and stddevPopStable), so results agree to about
// 1e-13 relative, checked at diffRelTol. Where an expression subtracts
// approximate values the exact answer may be 0, where a relative bound means
// nothing: operands stay below ~1e5 and differ by ≤ ~1e-12 relative, so
// such a difference is off by at most ~1e-7, and diffAbsTol (1e-6) admits
// it. The generator never multiplies or divides such a difference, which
// would scale the error beyond that floor.
const (
	diffRelTol = 1e-9
	diffAbsTol = 1e-6
)

func TestDifferentialMemoryAndClickHouseAgree(t *testing.T) {
	seeds := differentialSeeds(t)
	s := server.Get(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("panic: %v\n%s", r, debug.Stack())
				}
				if t.Failed() {
					t.Logf("reproduce with: go test ./engine/clickhouse -run 'TestDifferential' -v -seed=%d  (or CALLWATCH_SEED=%d)", seed, seed)
				}
			}()
			runDifferential(t, s, seed)
		})
	}
}

func differentialSeeds(t *testing.T) []uint64 {
	t.Helper()
	for _, v := range []string{*diffSeed, os.Getenv("CALLWATCH_SEED")} {
		if v == "" {
			continue
		}
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("seed %q: %v", v, err)
		}
		return []uint64{seed}
	}
	return []uint64{diffFixedSeed, uint64(time.Now().UnixNano())}
}

func runDifferential(t *testing.T, s *chtest.Server, seed uint64) {
	start := time.Now()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	schema := dsl.DefaultSchema()
	data := newDiffData(rng, schema)

	// The same events in memory and in a fresh database.
	mem := memory.New(schema)
	mem.Add(data.events...)
	db := s.NewDatabase(t)
	s.Exec(t, EventsDDL(db+".events", schema))
	rows := make([]map[string]any, len(data.events))
	for i, ev := range data.events {
		r := map[string]any{schema.Time: ev.Time}
		for j, l := range schema.Labels {
			r[l] = ev.Labels[j]
		}
		for c, v := range ev.Nums {
			r[c] = v
		}
		rows[i] = r
	}
	// Shuffled, in a few inserts: several parts, read by several threads,
	// so ClickHouse adds in another order than the memory evaluator.
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	for part := range 4 {
		s.InsertJSONEachRow(t, db, "events", rows[part*len(rows)/4:(part+1)*len(rows)/4])
	}
	conn := NewNativeConn(s.Conn(t, db))
	checkStoredCosts(t, conn, data.events)
	ch, err := New(Options{Conn: conn, Table: "events", Schema: schema})
	if err != nil {
		t.Fatal(err)
	}

	// Expressions, until there are diffExprs of them and every feature is covered.
	g := newExprGen(rng, schema)
	inputs := slices.Clone(diffPinned)
	for len(inputs) < len(diffPinned)+diffExprs || (len(g.missing()) > 0 && len(inputs) < 5*diffExprs) {
		inputs = append(inputs, g.expr())
	}
	if m := g.missing(); len(m) > 0 {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
	}
	for i := range exprs {
		for _, ts := range data.evalTimes {
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
		t.Errorf("seed %d: memory and ClickHouse disagree\n%s", seed, mm.report(schema))
	}
	// Every leaf of every expression in one call: many selectors fused
	// into each statement.
	var all []*dsl.Leaf
	for _, e := range exprs {
		all = append(all, e.Leaves...)
	}
	fused := 0
	for _, ts := range data.evalTimes {
		m, merr := mem.EvalLeaves(context.Background(), ts, all)
		c, cerr := ch.EvalLeaves(context.Background(), ts, all)
		if merr != nil || cerr != nil {
			t.Errorf("seed %d: all %d leaves at %s: memory error %v, ClickHouse error %v", seed, len(all), ts.Format(time.RFC3339Nano), merr, cerr)
			continue
		}
		fused += len(c.Statements)
		for i, l := range all {
			if p := compareVectors(leafExact(l), m.Vectors[i], c.Vectors[i]); p != "" {
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
		seed, len(data.events), len(inputs), len(diffPinned), len(inputs)-len(diffPinned), len(exprs), compared, exact, compared-exact, inexact, nonEmpty, samples, errored, stmts, len(all), fused/len(data.evalTimes), len(mismatches), time.Since(start).Round(time.Millisecond))
	if errored > compared/4 {
		t.Errorf("%d of %d evaluations erred on both sides: the generator builds too many invalid matchings", errored, compared)
	}
}

// checkStoredCosts verifies that ClickHouse stored exactly the generated
// costs: its text parser rounds some decimals differently from Go's
// (0.159511 is read as 0.15951100000000001 by 18.16), which would make min,
// max and quantiles of cost differ for a reason outside callwatch.
func checkStoredCosts(t *testing.T, conn Conn, events []memory.Event) {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT toFloat64(`cost`) FROM `events` ORDER BY `cost`")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []float64
	for rows.Next() {
		var x float64
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		got = append(got, x)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
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
			t.Fatalf("ClickHouse stored cost %v as %v: the generator must produce costs its text parser reads exactly",
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

func (mm diffMismatch) report(schema dsl.Schema) string {
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
	for _, st := range Compile(CompileOptions{Table: "events", Schema: schema}, mm.ts.Truncate(time.Millisecond), mm.expr.Leaves) {
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
		if p.inM && p.inC && sameValue(exact, p.m, p.c) {
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
	return fmt.Sprintf("%s φ=%v %s{%s}[%s] offset %s grouped=%v by %v", l.Func, l.Quantile, l.Selector.Field,
		strings.Join(ms, ", "), promDuration(l.Range), promDuration(l.Offset), l.Grouped, l.By)
}

// leafExact reports whether both backends compute a leaf's value bit for
// bit: counts, min, max and quantiles (which pick one of the values), and
// sums of integer columns (ClickHouse sums UInt32 into UInt64, Go into a
// float64, both exactly below 2^53). rate and increase are such a count or
// sum, divided (for rate) by the window in Go, by dsl.Leaf.Value, on both
// sides, so they are exact too unless the field is a float column. avg and
// stddev, and sums of floats, depend on the order of additions.
func leafExact(l *dsl.Leaf) bool {
	switch l.Agg {
	case dsl.AggCount, dsl.AggAbsent, dsl.AggPresent, dsl.AggMin, dsl.AggMax, dsl.AggQuantile:
		return true
	case dsl.AggSum, dsl.AggRate, dsl.AggIncrease:
		for _, c := range l.Selector.Columns {
			if numericType(c) != "UInt32" {
				return false
			}
		}
		return true
	}
	return false
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
		if p := compareVectors(leafExact(l), m.leaves.Vectors[i], c.leaves.Vectors[i]); p != "" {
			return fmt.Sprintf("leaf %s: %s", l.Name, p)
		}
	}
	if m.res.IsScalar != c.res.IsScalar {
		return "result types differ"
	}
	if m.res.IsScalar {
		if !sameValue(exact, m.res.Scalar, c.res.Scalar) {
			return "scalars differ"
		}
		return ""
	}
	if m.res.NoData != c.res.NoData {
		return "NoData differs"
	}
	return compareVectors(exact, m.res.Vector, c.res.Vector)
}

// compareVectors compares vectors sorted by labels (as the querier and the
// sources return them).
func compareVectors(exact bool, a, b []engine.Sample) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d samples in memory, %d in ClickHouse", len(a), len(b))
	}
	for i := range a {
		if !labels.Equal(a[i].Labels, b[i].Labels) {
			return fmt.Sprintf("labels differ: %s and %s", a[i].Labels, b[i].Labels)
		}
		if !sameValue(exact, a[i].Value, b[i].Value) {
			return fmt.Sprintf("values of %s differ: %v and %v", a[i].Labels, a[i].Value, b[i].Value)
		}
	}
	return ""
}

// sameValue compares exactly, or within diffRelTol relative and diffAbsTol
// absolute. NaN equals NaN: both sides computed the same undefined value.
func sameValue(exact bool, a, b float64) bool {
	if a == b || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	if exact || math.IsInf(a, 0) || math.IsInf(b, 0) || math.IsNaN(a) || math.IsNaN(b) {
		return false
	}
	return math.Abs(a-b) <= diffRelTol*math.Max(math.Abs(a), math.Abs(b))+diffAbsTol
}

// ---- events ----

// diffLabelValues are the values of each label (the empty string included)
// in the generated events.
var diffLabelValues = map[string][]string{
	"tenant_id":  {"acme", "beta", "o'brien", "租户", ""},
	"app_code":   {"chat", "search", "batch", "", "checkout"},
	"model":      {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude 3\n(beta)", ""},
	"provider":   {"openai", "azure", "anthropic", ""},
	"status":     {"ok", "error", "timeout", ""},
	"error_code": {"", "429", "500", "503"},
}

// diffWindows and diffOffsets are the windows and offsets the generator
// prefers; events are placed on their edges at every evaluation time.
var (
	diffWindows = []time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute,
		7*time.Minute + 13*time.Second, 30 * time.Minute, time.Hour, 2 * time.Hour}
	diffOffsets = []time.Duration{0, 30 * time.Second, 5 * time.Minute, time.Hour}
)

type diffData struct {
	events    []memory.Event
	evalTimes []time.Time
	// weights skews each label's values, so some groups are small.
	weights map[string][]int
}

func newDiffData(rng *rand.Rand, schema dsl.Schema) *diffData {
	base := time.Date(2025, 11, 24, 14, 0, 0, 0, time.UTC)
	end := base.Add(2 * time.Hour)
	d := &diffData{
		evalTimes: []time.Time{
			end,
			base.Add(90*time.Minute + 250*time.Millisecond),
			base.Add(time.Hour + 999*time.Millisecond),
			base.Add(30*time.Minute + time.Duration(rng.Int64N(int64(90*time.Minute)))).Truncate(time.Millisecond),
			// Just after the start of DateTime, where rule unit tests run:
			// windows reach before 1970.
			time.Unix(1800, 250_000_000).UTC(),
		},
		weights: map[string][]int{},
	}
	for _, l := range schema.Labels {
		w := []int{16, 8, 4, 2, 1}[:len(diffLabelValues[l])]
		rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
		d.weights[l] = w
	}
	add := func(at time.Time) {
		if at.Unix() >= 0 { // a DateTime cannot hold earlier times
			d.events = append(d.events, d.event(rng, schema, at))
		}
	}
	for range 2500 + rng.IntN(1000) {
		add(base.Add(time.Duration(rng.IntN(7201)) * time.Second))
	}
	// The first hour of 1970, starting at 00:00:00 exactly.
	for range 3 {
		add(time.Unix(0, 0).UTC())
	}
	for range 100 {
		add(time.Unix(int64(rng.IntN(3601)), 0).UTC())
	}
	// Bursts of events at identical times.
	for range 20 {
		at := base.Add(time.Duration(rng.IntN(7201)) * time.Second)
		for range 2 + rng.IntN(12) {
			add(at)
		}
	}
	// Events exactly on the edges of the windows: t−o−w is out, t−o is in.
	for _, ts := range d.evalTimes {
		sec := ts.Truncate(time.Second)
		for _, w := range diffWindows {
			for _, o := range diffOffsets {
				add(sec.Add(-o - w))
				add(sec.Add(-o))
			}
		}
	}
	return d
}

func (d *diffData) event(rng *rand.Rand, schema dsl.Schema, at time.Time) memory.Event {
	ev := memory.Event{Time: at, Labels: make([]string, len(schema.Labels)), Nums: map[string]float64{}}
	for i, l := range schema.Labels {
		ev.Labels[i] = diffLabelValues[l][weighted(rng, d.weights[l])]
	}
	// Integers with ties (a few round values) and zeros.
	switch p := rng.IntN(10); {
	case p == 0:
		ev.Nums["latency_ms"] = 0
	case p < 3:
		ev.Nums["latency_ms"] = float64(100 * rng.IntN(20))
	case p < 9:
		ev.Nums["latency_ms"] = float64(rng.IntN(8000))
	default:
		ev.Nums["latency_ms"] = float64(rng.IntN(120000))
	}
	ev.Nums["input_tokens"] = float64(rng.IntN(5000))
	ev.Nums["output_tokens"] = float64(rng.IntN(2000))
	// Costs ClickHouse's text parser reads exactly (checkStoredCosts):
	// four decimals below 1, and multiples of 1/8.
	switch p := rng.IntN(10); {
	case p == 0:
		ev.Nums["cost"] = 0
	case p < 7:
		ev.Nums["cost"] = float64(rng.IntN(10000)) / 10000
	default:
		ev.Nums["cost"] = float64(rng.IntN(800)) / 8
	}
	return ev
}

func weighted(rng *rand.Rand, w []int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := rng.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}

// ---- expressions ----

// diffPinned are evaluated for every seed before the generated
// expressions: cases that once differed or are easy to get wrong.
var diffPinned = []string{
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
}

// diffRangeFuncs are the range functions the generator writes: whether
// they take φ first and whether they accept the events selector. The test
// checks this list against dsl.RangeFunctionNames, so a new function must
// be added here.
var diffRangeFuncs = map[string]struct{ phi, events bool }{
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
}

// diffFeatures must each appear at least once per seed.
var diffFeatures = []string{
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
	// exact: every leaf below is exact (leafExact), so its values are the
	// same bit for bit in both backends.
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

type exprGen struct {
	rng      *rand.Rand
	schema   dsl.Schema
	fields   []string
	features map[string]int
}

func newExprGen(rng *rand.Rand, schema dsl.Schema) *exprGen {
	return &exprGen{rng: rng, schema: schema, fields: schema.FieldNames(), features: map[string]int{}}
}

func (g *exprGen) missing() []string {
	var m []string
	for _, f := range diffFeatures {
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

func (g *exprGen) feat(f string) { g.features[f]++ }

func (g *exprGen) chance(p float64) bool { return g.rng.Float64() < p }

func pick[T any](g *exprGen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// expr generates one expression: usually a vector, sometimes a scalar.
func (g *exprGen) expr() string {
	depth := weighted(g.rng, []int{3, 5, 4, 2})
	if g.chance(0.1) {
		return g.scalar(depth, lctx{}, false).s
	}
	return g.vector(depth, lctx{}).s
}

func (g *exprGen) vector(depth int, ctx lctx) gnode {
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

func (g *exprGen) leaf(ctx lctx) gnode {
	names := dsl.RangeFunctionNames()
	fn := pick(g, names)
	info, ok := diffRangeFuncs[fn]
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
	w := pick(g, diffWindows)
	switch p := g.rng.Float64(); {
	case p < 0.02:
		w = pick(g, []time.Duration{56 * 365 * 24 * time.Hour, 100 * 365 * 24 * time.Hour}) // before 1970
	case p < 0.3:
		w = time.Duration(1+g.rng.IntN(7200)) * time.Second
	}
	b.WriteString("[" + promDuration(w) + "]")
	if g.chance(0.25) {
		g.feat("offset")
		o := pick(g, diffOffsets[1:])
		switch p := g.rng.Float64(); {
		case p < 0.03:
			o = pick(g, []time.Duration{1 << 32 * time.Second, 60 * 365 * 24 * time.Hour}) // before 1970
		case p < 0.3:
			o = time.Duration(1+g.rng.IntN(3600)) * time.Second
		}
		b.WriteString(" offset " + promDuration(o))
	}
	b.WriteString(")")
	n := gnode{s: b.String(), exact: true}
	// Exactness comes from the parsed leaf, as the comparison decides it.
	if e, err := dsl.Parse(n.s, dsl.Options{Schema: g.schema}); err == nil && len(e.Leaves) == 1 {
		n.exact = leafExact(e.Leaves[0])
	}
	if ctx.grouped {
		n.names = slices.Clone(ctx.by)
	} else {
		n.names = sortedSet(eqNames)
	}
	return n
}

// matcher returns a matcher and, for an equality matcher on a non-empty
// value (which labels an ungrouped leaf), its label name.
func (g *exprGen) matcher() (string, string) {
	l := pick(g, g.schema.Labels)
	values := diffLabelValues[l]
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
func (g *exprGen) regex(values []string) string {
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

func (g *exprGen) aggregation(depth int, ctx lctx) gnode {
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

func (g *exprGen) vectorBinary(depth int, ctx lctx) gnode {
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
// approximate values is only added to, never scaled (see diffAbsTol).
func (g *exprGen) arith(l, r gnode) string {
	op := pick(g, []string{"+", "-", "*", "/"})
	if (op == "*" || op == "/") && (l.unstable || r.unstable) {
		op = "+"
	}
	return op
}

// matching returns the vector matching of an arithmetic or comparison
// operator, usually one PromQL accepts for these operands (the unique side
// is unique on the matching labels), sometimes any.
func (g *exprGen) matching(l, r gnode) (string, []string) {
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

func (g *exprGen) vectorScalar(depth int, ctx lctx) gnode {
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

func (g *exprGen) function(depth int, ctx lctx) gnode {
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
func (g *exprGen) scalar(depth int, ctx lctx, exact bool) gnode {
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
func (g *exprGen) literal() gnode {
	g.feat("literal")
	v := pick(g, []float64{0, 1, 2, 3, 5, 10, 100, 1000, 5000, 0.5, 0.05})
	return gnode{s: strconv.FormatFloat(v, 'g', -1, 64), scalar: true, exact: true}
}

// oddLiteral is a number with a random 53-bit mantissa.
func (g *exprGen) oddLiteral() gnode {
	g.feat("literal")
	v := g.rng.Float64() * math.Pow(10, float64(g.rng.IntN(6)))
	return gnode{s: strconv.FormatFloat(v, 'g', -1, 64), scalar: true, exact: true}
}

// labelSubset returns between min and max distinct labels in random order.
func (g *exprGen) labelSubset(min, max int) []string {
	ls := slices.Clone(g.schema.Labels)
	g.rng.Shuffle(len(ls), func(i, j int) { ls[i], ls[j] = ls[j], ls[i] })
	return ls[:min+g.rng.IntN(max-min+1)]
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

// promDuration writes a whole number of seconds as PromQL does: 1h7m13s.
func promDuration(d time.Duration) string {
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

func TestDifferentialGeneratorKnowsEveryRangeFunction(t *testing.T) {
	var known []string
	for name := range diffRangeFuncs {
		known = append(known, name)
	}
	sort.Strings(known)
	if got := dsl.RangeFunctionNames(); !slices.Equal(got, known) {
		t.Fatalf("dsl has range functions %v, the differential generator knows %v", got, known)
	}
}
