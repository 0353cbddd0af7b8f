package engine

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

// Coalescer computes the leaves of every rule group due at the same time
// in one batch: the first group evaluated at a time asks the source for
// its own leaves and those of the other groups whose evaluation falls on
// the same query time, so each window and grouping is read once for them
// all (one query per shape, see Querier.Batch), and the others find their
// leaves computed. Groups run on their own schedules; the groups of one
// interval evaluate at the same aligned times.
//
// A failed shared batch is not shared: each group then computes its own,
// so one rule's failure (too many series, say) stays in its group.
type Coalescer struct {
	q *Querier

	mu      sync.Mutex
	groups  []*Group
	entries map[int64]*coalesced // by query time, unix ms
}

// coalesced is the shared batch of one query time.
type coalesced struct {
	once    sync.Once
	members map[*Group]bool
	exprs   []*dsl.Expr
	query   QueryFunc
	err     error
}

// maxCoalesced is how many query times a Coalescer keeps batches for: the
// groups of one time finish before the next is due, but a slow group may
// still be on the previous one.
const maxCoalesced = 4

// NewCoalescer returns a Coalescer over q's source.
func NewCoalescer(q *Querier) *Coalescer {
	return &Coalescer{q: q, entries: map[int64]*coalesced{}}
}

// SetGroups replaces the groups whose leaves are computed together (a
// reload); batches already made are dropped.
func (c *Coalescer) SetGroups(groups []*Group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = slices.Clone(groups)
	c.entries = map[int64]*coalesced{}
}

// batch returns the shared batch of g's evaluation at ts (its query time
// being ts minus the group's query offset), or nil when g is not one of
// the groups or the shared batch failed.
func (c *Coalescer) batch(ctx context.Context, g *Group, ts time.Time) QueryFunc {
	qts := ts.Add(-g.spec.QueryOffset).Truncate(time.Millisecond)
	key := qts.UnixMilli()
	c.mu.Lock()
	if !slices.Contains(c.groups, g) {
		c.mu.Unlock()
		return nil
	}
	e := c.entries[key]
	if e == nil {
		e = &coalesced{members: map[*Group]bool{}}
		for _, o := range c.groups {
			// A group is due at qts when its own evaluation time for the
			// query time is aligned to its interval.
			ots := qts.Add(o.spec.QueryOffset)
			if o == g || (o.opts.Batch != nil && o.EvalTimestamp(ots).Equal(ots) && o.owns()) {
				e.members[o] = true
				e.exprs = append(e.exprs, o.batchable()...)
			}
		}
		c.entries[key] = e
		// The oldest go first: a group still evaluating the time before
		// keeps its batch.
		for len(c.entries) > maxCoalesced {
			oldest := slices.Min(slices.Collect(maps.Keys(c.entries)))
			if oldest >= key {
				break
			}
			delete(c.entries, oldest)
		}
	}
	c.mu.Unlock()
	if !e.members[g] {
		return nil
	}
	e.once.Do(func() { e.query, e.err = c.q.batch(ctx, qts, e.exprs) })
	if e.err != nil {
		return nil
	}
	return e.query
}
