package exporter

import (
	"context"
	"fmt"
	"sort"
	"strconv"
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

// topValuesQuery ranks the values of a label (its SQL expression) by
// number of calls in (from, to]. Its placeholders are from and to (unix
// seconds); the limit, a validated int, is written into the SQL.
func topValuesQuery(table, timeCol, label string, limit int) string {
	return "SELECT toString(" + label + ") AS cw_value, toFloat64(count()) AS cw_calls" +
		"\nFROM " + table +
		"\nWHERE " + timeCol + " > toDateTime(?) AND " + timeCol + " <= toDateTime(?)" +
		"\nGROUP BY cw_value\nORDER BY cw_calls DESC, cw_value ASC\nLIMIT " + strconv.Itoa(limit)
}

// foldedQuery counts the distinct values of a label in (from, to] that are
// not among nAdmitted admitted values. Its placeholders are the admitted
// values, then from and to. The admitted values are bound one by one,
// (?, ?, …), which every binder supports, rather than as an array.
func foldedQuery(table, timeCol, label string, nAdmitted int) string {
	v := "toString(" + label + ")"
	agg := "uniqExact(" + v + ")"
	if nAdmitted > 0 {
		agg = "uniqExactIf(" + v + ", " + v + " NOT IN (" + strings.TrimSuffix(strings.Repeat("?, ", nAdmitted), ", ") + "))"
	}
	return "SELECT toFloat64(" + agg + ")" +
		"\nFROM " + table +
		"\nWHERE " + timeCol + " > toDateTime(?) AND " + timeCol + " <= toDateTime(?)"
}

// rankValues returns the top values of a label by number of calls in
// (from, to], as many as its cap.
func rankValues(ctx context.Context, conn clickhouse.Conn, table, timeCol string, c *labelCap, from, to time.Time) (map[string]float64, error) {
	rows, err := conn.Query(ctx, topValuesQuery(table, timeCol, c.expr, c.limit), from.Unix(), to.Unix())
	if err != nil {
		return nil, fmt.Errorf("rank values of %s: %w", c.name, err)
	}
	defer rows.Close()
	volumes := map[string]float64{}
	for rows.Next() {
		var v string
		var n float64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("rank values of %s: scan: %w", c.name, err)
		}
		volumes[strings.ToValidUTF8(v, "\uFFFD")] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rank values of %s: %w", c.name, err)
	}
	return volumes, nil
}

// countFolded counts the distinct values of a label in (from, to] that are
// not admitted.
func countFolded(ctx context.Context, conn clickhouse.Conn, table, timeCol string, c *labelCap, from, to time.Time) (float64, error) {
	admitted := make([]string, 0, len(c.admitted))
	for v := range c.admitted {
		admitted = append(admitted, v)
	}
	sort.Strings(admitted)
	args := make([]any, 0, len(admitted)+2)
	for _, v := range admitted {
		args = append(args, v)
	}
	args = append(args, from.Unix(), to.Unix())
	rows, err := conn.Query(ctx, foldedQuery(table, timeCol, c.expr, len(admitted)), args...)
	if err != nil {
		return 0, fmt.Errorf("count folded values of %s: %w", c.name, err)
	}
	defer rows.Close()
	var folded float64
	if rows.Next() {
		if err := rows.Scan(&folded); err != nil {
			return 0, fmt.Errorf("count folded values of %s: scan: %w", c.name, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("count folded values of %s: %w", c.name, err)
	}
	return folded, nil
}
