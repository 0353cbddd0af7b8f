package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/testrules"
)

// rangeSource counts the calls of each kind and returns one group per
// step, whose value is the step's unix second.
type rangeSource struct {
	instant, ranged int
	steps           int // steps EvalLeavesRange returns; -1 for the right number
}

func (s *rangeSource) EvalLeaves(_ context.Context, ts time.Time, leaves []*dsl.Leaf) (LeafResult, error) {
	s.instant++
	r := LeafResult{}
	for _, l := range leaves {
		r.Vectors = append(r.Vectors, []Sample{{Labels: l.Labels(), Value: float64(ts.Unix())}})
	}
	return r, nil
}

func (s *rangeSource) EvalLeavesRange(ctx context.Context, start, end time.Time, step time.Duration, leaves []*dsl.Leaf) ([]LeafResult, error) {
	s.ranged++
	n := int(Steps(start, end, step))
	if s.steps >= 0 {
		n = s.steps
	}
	var out []LeafResult
	for k := range n {
		r, _ := s.EvalLeaves(ctx, start.Add(time.Duration(k)*step), leaves)
		out = append(out, r)
	}
	s.instant -= n
	return out, nil
}

func TestQueryRange(t *testing.T) {
	e := testrules.Expr(t, `max_over_time(latency_ms[5m])`)
	start := time.Unix(1000, 0)
	t.Run("a range past 2262 is refused, not answered with no data", func(t *testing.T) {
		src := &rangeSource{steps: -1}
		far := time.Unix(1e10, 0) // 2286: PromQL's engine would overflow its nanoseconds
		_, err := NewQuerier(QuerierOptions{Source: src}).QueryRange(context.Background(), e, far, far.Add(2*time.Minute), time.Minute)
		if err == nil || !strings.Contains(err.Error(), "between 1678 and 2262") {
			t.Fatalf("err = %v", err)
		}
		if src.ranged+src.instant != 0 {
			t.Fatalf("the source was asked %d times", src.ranged+src.instant)
		}
	})
	t.Run("a source with EvalLeavesRange is asked once for the whole range", func(t *testing.T) {
		src := &rangeSource{steps: -1}
		res, err := NewQuerier(QuerierOptions{Source: src}).QueryRange(context.Background(), e, start, start.Add(100*time.Second), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if src.ranged != 1 || src.instant != 0 {
			t.Fatalf("ranged %d, instant %d times; want one range call", src.ranged, src.instant)
		}
		if len(res.Matrix) != 1 || len(res.Matrix[0].Points) != 4 || res.Matrix[0].Points[3] != (Point{T: 1090_000, V: 1090}) {
			t.Fatalf("matrix = %+v, want 4 points at start+k·30s ending with 1090", res.Matrix)
		}
	})
	t.Run("a source without it is asked at each step", func(t *testing.T) {
		src := &rangeSource{steps: -1}
		res, err := NewQuerier(QuerierOptions{Source: LeafSourceFunc(src.EvalLeaves)}).QueryRange(context.Background(), e, start, start.Add(90*time.Second), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if src.instant != 4 || len(res.Matrix[0].Points) != 4 {
			t.Fatalf("instant %d times, %d points; want 4 and 4", src.instant, len(res.Matrix[0].Points))
		}
	})
	t.Run("a source returning the wrong number of steps is an error", func(t *testing.T) {
		_, err := NewQuerier(QuerierOptions{Source: &rangeSource{steps: 2}}).QueryRange(context.Background(), e, start, start.Add(90*time.Second), 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), "2 steps for a range of 4") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("end before start and a zero step are errors", func(t *testing.T) {
		q := NewQuerier(QuerierOptions{Source: &rangeSource{steps: -1}})
		if _, err := q.QueryRange(context.Background(), e, start, start.Add(-time.Second), time.Second); err == nil {
			t.Error("end before start: no error")
		}
		if _, err := q.QueryRange(context.Background(), e, start, start, 0); err == nil {
			t.Error("zero step: no error")
		}
	})
	t.Run("more samples than MaxSamples stop the range with ErrTooManySamples", func(t *testing.T) {
		for name, src := range map[string]LeafSource{"ranged": &rangeSource{steps: -1}, "stepped": LeafSourceFunc((&rangeSource{}).EvalLeaves)} {
			_, err := NewQuerier(QuerierOptions{Source: src, MaxSamples: 10}).QueryRange(context.Background(), e, start, start.Add(time.Hour), time.Second)
			if !errors.Is(err, ErrTooManySamples) {
				t.Errorf("%s: err = %v, want ErrTooManySamples", name, err)
			}
		}
	})
}

func TestOutputsWithoutGroupsServeNothing(t *testing.T) {
	o := Outputs{}
	if o.Has("x") || o.Series("x", time.Now()) != nil || o.Names() != nil {
		t.Fatal("empty Outputs serves something")
	}
}
