package exporter

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/promtest"
)

// latencyMix is the latency distribution of one phase of the end-to-end
// test, in milliseconds; the second phase doubles it, so that every bucket
// grows in the same proportion and Prometheus extrapolates every bucket's
// rate alike.
var latencyMix = []struct{ ms, n int }{{100, 2}, {400, 4}, {800, 3}, {3000, 1}}

// histogramQuantile is Prometheus' interpolation over classic buckets
// (promql bucketQuantile) applied to latencyMix with bounds.
func histogramQuantile(q float64, bounds []float64) float64 {
	cum := make([]float64, len(bounds))
	var total float64
	for _, m := range latencyMix {
		total += float64(m.n)
		for i, b := range bounds {
			if float64(m.ms)/1000 <= b {
				cum[i] += float64(m.n)
			}
		}
	}
	rank := q * total
	for i, b := range bounds {
		if cum[i] >= rank {
			lower, below := 0.0, 0.0
			if i > 0 {
				lower, below = bounds[i-1], cum[i-1]
			}
			return lower + (b-lower)*(rank-below)/(cum[i]-below)
		}
	}
	return math.NaN()
}

func TestPrometheusScrapesTheExporterFedByClickHouse(t *testing.T) {
	tb := newServerBackend(t, server.Get(t))
	reg := prometheus.NewRegistry()
	started := time.Now()
	rules := testRules(t, started, map[string][]engine.Sample{
		"sum by (tenant_id) (rate(events[5m]))":                                 {sample(0.25, "tenant_id", "acme")},
		`sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 10`: {sample(12, "tenant_id", "acme")},
	})
	// Counting starts 30s back, so that the test can insert rows behind the
	// watermark without waiting.
	e, err := New(Options{
		Config: config.Exporter{SafetyLag: new(dsl.Duration(0)), LateWindow: new(dsl.Duration(2 * time.Minute))},
		Conn:   tb.conn, Table: tb.table, Rules: rules, Start: started.Add(-30 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	// The handler web.Handler serves /metrics with.
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "http://")
	classic := promtest.Start(t, promtest.Options{Targets: []string{target}})
	native := promtest.Start(t, promtest.Options{Targets: []string{target}, EnableFeatures: []string{"native-histograms"}})

	update := func() {
		t.Helper()
		start := time.Now()
		mustUpdate(t, e, time.Now())
		t.Logf("update took %v", time.Since(start))
	}
	acme := func(at time.Time, ms int) event {
		return event{at: at, tenant: "acme", app: "chat", model: "gpt-4o", provider: "openai", status: "success",
			latencyMS: ms, inTokens: 100, outTokens: 20, cost: 0.01}
	}
	phase := func(at time.Time, times int) []event {
		var out []event
		for _, m := range latencyMix {
			for range m.n * times {
				out = append(out, acme(at, m.ms))
			}
		}
		return out
	}
	equals := func(want float64) func(promtest.Vector) bool {
		return func(v promtest.Vector) bool { return len(v) == 1 && v[0].Value == want }
	}

	// Phase 1: 10 calls of acme, 3 errors of beta.
	tb.insert(t, phase(started.Add(-20*time.Second), 1)...)
	tb.insert(t,
		event{at: started.Add(-20 * time.Second), tenant: "beta", app: "search", model: "qwen-max", provider: "dashscope", status: "error", latencyMS: 50},
		event{at: started.Add(-19 * time.Second), tenant: "beta", app: "search", model: "qwen-max", provider: "dashscope", status: "error", latencyMS: 60},
		event{at: started.Add(-18 * time.Second), tenant: "beta", app: "search", model: "qwen-max", provider: "dashscope", status: "error", latencyMS: 70})
	update()
	for _, p := range []*promtest.Server{classic, native} {
		p.WaitFor(t, `sum(callwatch_calls_total{tenant_id="acme"})`, equals(10))
	}

	// Phase 2: 20 more calls of acme, one of them inserted late, behind
	// the watermark (inside the late window), and two updates that re-read
	// it.
	calls := phase(time.Now(), 2)
	late := calls[len(calls)-1]
	late.at = started.Add(-10 * time.Second)
	tb.insert(t, calls[:len(calls)-1]...)
	update()
	tb.insert(t, late)
	update()
	update()
	for _, p := range []*promtest.Server{classic, native} {
		p.WaitFor(t, `sum(callwatch_calls_total{tenant_id="acme"})`, equals(30))
	}

	for _, c := range []struct {
		expr string
		want float64
	}{
		{`sum(callwatch_calls_total)`, 33},
		{`sum(callwatch_call_errors_total{tenant_id="beta"})`, 3},
		{`sum(callwatch_call_errors_total{tenant_id="acme"})`, 0},
		{`sum(callwatch_input_tokens_total{tenant_id="acme"})`, 3000},
		{`sum(callwatch_output_tokens_total)`, 600},
		{`callwatch_datasource_up`, 1},
		{`callwatch_exporter_collector_success{collector="events"}`, 1},
		{`tenant:calls:rate5m{tenant_id="acme"}`, 0.25},
		{`ALERTS{alertname="TenantErrorsHigh",alertstate="firing",tenant_id="acme"}`, 1},
		{`count(callwatch_build_info)`, 1},
	} {
		classic.WaitFor(t, c.expr, equals(c.want))
	}
	cost := classic.Query(t, `sum(callwatch_cost_total{tenant_id="acme"})`)
	if len(cost) != 1 || math.Abs(cost[0].Value-0.3) > 1e-9 {
		t.Errorf("sum(callwatch_cost_total{tenant_id=acme}) = %v, want 0.3", cost)
	}
	if v := classic.Query(t, `sum(increase(callwatch_calls_total{tenant_id="acme"}[5m]))`); len(v) != 1 || v[0].Value < 20 {
		t.Errorf("increase(callwatch_calls_total[5m]) = %v, want at least the 20 calls of phase 2", v)
	}

	// The classic buckets: the median and p95 of phase 2's calls, by
	// Prometheus' interpolation, exactly.
	for _, q := range []float64{0.5, 0.95} {
		expr := `histogram_quantile(` + strconv.FormatFloat(q, 'g', -1, 64) + `, sum by (le) (rate(callwatch_call_duration_seconds_bucket{tenant_id="acme"}[5m])))`
		want := histogramQuantile(q, config.DefaultDurationBuckets())
		v := classic.Query(t, expr)
		if len(v) != 1 || math.Abs(v[0].Value-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", expr, v, want)
		}
	}
	// The native buckets: the median of the calls (400ms) lies in the
	// native bucket (2^(-11/8), 2^(-10/8)] of schema 3.
	expr := `histogram_quantile(0.5, sum(rate(callwatch_call_duration_seconds{tenant_id="acme"}[5m])))`
	v := native.WaitFor(t, expr, func(v promtest.Vector) bool { return len(v) == 1 && !math.IsNaN(v[0].Value) })
	if lo, hi := math.Exp2(-11.0/8), math.Exp2(-10.0/8); v[0].Value <= lo || v[0].Value > hi {
		t.Errorf("%s = %v, want within (%v, %v]", expr, v[0].Value, lo, hi)
	}

	// promtool finds nothing wrong with the real exposition.
	start := time.Now()
	body := scrape(t, srv.URL)
	t.Logf("a scrape of %d bytes took %v", len(body), time.Since(start))
	checkMetrics(t, body, rules)
}

// checkMetrics runs promtool check metrics on an exposition. The one
// finding it may report is by design: recording-rule results keep their
// record names, and records are named level:metric:operation, with colons,
// which promtool reserves for recording rules — exactly what they are
// (Prometheus' own federation endpoint exposes them the same way).
func checkMetrics(t *testing.T, body []byte, rules Rules) {
	t.Helper()
	records := map[string]bool{}
	for _, g := range rules.Groups() {
		for _, r := range g.Rules() {
			if rr, ok := r.(*engine.RecordingRule); ok {
				records[rr.Name()] = true
			}
		}
	}
	out, err := promtest.Run(t, body, "check", "metrics")
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, finding, _ := strings.Cut(l, " ")
		if l == "" || (records[name] && finding == "metric names should not contain ':'") {
			continue
		}
		problems = append(problems, l)
	}
	if len(problems) > 0 || (err != nil && len(out) == 0) {
		t.Errorf("promtool check metrics: %v\n%s", err, strings.Join(problems, "\n"))
	}
}

// scrape GETs /metrics in the text format, as promtool reads it.
func scrape(t *testing.T, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
	}
	return body
}
