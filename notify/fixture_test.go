package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/golden"
	"github.com/callwatch/callwatch/rulefmt"
)

// evalTime is the evaluation the sample batches come from.
var evalTime = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

// sendTime is the sender's clock in tests (sentAt, signatures).
var sendTime = evalTime.Add(1500 * time.Millisecond)

func fixedNow() time.Time { return sendTime }

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// costRule is rules.d/baseline.yaml's TenantCost, as the loader returns it.
func costRule() *rulefmt.RuleSpec {
	return &rulefmt.RuleSpec{
		Alert:    "TenantCost",
		ExprText: "sum by (tenant_id) (sum_over_time(cost[1d])) > 100",
		Severity: "error",
		Labels:   map[string]string{"alert_type": "cost_threshold"},
		Annotations: map[string]string{
			"title":   "[HIGH] TenantCost",
			"message": "规则 'TenantCost' 触发告警\n当前值: ¥{{ printf \"%.2f\" $value }}\n阈值: ¥100.00\n租户: {{ $labels.tenant_id }}",
			"summary": "tenant {{ $labels.tenant_id }} spent ¥{{ printf \"%.2f\" $value }} today (threshold ¥100)",
		},
	}
}

// costAlert is one alert of costRule with its annotations expanded.
func costAlert(tenant string, value float64) engine.Alert {
	v := FormatValue(value)
	return engine.Alert{
		State: engine.StateFiring,
		Labels: labels.FromStrings("alertname", "TenantCost", "alert_type", "cost_threshold",
			"severity", "error", "tenant_id", tenant),
		Annotations: labels.FromStrings(
			"title", "[HIGH] TenantCost",
			"message", "规则 'TenantCost' 触发告警\n当前值: ¥"+v+"\n阈值: ¥100.00\n租户: "+tenant,
			"summary", "tenant "+tenant+" spent ¥"+v+" today (threshold ¥100)",
			"threshold", "¥100.00",
		),
		Value:      value,
		ActiveAt:   evalTime.Add(-2 * time.Minute),
		FiredAt:    evalTime,
		LastSentAt: evalTime,
		ValidUntil: evalTime.Add(4 * time.Minute),
	}
}

// resolvedAlert is a copy of a resolved at evalTime+20m.
func resolvedAlert(a engine.Alert) engine.Alert {
	a.State = engine.StateInactive
	a.ResolvedAt = evalTime.Add(20 * time.Minute)
	a.LastSentAt = a.ResolvedAt
	a.ValidUntil = a.ResolvedAt.Add(4 * time.Minute)
	return a
}

// firingBatch has two tenants over budget.
func firingBatch() Batch {
	return Batch{
		Group: "baseline-volume", Rule: costRule(), Time: evalTime,
		Alerts: []engine.Alert{costAlert("acme", 123.456), costAlert("beta", 250)},
	}
}

// singleBatch has one alert of a rule without annotations: the generated texts.
func singleBatch() Batch {
	rule := &rulefmt.RuleSpec{Alert: "LatencyAvgHigh", ExprText: "avg_over_time(latency_ms[5m]) > 3000", Severity: "warning"}
	a := engine.Alert{
		State:    engine.StateFiring,
		Labels:   labels.FromStrings("alertname", "LatencyAvgHigh", "severity", "warning", "app_code", "chat"),
		Value:    3456.789,
		ActiveAt: evalTime.Add(-2 * time.Minute), FiredAt: evalTime, ValidUntil: evalTime.Add(4 * time.Minute),
	}
	return Batch{Group: "baseline-latency", Rule: rule, Time: evalTime, Alerts: []engine.Alert{a}}
}

// resolvedBatch has acme resolved.
func resolvedBatch() Batch {
	b := firingBatch()
	b.Time = evalTime.Add(20 * time.Minute)
	b.Alerts = []engine.Alert{resolvedAlert(b.Alerts[0])}
	return b
}

// digestBatch folds three batches of two rules.
func digestBatch() Batch {
	return Batch{Time: evalTime.Add(20 * time.Minute), Digest: []Batch{firingBatch(), singleBatch(), resolvedBatch()}}
}

// request is one request a fake service received.
type request struct {
	Method string
	Path   string
	Query  url.Values
	// RawQuery is the query string as sent.
	RawQuery string
	Header   http.Header
	Body     []byte
}

// service is a fake HTTP service: handle answers each request, and every
// request is recorded.
type service struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	handle func(w http.ResponseWriter, r request)
}

func newService(t *testing.T, handle func(w http.ResponseWriter, r request)) *service {
	s := &service{handle: handle}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		handle := s.handle
		s.mu.Unlock()
		handle(w, req)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *service) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// newSender builds a sender for tests, failing the test on error.
func newSender(t *testing.T, cfg ChannelConfig, opts Options) Sender {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	if opts.ExternalURL == nil {
		opts.ExternalURL = mustURL(t, "http://callwatch.example:9099")
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// goldenBodies compares the JSON bodies of reqs, indented, with a golden file.
func goldenBodies(t *testing.T, name string, reqs []request) {
	t.Helper()
	var out bytes.Buffer
	for _, r := range reqs {
		if err := json.Indent(&out, r.Body, "", "  "); err != nil {
			t.Fatalf("body is not JSON: %v: %s", err, r.Body)
		}
		out.WriteString("\n")
	}
	golden.Compare(t, filepath.Join("testdata", name), out.Bytes())
}

// classify describes an error the way the dispatcher sees it.
func classify(err error) string {
	if err == nil {
		return "ok"
	}
	var re *RetryableError
	if errors.As(err, &re) {
		if re.After > 0 {
			return "retry after " + re.After.String()
		}
		return "retry"
	}
	return "permanent"
}

func send(t *testing.T, s Sender, b Batch) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Send(ctx, b)
}

func decodeJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}

func nan() float64 { return math.NaN() }

// appendLabel returns ls with name set to value.
func appendLabel(ls labels.Labels, name, value string) labels.Labels {
	b := labels.NewBuilder(ls)
	b.Set(name, value)
	return b.Labels()
}
