package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/testrules"
)

// randomEvents returns n events over [from, from+span) for three tenants
// that come and go, with some errors.
func randomEvents(seed uint64, n int, from time.Time, span time.Duration) []Event {
	r := rand.New(rand.NewPCG(seed, 1))
	schema := dsl.DefaultSchema()
	out := make([]Event, 0, n)
	for range n {
		lbls := make([]string, len(schema.Labels))
		for i, l := range schema.Labels {
			switch l {
			case "tenant_id":
				lbls[i] = []string{"acme", "beta", "gamma"}[r.IntN(3)]
			case "status":
				lbls[i] = []string{"ok", "ok", "ok", "error"}[r.IntN(4)]
			case "model":
				lbls[i] = []string{"gpt-4o", "claude"}[r.IntN(2)]
			}
		}
		out = append(out, Event{
			Time:   from.Add(time.Duration(r.Int64N(int64(span/time.Second))) * time.Second),
			Labels: lbls,
			Nums:   map[string]float64{"latency_ms": float64(r.IntN(5000)), "input_tokens": float64(r.IntN(100)), "output_tokens": float64(r.IntN(50)), "cost": float64(r.IntN(10)) / 4},
		})
	}
	return out
}

// steppedOnly hides the store's EvalLeavesRange, so the querier steps the
// instant path.
type steppedOnly struct{ s *Store }

func (o steppedOnly) EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (engine.LeafResult, error) {
	return o.s.EvalLeaves(ctx, ts, leaves)
}

var _ engine.LeafSource = steppedOnly{}

func format(s []engine.Sample) string {
	var parts []string
	for _, x := range s {
		parts = append(parts, fmt.Sprintf("%s=%v", x.Labels, x.Value))
	}
	return strings.Join(parts, "; ")
}

// TestQueryRangeEqualsInstantQueriesAtEachStep checks that a range query,
// by the store's EvalLeavesRange and by stepping the instant path, gives
// at each step what an instant query there gives: groups that appear and
// vanish between steps included.
func TestQueryRangeEqualsInstantQueriesAtEachStep(t *testing.T) {
	from := time.Unix(1_764_000_000, 0)
	s := New(dsl.Schema{})
	s.Add(randomEvents(7, 300, from, 2*time.Hour)...)
	instant := engine.NewQuerier(engine.QuerierOptions{Source: s})
	sources := map[string]engine.LeafSource{"the store's EvalLeavesRange": s, "stepping the instant path": steppedOnly{s}}
	exprs := []string{
		`max by (tenant_id) (p95(latency_ms[5m]))`,
		`sum by (tenant_id) (count_over_time(events{status="error"}[10m])) / sum by (tenant_id) (count_over_time(events[10m]))`,
		`count_over_time(events{tenant_id="acme"}[1m]) > 1`,
		`sum by (model) (sum_over_time(cost[15m] offset 5m))`,
		`absent_over_time(events{tenant_id="gamma"}[1m])`,
		`1 + 2`,
		`time()`,
	}
	for name, src := range sources {
		q := engine.NewQuerier(engine.QuerierOptions{Source: src})
		for _, expr := range exprs {
			t.Run(name+" gives "+expr+" as instant queries do", func(t *testing.T) {
				e := testrules.Expr(t, expr)
				start, end, step := from.Add(-10*time.Minute), from.Add(2*time.Hour+10*time.Minute), 40*time.Second
				rr, err := q.QueryRange(context.Background(), e, start, end, step)
				if err != nil {
					t.Fatal(err)
				}
				// At each step, the range's samples are the instant result.
				got := map[int64][]engine.Sample{}
				for _, ser := range rr.Matrix {
					for _, p := range ser.Points {
						got[p.T] = append(got[p.T], engine.Sample{Labels: ser.Labels, Value: p.V})
					}
				}
				points := 0
				for k := range engine.Steps(start, end, step) {
					ts := start.Add(time.Duration(k) * step)
					res, err := instant.Query(context.Background(), e, ts)
					if err != nil {
						t.Fatal(err)
					}
					want := res.Vector
					if res.IsScalar {
						want = []engine.Sample{{Labels: labels.EmptyLabels(), Value: res.Scalar}}
					}
					g := got[ts.UnixMilli()]
					if format(g) != format(want) {
						t.Fatalf("at %s: range gives %s, instant query %s", ts.UTC().Format(time.RFC3339), format(g), format(want))
					}
					points += len(want)
				}
				if points == 0 && expr != `absent_over_time(events{tenant_id="gamma"}[1m])` {
					t.Fatalf("no samples at all: the test checks nothing")
				}
			})
		}
	}
}
