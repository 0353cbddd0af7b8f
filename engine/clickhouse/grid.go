package clickhouse

// The grid of a grouping: the partial aggregates of each bucket and group,
// read once per bucket, and folded (by hour blocks) into a leaf's window.

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// grid holds the partial aggregates of one grouping (By) and bucket width:
// per bucket, per group, one value per column (slot).
type grid struct {
	mu      sync.Mutex
	by      []string
	columns Columns // the source's Options.Columns
	dist    bool    // the source's Options.Distributed
	width   int64   // bucket width, seconds
	slots   map[string]int
	cols    []gridColumn
	buckets map[int64]*gridBucket
	// used is, per slot, the latest evaluation time (unix seconds) that
	// used it; a slot used within warm seconds is read along with others.
	used []int64
	warm int64
	// blocks hold, per level (blockSizes) and per block of that many
	// final buckets, the buckets' values folded, so a long window merges
	// a few hour blocks, and its edges a few ten-bucket blocks, instead of
	// every bucket.
	blocks [len(blockSizes)]map[int64]*gridBucket
	// cold holds the cold states of leaves, by leaf key.
	cold map[string]*coldState
	// runs hold, by leaf key, the window sums that slide from one
	// evaluation to the next (see slide).
	runs map[string]*runState
	// leafSlots remembers the slots of each leaf key; uses the leaves'
	// latest evaluations.
	leafSlots map[string][]leafSlots
	uses      map[string]*leafUse
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

// finalFor reports whether b is there and final for every one of slots.
func (b *gridBucket) finalFor(slots []int) bool {
	if b == nil {
		return false
	}
	for _, sl := range slots {
		if sl >= len(b.final) || !b.final[sl] {
			return false
		}
	}
	return true
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

func (p *partials) grid(by []string, columns Columns) *grid {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := strings.Join(by, ",")
	g, ok := p.grids[k]
	if !ok {
		g = &grid{by: by, columns: columns, dist: p.dist, width: int64(p.opts.Bucket / time.Second), slots: map[string]int{}, buckets: map[int64]*gridBucket{},
			blocks: newBlocks(), cold: map[string]*coldState{}, runs: map[string]*runState{}, leafSlots: map[string][]leafSlots{}, uses: map[string]*leafUse{}, warm: int64(10 * time.Minute / time.Second)}
		p.grids[k] = g
	}
	return g
}

// slot returns the slot of a column, adding it when new.
func (g *grid) slot(kind colKind, f, cond fragment, count int) int {
	k := colKey(kind, f)
	if i, ok := g.slots[k]; ok {
		return i
	}
	g.cols = append(g.cols, gridColumn{frag: f, cond: cond, kind: kind, count: count})
	g.used = append(g.used, math.MinInt64)
	g.slots[k] = len(g.cols) - 1
	return len(g.cols) - 1
}

// colKey identifies a column: its kind and expression.
func colKey(kind colKind, f fragment) string {
	return fmt.Sprintf("%d\x00%s", kind, f.key())
}

// incLeaf is a leaf on the incremental path with its slots and buckets.
type incLeaf struct {
	i   int // index into the leaves of the call
	l   *dsl.Leaf
	key string
	// parts are the slots of each partial state of the leaf
	// (dsl.Leaf.Partials); count is the slot of its count.
	parts             []leafSlots
	count             int
	first, lastBucket int64 // the window's buckets
	cold              *coldState
	requery           bool // min/max: the cold part's extreme left the window
}

// leafSlots are the slots of one partial state of a leaf.
type leafSlots struct {
	p     dsl.Partial
	slots []int
}

// extreme reports whether the leaf is a min or max over time.
func (il *incLeaf) extreme() bool {
	return slices.ContainsFunc(il.parts, func(ls leafSlots) bool { return ls.p == dsl.PartialMin || ls.p == dsl.PartialMax })
}

// allSlots returns every slot of the leaf.
func (il *incLeaf) allSlots() []int {
	var out []int
	for _, ls := range il.parts {
		out = append(out, ls.slots...)
	}
	return out
}

// state reads the leaf's partial states from a bucket group's slots.
func (il *incLeaf) state(v []float64) dsl.State {
	var st dsl.State
	var buf [4]float64 // a partial has at most a few columns: no allocation
	for _, ls := range il.parts {
		vals := buf[:0]
		for _, sl := range ls.slots {
			vals = append(vals, v[sl])
		}
		bucketPartials[ls.p].fill(&st, vals)
	}
	if st.Count > 0 {
		st.M2 *= st.Count // the slot holds the variance as read
	}
	return st
}

// put writes the leaf's partial states into a bucket group's slots.
func (il *incLeaf) put(st *dsl.State, v []float64) {
	for _, ls := range il.parts {
		vals := make([]float64, len(ls.slots))
		bucketPartials[ls.p].put(st, vals)
		for i, sl := range ls.slots {
			v[sl] = vals[i]
		}
	}
	for _, ls := range il.parts {
		if ls.p == dsl.PartialMoments && st.Count > 0 {
			v[ls.slots[1]] = st.M2 / st.Count // back to a variance, as read
		}
	}
}

// slotsFor registers a leaf's slots in g, once per leaf key.
func (g *grid) slotsFor(l *dsl.Leaf) (parts []leafSlots, count int) {
	key := l.Key()
	if ls, ok := g.leafSlots[key]; ok {
		return ls, ls[0].slots[0]
	}
	cond := g.columns.leafCondition(l)
	value := g.columns.Value(l.Selector.Columns)
	countSlot := -1
	for _, p := range l.Partials() {
		bp := bucketPartials[p]
		ls := leafSlots{p: p}
		for k, f := range bp.columns(l, value, cond) {
			if g.dist {
				f = distributedSafe(f)
			}
			sl := g.slot(bp.kinds[k], f, cond, countSlot)
			if p == dsl.PartialCount {
				countSlot = sl
			}
			ls.slots = append(ls.slots, sl)
		}
		parts = append(parts, ls)
	}
	g.leafSlots[key] = parts
	return parts, countSlot
}

// slotRange is buckets lo..hi of one slot.
type slotRange struct {
	slot   int
	lo, hi int64
}

// read is one bucket read: buckets lo..hi of several slots.
type read struct {
	lo, hi int64
	slots  []int
}

// missing returns the runs of buckets in lo..hi that slot sl must read.
func (g *grid) missing(sl int, lo, hi int64, ts, now time.Time, reuse time.Duration) []slotRange {
	var out []slotRange
	for k := lo; k <= hi; k++ {
		if g.fresh(k, sl, ts, now, reuse) {
			continue
		}
		if n := len(out) - 1; n >= 0 && out[n].hi == k-1 {
			out[n].hi = k
		} else {
			out = append(out, slotRange{slot: sl, lo: k, hi: k})
		}
	}
	return out
}

// need plans leaf l (index i of the call) at ts: its slots and window, its
// cold state, and the bucket ranges it must read (missing counts the
// buckets not read yet after its cold state, in the slot missing most).
func (g *grid) need(i int, l *dsl.Leaf, ts, now time.Time, reuse time.Duration) (il incLeaf, mine []slotRange, missing int) {
	w := g.width
	il = incLeaf{i: i, l: l, key: l.Key()}
	il.parts, il.count = g.slotsFor(l)
	from, to := l.Window(ts)
	il.first, il.lastBucket = floorDiv(from.Unix(), w)+1, floorDiv(to.Unix(), w)
	cs := g.cold[il.key]
	if cs != nil && (il.first > cs.k0 || il.first <= cs.from || il.lastBucket < cs.k0) {
		// The window left the cold part (or went back before it).
		if i >= 0 {
			delete(g.cold, il.key)
		}
		cs = nil
	}
	histFirst := il.first
	if cs != nil {
		histFirst = cs.k0 + 1
	}
	for _, sl := range il.allSlots() {
		n := 0
		for _, r := range g.missing(sl, histFirst, il.lastBucket, ts, now, reuse) {
			n += int(r.hi - r.lo + 1)
			mine = append(mine, r)
		}
		missing = max(missing, n) // buckets, not bucket × slot
	}
	if cs == nil {
		return il, mine, missing
	}
	il.cold = cs
	if il.extreme() {
		for _, gr := range cs.groups {
			if gr.stale || gr.at <= (il.first-1)*w {
				il.requery = true
			}
		}
	} else if il.first-1 > cs.from {
		// The buckets leaving the window, to take off.
		for _, sl := range il.allSlots() {
			mine = append(mine, g.missing(sl, cs.from+1, il.first-1, ts, now, reuse)...)
		}
	}
	return il, mine, missing
}

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
func (g *grid) statement(s *Source, rs []bucketRange, slots []int) Statement {
	cols := make([]gridColumn, len(slots))
	for i, sl := range slots {
		cols[i] = g.cols[sl]
	}
	return bucketStatement(s, g.by, g.width, rs, cols)
}

// bucketStatement builds the query that reads the columns' partial
// aggregates of buckets lo..hi of each range, grouped by labels by and
// the bucket (width seconds): a row per group and bucket, its values the
// bucket and then the columns, in order.
func bucketStatement(s *Source, by []string, width int64, rs []bucketRange, cols []gridColumn) Statement {
	q := NewSelect(SelectOptions{Table: s.opts.Table, Time: s.opts.Schema.Time, Columns: s.opts.Columns})
	for _, l := range by {
		q.Label(l, "")
	}
	bucket := q.Bucket(width)
	q.Value("", bucket.SQL, bucket.Args...)
	var conds []fragment
	seen := map[string]bool{}
	for _, c := range cols {
		q.Value("", c.frag.sql, c.frag.args...)
		// The column's selector, for the WHERE clause: the count column
		// carries exactly its condition's arguments.
		if k := c.cond.key(); !seen[k] {
			seen[k] = true
			conds = append(conds, c.cond)
		}
	}
	// The new buckets and those leaving a long window are read by one
	// query.
	whereBuckets(q, width, rs)
	whereAnyOf(q, conds)
	q.GroupByLabels().GroupBy(bucket.SQL, bucket.Args...)
	return Statement{SQL: q.String(), Args: q.Args(), By: by, Width: len(by) + 1 + len(cols), query: q}
}

// whereBuckets narrows q to the buckets of rs (width seconds each): one
// time range per run of buckets, ORed.
func whereBuckets(q *Select, width int64, rs []bucketRange) {
	ranges := make([]Expr, len(rs))
	for i, r := range rs {
		ranges[i] = q.Window((r.lo-1)*width, r.hi*width)
	}
	w := AnyOf(ranges...)
	q.Where(w.SQL, w.Args...)
}

// whereAnyOf narrows q to the rows one of the distinct conditions conds
// selects, ORed, unless one of them selects every row (it is empty).
func whereAnyOf(q *Select, conds []fragment) {
	if slices.ContainsFunc(conds, func(c fragment) bool { return c.sql == "" }) {
		return
	}
	selectors := make([]Expr, len(conds))
	for i, c := range conds {
		selectors[i] = Expr{SQL: c.sql, Args: c.args}
	}
	c := AnyOf(selectors...)
	q.Where(c.SQL, c.Args...)
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

// query runs a bucket read and returns its rows.
func (g *grid) query(ctx context.Context, s *Source, st Statement, maxRows int) ([]bucketRow, error) {
	var got []bucketRow
	err := s.scan(ctx, st.query, maxRows, func(groupValues []string, values []float64) error {
		got = append(got, bucketRow{key: strings.Join(groupValues, "\xff"), values: append([]string(nil), groupValues...), bucket: int64(values[0]), v: append([]float64(nil), values[1:]...)})
		return nil
	})
	return got, err
}

// store puts a complete read of slots over the bucket ranges rs into the
// grid: the slots are reset over rs, then filled. readTs is the evaluation
// time that read them (unix ms; 0 for a backfill).
//
// A slot already final in a bucket keeps its values: one read takes every
// slot it needs over every range it reads, so it covers buckets where some
// of its slots are final, and what the windows that slide took in of them
// (runs, blocks, cold states) is what they take off. A row that lands
// later than the late window is missed, as documented, not counted into a
// window by one read and taken off it by another.
func (g *grid) store(got []bucketRow, rs []bucketRange, slots []int, readTs int64, now time.Time, finalUpTo int64) error {
	n := len(g.cols)
	// kept holds, per bucket in rs, which of slots were final before the
	// read (nil when none was).
	kept := map[int64][]bool{}
	for _, r := range rs {
		for k := r.lo; k <= r.hi; k++ {
			if _, seen := kept[k]; seen {
				continue // ranges that overlap
			}
			b := g.buckets[k]
			if b == nil {
				b = &gridBucket{groups: map[string]*gridGroup{}}
				g.buckets[k] = b
			}
			b.grow(n)
			var keep []bool
			for j, sl := range slots {
				if b.final[sl] {
					if keep == nil {
						keep = make([]bool, len(slots))
					}
					keep[j] = true
					continue
				}
				for _, gr := range b.groups {
					gr.v[sl] = 0
				}
				b.final[sl] = k <= finalUpTo
				b.readTs[sl], b.readAt[sl] = readTs, now
			}
			kept[k] = keep
		}
	}
	for _, r := range got {
		b := g.buckets[r.bucket]
		keep, in := kept[r.bucket]
		if b == nil || !in {
			return fmt.Errorf("bucket %d outside the read %v", r.bucket, rs)
		}
		gr := b.groups[r.key]
		if gr == nil {
			gr = &gridGroup{values: r.values, v: make([]float64, n)}
			b.groups[r.key] = gr
		}
		for j, sl := range slots {
			if keep == nil || !keep[j] {
				gr.v[sl] = r.v[j]
			}
		}
	}
	return nil
}

// blockSize is the number of buckets folded into one block (an hour of
// minutes).
const blockSize = 60

// blockSizes are the sizes of the grid's block levels, widest first: an
// hour of minutes, and ten buckets for the edges of a window that does
// not start or end on an hour.
var blockSizes = [...]int64{blockSize, 10}

// newBlocks returns the grid's empty block levels.
func newBlocks() (b [len(blockSizes)]map[int64]*gridBucket) {
	for lv := range b {
		b[lv] = map[int64]*gridBucket{}
	}
	return b
}

// merge folds the buckets of a leaf's window into its samples, taking whole
// blocks of final buckets where the window covers them: each group's
// partial states are merged (dsl.State.Merge) and finished by the leaf's
// aggregate.
func (g *grid) merge(il incLeaf) []engine.Sample {
	if il.cold == nil && slides(il.l) {
		return g.slide(il)
	}
	ps := il.l.Partials()
	acc := windowAcc{}
	start := il.first
	if cs := il.cold; cs != nil {
		// The cold part first: buckets up to k0 are in it.
		start = cs.k0 + 1
		for key, cg := range cs.groups {
			if cg.st.Count > 0 {
				acc.add(key, cg.values, &cg.st, ps)
			}
		}
	}
	for k := start; k <= il.lastBucket; {
		if b, n := g.widest(k, il); b != nil {
			acc.fold(b, &il, ps)
			k += n
			continue
		}
		acc.fold(g.buckets[k], &il, ps)
		k++
	}
	return acc.samples(il.l)
}

// widest returns the widest block that starts at bucket k and ends within
// the leaf's window, with the leaf's slots folded, and its size; nil when
// no such block is final.
func (g *grid) widest(k int64, il incLeaf) (*gridBucket, int64) {
	for lv, size := range blockSizes {
		if floorMod(k-1, size) == 0 && k+size-1 <= il.lastBucket {
			if b := g.block(lv, floorDiv(k-1, size), il); b != nil {
				return b, size
			}
		}
	}
	return nil, 0
}

// windowAcc accumulates a leaf's window: each group's partial states, by
// group key.
type windowAcc map[string]*accGroup

type accGroup struct {
	values []string
	st     dsl.State
}

// add merges a group's partial states into the window.
func (w windowAcc) add(key string, values []string, st *dsl.State, ps []dsl.Partial) {
	a := w[key]
	if a == nil {
		a = &accGroup{values: values}
		w[key] = a
	}
	a.st.Merge(st, ps)
}

// fold merges bucket (or block) b's partial states of the leaf into the
// window; a nil b holds nothing.
func (w windowAcc) fold(b *gridBucket, il *incLeaf, ps []dsl.Partial) {
	if b == nil {
		return
	}
	for key, gr := range b.groups {
		if gr.v[il.count] == 0 {
			continue
		}
		bst := il.state(gr.v)
		w.add(key, gr.values, &bst, ps)
	}
}

// samples finishes each group's states by the leaf's aggregate.
func (w windowAcc) samples(l *dsl.Leaf) []engine.Sample {
	if l.Agg == dsl.AggAbsent {
		return engine.AbsentVector(l, len(w))
	}
	out := make([]engine.Sample, 0, len(w))
	for _, a := range w {
		out = append(out, engine.Sample{Labels: l.GroupLabels(a.values), Value: l.Finish(&a.st)})
	}
	return out
}

// block returns block q of level lv (buckets q·size+1 … (q+1)·size, size
// blockSizes[lv]) with the leaf's slots folded, building them when every
// bucket of the block is final for them; nil when one is not.
func (g *grid) block(lv int, q int64, il incLeaf) *gridBucket {
	size := blockSizes[lv]
	slots := il.allSlots()
	n := len(g.cols)
	blk := g.blocks[lv][q]
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
	first := q*size + 1
	for k := first; k < first+size; k++ {
		if !g.buckets[k].finalFor(slots) {
			return nil
		}
	}
	if blk == nil {
		blk = &gridBucket{groups: map[string]*gridGroup{}}
		blk.grow(n)
		g.blocks[lv][q] = blk
	}
	ps := il.l.Partials()
	states := map[string]*dsl.State{}
	for k := first; k < first+size; k++ {
		for key, gr := range g.buckets[k].groups {
			if gr.v[il.count] == 0 {
				continue
			}
			st := states[key]
			if st == nil {
				st = &dsl.State{}
				states[key] = st
				if blk.groups[key] == nil {
					blk.groups[key] = &gridGroup{values: gr.values, v: make([]float64, n)}
				}
			}
			bst := il.state(gr.v)
			st.Merge(&bst, ps)
		}
	}
	for key, bg := range blk.groups {
		st := states[key]
		if st == nil {
			st = &dsl.State{}
		}
		il.put(st, bg.v)
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
	for lv, size := range blockSizes {
		for q := range g.blocks[lv] {
			if (q+1)*size < keep {
				delete(g.blocks[lv], q)
			}
		}
	}
	for k, cs := range g.cold { // of leaves no longer evaluated (a reload)
		if cs.k0 < keep {
			delete(g.cold, k)
		}
	}
	for k, r := range g.runs {
		if r.to < keep {
			delete(g.runs, k)
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
