package clickhouse

import (
	"context"
	"fmt"
	"sort"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

var _ engine.EvidenceSource = (*Source)(nil)

// Evidence gathers the evidence of q (see engine.EvidenceQuery) with one
// query for the events' count, one per label for its most frequent
// values and one for the example request ids; values and ids come back
// cut to one byte more than their bounds. Every query runs under the
// source's timeout and q's context.
func (s *Source) Evidence(ctx context.Context, q engine.EvidenceQuery) (engine.Evidence, error) {
	lim := Limits{Timeout: s.opts.QueryTimeout}
	cols := s.opts.Columns
	cond := cols.leafCondition(q.Leaf)
	names := make([]string, 0, len(q.Group))
	for name := range q.Group {
		names = append(names, name)
	}
	sort.Strings(names)
	events := func() *Select {
		sel := NewSelect(SelectOptions{Table: s.opts.Table, Time: s.opts.Schema.Time, Columns: cols})
		w := sel.Window(q.From.Unix(), q.To.Unix())
		sel.Where(w.SQL, w.Args...).Where(cond.sql, cond.args...)
		for _, name := range names {
			sel.Where(cols.Label(name)+" = ?", q.Group[name])
		}
		return sel
	}
	var ev engine.Evidence
	err := events().Value("ev_n", "count()").Run(ctx, s.opts.Conn, lim, func(_ []string, v []float64) error {
		ev.Total = uint64(v[0])
		return nil
	})
	if err != nil {
		return engine.Evidence{}, fmt.Errorf("evidence: count the events: %w", err)
	}
	for _, name := range q.Top {
		el := engine.EvidenceLabel{Label: name, Values: []engine.EvidenceValue{}}
		if ev.Total > 0 {
			key := cols.Label(name)
			sel := events().LabelPrefix(name, "ev_v", engine.MaxEvidenceValueBytes+1).Value("ev_n", "count()").
				GroupBy(key).OrderBy("ev_n DESC").OrderBy(key + " ASC").Limit(q.Limit)
			err := sel.Run(ctx, s.opts.Conn, lim, func(l []string, v []float64) error {
				el.Values = append(el.Values, engine.EvidenceValue{Value: l[0], Count: uint64(v[0])})
				return nil
			})
			if err != nil {
				return engine.Evidence{}, fmt.Errorf("evidence: the values of %s: %w", name, err)
			}
		}
		ev.Top = append(ev.Top, el)
	}
	if q.Examples > 0 && s.opts.Schema.RequestID != "" && ev.Total > 0 {
		rid := cols.Label(s.opts.Schema.RequestID)
		sel := events().LabelPrefix(s.opts.Schema.RequestID, "ev_r", engine.MaxEvidenceIDBytes+1).Where(rid + " != ''")
		if q.Leaf.Selector.Field != dsl.EventsSelector && len(q.Leaf.Selector.Columns) > 0 {
			sel.Value("ev_o", cols.Value(q.Leaf.Selector.Columns)).OrderBy("ev_o DESC")
		}
		sel.OrderBy("toUInt32(" + sel.Time() + ") DESC").OrderBy(rid + " ASC").Limit(q.Examples)
		err := sel.Run(ctx, s.opts.Conn, lim, func(l []string, _ []float64) error {
			ev.Examples = append(ev.Examples, l[0])
			return nil
		})
		if err != nil {
			return engine.Evidence{}, fmt.Errorf("evidence: example calls: %w", err)
		}
	}
	return ev, nil
}
