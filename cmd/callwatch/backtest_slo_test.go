package main

import (
	"bytes"
	"context"
	"fmt"
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
	writeFile(t, rules, `slos:
  - name: avail
    objective: 99
    window: 7d
    by: [tenant_id]
    sli: {errors: '{status="error"}', total: events}
budgets:
  - {name: spend, limit: 200, period: 7d, by: [tenant_id]}
`)
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
	writeFile(t, eventsFile, events.String())
	args := []string{"--events", eventsFile, "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-17T00:00:00Z", "--step", "1h"}
	var res struct {
		Periods []struct {
			Kind, Name   string
			From, To     time.Time
			Partial, Met bool
			SLI, Spent   float64
			Consumed     float64
		} `json:"sloPeriods"`
	}
	backtestJSON(t, &res, append(args, rules)...)
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
	sameLines(t, "periods", got, want)
	if code, out, _ := runCLI(append(append([]string{"backtest"}, args...), rules)...); code != 0 || !strings.Contains(out, "MISSED") ||
		!strings.Contains(out, "SLI 98.214%") || !strings.Contains(out, "2026-01-17T00:00:00Z (partial)") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

// monthPeriod is one period of a calendar-month budget in backtest's JSON.
type monthPeriod struct {
	From, To     time.Time
	Partial, Met bool
	Spent        float64
}

// backtestMonths backtests the budget (one line of a budgets: list) over
// calls of acme once an hour at :30 (UTC), each costing 1, from start to
// end, and returns its periods.
func backtestMonths(t *testing.T, budget string, start, end time.Time) []monthPeriod {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(dir, "month.yaml")
	writeFile(t, rules, "budgets:\n  - "+budget+"\n")
	var events bytes.Buffer
	for at := start.Add(30 * time.Minute); at.Before(end); at = at.Add(time.Hour) {
		fmt.Fprintf(&events, `{"created_at":%q,"tenant_id":"acme","status":"ok","cost":1}`+"\n", at.Format(time.RFC3339))
	}
	eventsFile := filepath.Join(dir, "events.jsonl")
	writeFile(t, eventsFile, events.String())
	var res struct {
		Periods []monthPeriod `json:"sloPeriods"`
	}
	backtestJSON(t, &res, "--events", eventsFile, "--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339), "--step", "6h", rules)
	return res.Periods
}

// TestBacktestJudgesCalendarMonths: a calendar-month budget in
// Asia/Shanghai is judged per month of that zone, (M, M′], the first and
// last months partial where the history starts and ends inside them.
func TestBacktestJudgesCalendarMonths(t *testing.T) {
	periods := backtestMonths(t, "{name: monthly, limit: 300, period: month, time_zone: Asia/Shanghai, by: [tenant_id]}",
		time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC))
	var got []string
	for _, p := range periods {
		got = append(got, fmt.Sprintf("%s..%s partial=%v met=%v spent=%v", p.From.Format(time.RFC3339), p.To.Format(time.RFC3339), p.Partial, p.Met, p.Spent))
	}
	// Shanghai's February is (01-31T16:00Z, 02-28T16:00Z]: 28 × 24 calls.
	// January from the 20th: 11 days and 16 hours; March to the 5th: 8
	// hours of 28 February in UTC, then 4 days. Months are shown in their
	// zone.
	want := []string{
		"2026-01-20T08:00:00+08:00..2026-02-01T00:00:00+08:00 partial=true met=true spent=280",
		"2026-02-01T00:00:00+08:00..2026-03-01T00:00:00+08:00 partial=false met=false spent=672",
		"2026-03-01T00:00:00+08:00..2026-03-05T08:00:00+08:00 partial=true met=true spent=104",
	}
	sameLines(t, "periods", got, want)
}

// TestBacktestJudgesAMonthLongerThan31Days: October in London has 31 days
// and an hour (the change back from summer time), more than the default
// limits.max_window of 31d; its period is judged all the same.
func TestBacktestJudgesAMonthLongerThan31Days(t *testing.T) {
	periods := backtestMonths(t, "{name: monthly, limit: 1000, period: month, time_zone: Europe/London}",
		time.Date(2026, 9, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC))
	var got []string
	for _, p := range periods {
		got = append(got, fmt.Sprintf("%s..%s spent=%v", p.From.Format(time.RFC3339), p.To.Format(time.RFC3339), p.Spent))
	}
	// September from the 25th to 23:00Z on the 30th: 143 hours; October
	// 745 hours; November to the 5th, 96.
	want := []string{
		"2026-09-25T01:00:00+01:00..2026-10-01T00:00:00+01:00 spent=143",
		"2026-10-01T00:00:00+01:00..2026-11-01T00:00:00Z spent=745",
		"2026-11-01T00:00:00Z..2026-11-05T00:00:00Z spent=96",
	}
	sameLines(t, "periods", got, want)
}
