package engine

import (
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// DefaultOutputLookback is how long after its evaluation a rule's output
// answers a query: Prometheus' default lookback delta.
const DefaultOutputLookback = 5 * time.Minute

// Outputs serves what the rules produce — recording-rule series, ALERTS and
// ALERTS_FOR_STATE — to ad-hoc queries, by name. Rules keep only their last
// evaluation, so a series answers at times from that evaluation to
// Lookback after it, as a scraped sample would in Prometheus; earlier
// times have no value (a recording rule's expression, queried directly,
// has its full history).
type Outputs struct {
	// Groups returns the running groups.
	Groups func() []*Group
	// Lookback is how long an evaluation's output stays current
	// (default DefaultOutputLookback).
	Lookback time.Duration
}

var _ SeriesSource = Outputs{}

// Names returns the names of the series the rules produce, sorted:
// recording rules' records, and ALERTS and ALERTS_FOR_STATE when there is
// an alerting rule.
func (o Outputs) Names() []string {
	var out []string
	if o.Groups == nil {
		return nil
	}
	for _, g := range o.Groups() {
		for _, r := range g.Rules() {
			switch r := r.(type) {
			case *RecordingRule:
				out = append(out, r.Name())
			case *AlertingRule:
				out = append(out, "ALERTS", "ALERTS_FOR_STATE")
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Has reports whether name is a series the rules produce.
func (o Outputs) Has(name string) bool {
	_, found := slices.BinarySearch(o.Names(), name)
	return found
}

// Series returns the samples of the named output current at ts, with
// their __name__.
func (o Outputs) Series(name string, ts time.Time) []Sample {
	if o.Groups == nil {
		return nil
	}
	lookback := o.Lookback
	if lookback <= 0 {
		lookback = DefaultOutputLookback
	}
	current := func(at time.Time) bool { return !at.IsZero() && !ts.Before(at) && ts.Sub(at) < lookback }
	var out []Sample
	for _, g := range o.Groups() {
		if name == "ALERTS" || name == "ALERTS_FOR_STATE" {
			for _, s := range g.AlertSamples() {
				if s.Metric.Get(model.MetricNameLabel) == name && current(time.UnixMilli(s.T)) {
					out = append(out, Sample{Labels: s.Metric, Value: s.F})
				}
			}
			continue
		}
		for _, r := range g.Rules() {
			if rr, ok := r.(*RecordingRule); ok && rr.Name() == name {
				samples, at := rr.Samples()
				if current(at) {
					out = append(out, samples...)
				}
			}
		}
	}
	return out
}
