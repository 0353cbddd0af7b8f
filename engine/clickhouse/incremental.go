package clickhouse

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Incremental configures the incremental path of a Source: decomposable
// leaves (count, sum, avg, min, max, rate, increase, absent and present
// over time) are computed from per-bucket partial aggregates that
// ClickHouse computes once per bucket and the Source keeps, so an
// evaluation reads only the buckets it has not read since they became
// final, plus the late-arrival window, instead of its whole window.
//
// A bucket of width B holds the events of (k·B−B, k·B]. A leaf takes the
// incremental path when its window, its offset and its evaluation time are
// whole multiples of B (every rule evaluated at an interval that is a
// multiple of B, over windows that are multiples of B); any other leaf, and
// every quantile and standard deviation, is computed by a full query as
// before. Both paths give the same answers: the differential test checks
// it step after step.
type Incremental struct {
	// Bucket is the width of a partial aggregate (default 1m).
	Bucket time.Duration
	// LateWindow is how long after its end a bucket is still read again at
	// every evaluation, so events that land late are counted (default 2m).
	// An event that lands later than that after its bucket's end is not
	// counted by windows that were already read: its bucket was final.
	LateWindow time.Duration
	// Reuse is how long the read of a bucket that is not final yet serves
	// other evaluations at the same timestamp — the groups that share an
	// interval evaluate at the same aligned time, and the first one's read
	// serves the others (default 30s; negative disables it).
	Reuse time.Duration
	// MaxBuckets bounds the buckets of one window: longer windows take the
	// full path (default 10080, a week of minutes).
	MaxBuckets int
	// Now is the clock that decides which buckets are final (default
	// time.Now).
	Now func() time.Time
	// asyncAbove is the number of missing buckets above which a leaf is
	// computed by a full query while its buckets are read in the
	// background (64: about an hour of minutes).
	asyncAbove int
}

func (o *Incremental) setDefaults() {
	if o.Bucket <= 0 {
		o.Bucket = time.Minute
	}
	o.Bucket = o.Bucket.Truncate(time.Second)
	if o.Bucket < time.Second {
		o.Bucket = time.Second
	}
	if o.LateWindow < 0 {
		o.LateWindow = 0
	}
	if o.LateWindow == 0 {
		o.LateWindow = 2 * time.Minute
	}
	if o.Reuse == 0 {
		o.Reuse = 30 * time.Second
	}
	if o.MaxBuckets <= 0 {
		o.MaxBuckets = 10080
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.asyncAbove <= 0 {
		o.asyncAbove = 64
	}
}

// colKind is the partial aggregate a column keeps per bucket and group.
type colKind int

const (
	colCount colKind = iota
	colSum
	colMin
	colMax
)

// partials keeps the per-bucket partial aggregates of every grouping.
type partials struct {
	opts  Incremental
	wg    sync.WaitGroup // backfills
	mu    sync.Mutex
	grids map[string]*grid
	// stats, for tests and the benchmark.
	statsMu sync.Mutex
	stats   IncrementalStats
}

// IncrementalStats count the work of the incremental path.
type IncrementalStats struct {
	// Leaves is the number of leaves computed from partial aggregates, and
	// FullLeaves the number computed by full queries.
	Leaves, FullLeaves int
	// Queries is the number of bucket reads, and BucketsRead the buckets
	// they covered.
	Queries, BucketsRead int
	// Backfills count the background reads of first evaluations, the
	// buckets they read and the ones that failed (retried at the next
	// evaluation).
	Backfills, BackfillBuckets, BackfillErrors int
}

// grid holds the partial aggregates of one grouping (By) and bucket width:
// per bucket, per group, one value per column (slot).
type grid struct {
	mu      sync.Mutex
	by      []string
	width   int64 // bucket width, seconds
	slots   map[string]int
	cols    []gridColumn
	buckets map[int64]*gridBucket
	// used is, per slot, the latest evaluation time (unix seconds) that
	// used it; a slot used within warm seconds is read along with others.
	used []int64
	warm int64
	// blocks hold, per block of blockSize final buckets, the buckets'
	// values folded, so a long window merges a few blocks instead of
	// every bucket.
	blocks map[int64]*gridBucket
	// backfill marks the slots a background read is filling.
	backfill map[int]bool
	// span is the largest number of buckets a leaf of the grid reaches back
	// from its evaluation time (window and offset); last is the latest
	// bucket evaluated. Buckets older than that are dropped.
	span, last int64
}

type gridColumn struct {
	frag fragment
	// cond is the column's selector, for the WHERE clause of reads.
	cond  fragment
	kind  colKind
	count int // slot of the count over the same selector (min and max)
}

type gridBucket struct {
	// final says, per slot, that the slot was read after the bucket ended
	// more than LateWindow ago: it is not read again.
	final []bool
	// readTs and readAt record, per slot, the evaluation time and the clock
	// of its last read, for Reuse.
	readTs []int64
	readAt []time.Time
	groups map[string]*gridGroup
}

type gridGroup struct {
	values []string
	v      []float64
}

func (b *gridBucket) grow(n int) {
	for len(b.final) < n {
		b.final = append(b.final, false)
		b.readTs = append(b.readTs, 0)
		b.readAt = append(b.readAt, time.Time{})
	}
	for _, g := range b.groups {
		for len(g.v) < n {
			g.v = append(g.v, 0)
		}
	}
}

func newPartials(opts Incremental) *partials {
	opts.setDefaults()
	return &partials{opts: opts, grids: map[string]*grid{}}
}

// eligible reports whether l at ts can be computed from partial aggregates.
func (p *partials) eligible(ts time.Time, l *dsl.Leaf) bool {
	switch l.Primitive() {
	case dsl.AggQuantile, dsl.AggStddev:
		return false
	}
	b := p.opts.Bucket
	if ts.Nanosecond() != 0 || l.Range <= 0 || l.Range%b != 0 || l.Offset%b != 0 {
		return false
	}
	if int(l.Range/b) > p.opts.MaxBuckets {
		return false
	}
	return ts.Unix()%int64(b/time.Second) == 0
}

func (p *partials) grid(by []string) *grid {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := strings.Join(by, ",")
	g, ok := p.grids[k]
	if !ok {
		g = &grid{by: by, width: int64(p.opts.Bucket / time.Second), slots: map[string]int{}, buckets: map[int64]*gridBucket{},
			blocks: map[int64]*gridBucket{}, backfill: map[int]bool{}, warm: int64(10 * time.Minute / time.Second)}
		p.grids[k] = g
	}
	return g
}

// slot returns the slot of a column, adding it when new.
func (g *grid) slot(kind colKind, f, cond fragment, count int) int {
	k := fmt.Sprintf("%d\x00%s", kind, f.key())
	if i, ok := g.slots[k]; ok {
		return i
	}
	g.cols = append(g.cols, gridColumn{frag: f, cond: cond, kind: kind, count: count})
	g.used = append(g.used, math.MinInt64)
	g.slots[k] = len(g.cols) - 1
	return len(g.cols) - 1
}

// incLeaf is a leaf on the incremental path with its slots and buckets.
type incLeaf struct {
	i                 int // index into the leaves of the call
	l                 *dsl.Leaf
	count, sum, agg   int   // slots; -1 when not needed
	first, lastBucket int64 // the window's buckets
}

// eval computes leaves (all eligible, all of grid g) at ts into vectors,
// reading the buckets that are missing or not final.
func (p *partials) eval(ctx context.Context, s *Source, g *grid, ts time.Time, leaves []*dsl.Leaf, idx []int, vectors [][]engine.Sample) (statements []string, deferred []int, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := p.opts.Now()
	w := g.width
	// The last bucket that is final: it ended LateWindow or more ago.
	finalUpTo := floorDiv(now.Add(-p.opts.LateWindow).Unix(), w)

	ils := make([]incLeaf, 0, len(idx))
	for _, i := range idx {
		l := leaves[i]
		cond := condition(l.Selector.Matchers)
		il := incLeaf{i: i, l: l, sum: -1, agg: -1}
		il.count = g.slot(colCount, aggregate("count", "", "", cond), cond, -1)
		value := valueExpr(l.Selector.Columns)
		if l.Selector.Field != dsl.EventsSelector {
			switch l.Agg {
			case dsl.AggSum, dsl.AggRate, dsl.AggIncrease, dsl.AggAvg:
				il.sum = g.slot(colSum, aggregate("sum", "", value, cond), cond, -1)
			case dsl.AggMin:
				il.agg = g.slot(colMin, aggregate("min", "", value, cond), cond, il.count)
			case dsl.AggMax:
				il.agg = g.slot(colMax, aggregate("max", "", value, cond), cond, il.count)
			}
		}
		from, to := l.Window(ts)
		il.first, il.lastBucket = floorDiv(from.Unix(), w)+1, floorDiv(to.Unix(), w)
		for _, sl := range []int{il.count, il.sum, il.agg} {
			if sl >= 0 {
				g.used[sl] = ts.Unix()
			}
		}
		ils = append(ils, il)
		g.span = max(g.span, int64((l.Range+l.Offset)/time.Second)/w+1)
		g.last = max(g.last, ts.Unix()/w)
	}

	// Which buckets each slot must read: those missing, and those not
	// final unless read for this very evaluation time a moment ago. A leaf
	// missing more than asyncAbove buckets (a first evaluation, a new
	// rule) is computed by a full query now, fused with the full path's
	// other leaves of its shape, while a backfill fills its buckets in the
	// background: a first evaluation costs what a full one costs.
	needs := map[int]*bucketRange{}
	cold := map[int]*bucketRange{}
	warm := ils[:0]
	for _, il := range ils {
		leafNeeds := map[int]*bucketRange{}
		isCold := false
		for _, sl := range []int{il.count, il.sum, il.agg} {
			if sl < 0 {
				continue
			}
			if g.backfill[sl] {
				isCold = true
			}
			missing := 0
			for k := il.first; k <= il.lastBucket; k++ {
				if g.fresh(k, sl, ts, now, p.opts.Reuse) {
					continue
				}
				missing++
				n := leafNeeds[sl]
				if n == nil {
					leafNeeds[sl] = &bucketRange{lo: k, hi: k}
				} else {
					n.lo, n.hi = min(n.lo, k), max(n.hi, k)
				}
			}
			if missing > p.opts.asyncAbove {
				isCold = true
			}
		}
		into := needs
		if isCold {
			into = cold
			deferred = append(deferred, il.i)
		} else {
			warm = append(warm, il)
		}
		for sl, n := range leafNeeds {
			if m := into[sl]; m == nil {
				into[sl] = &bucketRange{n.lo, n.hi}
			} else {
				m.lo, m.hi = min(m.lo, n.lo), max(m.hi, n.hi)
			}
		}
	}
	ils = warm
	if len(cold) > 0 {
		p.backfill(s, g, cold, now, finalUpTo)
	}
	// Reads whose bucket ranges overlap or touch are merged: reading more
	// columns over the same rows costs little, reading rows twice costs.
	type read struct {
		lo, hi int64
		slots  []int
	}
	var reads []read
	slots := make([]int, 0, len(needs))
	for sl := range needs {
		slots = append(slots, sl)
	}
	sort.Slice(slots, func(i, j int) bool { return needs[slots[i]].lo < needs[slots[j]].lo })
	for _, sl := range slots {
		n := needs[sl]
		if k := len(reads) - 1; k >= 0 && n.lo <= reads[k].hi+1 {
			reads[k].hi = max(reads[k].hi, n.hi)
			reads[k].slots = append(reads[k].slots, sl)
			continue
		}
		reads = append(reads, read{lo: n.lo, hi: n.hi, slots: []int{sl}})
	}
	// The other groups evaluated at this time need the same new buckets
	// of their own columns: the read of the newest buckets takes every
	// warm column of the grid along, so theirs is served from it (Reuse).
	for k := range reads {
		r := &reads[k]
		in := map[int]bool{}
		for _, sl := range r.slots {
			in[sl] = true
		}
		for sl := range g.cols {
			if in[sl] || g.used[sl] < ts.Unix()-g.warm {
				continue
			}
			for b := r.lo; b <= r.hi; b++ {
				if !g.fresh(b, sl, ts, now, p.opts.Reuse) {
					r.slots = append(r.slots, sl)
					break
				}
			}
		}
	}
	for _, r := range reads {
		sort.Ints(r.slots)
		st := g.statement(s, r.lo, r.hi, r.slots)
		statements = append(statements, st.SQL)
		got, err := g.query(ctx, s, st, len(r.slots))
		if err != nil {
			return statements, nil, fmt.Errorf("compute %s from partial aggregates: %w", incNames(ils), err)
		}
		if err := g.store(got, r.lo, r.hi, r.slots, ts.UnixMilli(), now, finalUpTo); err != nil {
			return statements, nil, err
		}
		p.statsMu.Lock()
		p.stats.Queries++
		p.stats.BucketsRead += int(r.hi - r.lo + 1)
		p.statsMu.Unlock()
	}

	for _, il := range ils {
		vectors[il.i] = g.merge(il)
	}
	g.evict()
	p.statsMu.Lock()
	p.stats.Leaves += len(ils)
	p.statsMu.Unlock()
	return statements, deferred, nil
}

// backfill reads, in the background, the final buckets of the slots in
// need, so later evaluations find them; until it is done, the leaves using
// those slots take the full path. It runs with g locked by the caller.
func (p *partials) backfill(s *Source, g *grid, need map[int]*bucketRange, now time.Time, finalUpTo int64) {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	var slots []int
	for sl, n := range need {
		if g.backfill[sl] {
			continue
		}
		slots = append(slots, sl)
		lo, hi = min(lo, n.lo), max(hi, n.hi)
	}
	hi = min(hi, finalUpTo) // the open buckets are read by evaluations
	if len(slots) == 0 || hi < lo {
		return
	}
	sort.Ints(slots)
	for _, sl := range slots {
		g.backfill[sl] = true
	}
	st := g.statement(s, lo, hi, slots)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
		defer cancel()
		got, err := g.query(ctx, s, st, len(slots))
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, sl := range slots {
			delete(g.backfill, sl)
		}
		if err == nil {
			err = g.store(got, lo, hi, slots, 0, now, finalUpTo)
		}
		p.statsMu.Lock()
		defer p.statsMu.Unlock()
		if err != nil {
			p.stats.BackfillErrors++
			return
		}
		p.stats.Backfills++
		p.stats.BackfillBuckets += int(hi - lo + 1)
	}()
}

// wait waits for the backfills under way.
func (p *partials) wait() { p.wg.Wait() }

// fresh reports whether slot sl of bucket k need not be read.
func (g *grid) fresh(k int64, sl int, ts time.Time, now time.Time, reuse time.Duration) bool {
	b := g.buckets[k]
	if b == nil || sl >= len(b.final) {
		return false
	}
	if b.final[sl] {
		return true
	}
	return reuse > 0 && b.readTs[sl] == ts.UnixMilli() && now.Sub(b.readAt[sl]) < reuse && !now.Before(b.readAt[sl])
}

// statement builds the query that reads the slots' partial aggregates of
// buckets lo..hi, grouped by the grid's labels and the bucket.
func (g *grid) statement(s *Source, lo, hi int64, slots []int) Statement {
	var sql strings.Builder
	var args []any
	sql.WriteString("SELECT")
	sep := "\n    "
	for _, l := range g.by {
		sql.WriteString(sep + quoteIdent(l))
		sep = ",\n    "
	}
	tcol := quoteIdent(s.opts.Schema.Time)
	// Bucket k holds (k·B−B, k·B]: k = ⌈t/B⌉ = intDiv(t + B − 1, B).
	fmt.Fprintf(&sql, "%stoFloat64(intDiv(toUInt64(toUInt32(%s)) + ?, ?))", sep, tcol)
	args = append(args, g.width-1, g.width)
	sep = ",\n    "
	unfiltered := false
	var conds []fragment
	seen := map[string]bool{}
	for _, sl := range slots {
		c := g.cols[sl]
		sql.WriteString(sep + c.frag.sql)
		args = append(args, c.frag.args...)
		// The column's selector, for the WHERE clause: the count column
		// carries exactly its condition's arguments.
		cond := c.cond
		if cond.sql == "" {
			unfiltered = true
		} else if !seen[cond.key()] {
			seen[cond.key()] = true
			conds = append(conds, cond)
		}
	}
	from, to := (lo-1)*g.width, hi*g.width
	if from < 0 && to >= 0 {
		fmt.Fprintf(&sql, "\nFROM %s\nWHERE %s <= toDateTime(?)", quoteTable(s.opts.Table), tcol)
		args = append(args, clipDateTime(to))
	} else {
		fmt.Fprintf(&sql, "\nFROM %s\nWHERE %s > toDateTime(?) AND %s <= toDateTime(?)", quoteTable(s.opts.Table), tcol, tcol)
		args = append(args, clipDateTime(from), clipDateTime(to))
	}
	if !unfiltered && len(conds) > 0 {
		parts := make([]string, len(conds))
		for i, c := range conds {
			parts[i] = c.sql
			if len(conds) > 1 {
				parts[i] = "(" + c.sql + ")"
			}
			args = append(args, c.args...)
		}
		sql.WriteString("\n    AND (" + strings.Join(parts, " OR ") + ")")
	}
	group := make([]string, 0, len(g.by)+1)
	for _, l := range g.by {
		group = append(group, quoteIdent(l))
	}
	group = append(group, "intDiv(toUInt64(toUInt32("+tcol+")) + ?, ?)")
	args = append(args, g.width-1, g.width)
	sql.WriteString("\nGROUP BY " + strings.Join(group, ", "))
	return Statement{SQL: sql.String(), Args: args, By: g.by, Width: len(g.by) + 1 + len(slots)}
}

// bucketRange is the buckets lo..hi.
type bucketRange struct{ lo, hi int64 }

// bucketRow is one row of a bucket read: a group in a bucket.
type bucketRow struct {
	key    string
	values []string
	bucket int64
	v      []float64
}

// query runs a bucket read of n slots and returns its rows.
func (g *grid) query(ctx context.Context, s *Source, st Statement, n int) ([]bucketRow, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	rows, err := s.opts.Conn.Query(ctx, st.SQL, st.Args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var got []bucketRow
	groupValues := make([]string, len(st.By))
	values := make([]float64, 1+n)
	dest := make([]any, 0, st.Width)
	for i := range groupValues {
		dest = append(dest, &groupValues[i])
	}
	for i := range values {
		dest = append(dest, &values[i])
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		got = append(got, bucketRow{key: strings.Join(groupValues, "\xff"), values: append([]string(nil), groupValues...), bucket: int64(values[0]), v: append([]float64(nil), values[1:]...)})
	}
	return got, rows.Err()
}

// store puts a complete read of slots over buckets lo..hi into the grid:
// the slots are reset over lo..hi, then filled. readTs is the evaluation
// time that read them (unix ms; 0 for a backfill).
func (g *grid) store(got []bucketRow, lo, hi int64, slots []int, readTs int64, now time.Time, finalUpTo int64) error {
	n := len(g.cols)
	for k := lo; k <= hi; k++ {
		b := g.buckets[k]
		if b == nil {
			b = &gridBucket{groups: map[string]*gridGroup{}}
			g.buckets[k] = b
		}
		b.grow(n)
		for _, sl := range slots {
			for _, gr := range b.groups {
				gr.v[sl] = 0
			}
			b.final[sl] = k <= finalUpTo
			b.readTs[sl], b.readAt[sl] = readTs, now
		}
	}
	for _, r := range got {
		b := g.buckets[r.bucket]
		if b == nil || r.bucket < lo || r.bucket > hi {
			return fmt.Errorf("bucket %d outside the read %d..%d", r.bucket, lo, hi)
		}
		gr := b.groups[r.key]
		if gr == nil {
			gr = &gridGroup{values: r.values, v: make([]float64, n)}
			b.groups[r.key] = gr
		}
		for j, sl := range slots {
			gr.v[sl] = r.v[j]
		}
	}
	return nil
}

// blockSize is the number of buckets folded into one block (an hour of
// minutes).
const blockSize = 60

// merge folds the buckets of a leaf's window into its samples, taking whole
// blocks of final buckets where the window covers them.
func (g *grid) merge(il incLeaf) []engine.Sample {
	type acc struct {
		values          []string
		count, sum, agg float64
	}
	groups := map[string]*acc{}
	fold := func(b *gridBucket) {
		for key, gr := range b.groups {
			c := gr.v[il.count]
			if c == 0 {
				continue
			}
			a := groups[key]
			if a == nil {
				a = &acc{values: gr.values}
				groups[key] = a
				if il.agg >= 0 {
					a.agg = gr.v[il.agg]
				}
			}
			a.count += c
			if il.sum >= 0 {
				a.sum += gr.v[il.sum]
			}
			if il.agg >= 0 {
				switch g.cols[il.agg].kind {
				case colMin:
					a.agg = min(a.agg, gr.v[il.agg])
				case colMax:
					a.agg = max(a.agg, gr.v[il.agg])
				}
			}
		}
	}
	for k := il.first; k <= il.lastBucket; {
		if floorMod(k-1, blockSize) == 0 && k+blockSize-1 <= il.lastBucket {
			if b := g.block(floorDiv(k-1, blockSize), il); b != nil {
				fold(b)
				k += blockSize
				continue
			}
		}
		if b := g.buckets[k]; b != nil {
			fold(b)
		}
		k++
	}
	l := il.l
	if l.Agg == dsl.AggAbsent {
		if len(groups) > 0 {
			return nil
		}
		return []engine.Sample{{Labels: l.Labels(), Value: 1}}
	}
	out := make([]engine.Sample, 0, len(groups))
	for _, a := range groups {
		agg := a.agg
		if l.Agg == dsl.AggAvg {
			agg = a.sum / a.count
		}
		out = append(out, engine.Sample{Labels: l.GroupLabels(a.values), Value: l.Value(a.count, a.sum, agg)})
	}
	return out
}

// block returns block q (buckets q·blockSize+1 … (q+1)·blockSize) with the
// leaf's slots folded, building them when every bucket of the block is
// final for them; nil when one is not.
func (g *grid) block(q int64, il incLeaf) *gridBucket {
	slots := []int{il.count}
	for _, sl := range []int{il.sum, il.agg} {
		if sl >= 0 {
			slots = append(slots, sl)
		}
	}
	n := len(g.cols)
	blk := g.blocks[q]
	if blk != nil {
		blk.grow(n)
		built := true
		for _, sl := range slots {
			built = built && blk.final[sl]
		}
		if built {
			return blk
		}
	}
	first := q*blockSize + 1
	for k := first; k < first+blockSize; k++ {
		b := g.buckets[k]
		if b == nil {
			return nil
		}
		for _, sl := range slots {
			if sl >= len(b.final) || !b.final[sl] {
				return nil
			}
		}
	}
	if blk == nil {
		blk = &gridBucket{groups: map[string]*gridGroup{}}
		blk.grow(n)
		g.blocks[q] = blk
	}
	for _, gr := range blk.groups {
		for _, sl := range slots {
			gr.v[sl] = 0
		}
	}
	for k := first; k < first+blockSize; k++ {
		for key, gr := range g.buckets[k].groups {
			c := gr.v[il.count]
			if c == 0 {
				continue
			}
			bg := blk.groups[key]
			if bg == nil {
				bg = &gridGroup{values: gr.values, v: make([]float64, n)}
				blk.groups[key] = bg
			}
			prev := bg.v[il.count]
			bg.v[il.count] += c
			if il.sum >= 0 {
				bg.v[il.sum] += gr.v[il.sum]
			}
			if il.agg >= 0 {
				v := gr.v[il.agg]
				switch {
				case prev == 0:
					bg.v[il.agg] = v
				case g.cols[il.agg].kind == colMin:
					bg.v[il.agg] = min(bg.v[il.agg], v)
				default:
					bg.v[il.agg] = max(bg.v[il.agg], v)
				}
			}
		}
	}
	for _, sl := range slots {
		blk.final[sl] = true
	}
	return blk
}

// evict drops the buckets no leaf of the grid reaches any more.
func (g *grid) evict() {
	keep := g.last - g.span - 10
	for k := range g.buckets {
		if k < keep {
			delete(g.buckets, k)
		}
	}
	for q := range g.blocks {
		if (q+1)*blockSize < keep {
			delete(g.blocks, q)
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func incNames(ils []incLeaf) string {
	names := make([]string, len(ils))
	for i, il := range ils {
		names[i] = il.l.Func
	}
	return strings.Join(names, ", ")
}
