package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
//   - win holds, per group, the counts of the window's buckets (from, top]
//     as one dsl.Distribution, updated in place: each step adds the new
//     buckets' counts (GROUP BY labels, value) and takes the leaving
//     ones off;
//   - a bucket that is not final yet (it ended less than LateWindow ago)
//     may still get rows: opens keeps its counts as read, with its number
//     of events. Each step counts the events of those buckets again (one
//     GROUP BY bucket, a row per bucket), and reads again only a bucket
//     whose count changed, taking its old counts off. Rows are appended,
//     so a bucket with as many events as before holds the same events;
//   - the buckets that will leave the window at the next evaluation (as
//     the last two evaluations tell it) are read ahead and taken off, in
//     the background after a step, so that a steady step reads and adds
//     only its new bucket: what the new events cost (an evaluation at the
//     same time again puts them back first);
//   - the first step of a window takes the full path — quantileExact, fused
//     with the other leaves of its shape, costs a fraction of reading a
//     day's value counts — and reads the value counts of its final part in
//     the background, for the steps after it (a window with no final
//     bucket yet starts from its open buckets at once).
//
// A quantile is read from win by an order-statistics walk
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
	mu sync.Mutex
	// win holds the window's buckets (from, top]: its final part (from,
	// to] and the buckets not final yet (to, top], whose counts as read
	// opens keeps, to take them off when they change.
	from, to, top int64
	win           map[string]*vcGroup
	opens         map[int64]*openBucket
	// openTs is the evaluation time (unix ms) the open buckets were last
	// checked for, and openAt the clock then: another evaluation at the
	// same time does not check them again (Reuse).
	openTs int64
	openAt time.Time
	// rhythm is its latest two evaluations; span is its leaves' window
	// plus offset, in seconds.
	rhythm
	span int64
	// leaf, cond and stream are those of its latest evaluation, for
	// stepping it along with the other families of its stream
	// (coFamilies).
	leaf   *dsl.Leaf
	cond   fragment
	stream string
	// filling is set while the window's value counts are read in the
	// background; over is the reason they went over the budget there.
	filling bool
	over    string
	// ahead holds the counts of the final buckets aheadFor, negated: those
	// that leave the window at the family's next evaluation, read in the
	// background after a step (readAhead), so that the next step reads
	// only its new buckets (and the open ones whose count changed). Any
	// step uses or drops them.
	//
	// taken says they were taken off win in the background too, ahead of
	// that step, which then only adds its new buckets: any other use of
	// win first puts them back (restore).
	ahead    map[string]*vcGroup
	aheadFor bucketRange
	taken    bool
	// reading is set while a read ahead for the family is queued or
	// running: a family has at most one.
	reading bool
}

// openBucket is a bucket that was not final when the family read it: its
// events of the family's condition then, and its counts per group.
type openBucket struct {
	n      float64
	groups map[string]*vcGroup
}

// vcGroup is the value counts of one group.
type vcGroup struct {
	values []string
	// counts are the counts read, sorted by value once read; dist is, in
	// win, the window's distribution, which slides.
	counts []dsl.ValueCount
	dist   *dsl.Distribution
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

// streams splits the quantile leaves idx by stream (vcStream: the leaves
// whose value counts one query can read), in the order of idx. Streams do
// not share families, so they can be stepped at the same time.
func (p *partials) streams(leaves []*dsl.Leaf, idx []int) [][]int {
	var out [][]int
	at := map[string]int{}
	for _, i := range idx {
		k := vcStream(leaves[i])
		j, ok := at[k]
		if !ok {
			j = len(out)
			at[k] = j
			out = append(out, nil)
		}
		out[j] = append(out[j], i)
	}
	return out
}

// quantiles computes the quantile leaves idx of leaves at ts from value
// counts. It returns the leaves it leaves to the full path (a family over
// the distinct-value budget) with the reason, and the statements it ran.
func (p *partials) quantiles(ctx context.Context, s *Source, ts time.Time, leaves []*dsl.Leaf, idx []int, vectors [][]engine.Sample, counts *bucketCounts) (statements []string, deferred map[int]string, err error) {
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
		// The window's distributions slide in place: the leaves read them
		// before another evaluation (a rule group sharing the family)
		// steps it.
		f.mu.Lock()
		sqls, groups, wait, over, err := p.stepFamily(ctx, s, f, leaves[is[0]], ts, counts)
		if err == nil && wait == "" && over == "" {
			for _, i := range is {
				vectors[i] = familySamples(leaves[i], groups)
			}
		}
		f.mu.Unlock()
		statements = append(statements, sqls...)
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
			p.overflow[k] = vcOverflow{until: ts.Add(l.Lookback()).Unix(), reason: over}
			p.mu.Unlock()
			for _, i := range is {
				deferred[i] = over
			}
		}
	}
	// Families no leaf evaluated for two of their windows are dropped
	// (their rules were removed by a reload).
	p.mu.Lock()
	for k, f := range p.families {
		if !f.mu.TryLock() {
			continue // being stepped: it is in use
		}
		if f.used > 0 && f.used < ts.Unix()-2*f.span-600 {
			delete(p.families, k)
		}
		f.mu.Unlock()
	}
	for k, ov := range p.overflow {
		if ov.until <= ts.Unix() {
			delete(p.overflow, k) // its leaves try the value counts again
		}
	}
	p.mu.Unlock()
	p.statsMu.Lock()
	p.stats.QuantileLeaves += len(idx) - len(deferred)
	p.statsMu.Unlock()
	return statements, deferred, nil
}

// familySamples finishes leaf l over the window's distribution per group
// that stepFamily returned (its family locked).
func familySamples(l *dsl.Leaf, groups []*vcGroup) []engine.Sample {
	out := make([]engine.Sample, 0, len(groups))
	for _, g := range groups {
		st := dsl.State{Dist: g.dist, Count: g.dist.Count()}
		if st.Count > 0 {
			out = append(out, engine.Sample{Labels: l.GroupLabels(g.values), Value: l.Finish(&st)})
		}
	}
	return out
}

// vcPlan is what one step of a family reads and takes off.
type vcPlan struct {
	f    *vcFamily
	l    *dsl.Leaf
	cond fragment // the leaf's condition (its matchers, finiteness)
	// enter are the final buckets never read, to add; leave the final
	// buckets leaving the window, to take off (unless read ahead).
	enter, leave bucketRange
	// check are the open buckets kept (opens) whose events are counted
	// again; reread those of them that are final now and changed, read
	// and added (their old counts taken off); fresh the buckets not final
	// yet that are new or changed, read, added and kept in opens; drop
	// the kept buckets whose old counts are taken off (changed, or no
	// longer in the window).
	check, reread, fresh, drop []int64
	// late is set when the plan is cold only because the family skipped
	// evaluations and too many buckets entered and left since (plan).
	late bool
	// from, to and top are the family's window after the step.
	from, to, top int64
	// over is set when a group of this family went over the budget.
	over string
	// deltas and opened are what readValues read: the counts to add to
	// the window (entering positive, leaving negative), and those of each
	// fresh bucket.
	deltas map[string]*vcGroup
	opened map[int64]map[string]*vcGroup
	// ahead are the leaving buckets' counts read ahead (vcFamily.ahead),
	// when they are this step's: leave is then empty.
	ahead map[string]*vcGroup
}

// needsRead reports whether the plan reads value counts.
func (pl *vcPlan) needsRead() bool {
	return pl.enter.lo <= pl.enter.hi || pl.leave.lo <= pl.leave.hi || len(pl.reread) > 0 || len(pl.fresh) > 0
}

// moves reports whether the plan changes the family: it counts or reads
// buckets, or takes off kept or read-ahead ones.
func (pl *vcPlan) moves() bool {
	return pl.needsRead() || len(pl.check) > 0 || len(pl.drop) > 0 || pl.ahead != nil
}

// plan computes the step of f (locked) to the window of l at ts. cold is
// true when f has no usable window state, or when f skipped evaluations
// (ts is later than its last two said) and more than maxCatchUp buckets
// entered and left the window since (a read of their value counts, nearly
// a row per event, costs more than a full query): the caller reads the
// window's value counts whole. A family whose rule's interval is that long
// steps all the same: reading its window again at every evaluation would
// cost more.
func (p *partials) plan(f *vcFamily, l *dsl.Leaf, cond fragment, ts, now time.Time) (pl *vcPlan, cold bool, first, hi int64) {
	w := int64(p.opts.Bucket / time.Second)
	finalUpTo := floorDiv(now.Add(-p.opts.LateWindow).Unix(), w)
	from, to := l.Window(ts)
	first, last := floorDiv(from.Unix(), w)+1, floorDiv(to.Unix(), w)
	hi = max(min(last, finalUpTo), first-1) // the window's final part is (first-1, hi]
	late := false
	cold = f.win == nil || first-1 < f.from || first-1 > f.to || hi < f.to
	if !cold && !f.onTime(ts.Unix()) && (hi-f.to)+(first-1-f.from) > int64(p.opts.catchUp()) {
		cold, late = true, true
	}
	pl = &vcPlan{f: f, l: l, cond: cond, enter: bucketRange{1, 0}, leave: bucketRange{1, 0}, from: first - 1, to: hi, top: max(last, hi), late: late}
	if cold {
		return pl, true, first, hi
	}
	if hi > f.top {
		pl.enter = bucketRange{f.top + 1, hi}
	}
	if first-1 > f.from {
		pl.leave = bucketRange{f.from + 1, first - 1}
		if f.ahead != nil && f.aheadFor == pl.leave {
			pl.leave, pl.ahead = bucketRange{1, 0}, f.ahead
		}
	}
	// The kept buckets: counted again, unless an evaluation at this time
	// just did; those past the window's end (an earlier evaluation time)
	// are taken off.
	reuse := f.openTs == ts.UnixMilli() && p.opts.Reuse > 0 && now.Sub(f.openAt) < p.opts.Reuse && !now.Before(f.openAt)
	for _, b := range slices.Sorted(maps.Keys(f.opens)) {
		switch {
		case b > last:
			pl.drop = append(pl.drop, b)
		case !reuse || b <= hi:
			// Reuse spares only the buckets still open: one that
			// turned final since is counted a last time.
			pl.check = append(pl.check, b)
		}
	}
	for b := max(hi, f.top) + 1; b <= last; b++ {
		pl.fresh = append(pl.fresh, b)
	}
	return pl, false, first, hi
}

// changed sorts the kept buckets of pl's check by the events counted now
// (events: bucket to count): those whose count changed are to be read
// again — reread when final now, fresh otherwise — and their old counts
// dropped. It returns those it added to fresh.
func (pl *vcPlan) changed(events map[int64]float64) (fresh []int64) {
	for _, b := range pl.check {
		if events[b] == pl.f.opens[b].n {
			continue
		}
		pl.drop = append(pl.drop, b)
		if b <= pl.to {
			pl.reread = append(pl.reread, b)
		} else {
			fresh = append(fresh, b)
		}
	}
	pl.fresh = append(pl.fresh, fresh...)
	return fresh
}

// stepFamily brings f to the window of l at ts and returns the window's
// distribution per group. wait says why the leaves take the full path
// this time (the value counts are read in the background); over is the
// reason the family went over the distinct-value budget, when it did. The
// caller holds f.mu, and reads the groups before it lets go of it: they
// are the family's distributions, which the next step changes in place.
//
// The families of the same field (other selectors, other windows,
// narrower groupings: the leaves of other rule groups) step with it, in
// the same queries, when this time is their next evaluation: the groups
// due at the same time then read their value counts once, by the first of
// them (coFamilies).
func (p *partials) stepFamily(ctx context.Context, s *Source, f *vcFamily, l *dsl.Leaf, ts time.Time, counts *bucketCounts) (sqls []string, groups []*vcGroup, wait, over string, err error) {
	switch {
	case f.over != "":
		return nil, nil, "", f.over, nil
	case f.filling:
		f.step(ts.Unix()) // its rhythm, for plan once the read is done
		return nil, nil, "the window's value counts are being read in the background", "", nil
	}
	w := int64(p.opts.Bucket / time.Second)
	now := p.opts.Now()
	cond := s.opts.Columns.leafCondition(l)
	pl, cold, first, hi := p.plan(f, l, cond, ts, now)
	f.step(ts.Unix())
	f.span = int64(l.Lookback() / time.Second)
	f.leaf, f.cond, f.stream = l, cond, vcStream(l)
	if cold && hi > first-1 {
		why := "first evaluation of the window: one full query, while its value counts are read in the background"
		if pl.late {
			why = fmt.Sprintf("more than %d buckets entered and left the window since its last evaluation, after a skipped evaluation: one full query, while its value counts are read again in the background", p.opts.catchUp())
		}
		f.reset()
		f.filling = true
		lo := first - 1
		p.queueFill(func() { p.fill(s, f, l, w, lo, hi) })
		return nil, nil, why, "", nil
	}
	if cold {
		f.reset()
		f.win = map[string]*vcGroup{}
		f.from, f.to, f.top = first-1, first-1, first-1
		pl, _, _, _ = p.plan(f, l, cond, ts, now)
	}
	if pl.moves() {
		plans := []*vcPlan{pl}
		cos, by := p.coFamilies(f, ts)
		for _, co := range cos {
			defer co.mu.Unlock()
			if cp, cold, _, _ := p.plan(co, co.leaf, co.cond, ts, now); !cold && cp.moves() {
				plans = append(plans, cp)
			}
		}
		sqls, err = p.readStep(ctx, s, by, l.Selector, w, plans, counts)
		if err != nil {
			f.reset() // start again from a cold read
			return sqls, nil, "", "", err
		}
		var ahead []*vcFamily
		used := 0
		for _, cp := range plans {
			if cp.over != "" {
				if cp != pl {
					cp.f.over = cp.over
				}
				continue
			}
			if cp.ahead != nil {
				used++
			}
			cp.f.apply(cp, ts, now)
			ahead = append(ahead, cp.f)
		}
		p.readAhead(s, by, l.Selector, ts, w, ahead)
		p.statsMu.Lock()
		p.stats.CoSteps += len(plans) - 1
		p.stats.AheadUsed += used
		p.statsMu.Unlock()
		if pl.over != "" {
			return sqls, nil, "", pl.over, nil
		}
	} else {
		f.apply(pl, ts, now) // moves nothing; the buckets kept that are final now are forgotten
	}
	budget := p.opts.MaxDistinctValues
	for _, g := range f.win {
		if g.dist.Distinct() > budget {
			return sqls, nil, "", distinctReason(l, budget), nil
		}
		groups = append(groups, g)
	}
	return sqls, groups, "", "", nil
}

// nonEmpty returns the statement as a list, empty when there was none.
func nonEmpty(sql string) []string {
	if sql == "" {
		return nil
	}
	return []string{sql}
}

// reset drops f's window state.
func (f *vcFamily) reset() {
	f.win, f.opens, f.ahead, f.taken = nil, nil, nil, false
}

// readStep reads what the plans need: the value counts of their new,
// entering and leaving buckets (readValues), and the events of the
// buckets they keep, which the evaluation's bucket reads counted (counts)
// or, when they did not, one GROUP BY bucket counts (countBuckets) at the
// same time; then the value counts of the kept buckets whose count
// changed (late rows). It returns the statements.
func (p *partials) readStep(ctx context.Context, s *Source, by []string, sel dsl.Selector, w int64, plans []*vcPlan, counts *bucketCounts) (sqls []string, err error) {
	if !slices.ContainsFunc(plans, func(pl *vcPlan) bool { return len(pl.check) > 0 }) {
		sql, err := p.readValues(ctx, s, by, sel, w, true, plans)
		return nonEmpty(sql), err
	}
	var (
		countSQL string
		events   []map[int64]float64
		countErr error
		wg       sync.WaitGroup
	)
	count := func() { countSQL, events, countErr = p.countBuckets(ctx, s, w, plans) }
	var sql string
	switch {
	case counts.serves(plans):
		// The evaluation's bucket reads count the same buckets, of each
		// plan's selector: their counts serve.
		sql, err = p.readValues(ctx, s, by, sel, w, true, plans)
		if err == nil {
			if events = counts.lookup(ctx, plans); events == nil {
				count()
			}
		}
	case s.serial():
		count() // one statement at a time
		sql, err = p.readValues(ctx, s, by, sel, w, true, plans)
	default:
		wg.Go(func() {
			count()
		})
		sql, err = p.readValues(ctx, s, by, sel, w, true, plans)
		wg.Wait()
	}
	sqls = append(nonEmpty(countSQL), nonEmpty(sql)...)
	if err = errors.Join(err, countErr); err != nil {
		return sqls, err
	}
	// The kept buckets that changed, read again by a second query into
	// plans of their own, then added to the first read's.
	var again, of []*vcPlan // of[i] is the plan again[i] reads for
	rereads := 0
	for i, pl := range plans {
		if pl.over != "" {
			continue
		}
		fresh := pl.changed(events[i])
		if n := len(pl.reread) + len(fresh); n > 0 {
			rereads += n
			again = append(again, &vcPlan{f: pl.f, l: pl.l, cond: pl.cond, enter: bucketRange{1, 0}, leave: bucketRange{1, 0}, reread: pl.reread, fresh: fresh})
			of = append(of, pl)
		}
	}
	p.statsMu.Lock()
	p.stats.Rereads += rereads
	p.statsMu.Unlock()
	if len(again) == 0 {
		return sqls, nil
	}
	sql, err = p.readValues(ctx, s, by, sel, w, true, again)
	sqls = append(sqls, nonEmpty(sql)...)
	if err != nil {
		return sqls, err
	}
	for i, a := range again {
		pl := of[i]
		if a.over != "" {
			pl.over = a.over
			continue
		}
		// Into copies: plans of one shape share the first read's groups.
		deltas, opened := maps.Clone(pl.deltas), maps.Clone(pl.opened)
		if deltas == nil {
			deltas = map[string]*vcGroup{}
		}
		if opened == nil {
			opened = map[int64]map[string]*vcGroup{}
		}
		for key, d := range a.deltas {
			if g := deltas[key]; g != nil {
				d = &vcGroup{values: g.values, counts: slices.Concat(g.counts, d.counts)} // apply sorts them
			}
			deltas[key] = d
		}
		maps.Copy(opened, a.opened)
		pl.deltas, pl.opened = deltas, opened
	}
	return sqls, nil
}

// countBuckets counts, per plan, the events of its condition in each of
// its kept buckets (check), in one query grouped by bucket.
func (p *partials) countBuckets(ctx context.Context, s *Source, w int64, plans []*vcPlan) (string, []map[int64]float64, error) {
	conds, condOf := planConds(plans)
	var buckets []bucketRange
	for _, pl := range plans {
		for _, b := range pl.check {
			buckets = append(buckets, bucketRange{b, b})
		}
	}
	q := NewSelect(SelectOptions{Table: s.opts.Table, Time: s.opts.Schema.Time, Columns: s.opts.Columns})
	bucket := q.Bucket(w)
	q.Value("cw_b", bucket.SQL, bucket.Args...)
	for _, c := range conds {
		countOf(q, c)
	}
	whereBuckets(q, w, mergeRanges(buckets))
	q.GroupBy("cw_b")
	events := make([]map[int64]float64, len(plans))
	for i := range plans {
		events[i] = map[int64]float64{}
	}
	err := s.scan(ctx, q, 0, func(_ []string, nums []float64) error {
		b := int64(nums[0])
		for i := range plans {
			events[i][b] = nums[1+condOf[i]]
		}
		return nil
	})
	p.statsMu.Lock()
	p.stats.BucketCounts++
	p.statsMu.Unlock()
	return q.String(), events, err
}

// vcStream identifies the families one query can read together: those of
// the same field. Their selectors become count columns, and the query
// groups by the widest of their groupings, which holds the others
// (coFamilies): the platform-wide p95 and the per-tenant p95 of the same
// calls cost one read, by tenant.
func vcStream(l *dsl.Leaf) string {
	return strings.Join(l.Selector.Columns, ",")
}

// coFamilies returns the families of f's stream whose next evaluation is at
// ts and that are warm, locked (the caller unlocks them), and the grouping
// of the query that reads them with f: the grouping, among f's and theirs,
// that holds f's and those of most of them. A family whose grouping it
// does not hold is left alone, as is a family another evaluation holds:
// they step on their own.
func (p *partials) coFamilies(f *vcFamily, ts time.Time) (fams []*vcFamily, by []string) {
	// In the order of their keys, so the grouping chosen among equals and
	// the read's columns are the same from run to run.
	p.mu.Lock()
	var cands []*vcFamily
	for _, k := range slices.Sorted(maps.Keys(p.families)) {
		if o := p.families[k]; o != f {
			cands = append(cands, o)
		}
	}
	p.mu.Unlock()
	var out []*vcFamily
	for _, o := range cands {
		if !o.mu.TryLock() {
			continue
		}
		if o.stream != f.stream || o.win == nil || o.filling || o.over != "" || o.leaf == nil || o.next() != ts.Unix() {
			o.mu.Unlock()
			continue
		}
		out = append(out, o)
	}
	by = f.leaf.By
	most := -1
	for _, c := range append([]*vcFamily{f}, out...) {
		if !holds(c.leaf.By, f.leaf.By) {
			continue
		}
		n := 0
		for _, o := range out {
			if holds(c.leaf.By, o.leaf.By) {
				n++
			}
		}
		if n > most || (n == most && len(c.leaf.By) < len(by)) {
			most, by = n, c.leaf.By
		}
	}
	fams = out[:0]
	for _, o := range out {
		if holds(by, o.leaf.By) {
			fams = append(fams, o)
		} else {
			o.mu.Unlock()
		}
	}
	return fams, by
}

// holds reports whether grouping a holds every label of grouping b.
func holds(a, b []string) bool {
	for _, l := range b {
		if !slices.Contains(a, l) {
			return false
		}
	}
	return true
}

// apply adds what was read for pl to the window, takes off the leaving
// buckets and the old counts of the kept buckets it dropped, keeps the
// fresh buckets' counts, and forgets those of the buckets that are final
// now. Additions come first, so no count drops below zero on the way.
func (f *vcFamily) apply(pl *vcPlan, ts, now time.Time) {
	add := func(key string, d *vcGroup) {
		g := f.win[key]
		if g == nil {
			g = &vcGroup{values: d.values, dist: dsl.NewDistribution(nil)}
			f.win[key] = g
		}
		// In place: a step costs what its own values cost, not the
		// window's (dsl.Distribution).
		g.dist.Apply(d.counts)
	}
	if pl.ahead == nil {
		f.restore() // not the step the leaving buckets were taken off for
	}
	touched := map[string]bool{}
	for key, d := range pl.deltas {
		d.counts = dsl.SortValues(d.counts) // folds +n and −m of one value
		add(key, d)
		touched[key] = true
	}
	if f.opens == nil && len(pl.fresh) > 0 {
		f.opens = map[int64]*openBucket{}
	}
	for _, b := range pl.drop {
		for key, g := range f.opens[b].groups {
			if w := f.win[key]; w != nil {
				w.dist.TakeOff(g.counts)
				touched[key] = true
			}
		}
		delete(f.opens, b)
	}
	for _, b := range pl.fresh {
		ob := &openBucket{groups: pl.opened[b]}
		for key, g := range ob.groups {
			g.counts = dsl.SortValues(g.counts)
			add(key, g)
			for _, c := range g.counts {
				ob.n += c.Count
			}
		}
		f.opens[b] = ob
	}
	for key, d := range pl.ahead {
		if g := f.win[key]; g != nil {
			if !f.taken {
				g.dist.Apply(d.counts)
			}
			touched[key] = true
		}
	}
	if pl.ahead != nil {
		f.taken = false
	}
	for key := range touched {
		if g := f.win[key]; g != nil && g.dist.Count() <= 0 {
			delete(f.win, key)
		}
	}
	for b := range f.opens {
		if b <= pl.to {
			delete(f.opens, b) // final now: it stays in the window as read
		}
	}
	if pl.ahead != nil || pl.from != f.from || pl.to != f.to {
		f.ahead = nil // used, or the window moved: not the next step's
	}
	if len(pl.check) > 0 || len(pl.fresh) > 0 {
		f.openTs, f.openAt = ts.UnixMilli(), now // the open buckets as of now
	}
	f.from, f.to, f.top = pl.from, pl.to, pl.top
	pl.deltas, pl.opened = nil, nil
}

// takeAhead takes the leaving buckets read ahead off win, ahead of the step
// they are for (f locked, in the background). A group they empty stays,
// with no events, until that step.
func (f *vcFamily) takeAhead() {
	for key, d := range f.ahead {
		if g := f.win[key]; g != nil {
			g.dist.Apply(d.counts)
		}
	}
	f.taken = true
}

// restore puts back the leaving buckets takeAhead took off win, for a use
// of the window before the step they were taken off for.
func (f *vcFamily) restore() {
	if !f.taken {
		return
	}
	for key, d := range f.ahead {
		if g := f.win[key]; g != nil {
			g.dist.TakeOff(d.counts)
		}
	}
	f.taken = false
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
			n += g.dist.Size()
		}
		for _, ob := range f.opens {
			for _, g := range ob.groups {
				n += cap(g.counts)
			}
		}
		f.mu.Unlock()
	}
	return n
}
