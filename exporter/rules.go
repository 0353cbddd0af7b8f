package exporter

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
)

// Rules gives the running rule groups; *engine.Manager is one.
type Rules interface {
	Groups() []*engine.Group
}

var _ Rules = (*engine.Manager)(nil)

// reservedPrefixes are metric name prefixes a recording rule's output may
// not be exported under: callwatch's own namespace, and the families of the
// Go and process collectors registered beside the exporter. A clash would
// make the whole scrape fail, so such samples are skipped instead.
var reservedPrefixes = []string{"callwatch_", "go_", "process_", "promhttp_"}

// rulesCollector exports the rule engine's in-memory results: the last
// output of every recording rule as gauges (name = record, labels as they
// are) and the ALERTS and ALERTS_FOR_STATE series of the alerting rules, as
// Prometheus exposes them.
//
// It is an unchecked collector (Describe sends nothing): its metric names
// come from the rule files and change on reload. It never fails the scrape:
// a sample it cannot export (a reserved name, a label set already exported,
// invalid labels) is skipped, and callwatch_exporter_collector_success
// {collector="rules"} is 0 for that scrape.
type rulesCollector struct {
	rules Rules
	d     *descs
}

var _ prometheus.Collector = (*rulesCollector)(nil)

// Describe sends nothing: the collector is unchecked.
func (c *rulesCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the rule results.
func (c *rulesCollector) Collect(ch chan<- prometheus.Metric) {
	start := time.Now()
	ok := true
	seen := map[uint64]bool{}
	emit := func(lset labels.Labels, value float64, help string) {
		name := lset.Get(model.MetricNameLabel)
		if name == "" || reserved(name) || seen[lset.Hash()] {
			ok = false
			return
		}
		var names, values []string
		lset.Range(func(l labels.Label) {
			if l.Name != model.MetricNameLabel {
				names = append(names, l.Name)
				values = append(values, l.Value)
			}
		})
		m, err := prometheus.NewConstMetric(prometheus.NewDesc(name, help, names, nil), prometheus.GaugeValue, value, values...)
		if err != nil {
			ok = false
			return
		}
		seen[lset.Hash()] = true
		ch <- m
	}
	for _, g := range c.rules.Groups() {
		for _, r := range g.Rules() {
			rr, isRecording := r.(*engine.RecordingRule)
			if !isRecording {
				continue
			}
			samples, _ := rr.Samples()
			for _, s := range samples {
				if n := s.Labels.Get(model.MetricNameLabel); n == "ALERTS" || n == "ALERTS_FOR_STATE" {
					ok = false // the alerting rules' series
					continue
				}
				emit(s.Labels, s.Value, "Last result of the recording rule "+s.Labels.Get(model.MetricNameLabel)+".")
			}
		}
		for _, s := range g.AlertSamples() {
			help := "Pending and firing alerts of callwatch's alerting rules (1 per alert), as Prometheus' ALERTS."
			if s.Metric.Get(model.MetricNameLabel) == "ALERTS_FOR_STATE" {
				help = "The time (unix seconds) each pending or firing alert became active, as Prometheus' ALERTS_FOR_STATE."
			}
			emit(s.Metric, s.F, help)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.d.collectorSuccess, prometheus.GaugeValue, boolFloat(ok), "rules")
	ch <- prometheus.MustNewConstMetric(c.d.collectorDuration, prometheus.GaugeValue, time.Since(start).Seconds(), "rules")
}

func reserved(name string) bool {
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
