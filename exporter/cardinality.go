package exporter

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// OtherValue is the value that replaces the values of a label beyond its
// cap. (A real value "other" shares its series.)
const OtherValue = "other"

// labelCap keeps the values of one exported label that get their own
// series.
//
// Values are admitted, never evicted, until the process restarts: at the
// first cardinality refresh the top values by number of calls over the
// lookback, then, while there is room, new values as the updater meets them
// (the busiest first). Once the cap is reached every other value is folded
// into "other". Because a value's fate never changes, every series is a
// proper counter: a value cannot move from its own series into "other"
// (its counter would drop) or out of it. A restart ranks the values afresh.
type labelCap struct {
	name string
	// expr is the label's SQL (NULL read as "", see clickhouse.Columns).
	expr     string
	limit    int
	admitted map[string]bool
	// folded is the number of distinct values of the last lookback that
	// are folded into "other", from the last refresh.
	folded float64
}

func newLabelCap(name, expr string, limit int) *labelCap {
	return &labelCap{name: name, expr: expr, limit: limit, admitted: map[string]bool{}}
}

// fold returns the exported value of v.
func (l *labelCap) fold(v string) string {
	if l.admitted[v] {
		return v
	}
	return OtherValue
}

// admit admits values, busiest first, while there is room. volumes maps
// values to their number of calls.
func (l *labelCap) admit(volumes map[string]float64) {
	if len(l.admitted) >= l.limit {
		return
	}
	vals := make([]string, 0, len(volumes))
	for v := range volumes {
		if !l.admitted[v] {
			vals = append(vals, v)
		}
	}
	sort.Slice(vals, func(i, j int) bool {
		if volumes[vals[i]] != volumes[vals[j]] {
			return volumes[vals[i]] > volumes[vals[j]]
		}
		return vals[i] < vals[j]
	})
	for _, v := range vals {
		if len(l.admitted) >= l.limit {
			return
		}
		l.admitted[v] = true
	}
}

// foldRows admits the new values of rows while there is room and replaces
// every row's label values by their exported values.
func foldRows(caps []*labelCap, rows []row) {
	for i, c := range caps {
		if len(c.admitted) < c.limit {
			volumes := map[string]float64{}
			for _, r := range rows {
				if !c.admitted[r.labels[i]] {
					volumes[r.labels[i]] += r.calls
				}
			}
			c.admit(volumes)
		}
	}
	for _, r := range rows {
		for i, c := range caps {
			r.labels[i] = c.fold(r.labels[i])
		}
	}
}

// topValuesQuery ranks the values of a label by number of calls in
// (from, to], the first limit of them.
func topValuesQuery(from clickhouse.SelectOptions, label string, limit int, lo, hi int64) *clickhouse.Select {
	q := clickhouse.NewSelect(from).Label(label, "cw_value").Value("cw_calls", "count()")
	w := q.Window(lo, hi)
	return q.Where(w.SQL, w.Args...).GroupByLabels().OrderBy("cw_calls DESC").OrderBy("cw_value ASC").Limit(limit)
}

// foldedQuery counts the distinct values of a label (its SQL expression)
// in (from, to] that are not among the admitted values. The admitted
// values are bound one by one, (?, ?, …), which every binder supports,
// rather than as an array.
func foldedQuery(from clickhouse.SelectOptions, label string, admitted []string, lo, hi int64) *clickhouse.Select {
	q := clickhouse.NewSelect(from)
	if len(admitted) == 0 {
		q.Value("", "uniqExact("+label+")")
	} else {
		args := make([]any, len(admitted))
		for i, v := range admitted {
			args[i] = v
		}
		q.Value("", "uniqExactIf("+label+", "+label+" NOT IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(admitted)), ", ")+"))", args...)
	}
	w := q.Window(lo, hi)
	return q.Where(w.SQL, w.Args...)
}

// rankValues returns the top values of a label by number of calls in
// (from, to], as many as its cap.
func rankValues(ctx context.Context, conn clickhouse.Conn, table clickhouse.SelectOptions, c *labelCap, from, to time.Time) (map[string]float64, error) {
	volumes := map[string]float64{}
	err := topValuesQuery(table, c.name, c.limit, from.Unix(), to.Unix()).Run(ctx, conn, clickhouse.Limits{}, func(vs []string, ns []float64) error {
		volumes[strings.ToValidUTF8(vs[0], "\uFFFD")] += ns[0]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rank values of %s: %w", c.name, err)
	}
	return volumes, nil
}

// countFolded counts the distinct values of a label in (from, to] that are
// not admitted.
func countFolded(ctx context.Context, conn clickhouse.Conn, table clickhouse.SelectOptions, c *labelCap, from, to time.Time) (float64, error) {
	admitted := make([]string, 0, len(c.admitted))
	for v := range c.admitted {
		admitted = append(admitted, v)
	}
	sort.Strings(admitted)
	var folded float64
	err := foldedQuery(table, c.expr, admitted, from.Unix(), to.Unix()).Run(ctx, conn, clickhouse.Limits{}, func(_ []string, ns []float64) error {
		folded = ns[0]
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("count folded values of %s: %w", c.name, err)
	}
	return folded, nil
}
