package config

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/common/model"

	"github.com/callwatch/callwatch/dsl"
)

// Exporter is the exporter's section of callwatch's configuration file
// (`exporter:`), the settings the exporter package consumes. It lives here,
// not in the exporter, so that reading the configuration knows no adapter's
// internals. The zero value means every default; SetDefaults fills them in
// and Validate checks the result without I/O.
type Exporter struct {
	// Interval is how often the background updater reads new events
	// (default 15s).
	Interval dsl.Duration `yaml:"interval"`
	// LateWindow is how far behind the watermark each update re-reads, so
	// that a row inserted up to this long after its event time is still
	// counted, once (default 2m; 0 re-reads nothing).
	LateWindow *dsl.Duration `yaml:"late_window"`
	// SafetyLag keeps the newest seconds out of an update: the upper bound
	// of the events read is now minus this (default 5s).
	SafetyLag *dsl.Duration `yaml:"safety_lag"`
	// QueryTimeout bounds each of the exporter's queries (default 10s).
	QueryTimeout dsl.Duration `yaml:"query_timeout"`
	// Labels are the label columns the call metrics carry. Omitted means
	// those of tenant_id, app_code, model, provider and status that the
	// schema maps.
	Labels []string `yaml:"labels"`
	// LabelLimit caps how many distinct values each label may have; the
	// values beyond it are folded into "other" (default 100).
	LabelLimit int `yaml:"label_limit"`
	// LabelLimits overrides LabelLimit per label.
	LabelLimits map[string]int `yaml:"label_limits"`
	// CardinalityLookback is the window over which the values of a capped
	// label are ranked by number of calls (default 1h).
	CardinalityLookback dsl.Duration `yaml:"cardinality_lookback"`
	// CardinalityRefresh is how often the ranking, and the count of folded
	// values, is refreshed (default 10m).
	CardinalityRefresh dsl.Duration `yaml:"cardinality_refresh"`
	// DurationBuckets are the upper bounds, in seconds, of the classic
	// buckets of callwatch_call_duration_seconds (default 50ms to 5m).
	DurationBuckets []float64 `yaml:"duration_buckets"`
	// NativeHistogram adds native (sparse) buckets to the duration
	// histogram, served in the protobuf exposition (default true).
	NativeHistogram *bool `yaml:"native_histogram"`
	// NativeHistogramSchema is the native histogram's resolution, -4 to 8:
	// each bucket is 2^(2^-schema) times wider than the previous one
	// (default 3, a growth factor of about 1.09, like client_golang's
	// NativeHistogramBucketFactor 1.1).
	NativeHistogramSchema *int `yaml:"native_histogram_schema"`
	// StatusLabel is the label column holding a call's outcome; calls
	// whose StatusLabel equals ErrorStatus count as errors (default status).
	StatusLabel string `yaml:"status_label"`
	// ErrorStatus is the status of a failed call (default error).
	ErrorStatus string `yaml:"error_status"`
	// CostCurrency is the currency of the cost column, written in the HELP
	// of callwatch_cost_total (default CNY).
	CostCurrency string `yaml:"cost_currency"`
}

// DefaultExporterLabels returns the labels exported when Exporter.Labels is omitted,
// if the schema maps them.
func DefaultExporterLabels() []string {
	return []string{"tenant_id", "app_code", "model", "provider", "status"}
}

// DefaultDurationBuckets returns the default classic buckets of the call
// duration histogram, in seconds: LLM calls take from tens of milliseconds
// (cached or tiny completions) to minutes (long generations, reasoning
// models).
func DefaultDurationBuckets() []float64 {
	return []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}
}

// DefaultExporter returns an Exporter with every default filled in.
func DefaultExporter() Exporter {
	var c Exporter
	c.SetDefaults()
	return c
}

// SetDefaults fills in the defaults of the fields left empty. Labels stays
// nil when omitted: the exporter then picks DefaultLabels present in the
// schema, which only the exporter knows.
func (c *Exporter) SetDefaults() {
	setDuration := func(d *dsl.Duration, def time.Duration) {
		if *d == 0 {
			*d = dsl.Duration(def)
		}
	}
	setDuration(&c.Interval, 15*time.Second)
	if c.LateWindow == nil {
		c.LateWindow = new(dsl.Duration(2 * time.Minute))
	}
	if c.SafetyLag == nil {
		c.SafetyLag = new(dsl.Duration(5 * time.Second))
	}
	setDuration(&c.QueryTimeout, 10*time.Second)
	setDuration(&c.CardinalityLookback, time.Hour)
	setDuration(&c.CardinalityRefresh, 10*time.Minute)
	if c.LabelLimit == 0 {
		c.LabelLimit = 100
	}
	if c.DurationBuckets == nil {
		c.DurationBuckets = DefaultDurationBuckets()
	}
	if c.NativeHistogram == nil {
		c.NativeHistogram = new(true)
	}
	if c.NativeHistogramSchema == nil {
		c.NativeHistogramSchema = new(3)
	}
	if c.StatusLabel == "" {
		c.StatusLabel = "status"
	}
	if c.ErrorStatus == "" {
		c.ErrorStatus = "error"
	}
	if c.CostCurrency == "" {
		c.CostCurrency = "CNY"
	}
}

// Validate checks the configuration, with defaults applied, against the
// schema of the events table. It does no I/O.
func (c *Exporter) Validate(schema dsl.Schema) error {
	positive := []struct {
		key string
		d   dsl.Duration
	}{
		{"interval", c.Interval}, {"query_timeout", c.QueryTimeout},
		{"cardinality_lookback", c.CardinalityLookback}, {"cardinality_refresh", c.CardinalityRefresh},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("exporter.%s: must be positive, e.g. %s", p.key, model.Duration(exporterDefault(p.key)))
		}
	}
	if *c.LateWindow < 0 {
		return fmt.Errorf("exporter.late_window: must not be negative; 0 disables re-reading late rows")
	}
	if *c.SafetyLag < 0 {
		return fmt.Errorf("exporter.safety_lag: must not be negative")
	}
	seen := map[string]bool{}
	for _, l := range c.Labels {
		if !schema.IsLabel(l) {
			return fmt.Errorf("exporter.labels: %q is not a label column; list columns of schema.labels (%v)", l, schema.Labels)
		}
		if seen[l] {
			return fmt.Errorf("exporter.labels: %q is listed twice", l)
		}
		if l == "le" {
			return fmt.Errorf("exporter.labels: %q is the bucket label of histograms; rename the column in schema.labels", l)
		}
		seen[l] = true
	}
	if c.LabelLimit < 1 {
		return fmt.Errorf("exporter.label_limit: must be at least 1, e.g. 100")
	}
	names := make([]string, 0, len(c.LabelLimits))
	for l := range c.LabelLimits {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		if !schema.IsLabel(l) {
			return fmt.Errorf("exporter.label_limits: %q is not a label column of schema.labels", l)
		}
		if c.LabelLimits[l] < 1 {
			return fmt.Errorf("exporter.label_limits.%s: must be at least 1", l)
		}
	}
	if len(c.DurationBuckets) == 0 {
		return fmt.Errorf("exporter.duration_buckets: list at least one upper bound in seconds, e.g. [0.1, 1, 10, 60]")
	}
	for i, b := range c.DurationBuckets {
		if math.IsNaN(b) || math.IsInf(b, 0) {
			return fmt.Errorf("exporter.duration_buckets: %v is not a finite number of seconds (+Inf is implicit)", b)
		}
		if i > 0 && b <= c.DurationBuckets[i-1] {
			return fmt.Errorf("exporter.duration_buckets: bounds must increase; %v follows %v", b, c.DurationBuckets[i-1])
		}
	}
	if s := *c.NativeHistogramSchema; s < -4 || s > 8 {
		return fmt.Errorf("exporter.native_histogram_schema: %d is outside -4..8", s)
	}
	if !schema.IsLabel(c.StatusLabel) {
		return fmt.Errorf("exporter.status_label: %q is not a label column of schema.labels", c.StatusLabel)
	}
	return nil
}

// exporterDefault returns the default of a duration key, for error messages.
func exporterDefault(key string) time.Duration {
	d := DefaultExporter()
	switch key {
	case "interval":
		return d.Interval.D()
	case "query_timeout":
		return d.QueryTimeout.D()
	case "cardinality_lookback":
		return d.CardinalityLookback.D()
	}
	return d.CardinalityRefresh.D()
}

// Limit returns the value cap of label l: its LabelLimits entry, else
// LabelLimit.
func (c *Exporter) Limit(l string) int {
	if n, ok := c.LabelLimits[l]; ok {
		return n
	}
	return c.LabelLimit
}
