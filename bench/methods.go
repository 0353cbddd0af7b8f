// Handwritten and naive evaluation, and the check that every method
// computes the same values.

package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// values are the rules' values by rule name and group (the tenant for a
// grouped rule, "" otherwise). A group with no event has no value.
type values map[string]map[string]float64

func (v values) set(rule, group string, x float64) {
	if v[rule] == nil {
		v[rule] = map[string]float64{}
	}
	v[rule][group] = x
}

// stats are the aggregates one scope needs for every rule type.
type stats struct {
	errors, calls, tokens, cost, avg, p95, p99, max float64
}

// value returns a rule's value from its scope's aggregates.
func (s stats) value(k kind) float64 {
	switch k.name {
	case "ErrorCount":
		return s.errors
	case "ErrorRatio":
		return s.errors / s.calls
	case "CallCount":
		return s.calls
	case "TokenUsage":
		return s.tokens
	case "Cost":
		return s.cost
	case "LatencyAvg":
		return s.avg
	case "LatencyP95":
		return s.p95
	case "LatencyP99":
		return s.p99
	case "LatencyMax":
		return s.max
	}
	panic("unknown kind " + k.name)
}

func sqlCond(s scope) string {
	if s.label == "" {
		return ""
	}
	return s.label + " = '" + s.value + "'"
}

func windowCond(w int, ts time.Time) string {
	return fmt.Sprintf("created_at > toDateTime(%d) AND created_at <= toDateTime(%d)", ts.Add(-windows[w].d).Unix(), ts.Unix())
}

// handwritten evaluates the pack as a person fluent in ClickHouse would by
// hand: per window, one query for the ungrouped scopes (each rule an -If
// aggregate) and one GROUP BY tenant_id query, and the comparisons in Go.
// It returns the values and the time taken.
func handwritten(ctx context.Context, conn clickhouse.Conn, rules []benchRule, ts time.Time) (values, timing, error) {
	out := values{}
	var t timing
	for w := range windows {
		start := time.Now()
		var scopes []scope
		grouped := false
		for _, r := range rules {
			if r.window != w {
				continue
			}
			if r.scope.grouped {
				grouped = true
			} else if !slices.Contains(scopes, r.scope) {
				scopes = append(scopes, r.scope)
			}
		}
		byScope := map[string]stats{}
		if len(scopes) > 0 {
			// Without a platform-wide rule, the WHERE clause keeps only
			// the scopes' rows.
			var cols, narrow []string
			for _, s := range scopes {
				c := sqlCond(s)
				cols = append(cols, aggregates(c)...)
				narrow = append(narrow, c)
			}
			where := windowCond(w, ts)
			if !slices.Contains(narrow, "") {
				where += " AND (" + strings.Join(narrow, " OR ") + ")"
			}
			sql := "SELECT\n    " + strings.Join(cols, ",\n    ") + "\nFROM " + table + "\nWHERE " + where
			qstart := time.Now()
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				return nil, t, err
			}
			dest := make([]stats, len(scopes))
			qs := make([][]float64, len(scopes))
			var ptrs []any
			for i := range scopes {
				d := &dest[i]
				ptrs = append(ptrs, &d.errors, &d.calls, &d.tokens, &d.cost, &d.avg, &qs[i], &d.max)
			}
			if !rows.Next() {
				rows.Close()
				return nil, t, fmt.Errorf("no row: %w", rows.Err())
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, t, err
			}
			rows.Close()
			t.addPart(windows[w].text+"-ungrouped", time.Since(qstart))
			for i, s := range scopes {
				dest[i].p95, dest[i].p99 = qs[i][0], qs[i][1]
				byScope[s.name] = dest[i]
			}
		}
		byTenant := map[string]stats{}
		if grouped {
			sql := "SELECT\n    tenant_id,\n    " + strings.Join(aggregates(""), ",\n    ") + "\nFROM " + table +
				"\nWHERE " + windowCond(w, ts) + "\nGROUP BY tenant_id"
			qstart := time.Now()
			rows, err := conn.Query(ctx, sql)
			if err != nil {
				return nil, t, err
			}
			for rows.Next() {
				var tenant string
				var d stats
				var q []float64
				if err := rows.Scan(&tenant, &d.errors, &d.calls, &d.tokens, &d.cost, &d.avg, &q, &d.max); err != nil {
					rows.Close()
					return nil, t, err
				}
				d.p95, d.p99 = q[0], q[1]
				byTenant[tenant] = d
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, t, err
			}
			t.addPart(windows[w].text+"-by_tenant", time.Since(qstart))
		}
		for _, r := range rules {
			if r.window != w {
				continue
			}
			if !r.scope.grouped {
				if s := byScope[r.scope.name]; s.calls > 0 {
					out.set(r.name, "", s.value(r.kind))
				}
				continue
			}
			for tenant, s := range byTenant {
				if r.guard && s.calls < 20 {
					continue
				}
				out.set(r.name, tenant, s.value(r.kind))
			}
		}
		t.perWindow[w] = time.Since(start)
		t.total += t.perWindow[w]
	}
	return out, t, nil
}

// aggregates are the columns of one scope in a handwritten query: errors,
// calls, tokens, cost, avg latency, [p95, p99] latency, max latency, each
// conditional on the scope when cond is not empty.
func aggregates(cond string) []string {
	if cond == "" {
		return []string{
			"toFloat64(countIf(status = 'error'))",
			"toFloat64(count())",
			"toFloat64(sum(input_tokens + output_tokens))",
			"toFloat64(sum(cost))",
			"toFloat64(avg(latency_ms))",
			"arrayMap(x -> toFloat64(x), quantilesExact(0.95, 0.99)(latency_ms))",
			"toFloat64(max(latency_ms))",
		}
	}
	return []string{
		"toFloat64(countIf(status = 'error' AND " + cond + "))",
		"toFloat64(countIf(" + cond + "))",
		"toFloat64(sumIf(input_tokens + output_tokens, " + cond + "))",
		"toFloat64(sumIf(cost, " + cond + "))",
		"toFloat64(avgIf(latency_ms, " + cond + "))",
		"arrayMap(x -> toFloat64(x), quantilesExactIf(0.95, 0.99)(latency_ms, " + cond + "))",
		"toFloat64(maxIf(latency_ms, " + cond + "))",
	}
}

// naive evaluates the pack as the replaced service did: each rule its own
// query; counts and sums as SELECT count()/sum() (GROUP BY tenant_id for a
// grouped rule); every latency statistic from the rows pulled into the
// process (with their tenant for a grouped rule), sorted for quantiles at
// index ⌊φ·n⌋. It returns the values, the number of rows pulled and the
// time taken.
func naive(ctx context.Context, conn clickhouse.Conn, rules []benchRule, ts time.Time) (values, int64, timing, error) {
	out := values{}
	var t timing
	var pulled int64
	// scalar runs a count or sum query, grouped by tenant for a grouped rule.
	scalar := func(r benchRule, agg string, extra string) (map[string]float64, error) {
		where := windowCond(r.window, ts)
		if c := sqlCond(r.scope); c != "" {
			where += " AND " + c
		}
		if extra != "" {
			where += " AND " + extra
		}
		sel, group := "'' AS g", ""
		if r.scope.grouped {
			sel, group = "tenant_id AS g", " GROUP BY g"
		}
		rows, err := conn.Query(ctx, "SELECT "+sel+", toFloat64("+agg+") FROM "+table+" WHERE "+where+group)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		m := map[string]float64{}
		for rows.Next() {
			var g string
			var v float64
			if err := rows.Scan(&g, &v); err != nil {
				return nil, err
			}
			m[g] = v
		}
		return m, rows.Err()
	}
	for _, r := range rules {
		start := time.Now()
		switch r.kind.name {
		case "ErrorCount", "CallCount", "TokenUsage", "Cost":
			agg, extra := "count()", ""
			switch r.kind.name {
			case "ErrorCount":
				extra = "status = 'error'"
			case "TokenUsage":
				agg = "sum(input_tokens + output_tokens)"
			case "Cost":
				agg = "sum(cost)"
			}
			m, err := scalar(r, agg, extra)
			if err != nil {
				return nil, 0, t, err
			}
			calls := m
			if r.kind.name != "CallCount" && !r.scope.grouped {
				// An ungrouped sum over no row is 0, not absent: the
				// group exists only when it has calls.
				if calls, err = scalar(r, "count()", ""); err != nil {
					return nil, 0, t, err
				}
			}
			for g, v := range m {
				if calls[g] > 0 {
					out.set(r.name, g, v)
				}
			}
		case "ErrorRatio":
			errs, err := scalar(r, "count()", "status = 'error'")
			if err != nil {
				return nil, 0, t, err
			}
			calls, err := scalar(r, "count()", "")
			if err != nil {
				return nil, 0, t, err
			}
			for g, c := range calls {
				if c > 0 && (!r.guard || c >= 20) {
					out.set(r.name, g, errs[g]/c)
				}
			}
		default:
			lat, n, err := pullLatencies(ctx, conn, r, ts)
			if err != nil {
				return nil, 0, t, err
			}
			pulled += n
			for g, l := range lat {
				out.set(r.name, g, latencyStat(r.kind.name, l))
			}
		}
		d := time.Since(start)
		t.perWindow[r.window] += d
		t.total += d
	}
	return out, pulled, t, nil
}

// pullLatencies reads the latency_ms of every call in the rule's window and
// scope, by tenant for a grouped rule.
func pullLatencies(ctx context.Context, conn clickhouse.Conn, r benchRule, ts time.Time) (map[string][]uint32, int64, error) {
	where := windowCond(r.window, ts)
	if c := sqlCond(r.scope); c != "" {
		where += " AND " + c
	}
	cols := "latency_ms"
	if r.scope.grouped {
		cols = "tenant_id, latency_ms"
	}
	rows, err := conn.Query(ctx, "SELECT "+cols+" FROM "+table+" WHERE "+where)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := map[string][]uint32{}
	var n int64
	var g string
	var v uint32
	dest := []any{&v}
	if r.scope.grouped {
		dest = []any{&g, &v}
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, err
		}
		out[g] = append(out[g], v)
		n++
	}
	return out, n, rows.Err()
}

// latencyStat computes a latency statistic the baseline's way.
func latencyStat(k string, l []uint32) float64 {
	switch k {
	case "LatencyAvg":
		var s float64
		for _, x := range l {
			s += float64(x)
		}
		return s / float64(len(l))
	case "LatencyMax":
		return float64(slices.Max(l))
	}
	phi := 0.95
	if k == "LatencyP99" {
		phi = 0.99
	}
	slices.Sort(l)
	return float64(l[min(int(math.Floor(phi*float64(len(l)))), len(l)-1)])
}

// verify evaluates every rule's value expression with callwatch's querier
// and checks that the handwritten and naive values (when measured) agree
// with it, group by group. A group callwatch returns nothing for must be
// absent or zero in the others (PromQL has no series for a count of no
// event).
func verify(ctx context.Context, conn clickhouse.Conn, rules []benchRule, ts time.Time, hand, naive values) (string, error) {
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: dsl.DefaultSchema(), Columns: clickhouse.EventsColumns(dsl.DefaultSchema())})
	if err != nil {
		return "", err
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: src})
	methods := []struct {
		name string
		v    values
	}{{"handwritten", hand}, {"naive", naive}}
	compared := 0
	for _, r := range rules {
		e, err := dsl.Parse(r.valueExpr(), dsl.Options{Schema: dsl.DefaultSchema()})
		if err != nil {
			return "", fmt.Errorf("verify %s: %w", r.name, err)
		}
		res, err := q.Query(ctx, e, ts)
		if err != nil {
			return "", fmt.Errorf("verify %s: %w", r.name, err)
		}
		got := map[string]float64{}
		for _, s := range res.Vector {
			g := ""
			if r.scope.grouped {
				g = s.Labels.Get("tenant_id")
			}
			got[g] = s.Value
		}
		if r.guard {
			// The guard is not part of the value expression.
			for g := range got {
				if _, ok := hand[r.name][g]; !ok {
					delete(got, g)
				}
			}
		}
		for _, m := range methods {
			if m.v == nil {
				continue
			}
			want := m.v[r.name]
			for g, x := range got {
				y, ok := want[g]
				if !ok || !approxEqual(x, y) {
					return "", fmt.Errorf("verify %s, group %q: callwatch %v, %s %v (present %v)", r.name, g, x, m.name, y, ok)
				}
				compared++
			}
			for g, y := range want {
				if _, ok := got[g]; !ok && y != 0 {
					return "", fmt.Errorf("verify %s, group %q: callwatch has no value, %s %v", r.name, g, m.name, y)
				}
			}
		}
	}
	names := "handwritten"
	if naive != nil {
		names += " and naive"
	}
	return fmt.Sprintf("callwatch, %s agree on all %d rules (%d group values compared)", names, len(rules), compared), nil
}

func approxEqual(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
