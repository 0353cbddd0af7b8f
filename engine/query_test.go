package engine

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/testrules"
)

// fixedLeaves answers every leaf with the same groups: one per tenant.
func fixedLeaves(values map[string]float64) LeafSource {
	return LeafSourceFunc(func(_ context.Context, _ time.Time, leaves []*dsl.Leaf) (LeafResult, error) {
		var r LeafResult
		for _, l := range leaves {
			var v []Sample
			for tenant, x := range values {
				lbls := l.Labels()
				if l.Grouped {
					lbls = l.GroupLabels([]string{tenant})
				}
				v = append(v, Sample{Labels: lbls, Value: x})
				if !l.Grouped {
					break
				}
			}
			r.Vectors = append(r.Vectors, v)
		}
		return r, nil
	})
}

func TestQuerierRunsPromQLAboveLeaves(t *testing.T) {
	q := NewQuerier(QuerierOptions{Source: fixedLeaves(map[string]float64{"acme": 6000, "beta": 100})})
	ts := time.Unix(1764000000, 0)
	cases := []struct {
		name, expr string
		want       map[string]float64 // tenant -> value ("" for no label)
		scalar     bool
	}{
		{"a comparison filters the grouped vector", `max by (tenant_id) (p95(latency_ms[5m])) > 5000`, map[string]float64{"acme": 6000}, false},
		{"a ratio of two grouped leaves matches on the group labels", `sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m]))`, map[string]float64{"acme": 1, "beta": 1}, false},
		{"scalar arithmetic stays scalar", `1 + 2`, nil, true},
		{"bool comparison returns 0 or 1", `sum by (tenant_id) (count_over_time(events[5m])) > bool 1000`, map[string]float64{"acme": 1, "beta": 0}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := testrules.Expr(t, tc.expr)
			res, err := q.Query(context.Background(), e, ts)
			if err != nil {
				t.Fatal(err)
			}
			if res.IsScalar != tc.scalar {
				t.Fatalf("scalar = %v, want %v", res.IsScalar, tc.scalar)
			}
			if tc.scalar {
				if res.Scalar != 3 {
					t.Fatalf("scalar = %v, want 3", res.Scalar)
				}
				return
			}
			got := map[string]float64{}
			for _, s := range res.Vector {
				if s.Labels.Has(model.MetricNameLabel) {
					t.Errorf("result keeps __name__: %v", s.Labels)
				}
				got[s.Labels.Get("tenant_id")] = s.Value
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestBatchComputesAGroupsLeavesInOneCall(t *testing.T) {
	calls := 0
	inner := fixedLeaves(map[string]float64{"acme": 6000, "beta": 100})
	src := LeafSourceFunc(func(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (LeafResult, error) {
		calls++
		return inner.EvalLeaves(ctx, ts, leaves)
	})
	q := NewQuerier(QuerierOptions{Source: src})
	ts := time.Unix(1764000000, 0)
	var exprs []*dsl.Expr
	for _, in := range []string{
		`max by (tenant_id) (p95(latency_ms[5m])) > 5000`,
		`sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m]))`,
		`max by (tenant_id) (p95(latency_ms[5m])) > 1000`, // the same leaf as the first
	} {
		e := testrules.Expr(t, in)
		exprs = append(exprs, e)
	}
	qf := q.Batch(context.Background(), ts, exprs)
	if calls != 1 {
		t.Fatalf("Batch made %d calls, want 1", calls)
	}
	for _, e := range exprs {
		got, err := qf(context.Background(), e, ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := q.Query(context.Background(), e, ts)
		if len(got.Vector) != len(want.Vector) {
			t.Fatalf("%s: batched %v, direct %v", e.Input, got.Vector, want.Vector)
		}
		for i := range got.Vector {
			if got.Vector[i].Value != want.Vector[i].Value || labels.Compare(got.Vector[i].Labels, want.Vector[i].Labels) != 0 {
				t.Fatalf("%s: batched %v, direct %v", e.Input, got.Vector, want.Vector)
			}
		}
	}
	if calls != 1+len(exprs) {
		t.Fatalf("%d calls after answering from the batch, want only the direct ones (%d)", calls, 1+len(exprs))
	}
	// Another time is not in the batch: it is computed directly.
	if _, err := qf(context.Background(), exprs[0], ts.Add(time.Minute), nil); err != nil || calls != 2+len(exprs) {
		t.Fatalf("err %v, calls %d", err, calls)
	}
}
