package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Exact quantiles on the incremental path.
//
// A quantile leaf's partial state is the distribution of its field in each
// group, as counts per distinct value (dsl.PartialValues). The leaves that
// share a selector, a window, an offset and a grouping (p95 and p99 of the
// same calls) share one distribution, a vcFamily:
//
//   - win holds the counts of the window's final buckets (from, to]: a
//     bucket enters once it is final (it ended LateWindow or more ago) and
//     leaves when the window passes it; each step reads the entering and
//     the leaving buckets' counts (GROUP BY labels, value) and adds or
//     takes them off;
//   - open holds the counts of the window's buckets that are not final yet,
//     read again at every step, so late rows are counted;
//   - the first step of a window takes the full path — quantileExact, fused
//     with the other leaves of its shape, costs a fraction of reading a
//     day's value counts — and reads the value counts of its final part in
//     the background, for the steps after it (a window with no final
//     bucket yet starts from its open buckets at once).
//
// A quantile is read from win + open by an order-statistics walk
// (dsl.QuantileOfValues), which is ClickHouse's quantileExact: the value at
// index ⌊φ·n⌋ of the sorted values. Integer fields (latency_ms, tokens)
// have few distinct values, so a family is small; when a group's distinct
// values exceed Incremental.MaxDistinctValues (floating-point costs), the
// family is dropped and its leaves take the full path for a window's
// length, which the evaluation's paths report.
//
// Rows that land later than LateWindow after their bucket's end are missed
// by buckets that already entered, as on the rest of the incremental path;
// when such a bucket leaves, the counts taken off are those read then, and
// a value whose count would drop below zero is removed.

// vcFamily is the shared distribution of quantile leaves.
type vcFamily struct {
	mu       sync.Mutex
	from, to int64 // win covers the final buckets (from, to]
	win      map[string]*vcGroup
	open     map[string]*vcGroup
	// openTs is the evaluation time (unix ms) open was read for, and
	// openAt the clock then: another evaluation at the same time reuses it
	// (Reuse).
	openTs int64
	openAt time.Time
	// used is the latest evaluation time (unix seconds) that used it;
	// span is its leaves' window plus offset, in seconds.
	used, span int64
	// merged are the buffers of win + open per group (see stepFamily).
	merged map[string][]dsl.ValueCount
	// filling is set while the window's value counts are read in the
	// background; over is the reason they went over the budget there.
	filling bool
	over    string
}

// vcGroup is the distribution of one group.
type vcGroup struct {
	values []string
	counts []dsl.ValueCount // sorted by value
	spare  []dsl.ValueCount // the previous step's array, reused
}

// vcKey identifies a family: a quantile leaf's key without φ.
func vcKey(l *dsl.Leaf) string {
	c := *l
	c.Quantile = 0
	return c.Key()
}

// vcOverflow records a family whose distinct values exceeded the budget:
// its leaves take the full path until (unix seconds).
type vcOverflow struct {
	until  int64
	reason string
}

// quantiles computes the quantile leaves idx of leaves at ts from value
// counts. It returns the leaves it leaves to the full path (a family over
// the distinct-value budget) with the reason, and the statements it ran.
func (p *partials) quantiles(ctx context.Context, s *Source, ts time.Time, leaves []*dsl.Leaf, idx []int, vectors [][]engine.Sample) (statements []string, deferred map[int]string, err error) {
	byFamily := map[string][]int{}
	var order []string
	for _, i := range idx {
		k := vcKey(leaves[i])
		if _, ok := byFamily[k]; !ok {
			order = append(order, k)
		}
		byFamily[k] = append(byFamily[k], i)
	}
	deferred = map[int]string{}
	for _, k := range order {
		is := byFamily[k]
		p.mu.Lock()
		if ov, ok := p.overflow[k]; ok && ts.Unix() < ov.until {
			p.mu.Unlock()
			for _, i := range is {
				deferred[i] = ov.reason
			}
			continue
		}
		f := p.families[k]
		if f == nil {
			f = &vcFamily{}
			p.families[k] = f
		}
		p.mu.Unlock()
		sql, groups, wait, over, err := p.stepFamily(ctx, s, f, leaves[is[0]], ts)
		if sql != "" {
			statements = append(statements, sql)
		}
		if err != nil {
			return statements, nil, fmt.Errorf("compute %s from value counts: %w", leaves[is[0]].Func, err)
		}
		if wait != "" {
			for _, i := range is {
				deferred[i] = wait
			}
			continue
		}
		if over != "" {
			p.mu.Lock()
			delete(p.families, k)
			l := leaves[is[0]]
			p.overflow[k] = vcOverflow{until: ts.Add(l.Range + l.Offset).Unix(), reason: over}
			p.mu.Unlock()
			for _, i := range is {
				deferred[i] = over
			}
			continue
		}
		for _, i := range is {
			l := leaves[i]
			out := make([]engine.Sample, 0, len(groups))
			for _, g := range groups {
				st := dsl.State{Values: g.counts}
				for _, c := range g.counts {
					st.Count += c.Count
				}
				if st.Count > 0 {
					out = append(out, engine.Sample{Labels: l.GroupLabels(g.values), Value: l.Finish(&st)})
				}
			}
			vectors[i] = out
		}
	}
	// Families no leaf evaluated for two of their windows are dropped
	// (their rules were removed by a reload).
	p.mu.Lock()
	for k, f := range p.families {
		if f.used > 0 && f.used < ts.Unix()-2*f.span-600 {
			delete(p.families, k)
		}
	}
	p.mu.Unlock()
	p.statsMu.Lock()
	p.stats.QuantileLeaves += len(idx) - len(deferred)
	p.statsMu.Unlock()
	return statements, deferred, nil
}

// stepFamily brings f to the window of l at ts and returns the window's
// distribution per group (win + open). wait says why the leaves take the
// full path this time (the value counts are read in the background); over
// is the reason the family went over the distinct-value budget, when it
// did.
func (p *partials) stepFamily(ctx context.Context, s *Source, f *vcFamily, l *dsl.Leaf, ts time.Time) (sql string, groups []*vcGroup, wait, over string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.over != "":
		return "", nil, "", f.over, nil
	case f.filling:
		return "", nil, "the window's value counts are being read in the background", "", nil
	}
	w := int64(p.opts.Bucket / time.Second)
	now := p.opts.Now()
	finalUpTo := floorDiv(now.Add(-p.opts.LateWindow).Unix(), w)
	from, to := l.Window(ts)
	first, last := floorDiv(from.Unix(), w)+1, floorDiv(to.Unix(), w)
	hi := max(min(last, finalUpTo), first-1) // the window's final part is (first-1, hi]

	var enter, leave, open bucketRange
	enter, leave = bucketRange{1, 0}, bucketRange{1, 0} // empty
	cold := f.win == nil || first-1 < f.from || first-1 > f.to || hi < f.to
	if cold && hi > first-1 {
		f.filling, f.win, f.open = true, nil, nil
		f.used, f.span = ts.Unix(), int64((l.Range+l.Offset)/time.Second)
		p.queueFill(fillRequest{s: s, f: f, l: l, w: w, lo: first - 1, hi: hi})
		return "", nil, "first evaluation of the window: one full query, while its value counts are read in the background", "", nil
	}
	if cold {
		f.win = map[string]*vcGroup{}
		f.from, f.to = first-1, first-1
	}
	if hi > f.to {
		enter = bucketRange{f.to + 1, hi}
	}
	if first-1 > f.from {
		leave = bucketRange{f.from + 1, first - 1}
	}
	readOpen := last > hi && !(f.openTs == ts.UnixMilli() && p.opts.Reuse > 0 && now.Sub(f.openAt) < p.opts.Reuse && !now.Before(f.openAt))
	if last > hi {
		open = bucketRange{hi + 1, last}
	} else {
		open = bucketRange{1, 0}
		f.open = nil
	}
	f.used, f.span = ts.Unix(), int64((l.Range+l.Offset)/time.Second)
	if enter.lo <= enter.hi || leave.lo <= leave.hi || readOpen {
		if !readOpen {
			open = bucketRange{1, 0}
		}
		var rows []vcRow
		sql, rows, over, err = p.readValues(ctx, s, l, w, enter, leave, open)
		if err != nil {
			f.win = nil // start again from a cold read
			return sql, nil, "", "", err
		}
		if over != "" {
			return sql, nil, "", over, nil
		}
		deltas := map[string]*vcGroup{}
		opened := map[string]*vcGroup{}
		for _, r := range rows {
			switch r.part {
			case 2:
				r.count = -r.count
				addRow(deltas, r)
			case 3:
				addRow(opened, r)
			default:
				addRow(deltas, r)
			}
		}
		for key, d := range deltas {
			d.counts = dsl.SortValues(d.counts) // folds +n and −m of one value
			g := f.win[key]
			if g == nil {
				g = &vcGroup{values: d.values}
				f.win[key] = g
			}
			// Two arrays per group, used in turn: the window's counts are
			// rewritten in place of the previous step's.
			next := dsl.MergeValuesInto(g.spare[:0], g.counts, d.counts, 1)
			g.spare, g.counts = g.counts, next
			if len(g.counts) == 0 {
				delete(f.win, key)
			}
		}
		if readOpen {
			for _, g := range opened {
				g.counts = dsl.SortValues(g.counts)
			}
			f.open, f.openTs, f.openAt = opened, ts.UnixMilli(), now
		}
	}
	f.from, f.to = first-1, hi
	if f.merged == nil {
		f.merged = map[string][]dsl.ValueCount{}
	}
	budget := p.opts.MaxDistinctValues
	keys := map[string]bool{}
	for k := range f.win {
		keys[k] = true
	}
	for k := range f.open {
		keys[k] = true
	}
	for k := range keys {
		g := &vcGroup{}
		if wg := f.win[k]; wg != nil {
			g.values, g.counts = wg.values, wg.counts
		}
		if og := f.open[k]; og != nil && len(og.counts) > 0 {
			// The window's distribution is win + open, merged into a
			// buffer the family keeps per group: a day's counts are
			// not copied into fresh memory at every evaluation.
			buf := f.merged[k]
			buf = dsl.MergeValuesInto(buf[:0], g.counts, og.counts, 1)
			f.merged[k] = buf
			g.values, g.counts = og.values, buf
		}
		if len(g.counts) > budget {
			return sql, nil, "", distinctReason(l, budget), nil
		}
		groups = append(groups, g)
	}
	for k := range f.merged {
		if !keys[k] {
			delete(f.merged, k)
		}
	}
	return sql, groups, "", "", nil
}

// fillRequest asks for the value counts of the final buckets (lo, hi] of
// l's window, for family f.
type fillRequest struct {
	s      *Source
	f      *vcFamily
	l      *dsl.Leaf
	w      int64
	lo, hi int64
}

// queueFill adds a fill to the queue of the evaluation in progress; the
// source starts the queue when the evaluation's own queries are done
// (startFills), so a first evaluation does not compete with the reads it
// started.
func (p *partials) queueFill(r fillRequest) {
	p.fills.Add(1)
	p.fillMu.Lock()
	p.fillQueue = append(p.fillQueue, r)
	p.fillMu.Unlock()
}

// Fills wait until no evaluation has run for Incremental.FillSettle (at
// most fillMaxWait): right after a start every group has its first
// evaluation, and the reads, several times a full query each, must not slow
// them down. These are wall-clock waits between queries, not evaluation
// times, so they use the real clock, not Incremental.Now.
const fillMaxWait = 30 * time.Second

// evalStarted and evalDone track the evaluations in progress, for the
// fills' settling.
func (p *partials) evalStarted() {
	p.fillMu.Lock()
	p.active++
	p.fillMu.Unlock()
}

func (p *partials) evalDone() {
	p.fillMu.Lock()
	p.active--
	p.lastEval = time.Now()
	p.fillMu.Unlock()
}

// settled waits until no evaluation has run for FillSettle, or fillMaxWait.
func (p *partials) settled() {
	settle := p.opts.FillSettle
	deadline := time.Now().Add(fillMaxWait)
	for time.Now().Before(deadline) {
		p.fillMu.Lock()
		quiet := p.active == 0 && time.Since(p.lastEval) >= settle
		p.fillMu.Unlock()
		if quiet {
			return
		}
		time.Sleep(max(settle/5, time.Millisecond))
	}
}

// startFills runs the queued fills in the background, one at a time, each
// once evaluations have settled: a day's value counts cost several times
// the full query, and ClickHouse is busiest with first evaluations right
// after a start.
func (p *partials) startFills() {
	p.fillMu.Lock()
	defer p.fillMu.Unlock()
	if p.filling || len(p.fillQueue) == 0 {
		return
	}
	p.filling = true
	go func() {
		for {
			p.fillMu.Lock()
			if len(p.fillQueue) == 0 {
				p.filling = false
				p.fillMu.Unlock()
				return
			}
			r := p.fillQueue[0]
			p.fillQueue = p.fillQueue[1:]
			p.fillMu.Unlock()
			p.settled()
			p.fill(r.s, r.f, r.l, r.w, r.lo, r.hi)
		}
	}()
}

// fill reads the value counts of the final buckets (lo, hi] of l's window
// into f, in the background of the evaluation that found f cold. Its query
// has a longer deadline than an evaluation's (it reads a whole window, once).
func (p *partials) fill(s *Source, f *vcFamily, l *dsl.Leaf, w, lo, hi int64) {
	defer p.fills.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.opts.QueryTimeout)
	defer cancel()
	_, rows, over, err := p.readValues(ctx, s, l, w, bucketRange{lo + 1, hi})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filling = false
	if err != nil {
		return // the next evaluation starts again
	}
	if over != "" {
		f.over = over
		return
	}
	win := map[string]*vcGroup{}
	for _, r := range rows {
		addRow(win, r)
	}
	for _, g := range win {
		g.counts = dsl.SortValues(g.counts)
	}
	f.win, f.from, f.to = win, lo, hi
	p.statsMu.Lock()
	p.stats.Fills++
	p.statsMu.Unlock()
}

// waitFills waits for the value counts being read in the background.
func (p *partials) waitFills() { p.fills.Wait() }

func distinctReason(l *dsl.Leaf, budget int) string {
	return fmt.Sprintf("more than clickhouse.incremental.max_distinct_values (%d) distinct values of %s in a group", budget, l.Selector.Field)
}

// addRow adds a row's value count to its group in m, unsorted.
func addRow(m map[string]*vcGroup, r vcRow) {
	g := m[r.key]
	if g == nil {
		g = &vcGroup{values: r.values}
		m[r.key] = g
	}
	g.counts = append(g.counts, dsl.ValueCount{Value: r.value, Count: r.count})
}

// vcRow is one row of a value-count read.
type vcRow struct {
	key    string
	values []string
	value  float64
	part   int // 1 entering, 2 leaving, 3 open
	count  float64
}

// readValues reads the value counts of the entering, leaving and open
// buckets of l's family in one query, tagged by part. It stops reading,
// and returns the reason, when a group has more distinct values than the
// budget in one part.
func (p *partials) readValues(ctx context.Context, s *Source, l *dsl.Leaf, w int64, parts ...bucketRange) (string, []vcRow, string, error) {
	cols := s.opts.Columns
	cond := cols.leafCondition(l)
	tcol := quoteIdent(s.opts.Schema.Time)
	var sql strings.Builder
	var args []any
	sql.WriteString("SELECT")
	sep := "\n    "
	for _, b := range l.By {
		sql.WriteString(sep + cols.Label(b))
		sep = ",\n    "
	}
	// The aliases are prefixed so they cannot shadow a column of the
	// table (ClickHouse resolves aliases everywhere in a query).
	fmt.Fprintf(&sql, "%stoFloat64(%s) AS cw_v", sep, cols.Value(l.Selector.Columns))
	sep = ",\n    "
	// The part of a row: multiIf(t in part 1, 1, t in part 2, 2, 3).
	var tag, where []string
	var tagArgs, whereArgs []any
	for i, r := range parts {
		if r.lo > r.hi {
			continue
		}
		lo, hi := clipDateTime((r.lo-1)*w), clipDateTime(r.hi*w)
		in := fmt.Sprintf("%s > toDateTime(?) AND %s <= toDateTime(?)", tcol, tcol)
		where = append(where, in)
		whereArgs = append(whereArgs, lo, hi)
		tag = append(tag, in, fmt.Sprint(i+1))
		tagArgs = append(tagArgs, lo, hi)
	}
	if len(where) == 0 {
		return "", nil, "", nil
	}
	tag = append(tag[:len(tag)-2], tag[len(tag)-1]) // the last part is the default
	tagArgs = tagArgs[:len(tagArgs)-2]
	if len(tag) == 1 {
		fmt.Fprintf(&sql, "%stoFloat64(%s) AS cw_part", sep, tag[0])
	} else {
		fmt.Fprintf(&sql, "%stoFloat64(multiIf(%s)) AS cw_part", sep, strings.Join(tag, ", "))
		args = append(args, tagArgs...)
	}
	sql.WriteString(",\n    toFloat64(count())")
	fmt.Fprintf(&sql, "\nFROM %s\nWHERE (%s)", quoteTable(s.opts.Table), strings.Join(where, " OR "))
	args = append(args, whereArgs...)
	if cond.sql != "" {
		sql.WriteString("\n    AND (" + cond.sql + ")")
		args = append(args, cond.args...)
	}
	group := make([]string, 0, len(l.By)+2)
	for _, b := range l.By {
		group = append(group, cols.Label(b))
	}
	group = append(group, "cw_v", "cw_part")
	sql.WriteString("\nGROUP BY " + strings.Join(group, ", "))
	text := sql.String()

	budget := p.opts.MaxDistinctValues
	values := make([]string, len(l.By))
	nums := make([]float64, 3)
	var rows []vcRow
	type groupPart struct {
		key  string
		part int
	}
	distinct := map[groupPart]int{}
	seen := map[string][]string{} // the label values of each group, once
	over := ""
	stop := fmt.Errorf("over the distinct-value budget")
	err := s.scan(ctx, text, args, 0, scanDest(values, nums), func() error {
		key := strings.Join(values, "\xff")
		part := int(nums[1])
		gp := groupPart{key, part}
		if distinct[gp]++; distinct[gp] > budget {
			over = distinctReason(l, budget)
			return stop
		}
		vs, ok := seen[key]
		if !ok {
			vs = slices.Clone(values)
			seen[key] = vs
		}
		rows = append(rows, vcRow{key: key, values: vs, value: nums[0], part: part, count: nums[2]})
		return nil
	})
	if over != "" {
		return text, nil, over, nil
	}
	p.statsMu.Lock()
	p.stats.ValueQueries++
	p.stats.ValueRows += len(rows)
	p.statsMu.Unlock()
	return text, rows, "", err
}

// valueCounts returns the number of value counts the families hold,
// their reused buffers included.
func (p *partials) valueCounts() int {
	p.mu.Lock()
	fams := make([]*vcFamily, 0, len(p.families))
	for _, f := range p.families {
		fams = append(fams, f)
	}
	p.mu.Unlock()
	n := 0
	for _, f := range fams {
		f.mu.Lock()
		for _, g := range f.win {
			n += cap(g.counts) + cap(g.spare)
		}
		for _, g := range f.open {
			n += cap(g.counts)
		}
		for _, b := range f.merged {
			n += cap(b)
		}
		f.mu.Unlock()
	}
	return n
}
