package clickhouse

// The window sums that slide: a leaf whose partial states can be taken off
// keeps the sum of its window's final buckets from one evaluation to the
// next, so a step folds the buckets entering and leaving the window instead
// of the whole window.

import (
	"math"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// runState is a leaf's partial states summed over the final buckets
// (from, to] of its window, per group. steps counts the buckets added or
// taken off since it was last summed from the grid.
type runState struct {
	from, to int64
	steps    int
	groups   map[string]*runGroup
}

// runGroup is one group of a runState. comp is the running compensation of
// Sum (Neumaier's): buckets are added and taken off for as long as the
// window slides, and the sum must stay what summing the window's buckets
// gives, not drift with every step.
type runGroup struct {
	values []string
	st     dsl.State
	comp   float64
}

// maxRunSteps bounds the steps between two sums of the window from the
// grid (its blocks make that cheap), so that no rounding can build up.
const maxRunSteps = blockSize

// slides reports whether leaf l slides on a runState: every partial state
// it needs is taken off exactly — counts, sums (compensated) and the counts
// at or below a threshold. Extremes cannot be taken off, and moments taken
// off leave noise that a small spread cannot be told from (dsl.State.Remove):
// those leaves fold the grid's blocks and buckets at each evaluation.
func slides(l *dsl.Leaf) bool {
	for _, p := range l.Partials() {
		if dsl.Partials()[p].TakeOff != dsl.Subtract || p == dsl.PartialMoments || p == dsl.PartialValues {
			return false
		}
	}
	return true
}

// slide computes the leaf's window from its runState: the buckets that
// left the window since the last evaluation are taken off, the final
// buckets that entered are added, and the buckets not final yet are
// folded into a copy. A run that does not meet the window (the first
// evaluation, a time going back, a gap) or has stepped maxRunSteps times
// is summed again from the grid.
func (g *grid) slide(il incLeaf) []engine.Sample {
	ps := il.l.Partials()
	slots := il.allSlots()
	final := func(k int64) *gridBucket {
		if b := g.buckets[k]; b.finalFor(slots) {
			return b
		}
		return nil
	}
	r := g.runs[il.key]
	if r != nil && (il.first-1 < r.from || il.first-1 > r.to || r.to > il.lastBucket || r.steps >= maxRunSteps) {
		r = nil
	}
	if r != nil {
		for k := r.from + 1; k <= il.first-1; k++ {
			b := final(k)
			if b == nil { // evicted or read again: sum the window anew
				r = nil
				break
			}
			r.fold(b, &il, ps, -1)
			r.steps++
		}
	}
	if r == nil {
		r = &runState{from: il.first - 1, to: il.first - 1, groups: map[string]*runGroup{}}
		// Whole blocks of final buckets where the window covers them,
		// then single buckets, up to the first bucket not final.
		for k := il.first; k <= il.lastBucket; {
			if b, n := g.widest(k, il); b != nil {
				r.fold(b, &il, ps, 1)
				k += n
				r.to = k - 1
				continue
			}
			b := final(k)
			if b == nil {
				break
			}
			r.fold(b, &il, ps, 1)
			r.to = k
			k++
		}
	} else {
		r.from = il.first - 1
		for k := r.to + 1; k <= il.lastBucket; k++ {
			b := final(k)
			if b == nil {
				break
			}
			r.fold(b, &il, ps, 1)
			r.to = k
			r.steps++
		}
	}
	g.runs[il.key] = r

	// The window: the run, and the buckets after it, not final yet.
	acc := make(windowAcc, len(r.groups))
	for key, rg := range r.groups {
		st := rg.st
		st.Sum += rg.comp
		acc[key] = &accGroup{values: rg.values, st: st}
	}
	for k := r.to + 1; k <= il.lastBucket; k++ {
		acc.fold(g.buckets[k], &il, ps)
	}
	return acc.samples(il.l)
}

// fold adds (sign 1) or takes off (sign −1) bucket b's partial states of
// the leaf. A group whose count drops to 0 leaves the run.
func (r *runState) fold(b *gridBucket, il *incLeaf, ps []dsl.Partial, sign float64) {
	for key, gr := range b.groups {
		if gr.v[il.count] == 0 {
			continue
		}
		bst := il.state(gr.v)
		rg := r.groups[key]
		if sign < 0 {
			if rg == nil {
				continue // landed after the run summed it: nothing to take off
			}
			r.add(rg, -bst.Sum)
			bst.Sum = 0
			rg.st.Remove(&bst, ps)
			if rg.st.Count <= 0 {
				delete(r.groups, key)
			}
			continue
		}
		if rg == nil {
			rg = &runGroup{values: gr.values}
			r.groups[key] = rg
		}
		r.add(rg, bst.Sum)
		bst.Sum = 0
		rg.st.Merge(&bst, ps)
	}
}

// add adds x to group rg's compensated sum (Neumaier). A sum beyond
// float64 is ±Inf, as summing the buckets gives, with no compensation
// (∞ − ∞ is NaN), and cannot be taken apart again: the run is summed anew
// from the grid at the next evaluation.
func (r *runState) add(rg *runGroup, x float64) {
	s := rg.st.Sum
	t := s + x
	if math.IsInf(t, 0) {
		rg.st.Sum = t
		r.steps = maxRunSteps
		return
	}
	if math.Abs(s) >= math.Abs(x) {
		rg.comp += (s - t) + x
	} else {
		rg.comp += (x - t) + s
	}
	rg.st.Sum = t
}
