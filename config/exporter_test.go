package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

// decodeExporter decodes an exporter section strictly, as config.Parse does.
func decodeExporter(t *testing.T, data string) (Exporter, error) {
	t.Helper()
	var c Exporter
	dec := yaml.NewDecoder(bytes.NewReader([]byte(data)))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	return c, err
}

func TestTheZeroExporterSectionMeansTheDefaults(t *testing.T) {
	c := Exporter{}
	c.SetDefaults()
	if err := c.Validate(dsl.DefaultSchema()); err != nil {
		t.Fatal(err)
	}
	want := DefaultExporter()
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("SetDefaults = %+v, want %+v", c, want)
	}
	for name, got := range map[string]time.Duration{
		"interval": c.Interval.D(), "late_window": c.LateWindow.D(), "safety_lag": c.SafetyLag.D(),
		"query_timeout": c.QueryTimeout.D(), "cardinality_lookback": c.CardinalityLookback.D(), "cardinality_refresh": c.CardinalityRefresh.D(),
	} {
		wantD := map[string]time.Duration{"interval": 15 * time.Second, "late_window": 2 * time.Minute, "safety_lag": 5 * time.Second,
			"query_timeout": 10 * time.Second, "cardinality_lookback": time.Hour, "cardinality_refresh": 10 * time.Minute}[name]
		if got != wantD {
			t.Errorf("%s = %v, want %v", name, got, wantD)
		}
	}
	if c.LabelLimit != 100 || !*c.NativeHistogram || *c.NativeHistogramSchema != 3 || c.StatusLabel != "status" ||
		c.ErrorStatus != "error" || c.CostCurrency != "CNY" || c.Labels != nil || len(c.DurationBuckets) != 13 {
		t.Errorf("defaults = %+v", c)
	}
}

func TestAFullExporterSectionDecodesStrictly(t *testing.T) {
	data, err := os.ReadFile("testdata/exporter.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := decodeExporter(t, string(data))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(dsl.DefaultSchema()); err != nil {
		t.Fatal(err)
	}
	if c.LateWindow.D() != 5*time.Minute || c.SafetyLag.D() != 0 || c.Limit("tenant_id") != 500 || c.Limit("status") != 50 ||
		*c.NativeHistogram || *c.NativeHistogramSchema != 2 || c.ErrorStatus != "failed" || c.CostCurrency != "USD" {
		t.Errorf("decoded %+v", c)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "late_window: 5m") {
		t.Errorf("durations do not print in Prometheus' notation:\n%s", out)
	}
}

func TestExporterErrorsSayWhatToWrite(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"an unknown key is an error", "intervall: 15s", "field intervall not found"},
		{"a bad duration names its line", "interval: 15s\nlate_window: soon", `line 2: "soon" is not a duration`},
		{"a label must be a label column", "labels: [tenant_id, latency_ms]", `exporter.labels: "latency_ms" is not a label column`},
		{"a label is listed once", "labels: [model, model]", `"model" is listed twice`},
		{"a label limit must be positive", "label_limits: {tenant_id: 0}", "exporter.label_limits.tenant_id: must be at least 1"},
		{"a label limit names a label", "label_limits: {tenant: 5}", `exporter.label_limits: "tenant" is not a label column`},
		{"buckets must increase", "duration_buckets: [1, 0.5]", "bounds must increase; 0.5 follows 1"},
		{"buckets are finite", "duration_buckets: [1, .inf]", "is not a finite number"},
		{"the native schema is -4..8", "native_histogram_schema: 9", "outside -4..8"},
		{"the status label is a label column", "status_label: outcome", `exporter.status_label: "outcome" is not a label column`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeExporter(t, tc.yaml)
			if err == nil {
				c.SetDefaults()
				err = c.Validate(dsl.DefaultSchema())
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNegativeExporterDurationsFromCodeAreRejected(t *testing.T) {
	// YAML cannot write a negative duration; an Exporter built in Go can.
	for _, tc := range []struct {
		c    Exporter
		want string
	}{
		{Exporter{QueryTimeout: dsl.Duration(-time.Second)}, "exporter.query_timeout: must be positive, e.g. 10s"},
		{Exporter{LateWindow: new(dsl.Duration(-time.Minute))}, "exporter.late_window: must not be negative"},
		{Exporter{SafetyLag: new(dsl.Duration(-time.Second))}, "exporter.safety_lag: must not be negative"},
		{Exporter{LabelLimit: -1}, "exporter.label_limit: must be at least 1"},
	} {
		tc.c.SetDefaults()
		if err := tc.c.Validate(dsl.DefaultSchema()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
