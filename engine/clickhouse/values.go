package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/callwatch/callwatch/dsl"
)

// The reads of value counts: one query over the pieces of the buckets the
// plans of a step need, each distinct condition a count column, rows
// folded into the plans' groups.

// distinctReason is why a plan stops reading: a group of leaf l holds more
// distinct values than budget.
func distinctReason(l *dsl.Leaf, budget int) string {
	return fmt.Sprintf("more than clickhouse.incremental.max_distinct_values (%d) distinct values of %s in a group", budget, l.Selector.Field)
}

// readValues reads the value counts of the plans' entering, leaving, read
// again and fresh buckets (families of one field, whose groupings by
// holds) into each plan's deltas and opened, and returns the statement.
// The time ranges are cut
// into disjoint pieces, each row tagged by its piece; each distinct
// condition of the plans is a count column. ordered asks ClickHouse to
// sort the rows by value, so each group's counts arrive sorted. A plan
// with a group over the distinct-value budget in one piece gets its over
// reason and reads no more; the read stops when every plan is over.
func (p *partials) readValues(ctx context.Context, s *Source, by []string, sel dsl.Selector, w int64, ordered bool, plans []*vcPlan) (string, error) {
	// The pieces: the ranges' edges cut the buckets into runs that lie
	// wholly inside or outside each range.
	var ranges []bucketRange
	for _, pl := range plans {
		ranges = append(ranges, pl.enter, pl.leave)
		for _, b := range slices.Concat(pl.reread, pl.fresh) {
			ranges = append(ranges, bucketRange{b, b})
		}
	}
	var edges []int64
	for _, r := range ranges {
		if r.lo <= r.hi {
			edges = append(edges, r.lo, r.hi+1)
		}
	}
	if len(edges) == 0 {
		return "", nil
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	var pieces []bucketRange
	for i := 0; i+1 < len(edges); i++ {
		pc := bucketRange{edges[i], edges[i+1] - 1}
		for _, r := range ranges {
			if r.lo <= pc.lo && pc.hi <= r.hi {
				pieces = append(pieces, pc)
				break
			}
		}
	}
	conds, condOf := planConds(plans)
	// Which part of each plan each piece is: +1 entering (or read again
	// once final), −1 leaving, 2 fresh (a bucket kept), 0 none.
	role := make([][]int8, len(plans))
	for i, pl := range plans {
		role[i] = make([]int8, len(pieces))
		for j, pc := range pieces {
			in := func(r bucketRange) bool { return r.lo <= pc.lo && pc.hi <= r.hi }
			one := func(bs []int64) bool { return pc.lo == pc.hi && slices.Contains(bs, pc.lo) }
			switch {
			case in(pl.enter), one(pl.reread):
				role[i][j] = 1
			case in(pl.leave):
				role[i][j] = -1
			case one(pl.fresh):
				role[i][j] = 2
			}
		}
		pl.deltas, pl.opened, pl.over = nil, nil, ""
	}
	r := p.readPieces(ctx, s, by, sel, w, ordered, plans, pieces, conds, condOf, role)
	for i, pl := range plans {
		pl.deltas, pl.opened, pl.over = r.deltas[i], r.opened[i], r.over[i]
		if pl.over != "" {
			pl.deltas, pl.opened = nil, nil
		}
	}
	p.statsMu.Lock()
	p.stats.ValueQueries++
	p.stats.ValueRows += r.rows
	p.statsMu.Unlock()
	return r.text, r.err
}

// countOf adds the count of the rows of condition c as a value of q.
func countOf(q *Select, c fragment) {
	if c.sql == "" {
		q.Value("", "count()")
		return
	}
	q.Value("", "countIf("+c.sql+")", c.args...)
}

// planConds returns the distinct conditions of the plans (a count column
// each) and the index of each plan's.
func planConds(plans []*vcPlan) (conds []fragment, condOf []int) {
	condOf = make([]int, len(plans))
	for i, pl := range plans {
		k := slices.IndexFunc(conds, func(c fragment) bool { return c.key() == pl.cond.key() })
		if k < 0 {
			k = len(conds)
			conds = append(conds, pl.cond)
		}
		condOf[i] = k
	}
	return conds, condOf
}

// valueRead is what the query of readValues read, per plan: the deltas
// by group, and the fresh buckets' counts by bucket and group.
type valueRead struct {
	text   string
	deltas []map[string]*vcGroup
	opened []map[int64]map[string]*vcGroup
	over   []string
	rows   int
	err    error
}

// readPieces runs the query of readValues over its pieces.
func (p *partials) readPieces(ctx context.Context, s *Source, by []string, sel dsl.Selector, w int64, ordered bool, plans []*vcPlan, pieces []bucketRange, conds []fragment, condOf []int, role [][]int8) valueRead {
	cols := s.opts.Columns
	q := NewSelect(SelectOptions{Table: s.opts.Table, Time: s.opts.Schema.Time, Columns: cols})
	for _, b := range by {
		q.Label(b, "")
	}
	// The aliases are prefixed so they cannot shadow a column of the
	// table (ClickHouse resolves aliases everywhere in a query).
	q.Value("cw_v", cols.Value(sel.Columns))
	var tag []string
	var tagArgs []any
	var runs []bucketRange
	lastArgs := 0
	for j, pc := range pieces {
		in := q.Window((pc.lo-1)*w, pc.hi*w)
		tag = append(tag, in.SQL, fmt.Sprint(j))
		tagArgs = append(tagArgs, in.Args...)
		lastArgs = len(in.Args)
		if n := len(runs) - 1; n >= 0 && runs[n].hi+1 == pc.lo {
			runs[n].hi = pc.hi // contiguous with the previous run
			continue
		}
		runs = append(runs, pc)
	}
	tag = append(tag[:len(tag)-2], tag[len(tag)-1]) // the last piece is the default
	tagArgs = tagArgs[:len(tagArgs)-lastArgs]
	if len(tag) == 1 {
		q.Value("cw_part", tag[0])
	} else {
		q.Value("cw_part", "multiIf("+strings.Join(tag, ", ")+")", tagArgs...)
	}
	if len(conds) == 1 {
		q.Value("", "count()") // the WHERE clause holds the condition
	} else {
		for _, c := range conds {
			countOf(q, c)
		}
	}
	whereBuckets(q, w, runs)
	whereAnyOf(q, conds)
	q.GroupByLabels().GroupBy("cw_v").GroupBy("cw_part")
	if ordered {
		q.OrderBy("cw_v")
	}
	r := valueRead{text: q.String(), deltas: make([]map[string]*vcGroup, len(plans)), opened: make([]map[int64]map[string]*vcGroup, len(plans)), over: make([]string, len(plans))}
	for i := range plans {
		r.deltas[i], r.opened[i] = map[string]*vcGroup{}, map[int64]map[string]*vcGroup{}
	}

	// A plan whose grouping is narrower than by (coFamilies) folds the
	// read's groups into its own: proj are the places of its labels in
	// by, nil when it reads by by. Its rows of one value are then folded
	// into one count, which the order by value makes adjacent; so are a
	// plan's entering and leaving rows of one value in an ordered read, so
	// that the budget counts distinct values, not rows.
	proj := make([][]int, len(plans))
	for i, pl := range plans {
		if !slices.Equal(pl.l.By, by) {
			proj[i] = make([]int, len(pl.l.By))
			for j, b := range pl.l.By {
				proj[i][j] = slices.Index(by, b)
			}
		}
	}
	// A group's rows in one plan bound its distinct values in a piece from
	// above: reading stops for a plan once one of its groups has more
	// rows than the budget. Each group is looked up once a row: its
	// deltas and fresh buckets' counts (by piece) of every plan hang off
	// it.
	type planGroup struct {
		key    string
		values []string
		deltas *vcGroup
		opened []*vcGroup
	}
	type rowGroup struct {
		of []*planGroup
	}
	byKey := make([]map[string]*planGroup, len(plans))
	for i := range plans {
		byKey[i] = map[string]*planGroup{}
	}
	// Plans of one condition, grouping and roles (the windows of one
	// selector, their leaving buckets read ahead) read the same counts:
	// the first of them reads, the others share its groups (canon).
	canon := make([]int, len(plans))
	shapes := map[string]int{}
	live := 0
	for i, pl := range plans {
		k := fmt.Sprint(condOf[i], pl.l.By, role[i])
		if c, ok := shapes[k]; ok {
			canon[i] = c
			continue
		}
		shapes[k], canon[i] = i, i
		live++
	}
	budget := p.opts.MaxDistinctValues
	seen := map[string]*rowGroup{}
	stop := errors.New("over the distinct-value budget")
	r.err = s.scan(ctx, q, 0, func(values []string, nums []float64) error {
		key := groupKey(values)
		piece := int(nums[1])
		if piece < 0 || piece >= len(pieces) {
			return fmt.Errorf("value-count row in piece %v of %d", nums[1], len(pieces))
		}
		rg, ok := seen[key]
		if !ok {
			vs := slices.Clone(values)
			rg = &rowGroup{of: make([]*planGroup, len(plans))}
			for i := range plans {
				if canon[i] != i {
					continue
				}
				pvs, pkey := vs, key
				if proj[i] != nil {
					pvs = make([]string, len(proj[i]))
					for j, at := range proj[i] {
						pvs[j] = vs[at]
					}
					pkey = groupKey(pvs)
				}
				pg := byKey[i][pkey]
				if pg == nil {
					pg = &planGroup{key: pkey, values: pvs, deltas: &vcGroup{values: pvs}}
					byKey[i][pkey] = pg
				}
				rg.of[i] = pg
			}
			seen[key] = rg
		}
		for i := range plans {
			ro, c := role[i][piece], nums[2+condOf[i]]
			if canon[i] != i || ro == 0 || c == 0 || r.over[i] != "" {
				continue
			}
			pg := rg.of[i]
			m, g := r.deltas[i], pg.deltas
			switch ro {
			case -1:
				c = -c
			case 2:
				b := pieces[piece].lo
				if m = r.opened[i][b]; m == nil {
					m = map[string]*vcGroup{}
					r.opened[i][b] = m
				}
				if pg.opened == nil {
					pg.opened = make([]*vcGroup, len(pieces))
				}
				if g = pg.opened[piece]; g == nil {
					g = &vcGroup{values: pg.values}
					pg.opened[piece] = g
				}
			}
			if n := len(g.counts); n > 0 && (ordered || proj[i] != nil) && g.counts[n-1].Value == nums[0] {
				// Another group of by, or another piece (entering and
				// leaving), of the same value: one distinct value.
				g.counts[n-1].Count += c
				continue
			}
			if len(g.counts) >= budget {
				r.over[i] = distinctReason(plans[i].l, budget)
				r.deltas[i], r.opened[i] = nil, nil
				if live--; live == 0 {
					return stop
				}
				continue
			}
			if len(g.counts) == 0 {
				m[pg.key] = g
			}
			g.counts = append(g.counts, dsl.ValueCount{Value: nums[0], Count: c})
			r.rows++
		}
		return nil
	})
	if errors.Is(r.err, stop) {
		r.err = nil
	}
	for i, c := range canon {
		r.deltas[i], r.opened[i], r.over[i] = r.deltas[c], r.opened[c], r.over[c]
	}
	return r
}

// groupKey is the key of a group's label values, as the families keep it.
func groupKey(values []string) string {
	switch len(values) {
	case 0:
		return ""
	case 1:
		return values[0]
	}
	return strings.Join(values, "\xff")
}
