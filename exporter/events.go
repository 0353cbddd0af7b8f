package exporter

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// The call counters advance incrementally. Reading the whole table at every
// update would cost as much as the table is large; reading only the rows
// after a watermark would miss rows inserted late, behind it. So the
// updater keeps two boundaries, both whole seconds of event time:
//
//   - finalized (F): the events with time ≤ F are folded into the final
//     totals and never read again;
//   - watermark (W ≥ F): the upper bound of the events read so far. The
//     events in (F, W] — at most the late window — are held as a partial
//     aggregate, pending, that the next update replaces rather than adds to.
//
// An update at now computes to = now − safety_lag (floored to a second) and
// F' = max(F, to − late_window), then runs one GROUP BY query over the events
// with F < time ≤ to, grouped by the exported labels, the histogram buckets
// and whether time > F'. The groups with time ≤ F' are added to the final
// totals; the groups with time > F' become the new pending aggregate,
// replacing the old one whole; then F, W = F', to. The exported values are
// final + pending.
//
// Why a late row is counted exactly once: a row with event time t > F is
// inside every query until the update that finalizes t (the first with
// to − late_window ≥ t). Until then it is only ever part of pending, which
// each update recomputes from scratch, so a row that was already seen is not
// added twice and a row that arrived since the last update is picked up.
// The finalizing update adds it to the final totals once, and no later query
// reads time ≤ F again. The update that finalizes t runs at
// now ≥ t + late_window + safety_lag, so a row inserted at most
// late_window + safety_lag after its event time is always counted, once; a
// row inserted after the update that finalized its second is never counted.
//
// The exported values never decrease: each query re-reads a superset of the
// rows the previous pending aggregate was computed from (rows are only
// inserted), so final + pending only grows. (Deleting rows inside the late
// window would make a counter drop, which Prometheus treats as a reset.)
//
// A failed query changes nothing: F, W and pending stay, the last values
// are served, and the next successful update reads from F, so nothing is
// lost during a ClickHouse outage shorter than the retention of the table.
//
// Cost: a query reads the events in (F, to], about late_window + interval of
// events, through the table's time ordering; its result has one row per
// (label values, bucket) present there. Neither grows with the size of the
// table. Only two slices of event time are kept (final and pending), not one
// per second, so memory grows with the number of series only.

// The aliases of the update query's columns are prefixed so they cannot
// shadow a column of the table (ClickHouse resolves aliases everywhere in a
// query).
const (
	aliasLabel   = "cw_l"
	aliasPending = "cw_pending"
	aliasFailed  = "cw_failed"
	aliasBucket  = "cw_bucket"
	aliasNative  = "cw_native"
)

// nativeZeroKey is the native bucket index the update query gives to
// durations in the zero bucket; real indexes are far above it.
const nativeZeroKey = -1e9

// updateQuery is the layout of the update query, decided once; the query
// itself is written at each update (query), with the update's bounds
// bound to it.
type updateQuery struct {
	c      columns
	bounds []float64
	schema int32
	// nLabels is the number of label columns that start each row.
	nLabels int
	// Which of the optional value columns exist, in this order after
	// calls: latency sum, input tokens, output tokens, cost.
	latency, input, output, cost bool
	native                       bool
	// nonfinite says which of latency, input, output and cost have a
	// column counting their non-finite values, after the sums.
	nonfinite [4]bool
}

// columns maps the metrics' values to the events table.
type columns struct {
	// from is the events table, its time column and its column types.
	from clickhouse.SelectOptions
	// labels are the exported label columns; status is the status label.
	labels []string
	status string
	// latency, input, output and cost are SQL value expressions, empty
	// when the schema does not map the field.
	latency, input, output, cost string
	// finite are the conditions that latency, input, output and cost are
	// finite, empty when they cannot be NaN or ±Inf: non-finite values are
	// left out of the sums and counted apart.
	finite [4]string
}

// newUpdateQuery decides the layout of the update query.
func newUpdateQuery(c columns, bounds []float64, native bool, schema int32) updateQuery {
	q := updateQuery{c: c, bounds: bounds, schema: schema, nLabels: len(c.labels),
		latency: c.latency != "", input: c.input != "", output: c.output != "", cost: c.cost != ""}
	q.native = native && q.latency
	for i, v := range []string{c.latency, c.input, c.output, c.cost} {
		q.nonfinite[i] = v != "" && c.finite[i] != ""
	}
	return q
}

// query writes the update query over the events with from < time <= to,
// whose rows after final are pending and whose status is errorStatus
// failed.
func (q updateQuery) query(final int64, errorStatus string, from, to int64) *clickhouse.Select {
	c := q.c
	sel := clickhouse.NewSelect(c.from)
	for i, l := range c.labels {
		sel.Label(l, aliasLabel+strconv.Itoa(i))
	}
	sel.GroupByLabels()
	pending := sel.After(final)
	sel.Value(aliasPending, pending.SQL, pending.Args...).GroupBy(aliasPending)
	sel.Value(aliasFailed, c.from.Columns.Label(c.status)+" = ?", errorStatus).GroupBy(aliasFailed)
	if q.latency {
		seconds := "(" + c.latency + " / 1000)"
		// The classic bucket index: the first bound ≥ the duration, or
		// len(bounds) above them all — the le semantics of a Prometheus
		// histogram. The bounds are float64s from the configuration,
		// written as literals (FloatLiteral round-trips them exactly).
		args := make([]string, 0, 2*len(q.bounds)+1)
		for i, b := range q.bounds {
			args = append(args, seconds+" <= "+clickhouse.FloatLiteral(b), strconv.Itoa(i))
		}
		args = append(args, strconv.Itoa(len(q.bounds)))
		sel.Value(aliasBucket, "multiIf("+strings.Join(args, ", ")+")").GroupBy(aliasBucket)
		if q.native {
			// The native bucket index: bucket k holds
			// (2^((k-1)/2^schema), 2^(k/2^schema)], so k = ceil(log2(v)·2^schema).
			// Durations at or below the zero threshold (and invalid
			// negative ones) go to the zero bucket.
			scale := clickhouse.FloatLiteral(math.Ldexp(1, int(q.schema)))
			sel.Value(aliasNative, fmt.Sprintf("if(%s <= %s, %s, ceil(log2(%s) * %s))",
				seconds, clickhouse.FloatLiteral(nativeZeroThreshold), clickhouse.FloatLiteral(nativeZeroKey), seconds, scale)).GroupBy(aliasNative)
		}
	}
	sel.Value("", "count()")
	// Sums are taken of the raw columns (integers stay exact) and scaled in
	// Go.
	for i, v := range []string{c.latency, c.input, c.output, c.cost} {
		switch {
		case v == "":
		case q.nonfinite[i]:
			sel.Value("", "sumIf("+v+", "+c.finite[i]+")")
		default:
			sel.Value("", "sum("+v+")")
		}
	}
	for i, ok := range q.nonfinite {
		if ok {
			sel.Value("", "countIf(NOT "+c.finite[i]+")")
		}
	}
	w := sel.Window(from, to)
	return sel.Where(w.SQL, w.Args...)
}

// row is one group of the update query's result.
type row struct {
	labels  []string
	pending bool
	failed  bool
	bucket  int
	native  int32
	zero    bool
	calls   float64
	sums
}

// sums are the measures of a set of calls that add up: a row's, a cell's.
type sums struct {
	// latencySum is in the latency column's unit (milliseconds).
	latencySum, input, output, cost float64
	// nonfinite counts the NaN and ±Inf values of latency, input, output
	// and cost, left out of their sums.
	nonfinite [4]float64
}

// add adds o's measures to s's.
func (s *sums) add(o sums) {
	s.latencySum += o.latencySum
	s.input += o.input
	s.output += o.output
	s.cost += o.cost
	for k, v := range o.nonfinite {
		s.nonfinite[k] += v
	}
}

// readRows runs the update query over (from, to] and reads its whole
// result; it changes no state, so a failure half-way leaves the counters
// as they were.
func readRows(ctx context.Context, conn clickhouse.Conn, q updateQuery, nBuckets int, final int64, errorStatus string, from, to int64) ([]row, error) {
	var out []row
	err := q.query(final, errorStatus, from, to).Run(ctx, conn, clickhouse.Limits{}, func(strs []string, nums []float64) error {
		r := row{labels: make([]string, len(strs)), pending: nums[0] != 0, failed: nums[1] != 0}
		for i, v := range strs {
			// ClickHouse strings are bytes; Prometheus label values are
			// UTF-8 (client_golang rejects anything else).
			r.labels[i] = strings.ToValidUTF8(v, "\uFFFD")
		}
		i := 2
		if q.latency {
			b := nums[i]
			if b < 0 || b > float64(nBuckets) || b != math.Trunc(b) {
				return fmt.Errorf("scan: bucket index %v out of range", b)
			}
			r.bucket = int(b)
			i++
			if q.native {
				if nums[i] == nativeZeroKey {
					r.zero = true
				} else {
					r.native = int32(nums[i])
				}
				i++
			}
		}
		r.calls = nums[i]
		i++
		for _, f := range []struct {
			ok  bool
			dst *float64
		}{{q.latency, &r.latencySum}, {q.input, &r.input}, {q.output, &r.output}, {q.cost, &r.cost}} {
			if f.ok {
				*f.dst = nums[i]
				i++
			}
		}
		for k, ok := range q.nonfinite {
			if ok {
				r.nonfinite[k] = nums[i]
				i++
			}
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// cell is the aggregate of the calls of one series (one combination of
// exported label values, after folding).
type cell struct {
	labels        []string
	calls, errors float64
	sums
	hist histogram
}

func newCell(labels []string, nBuckets int) *cell {
	return &cell{labels: labels, hist: newHistogram(nBuckets)}
}

func (c *cell) addRow(r row) {
	c.calls += r.calls
	if r.failed {
		c.errors += r.calls
	}
	c.sums.add(r.sums)
	n := uint64(r.calls)
	c.hist.classic[r.bucket] += n
	if r.zero {
		c.hist.zero += n
	} else {
		c.hist.native[r.native] += n
	}
}

func (c *cell) add(o *cell) {
	c.calls += o.calls
	c.errors += o.errors
	c.sums.add(o.sums)
	c.hist.add(o.hist)
}

func (c *cell) clone() *cell {
	d := *c
	d.hist = c.hist.clone()
	return &d
}

// cells are aggregates by series key.
type cells map[string]*cell

// seriesKey joins label values into a map key.
func seriesKey(values []string) string { return strings.Join(values, "\xff") }

// add adds a row, whose labels are already folded, to the cell of its series.
func (cs cells) addRow(r row, nBuckets int) {
	k := seriesKey(r.labels)
	c := cs[k]
	if c == nil {
		c = newCell(r.labels, nBuckets)
		cs[k] = c
	}
	c.addRow(r)
}

// sum returns a + b as new cells, sorted keys aside.
func sumCells(a, b cells) cells {
	out := make(cells, len(a)+len(b))
	for k, c := range a {
		out[k] = c.clone()
	}
	for k, c := range b {
		if o := out[k]; o != nil {
			o.add(c)
		} else {
			out[k] = c.clone()
		}
	}
	return out
}

// sortedKeys returns the keys of cs in order, for a stable exposition.
func (cs cells) sortedKeys() []string {
	keys := make([]string, 0, len(cs))
	for k := range cs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
