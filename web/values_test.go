package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/notify"
)

// valueRules fire with values of several sizes, each summary writing its
// value with the templates' humanize, as rules.d's do.
const valueRules = `groups:
- name: values
  interval: 1m
  rules:
  - alert: TenantTokens
    expr: sum by (tenant_id) (sum_over_time(input_tokens[1d])) > 1000000
    annotations:
      summary: "{{ $labels.tenant_id }} used {{ $value | humanize }} tokens"
  - alert: TenantLatency
    expr: max by (tenant_id) (avg_over_time(latency_ms[5m])) > 3000
    annotations:
      summary: "{{ $labels.tenant_id }}: {{ $value }} ms"
`

func TestPageWritesValuesAsTheNotificationsDo(t *testing.T) {
	base := time.Unix(1764000000, 0).UTC()
	store := memory.New(dsl.Schema{})
	store.Add(
		memory.Event{Time: base, Labels: []string{"acme", "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"input_tokens": 6533230, "latency_ms": 100}},
		memory.Event{Time: base, Labels: []string{"globex", "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"input_tokens": 10, "latency_ms": 3456.789}},
	)
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(valueRules), 0o644); err != nil {
		t.Fatal(err)
	}
	audit := &memAudit{}
	now := base.Add(30 * time.Second)
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	mgr := engine.NewManager(engine.ManagerOptions{
		GroupOptions: engine.GroupOptions{Query: q.QueryWith, Audit: audit},
		RuleFiles:    []string{file}, RestoreWindow: -1, Now: func() time.Time { return now },
	})
	ctx := context.Background()
	if err := mgr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	for _, g := range mgr.Groups() {
		g.Eval(ctx, now)
	}
	opts := Options{Rules: mgr, Actions: mgr, History: audit, QueryRange: q.QueryRange, Now: func() time.Time { return now }}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", PageHandler(opts))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, body := fetch(t, browser(t), srv.URL+"/")
	firing, history := section(body, "firing"), section(body, "history")

	for _, tc := range []struct {
		name, tenant string
		value        float64
		want         string
	}{
		// 6533230 tokens: the summary's humanize says 6.533M, and so
		// does the value column, not 6.53323e+06.
		{"a count of millions is written with its prefix", "acme", 6533230, "6.533M"},
		// A latency keeps its digits, as the baseline's messages wrote it.
		{"a latency keeps its digits", "globex", 3456.789, "3456.789"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := notify.FormatValue(tc.value); got != tc.want {
				t.Fatalf("notify.FormatValue(%v) = %q, want %q", tc.value, got, tc.want)
			}
			if !strings.Contains(firing, "<code>"+tc.want+"</code>") {
				t.Errorf("the firing alerts do not show %s's value as <code>%s</code>:\n%s", tc.tenant, tc.want, firing)
			}
			if !strings.Contains(history, "value "+tc.want) {
				t.Errorf("the audit history does not show %s's value as %q:\n%s", tc.tenant, tc.want, history)
			}
		})
	}
	t.Run("the summary and the value column agree", func(t *testing.T) {
		if !strings.Contains(firing, "acme used 6.533M tokens") {
			t.Errorf("no humanized summary:\n%s", firing)
		}
	})
	// Each series here has one point, drawn as a dot: its colour once
	// failed the template, and the page ended in the middle of the chart.
	t.Run("a chart of lone points does not end the page", func(t *testing.T) {
		if !strings.Contains(body, `fill="#`) || !strings.Contains(body, "</html>") {
			t.Fatalf("the page ends with …%s", body[max(0, len(body)-300):])
		}
	})
	t.Run("the chart's threshold is written as the value is", func(t *testing.T) {
		_, row, _ := strings.Cut(body, `id="`+engine.RuleAnchor("values", "TenantTokens")+`"`)
		row, _, _ = strings.Cut(row, "</tr>")
		if !strings.Contains(row, "&gt; 1M") {
			t.Errorf("the chart of TenantTokens does not label its threshold \"> 1M\":\n%s", row)
		}
	})
	t.Run("no value is written in exponent notation", func(t *testing.T) {
		for _, raw := range []string{"e+0", "e+1", "e-0"} {
			if strings.Contains(body, raw) {
				i := strings.Index(body, raw)
				t.Errorf("the page writes %q: …%s…", raw, body[max(0, i-60):min(len(body), i+20)])
			}
		}
	})
}
