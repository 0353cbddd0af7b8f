package memory

import (
	"context"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Store holds events sorted by time and evaluates leaves over them.
type Store struct {
	schema   dsl.Schema
	labelIdx map[string]int

	mu     sync.RWMutex
	events []Event // sorted by Time
}

var (
	_ engine.LeafSource      = (*Store)(nil)
	_ engine.RangeLeafSource = (*Store)(nil)
)

// New returns an empty Store for schema (the zero Schema means the default).
func New(schema dsl.Schema) *Store {
	if schema.Time == "" {
		schema = dsl.DefaultSchema()
	}
	idx := map[string]int{}
	for i, l := range schema.Labels {
		idx[l] = i
	}
	return &Store{schema: schema, labelIdx: idx}
}

// Add inserts events, keeping them sorted by time.
func (s *Store) Add(events ...Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, events...)
	slices.SortStableFunc(s.events, func(a, b Event) int { return a.Time.Compare(b.Time) })
}

// Len returns the number of events held.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.events)
}

// EvalLeaves computes every leaf at ts.
func (s *Store) EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (engine.LeafResult, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	res := engine.LeafResult{Vectors: make([][]engine.Sample, len(leaves))}
	for i, l := range leaves {
		if err := ctx.Err(); err != nil {
			return engine.LeafResult{}, err
		}
		res.Vectors[i] = s.evalLeaf(ts, l)
	}
	return res, nil
}

// EvalLeavesRange computes every leaf at start, start+step, ... up to end
// included, under one read lock, so a range sees one state of the store.
func (s *Store) EvalLeavesRange(ctx context.Context, start, end time.Time, step time.Duration, leaves []*dsl.Leaf) ([]engine.LeafResult, error) {
	n := engine.Steps(start, end, step)
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]engine.LeafResult, 0, n)
	for k := range n {
		ts := start.Add(time.Duration(k) * step)
		res := engine.LeafResult{Vectors: make([][]engine.Sample, len(leaves))}
		for i, l := range leaves {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			res.Vectors[i] = s.evalLeaf(ts, l)
		}
		out = append(out, res)
	}
	return out, nil
}

// group accumulates the pooled values of one group: the partial states of
// the leaf's aggregate (dsl.Aggregate), event by event.
type group struct {
	values []string // By label values
	st     dsl.State
}

func (s *Store) evalLeaf(ts time.Time, l *dsl.Leaf) []engine.Sample {
	from, to := l.Window(ts)
	// Event times have second resolution in ClickHouse: x > a ⇔ x > floor(a).
	fromSec, toSec := floorSec(from), floorSec(to)
	lo := sort.Search(len(s.events), func(i int) bool { return s.events[i].Time.Unix() > fromSec })
	hi := sort.Search(len(s.events), func(i int) bool { return s.events[i].Time.Unix() > toSec })
	groups := map[string]*group{}
	var order []string
	byIdx := make([]int, len(l.By))
	for i, b := range l.By {
		byIdx[i] = s.labelIdx[b]
	}
	matchIdx := make([]int, len(l.Selector.Matchers))
	for i, m := range l.Selector.Matchers {
		matchIdx[i] = s.labelIdx[m.Name]
	}
	ps := l.Partials()
	for _, ev := range s.events[lo:hi] {
		if !matches(ev, l.Selector.Matchers, matchIdx) {
			continue
		}
		v := 0.0
		for _, c := range l.Selector.Columns {
			v += ev.Nums[c]
		}
		// A non-finite value (NaN, ±Inf) of a field is skipped, as in
		// ClickHouse (isFinite): one bad row must not make a maximum NaN
		// and silence the rule.
		if l.Selector.Field != dsl.EventsSelector && (math.IsNaN(v) || math.IsInf(v, 0)) {
			continue
		}
		values := make([]string, len(byIdx))
		for i, bi := range byIdx {
			values[i] = ev.Labels[bi]
		}
		key := strings.Join(values, "\xff")
		g := groups[key]
		if g == nil {
			g = &group{values: values}
			groups[key] = g
			order = append(order, key)
		}
		g.st.Add(v, ps, l.Threshold)
	}
	if l.Agg == dsl.AggAbsent {
		return engine.AbsentVector(l, len(groups))
	}
	out := make([]engine.Sample, 0, len(groups))
	for _, key := range order {
		g := groups[key]
		g.st.Values = dsl.SortValues(g.st.Values)
		out = append(out, engine.Sample{Labels: l.GroupLabels(g.values), Value: l.Finish(&g.st)})
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels, out[j].Labels) < 0 })
	return out
}

func matches(ev Event, ms []*labels.Matcher, idx []int) bool {
	for i, m := range ms {
		if !m.Matches(ev.Labels[idx[i]]) {
			return false
		}
	}
	return true
}

func floorSec(t time.Time) int64 {
	sec := t.Unix() // Unix rounds toward negative infinity for times before 1970 too.
	return sec
}
