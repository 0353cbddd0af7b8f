package notify

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

func TestTruncateUTF8CutsOnACharacterBoundary(t *testing.T) {
	s := "ab告警€😀" + strings.Repeat("界", 10) // 1-, 3-, 4-byte characters
	for limit := 0; limit <= len(s)+1; limit++ {
		for _, marker := range []string{"", "…", truncatedMarker} {
			got := truncateUTF8(s, limit, marker)
			if len(got) > limit && len(s) > limit {
				t.Fatalf("limit %d marker %q: %d bytes", limit, marker, len(got))
			}
			if !utf8.ValidString(got) {
				t.Fatalf("limit %d marker %q: invalid UTF-8 %q", limit, marker, got)
			}
			if len(s) <= limit && got != s {
				t.Fatalf("limit %d: cut a text that fits", limit)
			}
			if len(s) > limit && len(marker) <= limit && !strings.HasSuffix(got, marker) {
				t.Fatalf("limit %d: no marker in %q", limit, got)
			}
			// No more than 3 bytes (the rest of a character) are wasted.
			if len(s) > limit && len(marker) <= limit && len(got) < limit-3 {
				t.Fatalf("limit %d marker %q: only %d bytes used", limit, marker, len(got))
			}
		}
	}
}

func TestTruncateUTF8RepairsInvalidInput(t *testing.T) {
	got := truncateUTF8("ok\xff\xfe告警", 100, truncatedMarker)
	if !utf8.ValidString(got) {
		t.Errorf("%q is not valid UTF-8", got)
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{12, "12"}, {0, "0"}, {-3, "-3"}, {123.456, "123.456"}, {0.0526315789, "0.0526"}, {5234.56789, "5234.5679"}, {999999, "999999"}, {1e6, "1M"}, {6533230, "6.533M"}, {-2.5e9, "-2.5G"},
		{0.00012345, "0.0001234"}, {1e20, "100E"}, {math.NaN(), "NaN"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"},
	} {
		if got := FormatValue(tc.v); got != tc.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func render(t *testing.T, cfg ChannelConfig, opts TemplateOptions, b Batch) Message {
	t.Helper()
	if opts.ExternalURL == nil {
		opts.ExternalURL = mustURL(t, "http://callwatch.example:9099/")
	}
	tm, err := NewTemplates(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tm.Render(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRenderTitles(t *testing.T) {
	noTitle := firingBatch()
	for i := range noTitle.Alerts {
		noTitle.Alerts[i].Annotations = labels.EmptyLabels()
	}
	noSeverity := singleBatch()
	noSeverity.Rule.Severity = ""
	noSeverity.Alerts[0].Labels = labels.FromStrings("alertname", "LatencyAvgHigh")
	mixed := firingBatch()
	mixed.Alerts = append(mixed.Alerts, resolvedAlert(costAlert("gamma", 101)))
	for _, tc := range []struct {
		name, lang string
		b          Batch
		want       string
	}{
		{"the rules' common title annotation", "zh", firingBatch(), "[HIGH] TenantCost"},
		{"[SEVERITY] rule without one", "zh", noTitle, "[ERROR] TenantCost"},
		{"the rule's severity without a severity label", "en", func() Batch {
			b := singleBatch()
			b.Alerts[0].Labels = labels.FromStrings("alertname", "LatencyAvgHigh")
			return b
		}(), "[WARNING] LatencyAvgHigh"},
		{"[ALERT] without any severity", "en", noSeverity, "[ALERT] LatencyAvgHigh"},
		{"resolved in Chinese", "zh", resolvedBatch(), "[已恢复] [HIGH] TenantCost"},
		{"resolved in English", "en", resolvedBatch(), "[RESOLVED] [HIGH] TenantCost"},
		{"the firing title when some resolved", "en", mixed, "[HIGH] TenantCost"},
		{"a digest", "en", digestBatch(), "[callwatch] Alert digest: 4 alerts from 2 rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := render(t, ChannelConfig{Language: tc.lang}, TemplateOptions{}, tc.b).Title; got != tc.want {
				t.Errorf("title %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRenderMixedBatchSaysFiringThenResolved(t *testing.T) {
	b := firingBatch()
	b.Alerts = append(b.Alerts, resolvedAlert(costAlert("gamma", 101)))
	m := render(t, ChannelConfig{Language: "zh"}, TemplateOptions{}, b)
	i, j := strings.Index(m.Text, "触发告警"), strings.Index(m.Text, "**[已恢复] [HIGH] TenantCost**")
	if i < 0 || j < 0 || i > j {
		t.Errorf("want the firing part, then the resolved part:\n%s", m.Text)
	}
	contains(t, "text", m.Text, "规则 'TenantCost' 已恢复", "恢复时间: 2025-11-24T16:20:00Z", "租户: gamma")
}

func TestRenderUsesTheLocation(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600) // Asia/Shanghai, without needing tzdata
	m := render(t, ChannelConfig{}, TemplateOptions{Location: shanghai}, singleBatch())
	contains(t, "text", m.Text, "时间: 2025-11-25T00:00:00+08:00")
}

func TestRenderFormats(t *testing.T) {
	b := singleBatch()
	for _, tc := range []struct {
		f    Format
		want []string
	}{
		{FormatMarkdown, []string{"**[WARNING] LatencyAvgHigh**", "[全部告警](http://callwatch.example:9099/api/v1/alerts)"}},
		{FormatSlack, []string{"*[WARNING] LatencyAvgHigh*", "<http://callwatch.example:9099/api/v1/alerts|全部告警>"}},
		{FormatText, []string{"[WARNING] LatencyAvgHigh\n", "全部告警: http://callwatch.example:9099/api/v1/alerts"}},
	} {
		contains(t, fmt.Sprint("format ", tc.f), render(t, ChannelConfig{}, TemplateOptions{Format: tc.f}, b).Text, tc.want...)
	}
}

func TestRenderWithoutExternalURLHasNoLinks(t *testing.T) {
	tm, err := NewTemplates(ChannelConfig{}, TemplateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := tm.Render(singleBatch())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Text, "http") || strings.Contains(m.Text, "](") {
		t.Errorf("links without an external URL:\n%s", m.Text)
	}
}

func TestCustomTemplates(t *testing.T) {
	cfg := ChannelConfig{
		Name:             "ops",
		Template:         `{{ define "title" }}🔥 {{ .Rule }} x{{ len .Alerts }}{{ end }}{{ range .Alerts }}{{ .Labels.tenant_id }}={{ .Value }} {{ end }}`,
		ResolvedTemplate: `{{ range .Alerts }}{{ .Labels.tenant_id }} ok at {{ .ResolvedAt }}{{ end }}`,
	}
	b := firingBatch()
	b.Alerts = append(b.Alerts, resolvedAlert(costAlert("gamma", 101)))
	m := render(t, cfg, TemplateOptions{}, b)
	if m.Title != "🔥 TenantCost x2" || m.Text != "acme=123.456 beta=250\n\ngamma ok at 2025-11-24T16:20:00Z" {
		t.Errorf("got %q / %q", m.Title, m.Text)
	}

	digest := ChannelConfig{Template: `{{ define "digest" }}{{ .Total }} alerts{{ end }}body`}
	if m := render(t, digest, TemplateOptions{}, digestBatch()); m.Text != "4 alerts" {
		t.Errorf("custom digest %q", m.Text)
	}
}

func TestCustomTemplateErrors(t *testing.T) {
	_, err := New(ChannelConfig{Name: "ops-wecom", Type: "wecom", URL: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
		Template: "{{ .Alerts"}, Options{})
	if err == nil || !strings.Contains(err.Error(), `notifier "ops-wecom"`) || !strings.Contains(err.Error(), "template") {
		t.Errorf("parse error %v, want one naming the channel and template", err)
	}
	_, err = New(ChannelConfig{Name: "ops-wecom", Type: "wecom", URL: "https://x/", ResolvedTemplate: "{{ end }}"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "resolved_template") {
		t.Errorf("parse error %v, want one naming resolved_template", err)
	}

	// Executing fails (no such field): the built-in text is sent, with the error.
	m := render(t, ChannelConfig{Template: "{{ .NoSuchField }}"}, TemplateOptions{}, singleBatch())
	contains(t, "text", m.Text, "规则 'LatencyAvgHigh' 触发告警", "(template failed:", "NoSuchField")
}

func TestDigestStaysWithinWeComsLimit(t *testing.T) {
	var batches []Batch
	for r := range 40 {
		rule := &rulefmt.RuleSpec{Alert: fmt.Sprintf("Rule%02d", r), ExprText: "count_over_time(events[5m]) > 1", Severity: "critical"}
		var alerts []engine.Alert
		for i := range 30 {
			alerts = append(alerts, engine.Alert{
				Labels:  labels.FromStrings("alertname", rule.Alert, "severity", "critical", "tenant_id", fmt.Sprintf("租户-%03d", i)),
				Value:   float64(i),
				FiredAt: evalTime,
			})
		}
		batches = append(batches, Batch{Group: "g", Rule: rule, Time: evalTime, Alerts: alerts})
	}
	// The same batches again: the digest counts each alert once.
	batches = append(batches, batches...)
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url()}, Options{})
	if err := send(t, s, Batch{Digest: batches}); err != nil {
		t.Fatal(err)
	}
	var msg weComMarkdown
	decodeJSON(t, f.requests()[0].Body, &msg)
	c := msg.Markdown.Content
	if len(c) > 4096 || !utf8.ValidString(c) {
		t.Fatalf("digest is %d bytes", len(c))
	}
	contains(t, "digest", c, "告警摘要: 1200 条告警, 40 个规则", "**[CRITICAL] Rule00**: 触发 30", "…另有 27 条")
}

func TestNewChecksTheConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  ChannelConfig
		want string
	}{
		{ChannelConfig{Type: "wecom", URL: "https://x"}, "needs a name"},
		{ChannelConfig{Name: "a", Type: "pager"}, "unknown type"},
		{ChannelConfig{Name: "a", Type: "wecom", URL: "qyapi.weixin.qq.com"}, "http(s) URL"},
		{ChannelConfig{Name: "a", Type: "alertmanager"}, "list the Alertmanagers"},
		{ChannelConfig{Name: "a", Type: "webhook", URL: "http://x", Payload: "v2"}, "payload"},
	} {
		if _, err := New(tc.cfg, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", tc.cfg, err, tc.want)
		}
	}
	for _, typ := range Types {
		cfg := ChannelConfig{Name: typ, Type: typ, URL: "http://127.0.0.1:1/x", URLs: []string{"http://127.0.0.1:1"}}
		if _, err := New(cfg, Options{}); err != nil {
			t.Errorf("type %s: %v", typ, err)
		}
	}
}

func TestEmptyBatchesSendNothing(t *testing.T) {
	srv := newService(t, func(w http.ResponseWriter, _ request) { w.Write([]byte(`{"errcode":0,"code":0}`)) })
	for _, typ := range Types {
		s := newSender(t, ChannelConfig{Name: typ, Type: typ, URL: srv.URL, URLs: []string{srv.URL}}, Options{Out: io.Discard})
		for _, b := range []Batch{{Rule: costRule(), Time: evalTime}, {Digest: []Batch{{Rule: costRule()}}}} {
			if err := send(t, s, b); err != nil {
				t.Errorf("%s: %v", typ, err)
			}
		}
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests for empty batches", n)
	}
}
