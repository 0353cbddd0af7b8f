package clickhouse

import (
	"context"
	"fmt"
	"maps"
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
	// another family of their field, by its query (the
	// leaves of other rule groups due at the same time).
	CoSteps int
	// AheadReads count the background reads of the buckets that leave
	// quantile windows at their next evaluation, and AheadUsed the steps
	// of a family that took their leaving buckets from one.
	AheadReads, AheadUsed int
	// FoldedReads count the bucket reads of a grouping folded into the
	// read of a wider one (the same buckets, grouped by more labels).
	FoldedReads int
	// BucketCounts count the queries that counted the events of the
	// buckets quantile windows keep that are not final yet, and Rereads
	// the buckets read again because their count changed (late rows).
	BucketCounts, Rereads int
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
	case slices.Contains(l.Partials(), dsl.PartialValues) && int((l.Lookback()-l.Offset)/b) > p.opts.MaxBuckets:
		return fmt.Sprintf("the window has more than %d buckets (value counts are kept per bucket)", p.opts.MaxBuckets)
	case int((l.Lookback()-l.Offset)/b) > max(p.opts.MaxBuckets, p.opts.MaxColdBuckets):
		return fmt.Sprintf("the window has more than %d buckets", max(p.opts.MaxBuckets, p.opts.MaxColdBuckets))
	case ts.Nanosecond() != 0 || ts.Unix()%int64(b/time.Second) != 0:
		return fmt.Sprintf("the evaluation time is not on a bucket edge (the interval is not a multiple of %s)", b)
	}
	if l.Calendar != nil {
		if from, _ := l.Window(ts); from.Unix()%int64(b/time.Second) != 0 {
			return fmt.Sprintf("the month starts off a bucket edge in %s (clickhouse.incremental.bucket is %s)", l.Calendar, b)
		}
	}
	return ""
}

// gridStep is one grid's part of an evaluation: its leaves, those it
// leaves to a full query, and its bucket read. planGrid makes it under the
// grid's lock, which it holds until finish.
type gridStep struct {
	g         *grid
	ts, now   time.Time
	finalUpTo int64
	ils       []incLeaf
	// deferred are the leaves it leaves to a full query (see defers).
	deferred []deferral
	// rs and slots are the bucket read, none when nothing is missing.
	rs    []bucketRange
	slots []int
	// host is the step of a wider grouping whose read reads this one's
	// slots too (nil: it reads its own), and guests the steps it reads
	// for (see foldReads).
	host   *gridStep
	guests []*gridStep
}

// planGrid locks grid g and plans leaves idx (all eligible, all of g) at ts:
// their windows and the buckets that are missing or not final. The leaves
// it leaves to a full query (deferred) are those with no cold state that
// miss more than coldAbove buckets and more than half their window (see
// defers); their results seed one (see seed). finish computes the leaves
// and unlocks g.
func (p *partials) planGrid(g *grid, ts time.Time, leaves []*dsl.Leaf, idx []int) *gridStep {
	g.mu.Lock()
	now := p.opts.Now()
	w := g.width
	st := &gridStep{g: g, ts: ts, now: now}
	// The last bucket that is final: it ended LateWindow or more ago.
	st.finalUpTo = floorDiv(now.Add(-p.opts.LateWindow).Unix(), w)

	var ranges []slotRange // what must be read
	st.ils = make([]incLeaf, 0, len(idx))
	here := map[string]bool{}
	for _, i := range idx {
		l := leaves[i]
		il, mine, missing := g.need(i, l, ts, now, p.opts.Reuse)
		here[il.key] = true
		// A copy before noteUse records this evaluation: the leaf's
		// rhythm up to it.
		var was *rhythm
		if u := g.uses[il.key]; u != nil {
			r := u.rhythm
			was = &r
		}
		g.noteUse(il.key, l, ts.Unix())
		for _, sl := range il.allSlots() {
			g.used[sl] = ts.Unix()
		}
		g.span = max(g.span, g.reach(l, p.opts.LateWindow))
		g.last = max(g.last, ts.Unix()/w)
		if why := p.defers(il, missing, was, ts.Unix()); why != "" {
			st.deferred = append(st.deferred, deferral{i, why})
			continue
		}
		ranges = append(ranges, mine...)
		st.ils = append(st.ils, il)
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
			if il, mine, missing := g.need(-1, u.leaf, ts, now, p.opts.Reuse); p.defers(il, missing, &u.rhythm, ts.Unix()) == "" {
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
	// One query for all the runs, with every slot any of them needs.
	for _, r := range reads {
		st.rs = append(st.rs, bucketRange{r.lo, r.hi})
		for _, sl := range r.slots {
			if !slices.Contains(st.slots, sl) {
				st.slots = append(st.slots, sl)
			}
		}
	}
	sort.Ints(st.slots)
	return st
}

// finish computes the step's leaves into vectors from the grid, once its
// read is stored, and unlocks the grid.
func (p *partials) finish(ctx context.Context, s *Source, st *gridStep, vectors [][]engine.Sample) (statements []string, err error) {
	g := st.g
	defer g.mu.Unlock()
	absorbed := 0
	for k := range st.ils {
		il := &st.ils[k]
		if cs := il.cold; cs != nil {
			switch {
			case il.requery:
				sql, err := p.requery(ctx, s, g, il, cs)
				statements = append(statements, sql)
				if err != nil {
					return statements, fmt.Errorf("compute %s: %w", il.l.Func, err)
				}
			case !il.extreme() && il.first-1 > cs.from:
				g.takeOff(il, cs)
			}
		}
		vectors[il.i] = g.merge(*il)
		if cs := il.cold; cs != nil && absorbs(il.l, g.width) {
			absorbed += g.absorb(il, cs, min(st.finalUpTo, il.lastBucket))
		}
	}
	g.evict()
	p.statsMu.Lock()
	p.stats.Leaves += len(st.ils)
	p.stats.Absorbed += absorbed
	p.statsMu.Unlock()
	return statements, nil
}

// evalGrids computes the leaves of each grid (byGrid, indexes into leaves)
// at ts into vectors, the grids' bucket reads running at the same time
// (run), each read of a narrower grouping folded into a wider one's when
// they read the same buckets (foldReads). It returns, per grid, the
// statements it ran, the leaves it leaves to a full query and its error,
// and, when wantCounts (the evaluation has quantile leaves), the events
// its reads count (bucketCounts).
func (p *partials) evalGrids(ctx context.Context, s *Source, ts time.Time, grids []*grid, byGrid map[*grid][]int, leaves []*dsl.Leaf, vectors [][]engine.Sample, run func(func()), wantCounts bool) ([]gridOut, *bucketCounts) {
	// Locked in one order (by grouping) by every evaluation: two
	// evaluations at the same time never wait for each other's grid.
	order := slices.Clone(grids)
	slices.SortFunc(order, func(a, b *grid) int { return slices.Compare(a.by, b.by) })
	steps := map[*grid]*gridStep{}
	var all []*gridStep
	for _, g := range order {
		st := p.planGrid(g, ts, leaves, byGrid[g])
		steps[g] = st
		all = append(all, st)
	}
	foldReads(all)
	reads := 0
	for _, st := range all {
		if st.host == nil && len(st.rs) > 0 {
			reads++
		}
	}
	var counts *bucketCounts
	if reads > 0 && wantCounts {
		counts = &bucketCounts{pending: reads, done: make(chan struct{}), counts: map[string]map[int64]float64{}, covers: map[string][]bucketRange{}}
		for _, st := range all {
			if st.host != nil || len(st.rs) == 0 {
				continue
			}
			for _, x := range append([]*gridStep{st}, st.guests...) {
				for _, sl := range x.slots {
					if c := x.g.cols[sl]; c.kind == colCount {
						counts.covers[c.cond.key()] = append(counts.covers[c.cond.key()], st.rs...)
					}
				}
			}
		}
	}
	outs := make([]gridOut, len(grids))
	at := map[*gridStep]*gridOut{}
	for k, g := range grids {
		at[steps[g]] = &outs[k]
		outs[k].deferred = steps[g].deferred
	}
	for _, st := range all {
		if st.host != nil {
			continue
		}
		run(func() {
			o := at[st]
			mine := append([]*gridStep{st}, st.guests...)
			if len(st.rs) > 0 {
				sql, err := p.readGrid(ctx, s, st, counts)
				o.stmts = append(o.stmts, sql)
				if err != nil {
					var ils []incLeaf
					for _, x := range mine {
						ils = append(ils, x.ils...)
					}
					err = fmt.Errorf("compute %s from partial aggregates: %w", incNames(ils), err)
					for _, x := range mine {
						x.g.mu.Unlock()
						at[x].deferred, at[x].err = nil, err
					}
					return
				}
			}
			for _, x := range mine {
				sqls, err := p.finish(ctx, s, x, vectors)
				at[x].stmts = append(at[x].stmts, sqls...)
				if err != nil {
					at[x].deferred, at[x].err = nil, err
				}
			}
		})
	}
	return outs, counts
}

// gridOut is what evalGrids returns for one grid.
type gridOut struct {
	stmts    []string
	deferred []deferral
	err      error
}

// foldReads folds the bucket read of each step into the read of a step
// of a wider grouping (one whose labels hold all of its own) that reads
// the same buckets: the platform-wide sums of a rule pack and its sums by
// tenant are then read by one query, grouped by tenant, and each
// platform-wide bucket is the sum of the tenants' (see readGrid). Only
// partial states that add up across groups or take their extreme fold;
// a step with others (moments) reads on its own. A step folds into the
// narrowest such grouping, and with it into that one's host. It folds
// only where it does not widen the wider read: that read's rows must
// already be all the narrower one needs (its row filter holds the other's
// selectors, or it has none), or a guest's broad selector would make the
// wider grouping read, and keep, every group.
func foldReads(steps []*gridStep) {
	byWidth := slices.Clone(steps)
	slices.SortStableFunc(byWidth, func(a, b *gridStep) int { return len(a.g.by) - len(b.g.by) })
	for i, n := range byWidth {
		if len(n.rs) == 0 || !n.foldable() {
			continue
		}
		for _, h := range byWidth[i+1:] {
			if len(h.g.by) > len(n.g.by) && h.g.width == n.g.width && slices.Equal(h.rs, n.rs) && holds(h.g.by, n.g.by) && h.filters(n) {
				n.host = h
				break
			}
		}
	}
	for _, n := range byWidth {
		if n.host == nil {
			continue
		}
		root := n.host
		for root.host != nil {
			root = root.host
		}
		root.guests = append(root.guests, n)
	}
}

// filters reports whether the rows of the step's read are all that guest
// reads: the step's columns have no selector, or theirs hold each of the
// guest's.
func (st *gridStep) filters(guest *gridStep) bool {
	conds := map[string]bool{}
	for _, sl := range st.slots {
		c := st.g.cols[sl].cond
		if c.sql == "" {
			return true
		}
		conds[c.key()] = true
	}
	for _, sl := range guest.slots {
		if c := guest.g.cols[sl].cond; c.sql == "" || !conds[c.key()] {
			return false
		}
	}
	return true
}

// foldable reports whether the step's read can be folded from a wider
// grouping's rows: each column adds up across groups, or takes their
// extreme with its count read along.
func (st *gridStep) foldable() bool {
	for _, sl := range st.slots {
		c := st.g.cols[sl]
		switch c.kind {
		case colCount, colSum, colAtOrBelow:
		case colMin, colMax:
			if c.count < 0 || !slices.Contains(st.slots, c.count) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// readGrid runs the step's bucket read, with the slots of its guests, and
// stores what it read into its grid and theirs; it adds the events it
// counted to counts. It returns the SQL.
func (p *partials) readGrid(ctx context.Context, s *Source, st *gridStep, counts *bucketCounts) (string, error) {
	defer counts.readDone()
	// The columns of every step, each read once: pos gives, per step,
	// where each of its slots is in the row.
	var cols []gridColumn
	var keys []string // of cols
	steps := append([]*gridStep{st}, st.guests...)
	pos := make([][]int, len(steps))
	for k, x := range steps {
		for _, sl := range x.slots {
			c := x.g.cols[sl]
			if i := slices.Index(keys, colKey(c.kind, c.frag)); i >= 0 {
				pos[k] = append(pos[k], i)
				continue
			}
			pos[k] = append(pos[k], len(cols))
			cols, keys = append(cols, c), append(keys, colKey(c.kind, c.frag))
		}
	}
	q := bucketStatement(s, st.g.by, st.g.width, st.rs, cols)
	buckets := 0
	for _, r := range st.rs {
		buckets += int(r.hi - r.lo + 1)
	}
	// A row per group and bucket: the limit is the statement's groups in
	// every bucket read.
	got, err := st.g.query(ctx, s, q, (len(cols)*s.opts.MaxGroups)*buckets)
	if err != nil {
		return q.SQL, err
	}
	counts.add(cols, got, st.rs)
	for k, x := range steps {
		rows := got // a read of the step's own slots alone, in order
		switch {
		case k > 0:
			rows = x.foldRows(got, st.g.by, pos[k])
		case len(cols) > len(pos[0]):
			rows = make([]bucketRow, len(got))
			for i, r := range got {
				rows[i] = bucketRow{key: r.key, values: r.values, bucket: r.bucket, v: make([]float64, len(pos[0]))}
				for j, c := range pos[0] {
					rows[i].v[j] = r.v[c]
				}
			}
		}
		if err := x.g.store(rows, x.rs, x.slots, x.ts.UnixMilli(), x.now, x.finalUpTo); err != nil {
			return q.SQL, err
		}
	}
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	p.stats.Queries++
	p.stats.FoldedReads += len(st.guests)
	for _, r := range st.rs {
		p.stats.BucketsRead += int(r.hi - r.lo + 1)
	}
	return q.SQL, nil
}

// bucketCounts are the events per bucket of each selector (by the key of
// its condition) that an evaluation's bucket reads counted. The quantile
// steps of the same evaluation take the counts of the buckets they keep
// that are not final yet from them (readStep), instead of counting those
// buckets by a query of their own. A nil *bucketCounts has none.
type bucketCounts struct {
	mu      sync.Mutex
	pending int           // bucket reads still running
	done    chan struct{} // closed when none is
	counts  map[string]map[int64]float64
	// covers are the buckets the reads count, per condition, as planned.
	covers map[string][]bucketRange
}

// serves reports whether the evaluation's bucket reads, as planned, count
// the events of every bucket each plan checks.
func (c *bucketCounts) serves(plans []*vcPlan) bool {
	if c == nil {
		return false
	}
	for _, pl := range plans {
		rs := c.covers[pl.cond.key()]
		for _, b := range pl.check {
			if !slices.ContainsFunc(rs, func(r bucketRange) bool { return b >= r.lo && b <= r.hi }) {
				return false
			}
		}
	}
	return true
}

// add adds the counts of a bucket read (columns cols, over rs) that
// returned got: per count column, its groups summed per bucket, 0 in a
// bucket with no row.
func (c *bucketCounts) add(cols []gridColumn, got []bucketRow, rs []bucketRange) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for j, col := range cols {
		if col.kind != colCount {
			continue
		}
		m := map[int64]float64{}
		for _, r := range rs {
			for k := r.lo; k <= r.hi; k++ {
				m[k] = 0
			}
		}
		for _, r := range got {
			m[r.bucket] += r.v[j]
		}
		// Another read may have counted other buckets of the selector.
		if all := c.counts[col.cond.key()]; all != nil {
			maps.Copy(all, m)
		} else {
			c.counts[col.cond.key()] = m
		}
	}
}

// readDone notes that a bucket read ended, stored or not.
func (c *bucketCounts) readDone() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending--; c.pending == 0 {
		close(c.done)
	}
}

// lookup waits for the evaluation's bucket reads and returns, per plan,
// the events of its condition in each bucket it checks; nil when a read
// did not count one of them.
func (c *bucketCounts) lookup(ctx context.Context, plans []*vcPlan) []map[int64]float64 {
	if c == nil {
		return nil
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]map[int64]float64, len(plans))
	for i, pl := range plans {
		m := c.counts[pl.cond.key()]
		out[i] = map[int64]float64{}
		for _, b := range pl.check {
			n, ok := m[b]
			if !ok {
				return nil
			}
			out[i][b] = n
		}
	}
	return out
}

// foldRows folds the rows of a wider grouping's read (labels by; pos says
// where each of the step's slots is) into the step's groups: counts and
// sums add up, extremes are taken over the groups that counted a row. A
// group whose every value is 0 is left out, as its own read would have.
func (st *gridStep) foldRows(got []bucketRow, by []string, pos []int) []bucketRow {
	proj := make([]int, len(st.g.by))
	for i, l := range st.g.by {
		proj[i] = slices.Index(by, l)
	}
	kinds := make([]colKind, len(st.slots))
	countAt := make([]int, len(st.slots)) // an extreme's count, in the row
	for j, sl := range st.slots {
		c := st.g.cols[sl]
		kinds[j] = c.kind
		if c.kind == colMin || c.kind == colMax {
			countAt[j] = pos[slices.Index(st.slots, c.count)]
		}
	}
	type folded struct {
		row   bucketRow
		taken []bool // per slot, an extreme was taken
	}
	type groupIn struct {
		bucket int64
		key    string
	}
	acc := map[groupIn]*folded{}
	var order []*folded
	for _, r := range got {
		values := make([]string, len(proj))
		for i, c := range proj {
			values[i] = r.values[c]
		}
		gk := groupIn{r.bucket, strings.Join(values, "\xff")}
		a := acc[gk]
		if a == nil {
			a = &folded{row: bucketRow{key: gk.key, values: values, bucket: r.bucket, v: make([]float64, len(st.slots))}, taken: make([]bool, len(st.slots))}
			acc[gk] = a
			order = append(order, a)
		}
		for j, x := range kinds {
			v := r.v[pos[j]]
			switch x {
			case colMin, colMax:
				if r.v[countAt[j]] == 0 {
					continue // the group has no event of this selector
				}
				if !a.taken[j] || x == colMin && v < a.row.v[j] || x == colMax && v > a.row.v[j] {
					a.row.v[j], a.taken[j] = v, true
				}
			default:
				a.row.v[j] += v
			}
		}
	}
	out := make([]bucketRow, 0, len(order))
	for _, a := range order {
		if slices.ContainsFunc(a.row.v, func(x float64) bool { return x != 0 }) {
			out = append(out, a.row)
		}
	}
	return out
}

// defers says why leaf il, missing that many buckets, is computed by a
// full query that starts its cold state instead of reading them, or ""
// when it reads them. was is the leaf's rhythm before this evaluation at
// ts (nil: never evaluated). It is deferred when it has no cold state and
// misses more than coldAbove buckets, and either more than half of its
// window (a first evaluation, or a rule whose interval is more than half
// its window) or, when the evaluation comes later than its rhythm said (it
// skipped some), more than catchUp (a read that returns a row per group
// and bucket stays small). A leaf that missed a few evaluations, or whose
// rule's interval is longer than coldAbove buckets, reads what it missed:
// that costs less than a full query and a fill of its window, which its
// next evaluation would miss again.
func (p *partials) defers(il incLeaf, missing int, was *rhythm, ts int64) string {
	if il.cold != nil || missing <= p.opts.coldAbove {
		return ""
	}
	window := il.lastBucket - il.first + 1
	late := (was == nil || !was.onTime(ts)) && missing > p.opts.catchUp()
	switch {
	case was != nil && int64(missing) < window && (late || int64(2*missing) > window):
		return fmt.Sprintf("%d buckets missed since the window's last evaluation (more than half of it, or more than %d after a skipped evaluation): one full query, whose result then slides", missing, p.opts.catchUp())
	case int64(2*missing) > window || late:
		return "first evaluation of the window: one full query, whose result then slides"
	}
	return ""
}

// deferral is a leaf that eval leaves to a full query (index i of the
// call), with the reason /api/v1/rules/evaluations gives.
type deferral struct {
	i   int
	why string
}

// maxCatchUp bounds the buckets a leaf with no cold state reads in the
// foreground when it skipped evaluations (4 hours of the default 1m
// buckets; a row per group and bucket): more is a full query and a
// background fill.
const maxCatchUp = 240

// catchUp is the number of buckets above which an evaluation that skipped
// others starts its window again (maxCatchUp, or coldAbove when larger).
func (o *Incremental) catchUp() int { return max(o.coldAbove, maxCatchUp) }

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
