package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the rule engine's self-metrics: Prometheus' rule metrics
// family under the callwatch_ namespace. A nil *Metrics records nothing.
type Metrics struct {
	evalTotal        *prometheus.CounterVec
	evalFailures     *prometheus.CounterVec
	iterations       *prometheus.CounterVec
	missedIterations *prometheus.CounterVec
	lastEvalTime     *prometheus.GaugeVec
	lastDuration     *prometheus.GaugeVec
	interval         *prometheus.GaugeVec
	rules            *prometheus.GaugeVec
	owned            *prometheus.GaugeVec
	reloadOK         prometheus.Gauge
	reloadTime       prometheus.Gauge
}

// NewMetrics creates and registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	groupVec := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "callwatch", Name: name, Help: help}, []string{"rule_group"})
	}
	counterVec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callwatch", Name: name, Help: help}, []string{"rule_group"})
	}
	m := &Metrics{
		evalTotal:        counterVec("rule_evaluations_total", "The total number of rule evaluations."),
		evalFailures:     counterVec("rule_evaluation_failures_total", "The total number of rule evaluation failures."),
		iterations:       counterVec("rule_group_iterations_total", "The total number of scheduled rule group evaluations, whether executed or missed."),
		missedIterations: counterVec("rule_group_iterations_missed_total", "The total number of rule group evaluations missed due to slow rule group evaluation."),
		lastEvalTime:     groupVec("rule_group_last_evaluation_timestamp_seconds", "The timestamp of the last rule group evaluation in seconds."),
		lastDuration:     groupVec("rule_group_last_duration_seconds", "The duration of the last rule group evaluation."),
		interval:         groupVec("rule_group_interval_seconds", "The interval of a rule group."),
		rules:            groupVec("rule_group_rules", "The number of rules."),
		owned:            groupVec("rule_group_owned", "1 when this replica evaluates the group, 0 when another replica does (ha.share_groups)."),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "callwatch", Name: "config_last_reload_successful",
			Help: "Whether the last rule reload attempt was successful."}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "callwatch", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful rule reload."}),
	}
	if reg != nil {
		reg.MustRegister(m.evalTotal, m.evalFailures, m.iterations, m.missedIterations, m.lastEvalTime,
			m.lastDuration, m.interval, m.rules, m.owned, m.reloadOK, m.reloadTime)
	}
	return m
}

func groupKey(g *Group) string { return g.File() + ";" + g.Name() }

func (m *Metrics) evalStarted(g *Group) {
	if m != nil {
		m.evalTotal.WithLabelValues(groupKey(g)).Inc()
	}
}

func (m *Metrics) evalFailed(g *Group) {
	if m != nil {
		m.evalFailures.WithLabelValues(groupKey(g)).Inc()
	}
}

func (m *Metrics) groupEvaluated(g *Group, ts time.Time, d time.Duration) {
	if m == nil {
		return
	}
	k := groupKey(g)
	m.iterations.WithLabelValues(k).Inc()
	m.lastEvalTime.WithLabelValues(k).Set(float64(ts.UnixNano()) / 1e9)
	m.lastDuration.WithLabelValues(k).Set(d.Seconds())
}

func (m *Metrics) missed(g *Group, n int64) {
	if m != nil {
		m.missedIterations.WithLabelValues(groupKey(g)).Add(float64(n))
		m.iterations.WithLabelValues(groupKey(g)).Add(float64(n))
	}
}

func (m *Metrics) groupsLoaded(groups []*Group, old []*Group) {
	if m == nil {
		return
	}
	for _, g := range old {
		k := groupKey(g)
		m.interval.DeleteLabelValues(k)
		m.rules.DeleteLabelValues(k)
		m.owned.DeleteLabelValues(k)
	}
	for _, g := range groups {
		k := groupKey(g)
		m.interval.WithLabelValues(k).Set(g.interval.Seconds())
		m.rules.WithLabelValues(k).Set(float64(len(g.rules)))
		m.setOwned(g, !g.Released())
		// A loaded group's counters exist from 0, as Prometheus' NewGroup
		// makes them: increase() over a group that never failed is 0, not
		// nothing, and a dashboard's failure panel is not empty.
		for _, c := range []*prometheus.CounterVec{m.evalTotal, m.evalFailures, m.missedIterations, m.iterations} {
			c.WithLabelValues(k)
		}
	}
}

func (m *Metrics) reloaded(ok bool, at time.Time) {
	if m == nil {
		return
	}
	if ok {
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(at.Unix()))
	} else {
		m.reloadOK.Set(0)
	}
}

func (m *Metrics) setOwned(g *Group, owned bool) {
	if m != nil {
		m.owned.WithLabelValues(groupKey(g)).Set(map[bool]float64{true: 1}[owned])
	}
}
