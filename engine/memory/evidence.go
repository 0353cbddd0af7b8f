package memory

import (
	"context"
	"math"
	"sort"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

var _ engine.EvidenceSource = (*Store)(nil)

// Evidence gathers the evidence of q over the events held, as the
// ClickHouse querier does (see engine.EvidenceQuery).
func (s *Store) Evidence(ctx context.Context, q engine.EvidenceQuery) (engine.Evidence, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := q.Leaf
	fromSec, toSec := floorSec(q.From), floorSec(q.To)
	lo := sort.Search(len(s.events), func(i int) bool { return s.events[i].Time.Unix() > fromSec })
	hi := sort.Search(len(s.events), func(i int) bool { return s.events[i].Time.Unix() > toSec })
	ms := append([]*labels.Matcher(nil), l.Selector.Matchers...)
	for name, v := range q.Group {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, name, v))
	}
	idx := make([]int, len(ms))
	for i, m := range ms {
		idx[i] = s.labelIdx[m.Name]
	}
	counts := make([]map[string]uint64, len(q.Top))
	for i := range counts {
		counts[i] = map[string]uint64{}
	}
	type example struct {
		id    string
		value float64
		sec   int64
	}
	var examples []example
	var ev engine.Evidence
	field := l.Selector.Field != dsl.EventsSelector && len(l.Selector.Columns) > 0
	for _, e := range s.events[lo:hi] {
		if err := ctx.Err(); err != nil {
			return engine.Evidence{}, err
		}
		if !matches(e, ms, idx) {
			continue
		}
		v := 0.0
		for _, c := range l.Selector.Columns {
			v += e.Nums[c]
		}
		if field && (math.IsNaN(v) || math.IsInf(v, 0)) {
			continue // skipped, as for the leaf itself
		}
		ev.Total++
		for i, name := range q.Top {
			counts[i][e.Labels[s.labelIdx[name]]]++
		}
		if q.Examples > 0 && e.RequestID != "" {
			examples = append(examples, example{id: e.RequestID, value: v, sec: e.Time.Unix()})
		}
	}
	for i, name := range q.Top {
		vals := make([]engine.EvidenceValue, 0, len(counts[i]))
		for v, n := range counts[i] {
			vals = append(vals, engine.EvidenceValue{Value: v, Count: n})
		}
		engine.SortEvidenceValues(vals)
		ev.Top = append(ev.Top, engine.EvidenceLabel{Label: name, Values: vals[:min(len(vals), q.Limit)]})
	}
	sort.Slice(examples, func(i, j int) bool {
		a, b := examples[i], examples[j]
		switch {
		case field && a.value != b.value:
			return a.value > b.value
		case a.sec != b.sec:
			return a.sec > b.sec
		}
		return a.id < b.id
	})
	for _, x := range examples[:min(len(examples), q.Examples)] {
		ev.Examples = append(ev.Examples, x.id)
	}
	return ev, nil
}
