package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
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
		g := gen.NewExprs(gen.Options{Rand: rng, Schema: schema, Exact: leafExact})
		var leaves []*dsl.Leaf
		seen := map[string]bool{}
		inputs := slices.Clone(gen.Pinned)
		inputs = append(inputs, "p95(latency_ms[5m])", "max by (tenant_id) (p99(latency_ms{status=\"ok\"}[10m] offset 1m))",
			"count_over_time(events[2h])", "absent_over_time(events{tenant_id=\"nobody\"}[1m])")
		for range diffExprs / 3 {
			inputs = append(inputs, g.Expr())
		}
		for _, in := range inputs {
			e, err := dsl.Parse(in, dsl.Options{Schema: schema})
			if err != nil {
				continue
			}
			for _, l := range e.Leaves {
				if !seen[l.Key()] {
					seen[l.Key()] = true
					leaves = append(leaves, l)
				}
			}
		}
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
