package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/storetest/gen"
)

// RangeMatchesInstants computes the differential suite's leaves over
// ranges with EvalLeavesRange — one aggregation over the span for leaves
// whose windows are whole buckets of the step, step by step for the
// others — and compares every step with the memory evaluator at that time:
// steps of 1m, 30s and 7s, starts on and off the step, a range reaching
// before 1970, and a window longer than 64 steps (the step-by-step path).
func RangeMatchesInstants(t *testing.T, conn clickhouse.ExecQuerier, db string, seeds []uint64) {
	forEachSeed(t, seeds, func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x7a11))
		schema := dsl.DefaultSchema()
		data := gen.NewData(rng, schema)
		tb := newEventsTable(t, conn, fmt.Sprintf("%s.range_events_%d", db, seed), data.Events)
		leaves := generatedLeaves(rng, schema, exprsFor(conn, diffExprs/3), "p95(latency_ms[5m])", "max by (tenant_id) (p99(latency_ms{status=\"ok\"}[10m] offset 1m))",
			"count_over_time(events[2h])", "absent_over_time(events{tenant_id=\"nobody\"}[1m])")
		base := time.Date(2025, 11, 24, 14, 0, 0, 0, time.UTC)
		ranges := []struct {
			start time.Time
			n     int
			step  time.Duration
		}{
			{base.Add(time.Hour), 20, time.Minute},
			{base.Add(90*time.Minute + 15*time.Second), 25, 30 * time.Second},
			{base.Add(100*time.Minute + 3*time.Second), 12, 7 * time.Second},
			{time.Unix(600, 0).UTC(), 10, time.Minute},
		}
		compared, spanQueries, stepQueries := 0, 0, 0
		for _, r := range ranges {
			end := r.start.Add(time.Duration(r.n-1) * r.step)
			got, err := tb.full.EvalLeavesRange(context.Background(), r.start, end, r.step, leaves)
			if err != nil {
				t.Fatalf("seed %d: range from %s by %s: %v", seed, r.start.Format(time.RFC3339), r.step, err)
			}
			if len(got) != r.n {
				t.Fatalf("seed %d: %d steps, want %d", seed, len(got), r.n)
			}
			// Most leaves in one aggregation over the span (ARRAY JOIN of
			// the bucket states), the others step by step.
			oneQuery, perStep := 0, 0
			for _, res := range got {
				for _, sql := range res.Statements {
					if strings.Contains(sql, "ARRAY JOIN") {
						oneQuery++
					} else {
						perStep++
					}
				}
			}
			if oneQuery == 0 {
				t.Errorf("seed %d: range from %s by %s: no statement over the span (%d per step)", seed, r.start.Format(time.RFC3339), r.step, perStep)
			}
			spanQueries += oneQuery
			stepQueries += perStep
			for j, res := range got {
				ts := r.start.Add(time.Duration(j) * r.step)
				want, err := tb.mem.EvalLeaves(context.Background(), ts, leaves)
				if err != nil {
					t.Fatal(err)
				}
				for i, l := range leaves {
					if p := compareVectors(leafExact(l), exprTolerance, want.Vectors[i], res.Vectors[i]); p != "" {
						t.Fatalf("seed %d: range from %s by %s, step %d (%s): leaf %s differs: %s\nSQL:\n%s", seed, r.start.Format(time.RFC3339), r.step, j, ts.Format(time.RFC3339), leafString(l), p, got[0].Statements)
					}
					compared++
				}
			}
		}
		t.Logf("seed %d: %d leaves over %d ranges, %d step values compared; %d queries over a span, %d for one step", seed, len(leaves), len(ranges), compared, spanQueries, stepQueries)
	})
}

var _ engine.RangeLeafSource = (*clickhouse.Source)(nil)

// SubqueriesMatchInstants evaluates expressions with subqueries over range
// functions on the backend and in memory at several times (on and off the
// subquery's step), and checks that they agree, and that in memory the
// subquery equals its outer function over instant queries of its inner
// expression at each step.
func SubqueriesMatchInstants(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	rng := rand.New(rand.NewPCG(11, 12))
	schema := dsl.DefaultSchema()
	data := gen.NewData(rng, schema)
	tb := newEventsTable(t, conn, db+".subquery_events", data.Events)
	ch := engine.NewQuerier(engine.QuerierOptions{Source: tb.full})
	mem := engine.NewQuerier(engine.QuerierOptions{Source: tb.mem})
	base := time.Date(2025, 11, 24, 15, 30, 0, 0, time.UTC)
	times := []time.Time{base, base.Add(2*time.Minute + 30*time.Second), base.Add(29*time.Minute + 250*time.Millisecond)}
	for _, tc := range []struct {
		expr, inner, outer string // inner and outer: the manual check, "" for none
		step               time.Duration
		rng                time.Duration
	}{
		{`max_over_time(p95(latency_ms[5m])[1h:5m])`, `p95(latency_ms[5m])`, "max", 5 * time.Minute, time.Hour},
		{`avg_over_time(sum by (tenant_id) (count_over_time(events[5m]))[30m:1m])`, `sum by (tenant_id) (count_over_time(events[5m]))`, "avg", time.Minute, 30 * time.Minute},
		{`max by (tenant_id) (max_over_time(max by (tenant_id) (p99(latency_ms{status="ok"}[10m]))[1h:]))`, "", "", 0, 0},
		{`min_over_time(avg_over_time(cost[2m])[20m:2m] offset 5m) * 2`, "", "", 0, 0},
		{`p95(sum by (app_code) (rate(events[5m]))[15m:30s]) > 0`, "", "", 0, 0},
		{`count_over_time(count_over_time(events{tenant_id="nobody"}[1m])[10m:1m]) or vector(0)`, "", "", 0, 0},
		// The latency SLI's share of fast calls, averaged over the steps,
		// and a threshold count with none above it in some groups.
		{`avg_over_time((sum by (tenant_id) (count_le_over_time(latency_ms[5m], 2000)) / sum by (tenant_id) (count_over_time(latency_ms[5m])))[30m:1m])`,
			`sum by (tenant_id) (count_le_over_time(latency_ms[5m], 2000)) / sum by (tenant_id) (count_over_time(latency_ms[5m]))`, "avg", time.Minute, 30 * time.Minute},
		{`max_over_time(sum by (model) (count_gt_over_time(cost{status="ok"}[2m], 50))[20m:2m])`, `sum by (model) (count_gt_over_time(cost{status="ok"}[2m], 50))`, "max", 2 * time.Minute, 20 * time.Minute},
	} {
		e, err := dsl.Parse(tc.expr, dsl.Options{Schema: schema})
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		for _, ts := range times {
			got, err := ch.Query(context.Background(), e, ts)
			if err != nil {
				t.Fatalf("%s at %s on the backend: %v", tc.expr, ts, err)
			}
			want, err := mem.Query(context.Background(), e, ts)
			if err != nil {
				t.Fatalf("%s at %s in memory: %v", tc.expr, ts, err)
			}
			if p := compareVectors(false, exprTolerance, want.Vector, got.Vector); p != "" {
				t.Fatalf("%s at %s: %s\nSQL:\n%s", tc.expr, ts.Format(time.RFC3339Nano), p, strings.Join(got.Statements, "\n"))
			}
			if tc.inner == "" {
				continue
			}
			if len(want.Vector) == 0 {
				t.Fatalf("%s at %s: empty, the events should give samples", tc.expr, ts)
			}
			// The definition: the outer function over the inner expression
			// at each multiple of the step in (ts − range, ts].
			ie, err := dsl.Parse(tc.inner, dsl.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			acc := map[string][]float64{}
			lbls := map[string]string{}
			first := ts.Add(-tc.rng).Truncate(tc.step)
			for at := first; !at.After(ts); at = at.Add(tc.step) {
				if !at.After(ts.Add(-tc.rng)) {
					continue
				}
				r, err := mem.Query(context.Background(), ie, at)
				if err != nil {
					t.Fatal(err)
				}
				for _, smp := range r.Vector {
					acc[smp.Labels.String()] = append(acc[smp.Labels.String()], smp.Value)
					lbls[smp.Labels.String()] = smp.Labels.String()
				}
			}
			if len(acc) != len(want.Vector) {
				t.Fatalf("%s at %s: %d series, %d by the definition", tc.expr, ts, len(want.Vector), len(acc))
			}
			for _, smp := range want.Vector {
				vals := acc[smp.Labels.String()]
				def := vals[0]
				for _, v := range vals[1:] {
					switch tc.outer {
					case "max":
						def = max(def, v)
					case "avg":
						def += v
					}
				}
				if tc.outer == "avg" {
					def /= float64(len(vals))
				}
				if !sameValue(false, exprTolerance, def, smp.Value) {
					t.Fatalf("%s at %s: %s = %v, by the definition %v (%d steps)", tc.expr, ts, smp.Labels, smp.Value, def, len(vals))
				}
			}
		}
	}
}
