package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/rulefmt"
)

// RecordingRule evaluates its expression and keeps the result as a series
// named Record, readable by later rules of its group at the same timestamp
// and exported on /metrics.
type RecordingRule struct {
	ruleState
	spec *rulefmt.RuleSpec

	mu   sync.Mutex
	last []Sample
	at   time.Time
}

// NewRecordingRule returns a recording rule for spec.
func NewRecordingRule(spec *rulefmt.RuleSpec) *RecordingRule { return &RecordingRule{spec: spec} }

// Spec returns the rule as written.
func (r *RecordingRule) Spec() *rulefmt.RuleSpec { return r.spec }

// Name returns the recorded series name.
func (r *RecordingRule) Name() string { return r.spec.Record }

// Samples returns the last result (labels include __name__) and its time.
func (r *RecordingRule) Samples() ([]Sample, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sample(nil), r.last...), r.at
}

// eval evaluates the rule at env.ts and keeps its result, which it returns
// as the series later rules of the group read.
func (r *RecordingRule) eval(ctx context.Context, env evalEnv) (ruleOutput, error) {
	err := r.evalSeries(ctx, env)
	out := ruleOutput{record: r.spec.Record}
	if err == nil {
		out.recorded, _ = r.Samples()
	}
	return out, err
}

func (r *RecordingRule) evalSeries(ctx context.Context, env evalEnv) error {
	start := time.Now()
	res, err := env.query(ctx, r.spec.Expr, env.queryTS, env.series)
	rec := EvalRecord{Time: env.ts, Statements: res.Statements, Paths: res.Paths, NoData: res.NoData}
	defer func() {
		rec.Duration = time.Since(start)
		r.record(rec, err)
	}()
	if err != nil {
		return err
	}
	vec := res.Vector
	if res.IsScalar {
		vec = []Sample{{Labels: labels.EmptyLabels(), Value: res.Scalar}}
	}
	out := make([]Sample, 0, len(vec))
	seen := map[uint64]bool{}
	for _, s := range vec {
		lb := labels.NewBuilder(s.Labels)
		lb.Set(model.MetricNameLabel, r.spec.Record)
		for k, v := range env.groupLabels {
			lb.Set(k, v)
		}
		for k, v := range r.spec.Labels {
			lb.Set(k, v)
		}
		l := lb.Labels()
		if seen[l.Hash()] {
			err = fmt.Errorf("vector contains metrics with the same labelset after applying rule labels: %s", l)
			return err
		}
		seen[l.Hash()] = true
		out = append(out, Sample{Labels: l, Value: s.Value})
	}
	if env.limit > 0 && len(out) > env.limit {
		err = fmt.Errorf("exceeded limit of %d with %d series", env.limit, len(out))
		return err
	}
	rec.Samples = len(out)
	r.mu.Lock()
	r.last, r.at = out, env.ts
	r.mu.Unlock()
	return nil
}
