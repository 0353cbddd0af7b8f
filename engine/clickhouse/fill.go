package clickhouse

import (
	"context"
	"slices"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

// The background reads of quantile families: the fills of long windows'
// cold parts (queued by an evaluation, started once evaluations settle) and
// the read-ahead of the buckets that will leave a window.

// queueFill adds a fill to the queue of the evaluation in progress; the
// source starts the queue when the evaluation's own queries are done
// (startFills), so a first evaluation does not compete with the reads it
// started.
func (p *partials) queueFill(r func()) {
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
			r()
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
	pl := &vcPlan{f: f, l: l, cond: s.opts.Columns.leafCondition(l), enter: bucketRange{lo + 1, hi}, leave: bucketRange{1, 0}}
	// A window's rows are sorted here, not by ClickHouse (sorting millions
	// of rows there would lengthen the read).
	_, err := p.readValues(ctx, s, l.By, l.Selector, w, false, []*vcPlan{pl})
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filling, f.ahead, f.taken = false, nil, false
	if err != nil {
		return // the next evaluation starts again
	}
	if pl.over != "" {
		f.over = pl.over
		return
	}
	for _, g := range pl.deltas {
		g.dist, g.counts = dsl.NewDistribution(dsl.SortValues(g.counts)), nil
	}
	f.win, f.opens, f.from, f.to, f.top = pl.deltas, nil, lo, hi, hi
	p.statsMu.Lock()
	p.stats.Fills++
	p.statsMu.Unlock()
}

// maxAhead bounds the leaving buckets a family reads ahead (an hour of 1m
// buckets): a longer interval's leaving buckets are read at its step, as
// they would be held in memory for the whole interval otherwise.
const maxAhead = 60

// aheadRange returns the final buckets that leave f's window at its
// evaluation after the one at ts, as its rhythm tells it, when they are to
// be read ahead: they are in the window's final part now, at most
// maxAhead, and not read yet.
func (p *partials) aheadRange(f *vcFamily, ts int64) (bucketRange, bool) {
	rh := f.rhythm
	rh.step(ts) // a family stepped along with another has not recorded ts
	next := rh.next()
	if next <= 0 || f.win == nil || f.leaf == nil || f.filling || f.over != "" {
		return bucketRange{}, false
	}
	w := int64(p.opts.Bucket / time.Second)
	from, _ := f.leaf.Window(time.Unix(next, 0))
	first := floorDiv(from.Unix(), w) + 1
	r := bucketRange{f.from + 1, first - 1}
	return r, r.lo <= r.hi && r.hi <= f.to && r.hi-r.lo < maxAhead && !f.reading && (f.ahead == nil || f.aheadFor != r)
}

// readAhead queues, for the families just stepped (locked, of one stream,
// read by grouping by), one background read of the buckets that leave
// their windows at their next evaluations. A family has at most one read
// ahead queued; one that a step moved before its turn is left out of it,
// and one that a step moved during the read does not keep what was read.
// A step that finds nothing read ahead for its leaving buckets reads them
// itself.
func (p *partials) readAhead(s *Source, by []string, sel dsl.Selector, ts time.Time, w int64, fams []*vcFamily) {
	type req struct {
		f        *vcFamily
		pl       *vcPlan
		from, to int64
	}
	var reqs []req
	for _, f := range fams {
		r, ok := p.aheadRange(f, ts.Unix())
		if !ok {
			continue
		}
		f.reading = true
		pl := &vcPlan{f: f, l: f.leaf, cond: f.cond, enter: bucketRange{1, 0}, leave: r}
		reqs = append(reqs, req{f, pl, f.from, f.to})
	}
	if len(reqs) == 0 {
		return
	}
	// current reports whether no step moved r's family since (locked).
	current := func(r req) bool {
		return r.f.win != nil && !r.f.filling && r.f.from == r.from && r.f.to == r.to
	}
	p.queueFill(func() {
		defer p.fills.Done()
		var live []req
		var plans []*vcPlan
		for _, r := range reqs {
			r.f.mu.Lock()
			if current(r) {
				live, plans = append(live, r), append(plans, r.pl)
			} else {
				r.f.reading = false
			}
			r.f.mu.Unlock()
		}
		if len(live) == 0 {
			return
		}
		// Sorted by ClickHouse when a family's groups fold several of
		// the read's (readPieces), unsorted otherwise (a pass less there).
		ordered := slices.ContainsFunc(plans, func(pl *vcPlan) bool { return !slices.Equal(pl.l.By, by) })
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
		defer cancel()
		_, err := p.readValues(ctx, s, by, sel, w, ordered, plans)
		// Sorted once, before any family holds them: plans of one shape
		// share their groups.
		for _, pl := range plans {
			for _, g := range pl.deltas {
				g.counts = dsl.SortValues(g.counts)
			}
		}
		for _, r := range live {
			f := r.f
			f.mu.Lock()
			f.reading = false
			if err == nil && r.pl.over == "" && current(r) {
				f.restore() // what an earlier read ahead took off, if any
				f.ahead, f.aheadFor = r.pl.deltas, r.pl.leave
				f.takeAhead()
			}
			f.mu.Unlock()
		}
		if err == nil {
			p.statsMu.Lock()
			p.stats.AheadReads++
			p.statsMu.Unlock()
		}
	})
}

// waitFills waits for the value counts being read in the background.
func (p *partials) waitFills() { p.fills.Wait() }
