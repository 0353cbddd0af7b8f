package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// TestServeSendsEvidence runs `callwatch serve` on a table with a
// request-id column and a rule with evidence: the console notification of
// the firing alert carries the error codes and the latest calls behind it,
// and so does the firing row of the audit table.
func TestServeSendsEvidence(t *testing.T) {
	s := server.Get(t)
	schema := dsl.DefaultSchema()
	schema.RequestID = "request_id"
	now := time.Now().UTC()
	var rows []map[string]any
	for i, code := range []string{"rate_limited", "rate_limited", "rate_limited", "timeout", "<@all> **x**"} {
		rows = append(rows, map[string]any{"created_at": now.Add(-time.Duration(i) * time.Second), "tenant_id": "acme", "status": "error",
			"error_code": code, "model": "gpt-4o", "latency_ms": 100, "request_id": fmt.Sprintf("req-%d", i)})
	}
	rows = append(rows, map[string]any{"created_at": now, "tenant_id": "acme", "status": "ok", "request_id": "req-ok"})
	db := eventsTable(t, s, "ai_call_events", schema, rows)
	const rules = `groups:
  - name: e2e
    interval: 1s
    rules:
      - alert: ErrorBurst
        expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 2
        evidence:
          top: [error_code, model]
          examples: 2
`
	// request_id alone keeps the baseline table's time, labels and fields.
	base, _, out := serveOn(t, s, db, rules, "schema:\n  request_id: request_id\n")
	waitFor(t, "the console notification with evidence", 15*time.Second, func() bool {
		return strings.Contains(out.String(), "status=firing rule=ErrorBurst")
	})
	// The console speaks Chinese by default; ties are in byte order.
	if line := out.String(); !containsAll(line, `evidence="佐证: 最近 5m 内 count_over_time(events{status=\"error\"}[5m]) (tenant_id=\"acme\") 共 5 次调用`,
		`\n- error_code: rate_limited 3 (60%), <@all> **x** 1 (20%), timeout 1 (20%)\n- model: gpt-4o 5 (100%)\n- 示例调用 (最近的): req-0, req-1"`) {
		t.Errorf("the console line lacks the evidence:\n%s", line)
	}

	if a := apiAlerts(t, base).Data.Alerts; len(a) != 1 || a[0].Evidence == nil || a[0].Evidence.Total != 5 {
		t.Errorf("/api/v1/alerts does not show the evidence: %+v", a)
	}

	var hist struct {
		Data []engine.AuditRecord `json:"data"`
	}
	waitFor(t, "the firing record with its evidence in /api/v1/alerts/history", 10*time.Second, func() bool {
		getJSON(t, base+"/api/v1/alerts/history", &hist)
		for _, r := range hist.Data {
			if r.Kind == engine.AuditFiring && r.Evidence != nil && r.Evidence.Total == 5 {
				return true
			}
		}
		return false
	})

	conn := s.Conn(t, db)
	var text, top string
	waitFor(t, "the firing row of the audit table", 10*time.Second, func() bool {
		// The query of docs/notifications.md.
		r := conn.QueryRow(context.Background(), "SELECT evidence, visitParamExtractRaw(evidence, 'top') FROM callwatch_alert_log WHERE kind = 'firing' AND rule_name = 'ErrorBurst'")
		return r.Scan(&text, &top) == nil && text != ""
	})
	if !strings.HasPrefix(top, `[{"label":"error_code","values":[{"value":"rate_limited","count":3,`) {
		t.Errorf("visitParamExtractRaw(evidence, 'top') = %s", top)
	}
	var ev engine.Evidence
	if err := json.Unmarshal([]byte(text), &ev); err != nil {
		t.Fatalf("evidence column %q: %v", text, err)
	}
	if ev.Total != 5 || len(ev.Top) != 2 || ev.Top[0].Values[0].Value != "rate_limited" || strings.Join(ev.Examples, ",") != "req-0,req-1" {
		t.Errorf("audit evidence %+v", ev)
	}
}
