package clickhouse

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Incremental configures the incremental path of a Source: decomposable
// leaves (count, sum, avg, min, max, rate, increase, absent and present
// over time, and the threshold counts count_le and count_gt over time)
// are computed from per-bucket partial aggregates that ClickHouse computes
// once per bucket and the Source keeps, so an evaluation reads only the
// buckets it has not read since they became final, plus the late-arrival
// window, instead of its whole window.
//
// A bucket of width B holds the events of (k·B−B, k·B]. A leaf takes the
// incremental path when its window, its offset and its evaluation time are
// whole multiples of B (every rule evaluated at an interval that is a
// multiple of B, over windows that are multiples of B); any other leaf, and
// every quantile and standard deviation, is computed by a full query as
// before. A long window's first evaluation is a full query too, fused with
// the full path's leaves of its shape, whose result then slides (see
// coldState). Both paths give the same answers: the differential test
// checks it step after step.
type Incremental struct {
	// Bucket is the width of a partial aggregate (default 1m).
	Bucket time.Duration
	// LateWindow is how long after its end a bucket is still read again at
	// every evaluation, so events that land late are counted (default 2m).
	// An event that lands later than that after its bucket's end may be
	// missed by windows that were already read: its bucket was final.
	LateWindow time.Duration
	// Reuse is how long the read of a bucket that is not final yet serves
	// other evaluations at the same timestamp — the groups that share an
	// interval evaluate at the same aligned time, and the first one's read
	// serves the others (default 30s; negative disables it).
	Reuse time.Duration
	// MaxBuckets bounds the buckets of a quantile's window, whose value
	// counts the grid keeps per bucket: longer windows take the full path
	// (default 10080, a week of minutes).
	MaxBuckets int
	// MaxColdBuckets bounds the buckets of any other window (default
	// 46080, 32 days of minutes). A window longer than maxFillBuckets
	// slides on its cold state, which absorbs each bucket once it is
	// final, so the grid keeps only the recent buckets, and each step
	// reads the bucket leaving the window: an SLO's 30 days cost what a
	// minute of new events costs.
	MaxColdBuckets int
	// MaxDistinctValues bounds the distinct values of a field that a
	// quantile keeps per group as value counts (default 50000): a field
	// with more (a floating-point cost) takes the full path.
	MaxDistinctValues int
	// FillSettle is how long no evaluation must have run before a
	// quantile's value counts are read in the background (default
	// 500ms; negative: at once).
	FillSettle time.Duration
	// KeepColdStates keeps a long window's first result (its cold state)
	// for the window's length, as the only record of its old buckets: each
	// step then reads the bucket leaving the window, and a min or max
	// whose extreme leaves it is queried again. By default the cold part's
	// buckets are read in the background once evaluations have settled
	// (windows of up to two days of buckets), and the window slides on
	// buckets alone.
	KeepColdStates bool
	// Now is the clock that decides which buckets are final (default
	// time.Now).
	Now func() time.Time
	// coldAbove is the number of missing buckets above which a leaf is
	// computed by a full query that starts its cold state, instead of
	// reading the buckets (default 8 with the default bucket and late window).
	coldAbove int
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
	if o.MaxColdBuckets <= 0 {
		o.MaxColdBuckets = 46080
	}
	if o.MaxDistinctValues <= 0 {
		o.MaxDistinctValues = 50000
	}
	if o.FillSettle == 0 {
		o.FillSettle = 500 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.coldAbove <= 0 {
		// More than twice the catch-up of a 1m interval (the late window
		// and the new bucket): a first evaluation, not a step.
		o.coldAbove = max(8, 2*int(o.LateWindow/o.Bucket)+4)
	}
}

// colKind is the partial aggregate a column keeps per bucket and group.
type colKind int

const (
	colCount colKind = iota
	colSum
	colMin
	colMax
	colMean
	colM2
	colAtOrBelow
)

// bucketPartial is how the incremental path keeps a partial state per
// bucket and group: as slots (one float each) of the kinds listed,
// computed by the bucket read's aggregates, read into a state and written
// back from one (blocks of buckets).
type bucketPartial struct {
	kinds   []colKind
	columns func(l *dsl.Leaf, value string, cond fragment) []fragment
	fill    func(st *dsl.State, v []float64)
	put     func(st *dsl.State, v []float64)
}

// bucketPartials are the partial states the incremental path keeps in
// buckets; dsl.PartialValues is kept apart, as value counts (see
// quantiles.go). checkIncremental checks that together they cover every
// aggregate.
var bucketPartials = map[dsl.Partial]bucketPartial{
	dsl.PartialCount: {[]colKind{colCount},
		func(_ *dsl.Leaf, _ string, cond fragment) []fragment {
			return []fragment{aggregate("count", "", "", cond)}
		},
		func(st *dsl.State, v []float64) { st.Count = v[0] }, func(st *dsl.State, v []float64) { v[0] = st.Count }},
	dsl.PartialSum: {[]colKind{colSum},
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("sum", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Sum = v[0] }, func(st *dsl.State, v []float64) { v[0] = st.Sum }},
	dsl.PartialMoments: {[]colKind{colMean, colM2},
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("avg", "", value, cond), aggregate("varPopStable", "", value, cond)}
		},
		// The bucket read gives the variance; the slot keeps M2 = n·var.
		func(st *dsl.State, v []float64) { st.Mean, st.M2 = v[0], v[1] },
		func(st *dsl.State, v []float64) { v[0], v[1] = st.Mean, st.M2 }},
	dsl.PartialMin: {[]colKind{colMin},
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("min", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Min = v[0] }, func(st *dsl.State, v []float64) { v[0] = st.Min }},
	dsl.PartialMax: {[]colKind{colMax},
		func(_ *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("max", "", value, cond)}
		},
		func(st *dsl.State, v []float64) { st.Max = v[0] }, func(st *dsl.State, v []float64) { v[0] = st.Max }},
	dsl.PartialAtOrBelow: {[]colKind{colAtOrBelow},
		func(l *dsl.Leaf, value string, cond fragment) []fragment {
			return []fragment{aggregate("count", "", "", atOrBelow(l, value, cond))}
		},
		func(st *dsl.State, v []float64) { st.AtOrBelow = v[0] }, func(st *dsl.State, v []float64) { v[0] = st.AtOrBelow }},
}

// checkIncremental reports an aggregate the incremental path cannot
// compute: every partial is kept in buckets or as value counts.
func checkIncremental() error {
	return dsl.CheckBackend("the incremental path", func(p dsl.Partial) bool {
		_, ok := bucketPartials[p]
		return ok || p == dsl.PartialValues
	})
}

// partials keeps the per-bucket partial aggregates of every grouping.
type partials struct {
	opts  Incremental
	dist  bool // Options.Distributed
	mu    sync.Mutex
	grids map[string]*grid
	// families are the value counts of quantile leaves, by vcKey;
	// overflow the families over the distinct-value budget.
	families map[string]*vcFamily
	overflow map[string]vcOverflow
	// fills are the value-count reads queued or running in the
	// background; fillQueue waits for the evaluation that queued them to
	// finish, filling says a goroutine works through it.
	fills     sync.WaitGroup
	fillMu    sync.Mutex
	fillQueue []func()
	filling   bool
	// active counts the evaluations in progress and lastEval is when the
	// last one ended (wall clock), for the fills' settling.
	active   int
	lastEval time.Time
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
	// Requeries count the reads of a min or max whose extreme left the
	// window of its cold state.
	Requeries int
	// QuantileLeaves counts the quantile leaves computed from value
	// counts; ValueQueries and ValueRows the reads of value counts and
	// the rows they returned; ValueCounts the value counts held now.
	QuantileLeaves, ValueQueries, ValueRows, ValueCounts int
	// Fills count the windows' value counts read in the background.
	Fills int
	// Absorbed counts the final buckets that long windows' cold states
	// absorbed (the grid then need not keep them).
	Absorbed int
	// CoSteps count the families of quantile leaves stepped along with
	// another family of their field and grouping, by its query (the
	// leaves of other rule groups due at the same time).
	CoSteps int
}

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
	// blocks hold, per block of blockSize final buckets, the buckets'
	// values folded, so a long window merges a few blocks instead of
	// every bucket.
	blocks map[int64]*gridBucket
	// cold holds the cold states of leaves, by leaf key.
	cold map[string]*coldState
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
	return &partials{opts: opts, grids: map[string]*grid{}, families: map[string]*vcFamily{}, overflow: map[string]vcOverflow{}}
}

// eligible returns why l at ts cannot be computed from partial aggregates
// (or value counts), or "" when it can.
func (p *partials) eligible(ts time.Time, l *dsl.Leaf) string {
	for _, part := range l.Partials() {
		if _, ok := bucketPartials[part]; !ok && part != dsl.PartialValues {
			return "the incremental path does not keep " + part.String()
		}
	}
	b := p.opts.Bucket
	switch {
	case l.Range%b != 0 || l.Offset%b != 0:
		return fmt.Sprintf("the window or offset is not a multiple of clickhouse.incremental.bucket (%s)", b)
	case slices.Contains(l.Partials(), dsl.PartialValues) && int(l.Range/b) > p.opts.MaxBuckets:
		return fmt.Sprintf("the window has more than %d buckets (value counts are kept per bucket)", p.opts.MaxBuckets)
	case int(l.Range/b) > max(p.opts.MaxBuckets, p.opts.MaxColdBuckets):
		return fmt.Sprintf("the window has more than %d buckets", max(p.opts.MaxBuckets, p.opts.MaxColdBuckets))
	case ts.Nanosecond() != 0 || ts.Unix()%int64(b/time.Second) != 0:
		return fmt.Sprintf("the evaluation time is not on a bucket edge (the interval is not a multiple of %s)", b)
	}
	return ""
}

func (p *partials) grid(by []string, columns Columns) *grid {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := strings.Join(by, ",")
	g, ok := p.grids[k]
	if !ok {
		g = &grid{by: by, columns: columns, dist: p.dist, width: int64(p.opts.Bucket / time.Second), slots: map[string]int{}, buckets: map[int64]*gridBucket{},
			blocks: map[int64]*gridBucket{}, cold: map[string]*coldState{}, leafSlots: map[string][]leafSlots{}, uses: map[string]*leafUse{}, warm: int64(10 * time.Minute / time.Second)}
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

// coldState carries a leaf's full result forward: the first evaluation of
// a long window is one full query (fused with the full path's other leaves
// of its shape, so it costs what a full evaluation costs), and its result
// covers the window's old buckets (from, k0]; buckets after k0 come from
// partial aggregates. As the window slides, buckets leaving it are read
// (a bucket's worth of rows) and taken off counts and sums; a min or max
// keeps the time of its extreme and is read again from the events only
// when that time leaves the window. When the window no longer reaches k0,
// the state is dropped: the partial aggregates cover it all.
type coldState struct {
	from, k0 int64
	groups   map[string]*coldGroup
}

// coldGroup is one group of a cold state: the partial states of the
// events in (from, k0], and the time of the extreme (unix seconds) of a min
// or max. stale marks an extreme whose time is not in (from, k0].
type coldGroup struct {
	values []string
	st     dsl.State
	at     int64
	stale  bool
}

// seedLeaf collects the full result of a leaf that starts a cold state.
type seedLeaf struct {
	g      *grid
	l      *dsl.Leaf
	groups map[string]*coldGroup
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

// eval computes leaves (all eligible, all of grid g) at ts into vectors,
// reading the buckets that are missing or not final. It returns the
// leaves it leaves to a full query (deferred): those whose window has more
// than coldAbove buckets not read yet and no cold state; their results
// seed one (see seed).
func (p *partials) eval(ctx context.Context, s *Source, g *grid, ts time.Time, leaves []*dsl.Leaf, idx []int, vectors [][]engine.Sample) (statements []string, deferred []int, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := p.opts.Now()
	w := g.width
	// The last bucket that is final: it ended LateWindow or more ago.
	finalUpTo := floorDiv(now.Add(-p.opts.LateWindow).Unix(), w)

	var ranges []slotRange // what must be read
	ils := make([]incLeaf, 0, len(idx))
	here := map[string]bool{}
	for _, i := range idx {
		l := leaves[i]
		il, mine, missing := g.need(i, l, ts, now, p.opts.Reuse)
		here[il.key] = true
		g.noteUse(il.key, l, ts.Unix())
		for _, sl := range il.allSlots() {
			g.used[sl] = ts.Unix()
		}
		g.span = max(g.span, g.reach(l, p.opts.LateWindow))
		g.last = max(g.last, ts.Unix()/w)
		if il.cold == nil && missing > p.opts.coldAbove {
			deferred = append(deferred, i)
			continue
		}
		ranges = append(ranges, mine...)
		ils = append(ils, il)
	}
	// The leaves of the grid that other rule groups evaluate at this same
	// time (by their last two evaluations) need the same new buckets and,
	// for their windows, other leaving ones: those are read now too, so
	// the groups due together read each grouping once.
	if len(ranges) > 0 {
		for key, u := range g.uses {
			if here[key] || u.next() != ts.Unix() {
				continue
			}
			if il, mine, missing := g.need(-1, u.leaf, ts, now, p.opts.Reuse); il.cold != nil || missing <= p.opts.coldAbove {
				ranges = append(ranges, mine...)
			}
		}
	}

	// Reads whose bucket ranges overlap or touch are merged: reading more
	// columns over the same rows costs little, reading rows twice costs.
	sort.Slice(ranges, func(i, j int) bool { return ranges[i].lo < ranges[j].lo })
	var reads []read
	for _, r := range ranges {
		if k := len(reads) - 1; k >= 0 && r.lo <= reads[k].hi+1 {
			reads[k].hi = max(reads[k].hi, r.hi)
			if !slices.Contains(reads[k].slots, r.slot) {
				reads[k].slots = append(reads[k].slots, r.slot)
			}
			continue
		}
		reads = append(reads, read{lo: r.lo, hi: r.hi, slots: []int{r.slot}})
	}
	// The other groups evaluated at this time need the same new buckets
	// of their own columns: a read takes every warm column of the grid
	// along whose buckets in its range are not fresh, so theirs is served
	// from it (Reuse).
	for k := range reads {
		r := &reads[k]
		for sl := range g.cols {
			if slices.Contains(r.slots, sl) || g.used[sl] < ts.Unix()-g.warm {
				continue
			}
			if len(g.missing(sl, r.lo, r.hi, ts, now, p.opts.Reuse)) > 0 {
				r.slots = append(r.slots, sl)
			}
		}
	}
	if len(reads) > 0 {
		// One query for all the runs, with every slot any of them needs.
		var rs []bucketRange
		var slots []int
		for _, r := range reads {
			rs = append(rs, bucketRange{r.lo, r.hi})
			for _, sl := range r.slots {
				if !slices.Contains(slots, sl) {
					slots = append(slots, sl)
				}
			}
		}
		sql, err := p.readBuckets(ctx, s, g, rs, slots, ts, now, finalUpTo)
		statements = append(statements, sql)
		if err != nil {
			return statements, nil, fmt.Errorf("compute %s from partial aggregates: %w", incNames(ils), err)
		}
	}

	absorbed := 0
	for k := range ils {
		il := &ils[k]
		if cs := il.cold; cs != nil {
			switch {
			case il.requery:
				sql, err := p.requery(ctx, s, g, il, cs)
				statements = append(statements, sql)
				if err != nil {
					return statements, nil, fmt.Errorf("compute %s: %w", il.l.Func, err)
				}
			case !il.extreme() && il.first-1 > cs.from:
				g.takeOff(il, cs)
			}
		}
		vectors[il.i] = g.merge(*il)
		if cs := il.cold; cs != nil && absorbs(il.l, w) {
			absorbed += g.absorb(il, cs, min(finalUpTo, il.lastBucket))
		}
	}
	g.evict()
	p.statsMu.Lock()
	p.stats.Leaves += len(ils)
	p.stats.Absorbed += absorbed
	p.statsMu.Unlock()
	return statements, deferred, nil
}

// readBuckets reads the slots' partial aggregates over the bucket ranges
// rs in one query and stores them; it returns the SQL.
func (p *partials) readBuckets(ctx context.Context, s *Source, g *grid, rs []bucketRange, slots []int, ts, now time.Time, finalUpTo int64) (string, error) {
	sort.Ints(slots)
	st := g.statement(s, rs, slots)
	buckets := 0
	for _, r := range rs {
		buckets += int(r.hi - r.lo + 1)
	}
	// A row per group and bucket: the limit is the statement's groups in
	// every bucket read.
	got, err := g.query(ctx, s, st, (len(slots)*s.opts.MaxGroups)*buckets)
	if err != nil {
		return st.SQL, err
	}
	if err := g.store(got, rs, slots, ts.UnixMilli(), now, finalUpTo); err != nil {
		return st.SQL, err
	}
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	p.stats.Queries++
	for _, r := range rs {
		p.stats.BucketsRead += int(r.hi - r.lo + 1)
	}
	return st.SQL, nil
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

// leafUse is a leaf of the grid and its latest two evaluation times (unix
// seconds), from which its next one is guessed.
type leafUse struct {
	leaf       *dsl.Leaf
	used, prev int64
}

func (u *leafUse) next() int64 {
	if u.prev <= 0 || u.used <= u.prev {
		return 0
	}
	return 2*u.used - u.prev
}

// noteUse records an evaluation of leaf key at ts and forgets the leaves
// not evaluated for the grid's span.
func (g *grid) noteUse(key string, l *dsl.Leaf, ts int64) {
	u := g.uses[key]
	if u == nil {
		u = &leafUse{}
		g.uses[key] = u
	}
	u.leaf = l
	if ts > u.used {
		u.prev, u.used = u.used, ts
	}
	if len(g.uses) > 64 {
		for k, o := range g.uses {
			if o.used < ts-(g.span+1)*g.width {
				delete(g.uses, k)
			}
		}
	}
}

// takeOff removes the buckets that left the leaf's window, from+1 … first−1,
// from its cold state's counts and sums.
func (g *grid) takeOff(il *incLeaf, cs *coldState) {
	for k := cs.from + 1; k <= il.first-1; k++ {
		b := g.buckets[k]
		if b == nil {
			continue
		}
		cs.subtract(b, il)
	}
	cs.from = il.first - 1
}

// subtract takes bucket b's partial states of the leaf off the cold
// state (extremes stay: they are read again when they leave). A group the
// cold state lacks landed after the full read, beyond the late window, and
// is skipped.
func (cs *coldState) subtract(b *gridBucket, il *incLeaf) {
	if b == nil {
		return
	}
	ps := il.l.Partials()
	for key, gr := range b.groups {
		cg := cs.groups[key]
		if gr.v[il.count] == 0 || cg == nil {
			continue
		}
		bst := il.state(gr.v)
		cg.st.Remove(&bst, ps)
		if cg.st.Count <= 0 {
			delete(cs.groups, key)
		}
	}
}

// requery reads the extreme of a min or max leaf's cold part again, from
// the events of buckets first … k0: its extreme left the window.
func (p *partials) requery(ctx context.Context, s *Source, g *grid, il *incLeaf, cs *coldState) (string, error) {
	l := il.l
	cond := s.opts.Columns.leafCondition(l)
	value := s.opts.Columns.Value(l.Selector.Columns)
	part, fn := dsl.PartialMax, "max"
	if l.Agg == dsl.AggMin {
		part, fn = dsl.PartialMin, "min"
	}
	q := NewSelect(SelectOptions{Table: s.opts.Table, Time: s.opts.Schema.Time, Columns: s.opts.Columns})
	for _, b := range g.by {
		q.Label(b, "")
	}
	for _, c := range []fragment{aggregate("count", "", "", cond), aggregate(fn, "", value, cond), extremeTime(part, q.Time(), value, cond)} {
		q.Value("", c.sql, c.args...)
	}
	w := q.Window((il.first-1)*g.width, cs.k0*g.width)
	q.Where(w.SQL, w.Args...).Where(cond.sql, cond.args...).GroupByLabels()
	groups := map[string]*coldGroup{}
	maxRows := 0
	if len(g.by) > 0 {
		maxRows = s.opts.MaxGroups
	}
	err := s.scan(ctx, q, maxRows, func(values []string, nums []float64) error {
		if nums[0] > 0 {
			groups[strings.Join(values, "\xff")] = &coldGroup{values: slices.Clone(values), st: dsl.State{Count: nums[0], Min: nums[1], Max: nums[1]}, at: int64(nums[2])}
		}
		return nil
	})
	if err != nil {
		return q.String(), err
	}
	cs.groups, cs.from = groups, il.first-1
	p.statsMu.Lock()
	p.stats.Requeries++
	p.statsMu.Unlock()
	return q.String(), nil
}

// seed starts the cold states of leaves of g computed by a full query at
// ts: each full result, minus the buckets that are not final yet (read now
// for all of them in one query, a few buckets), covers its window's
// buckets up to the last final one.
func (p *partials) seed(ctx context.Context, s *Source, g *grid, sds []*seedLeaf, ts time.Time) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := p.opts.Now()
	w := g.width
	finalUpTo := floorDiv(now.Add(-p.opts.LateWindow).Unix(), w)
	type seeded struct {
		il incLeaf
		cs *coldState
	}
	var todo []seeded
	var ranges []bucketRange
	var slots []int
	for _, sd := range sds {
		from, to := sd.l.Window(ts)
		il := incLeaf{l: sd.l, key: sd.l.Key(), first: floorDiv(from.Unix(), w) + 1, lastBucket: floorDiv(to.Unix(), w)}
		il.parts, il.count = g.slotsFor(sd.l)
		k0 := min(finalUpTo, il.lastBucket)
		if k0 < il.first {
			continue // nothing final in the window: the buckets will do
		}
		todo = append(todo, seeded{il, &coldState{from: il.first - 1, k0: k0, groups: sd.groups}})
		if k0 < il.lastBucket {
			ranges = append(ranges, bucketRange{k0 + 1, il.lastBucket})
			for _, sl := range il.allSlots() {
				if !slices.Contains(slots, sl) {
					slots = append(slots, sl)
				}
			}
		}
	}
	var statements []string
	if len(ranges) > 0 {
		sql, err := p.readBuckets(ctx, s, g, mergeRanges(ranges), slots, ts, now, finalUpTo)
		statements = append(statements, sql)
		if err != nil {
			return statements, fmt.Errorf("compute %s from partial aggregates: %w", sds[0].l.Func, err)
		}
	}
	for _, t := range todo {
		il, cs := t.il, t.cs
		if il.extreme() {
			for _, cg := range cs.groups {
				if cg.at > cs.k0*w {
					cg.stale = true // the extreme is in the open buckets
				}
			}
		} else {
			for k := cs.k0 + 1; k <= il.lastBucket; k++ {
				cs.subtract(g.buckets[k], &il)
			}
		}
		g.cold[il.key] = cs
	}
	// The cold parts' buckets are read in the background, once
	// evaluations have settled: then the leaves slide on buckets alone,
	// with no bucket leaving the window to read and no extreme to query
	// again.
	var keys []string
	var fillSlots []int
	var fill []bucketRange
	for _, t := range todo {
		if t.il.lastBucket-t.il.first >= maxFillBuckets {
			continue
		}
		keys = append(keys, t.il.key)
		// Each leaf's own cold part: leaves far apart in time (an
		// offset of a week) must not make one read of every bucket
		// between them.
		fill = append(fill, bucketRange{t.cs.from + 1, t.cs.k0})
		for _, sl := range t.il.allSlots() {
			if !slices.Contains(fillSlots, sl) {
				fillSlots = append(fillSlots, sl)
			}
		}
	}
	if len(keys) > 0 && !p.opts.KeepColdStates {
		rs := mergeRanges(fill)
		p.queueFill(func() { p.fillGrid(s, g, keys, fillSlots, rs) })
	}
	return statements, nil
}

// absorbs reports whether leaf l slides on a cold state that absorbs its
// final buckets: a window too long for its cold part to be read into
// buckets (maxFillBuckets), with no extreme (an extreme cannot be taken
// off, so its cold part is read again instead).
func absorbs(l *dsl.Leaf, width int64) bool {
	return int64(l.Range/time.Second)/width > maxFillBuckets && l.Agg != dsl.AggMin && l.Agg != dsl.AggMax
}

// reach is how many buckets back from the evaluation time the grid keeps
// for leaf l: its whole window and offset, or, for a window that absorbs
// its buckets into its cold state, only the offset and the buckets not
// final yet (the bucket leaving the window is read at each step).
func (g *grid) reach(l *dsl.Leaf, late time.Duration) int64 {
	if absorbs(l, g.width) {
		return int64((l.Offset+late)/time.Second)/g.width + 2
	}
	return int64((l.Range+l.Offset)/time.Second)/g.width + 1
}

// absorb moves the leaf's final buckets after its cold part, up to upTo,
// into the cold state, so the grid need not keep them: from then on they
// are only read again when they leave the window. It returns how many it
// absorbed.
func (g *grid) absorb(il *incLeaf, cs *coldState, upTo int64) (n int) {
	if cs.groups == nil {
		cs.groups = map[string]*coldGroup{}
	}
	ps := il.l.Partials()
	slots := il.allSlots()
	for k := cs.k0 + 1; k <= upTo; k++ {
		b := g.buckets[k]
		if b == nil {
			return n
		}
		for _, sl := range slots {
			if sl >= len(b.final) || !b.final[sl] {
				return n
			}
		}
		for key, gr := range b.groups {
			if gr.v[il.count] == 0 {
				continue
			}
			cg := cs.groups[key]
			if cg == nil {
				cg = &coldGroup{values: gr.values}
				cs.groups[key] = cg
			}
			bst := il.state(gr.v)
			cg.st.Merge(&bst, ps)
		}
		cs.k0 = k
		n++
	}
	return n
}

// maxFillBuckets bounds the windows whose cold part is read into buckets
// (two days of 1m buckets): a longer window keeps its cold state.
const maxFillBuckets = 2880

// mergeRanges sorts bucket ranges and merges those that overlap or touch.
func mergeRanges(rs []bucketRange) []bucketRange {
	rs = slices.Clone(rs)
	sort.Slice(rs, func(i, j int) bool { return rs[i].lo < rs[j].lo })
	merged := rs[:1]
	for _, r := range rs[1:] {
		if last := &merged[len(merged)-1]; r.lo <= last.hi+1 {
			last.hi = max(last.hi, r.hi)
		} else {
			merged = append(merged, r)
		}
	}
	return merged
}

// fillGrid reads the slots' partial aggregates over the final buckets rs
// (the cold parts of leaves keys, each range at most maxFillBuckets) into
// g, in the background, and drops the cold states the buckets now cover.
func (p *partials) fillGrid(s *Source, g *grid, keys []string, slots []int, rs []bucketRange) {
	defer p.fills.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 4*s.opts.QueryTimeout)
	defer cancel()
	sort.Ints(slots)
	g.mu.Lock() // evaluations add columns to the grid meanwhile
	st := g.statement(s, rs, slots)
	g.mu.Unlock()
	got, err := g.query(ctx, s, st, 0)
	if err != nil {
		return // the cold states stay: the leaves slide on them
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Only the buckets the grid still keeps (the window moved on while
	// reading) and that are final: the rest are read by evaluations.
	finalUpTo := floorDiv(p.opts.Now().Add(-p.opts.LateWindow).Unix(), g.width)
	var kept []bucketRange
	for _, r := range rs {
		r.lo, r.hi = max(r.lo, g.last-g.span), min(r.hi, finalUpTo)
		if r.lo <= r.hi {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		return
	}
	in := func(k int64) bool {
		for _, r := range kept {
			if k >= r.lo && k <= r.hi {
				return true
			}
		}
		return false
	}
	rows := got[:0]
	for _, row := range got {
		if in(row.bucket) {
			rows = append(rows, row)
		}
	}
	if err := g.store(rows, kept, slots, 0, p.opts.Now(), finalUpTo); err != nil {
		return
	}
	read := 0
	for _, r := range kept {
		read += int(r.hi - r.lo + 1)
		// Blocks folded before hold the same final buckets; they are
		// built again from the stored ones all the same.
		for q, blk := range g.blocks {
			if (q+1)*blockSize >= r.lo && q*blockSize+1 <= r.hi {
				for _, sl := range slots {
					if sl < len(blk.final) {
						blk.final[sl] = false
					}
				}
			}
		}
	}
	for _, k := range keys {
		if cs := g.cold[k]; cs != nil && covered(kept, cs.from+1, cs.k0) {
			delete(g.cold, k)
		}
	}
	p.statsMu.Lock()
	p.stats.Fills++
	p.stats.BucketsRead += read
	p.statsMu.Unlock()
}

// covered reports whether the merged ranges rs hold every bucket lo … hi.
func covered(rs []bucketRange, lo, hi int64) bool {
	for _, r := range rs {
		if lo >= r.lo && hi <= r.hi {
			return true
		}
	}
	return false
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
	q := NewSelect(SelectOptions{Table: s.opts.Table, Time: s.opts.Schema.Time, Columns: s.opts.Columns})
	for _, l := range g.by {
		q.Label(l, "")
	}
	// Bucket k holds (k·B−B, k·B]: k = ⌈t/B⌉ = intDiv(t + B − 1, B).
	bucket := "intDiv(toUInt64(toUInt32(" + q.Time() + ")) + ?, ?)"
	q.Value("", bucket, g.width-1, g.width)
	unfiltered := false
	var conds []Expr
	seen := map[string]bool{}
	for _, sl := range slots {
		c := g.cols[sl]
		q.Value("", c.frag.sql, c.frag.args...)
		// The column's selector, for the WHERE clause: the count column
		// carries exactly its condition's arguments.
		cond := c.cond
		if cond.sql == "" {
			unfiltered = true
		} else if !seen[cond.key()] {
			seen[cond.key()] = true
			conds = append(conds, Expr{SQL: cond.sql, Args: cond.args})
		}
	}
	// One time range per run of buckets, ORed: the new buckets and those
	// leaving a long window are read by one query.
	ranges := make([]Expr, len(rs))
	for i, r := range rs {
		ranges[i] = q.Window((r.lo-1)*g.width, r.hi*g.width)
	}
	w := AnyOf(ranges...)
	q.Where(w.SQL, w.Args...)
	if !unfiltered {
		c := AnyOf(conds...)
		q.Where(c.SQL, c.Args...)
	}
	q.GroupByLabels().GroupBy(bucket, g.width-1, g.width)
	return Statement{SQL: q.String(), Args: q.Args(), By: g.by, Width: len(g.by) + 1 + len(slots), query: q}
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
func (g *grid) store(got []bucketRow, rs []bucketRange, slots []int, readTs int64, now time.Time, finalUpTo int64) error {
	n := len(g.cols)
	inRange := func(k int64) bool {
		for _, r := range rs {
			if k >= r.lo && k <= r.hi {
				return true
			}
		}
		return false
	}
	for _, r := range rs {
		for k := r.lo; k <= r.hi; k++ {
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
	}
	for _, r := range got {
		b := g.buckets[r.bucket]
		if b == nil || !inRange(r.bucket) {
			return fmt.Errorf("bucket %d outside the read %v", r.bucket, rs)
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
// blocks of final buckets where the window covers them: each group's
// partial states are merged (dsl.State.Merge) and finished by the leaf's
// aggregate.
func (g *grid) merge(il incLeaf) []engine.Sample {
	type acc struct {
		values []string
		st     dsl.State
	}
	ps := il.l.Partials()
	groups := map[string]*acc{}
	fold := func(b *gridBucket) {
		for key, gr := range b.groups {
			if gr.v[il.count] == 0 {
				continue
			}
			a := groups[key]
			if a == nil {
				a = &acc{values: gr.values}
				groups[key] = a
			}
			bst := il.state(gr.v)
			a.st.Merge(&bst, ps)
		}
	}
	start := il.first
	if cs := il.cold; cs != nil {
		// The cold part first: buckets up to k0 are in it.
		start = cs.k0 + 1
		for key, cg := range cs.groups {
			if cg.st.Count <= 0 {
				continue
			}
			a := groups[key]
			if a == nil {
				a = &acc{values: cg.values}
				groups[key] = a
			}
			a.st.Merge(&cg.st, ps)
		}
	}
	for k := start; k <= il.lastBucket; {
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
		return engine.AbsentVector(l, len(groups))
	}
	out := make([]engine.Sample, 0, len(groups))
	for _, a := range groups {
		out = append(out, engine.Sample{Labels: l.GroupLabels(a.values), Value: l.Finish(&a.st)})
	}
	return out
}

// block returns block q (buckets q·blockSize+1 … (q+1)·blockSize) with the
// leaf's slots folded, building them when every bucket of the block is
// final for them; nil when one is not.
func (g *grid) block(q int64, il incLeaf) *gridBucket {
	slots := il.allSlots()
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
	ps := il.l.Partials()
	states := map[string]*dsl.State{}
	for k := first; k < first+blockSize; k++ {
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
	for q := range g.blocks {
		if (q+1)*blockSize < keep {
			delete(g.blocks, q)
		}
	}
	for k, cs := range g.cold { // of leaves no longer evaluated (a reload)
		if cs.k0 < keep {
			delete(g.cold, k)
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

// PathOf says which path a leaf evaluated at ts takes with these options:
// "" for the incremental path once its window's buckets are read, else
// why it takes the full path at every evaluation (the reasons of
// /api/v1/rules/evaluations).
func (o Incremental) PathOf(ts time.Time, l *dsl.Leaf) string {
	o.setDefaults()
	return (&partials{opts: o}).eligible(ts, l)
}
