package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBacktestJudgesSLOPeriods: over 16 days of hourly calls, backtest
// reports each 7-day period of an SLO as met or missed with the budget it
// consumed, and each period of a budget with its spend.
func TestBacktestJudgesSLOPeriods(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "slo.yaml")
	if err := os.WriteFile(rules, []byte(`slos:
  - name: avail
    objective: 99
    window: 7d
    by: [tenant_id]
    sli: {errors: '{status="error"}', total: events}
budgets:
  - {name: spend, limit: 200, period: 7d, by: [tenant_id]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var check bytes.Buffer
	if code := run(context.Background(), []string{"check", "rules", rules}, &check, &check); code != 0 ||
		!strings.Contains(check.String(), "SUCCESS: 20 rules found (20 generated from SLOs (1) and budgets (1))") {
		t.Errorf("check rules: exit %d\n%s", code, check.String())
	}
	// acme calls once an hour at :30, each costing 1: 1 call of 168 fails
	// in the first week (0.595%, within 1%), 3 in the second (1.786%).
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events bytes.Buffer
	for h := range 16 * 24 {
		status := "ok"
		if h == 10 || h == 200 || h == 250 || h == 300 {
			status = "error"
		}
		fmt.Fprintf(&events, `{"created_at":%q,"tenant_id":"acme","status":%q,"cost":1}`+"\n", start.Add(time.Duration(h)*time.Hour+30*time.Minute).Format(time.RFC3339), status)
	}
	eventsFile := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(eventsFile, events.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"backtest", "--events", eventsFile, "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-17T00:00:00Z", "--step", "1h"}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append(append(args, "--format", "json"), rules), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var res struct {
		Periods []struct {
			Kind, Name   string
			From, To     time.Time
			Partial, Met bool
			SLI, Spent   float64
			Consumed     float64
		} `json:"sloPeriods"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Periods {
		got = append(got, fmt.Sprintf("%s %s %s..%s partial=%v met=%v sli=%v spent=%v consumed=%v", p.Kind, p.Name,
			p.From.Format("01-02"), p.To.Format("01-02"), p.Partial, p.Met, p.SLI, p.Spent, p.Consumed))
	}
	// The hand computation, in float64 as the engine computes it (Go would
	// fold constants exactly).
	one, three, week, budget := 1.0, 3.0, 168.0, 0.01
	want := []string{
		fmt.Sprintf("slo avail 01-01..01-08 partial=false met=true sli=%v spent=0 consumed=%v", 1-one/week, one/week/budget),
		fmt.Sprintf("slo avail 01-08..01-15 partial=false met=false sli=%v spent=0 consumed=%v", 1-three/week, three/week/budget),
		"slo avail 01-15..01-17 partial=true met=true sli=1 spent=0 consumed=0",
		"budget spend 01-01..01-08 partial=false met=true sli=0 spent=168 consumed=0.84",
		"budget spend 01-08..01-15 partial=false met=true sli=0 spent=168 consumed=0.84",
		"budget spend 01-15..01-17 partial=true met=true sli=0 spent=48 consumed=0.24",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("periods:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out.Reset()
	if code := run(context.Background(), append(args, rules), &out, &errOut); code != 0 || !strings.Contains(out.String(), "MISSED") ||
		!strings.Contains(out.String(), "SLI 98.214%") || !strings.Contains(out.String(), "2026-01-17T00:00:00Z (partial)") {
		t.Errorf("table: exit %d\n%s", code, out.String())
	}
}
