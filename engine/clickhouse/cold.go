package clickhouse

// The cold state of a long window (the part of it no longer read bucket by
// bucket), its first query, the buckets it absorbs, and the background
// fill of the grid.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

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

// leafUse is a leaf of the grid and its rhythm.
type leafUse struct {
	leaf *dsl.Leaf
	rhythm
}

// rhythm is the latest two evaluation times (unix seconds) of a leaf or a
// quantile family, from which its next one is guessed.
type rhythm struct {
	used, prev int64
}

// step records an evaluation at ts.
func (r *rhythm) step(ts int64) {
	if ts > r.used {
		r.prev, r.used = r.used, ts
	}
}

// next is the next evaluation time, from the last two, or 0 when unknown.
func (r *rhythm) next() int64 {
	if r.prev <= 0 || r.used <= r.prev {
		return 0
	}
	return 2*r.used - r.prev
}

// onTime reports whether an evaluation at ts comes no later than the last
// two said (false when they say nothing): a later one skipped some.
func (r *rhythm) onTime(ts int64) bool {
	return r.next() > 0 && ts <= r.next()
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
	u.step(ts)
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
		sort.Ints(slots)
		st := &gridStep{g: g, ts: ts, now: now, finalUpTo: finalUpTo, rs: mergeRanges(ranges), slots: slots}
		sql, err := p.readGrid(ctx, s, st, nil)
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
	return int64(l.Lookback()/time.Second)/g.width + 1
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
		if !b.finalFor(slots) {
			return n
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
		for lv, size := range blockSizes {
			for q, blk := range g.blocks[lv] {
				if (q+1)*size >= r.lo && q*size+1 <= r.hi {
					for _, sl := range slots {
						if sl < len(blk.final) {
							blk.final[sl] = false
						}
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
