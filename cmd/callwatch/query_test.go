package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

func TestQuery(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, clickhouse.EventsDDL(db+".calls", dsl.DefaultSchema()))
	at := time.Unix(1764000000, 0).UTC()
	var rows []map[string]any
	var jsonl strings.Builder
	for i, lat := range []int{100, 200, 5123, 9000} {
		tenant := "acme"
		if i == 3 {
			tenant = "beta"
		}
		ts := at.Add(-time.Duration(i) * time.Minute)
		rows = append(rows, map[string]any{"created_at": ts, "tenant_id": tenant, "status": "ok", "latency_ms": lat})
		fmt.Fprintf(&jsonl, `{"created_at": %q, "tenant_id": %q, "status": "ok", "latency_ms": %d}`+"\n", ts.Format(time.RFC3339), tenant, lat)
	}
	s.InsertJSONEachRow(t, db, "calls", rows)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "callwatch.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("clickhouse:\n  dsn: %s\n  events_table: calls\n", s.DSN(db))), 0o644)
	eventsFile := filepath.Join(dir, "events.jsonl")
	os.WriteFile(eventsFile, []byte(jsonl.String()), 0o644)

	const want = `{"resultType":"vector","result":[{"metric":{"tenant_id":"acme"},"value":[1764000000,"5123"]},{"metric":{"tenant_id":"beta"},"value":[1764000000,"9000"]}]}` + "\n"
	for _, tc := range []struct{ name, flag, file string }{
		{"over ClickHouse", "--config.file", cfgFile},
		{"over a JSON Lines file in memory", "--events", eventsFile},
	} {
		t.Run(tc.name+" it prints the data object of /api/v1/query", func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), []string{"query", tc.flag, tc.file, "--time", "2025-11-24T16:00:00Z",
				"max by (tenant_id) (p95(latency_ms[5m]))"}, &out, &errOut)
			if code != 0 || out.String() != want {
				t.Fatalf("exit %d\n got: %s\nwant: %s\nstderr: %s", code, out.String(), want, errOut.String())
			}
		})
	}
	t.Run("a scalar prints as a scalar", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"query", "--events", eventsFile, "--time", "1764000000", "scalar(count_over_time(events[10m])) * 2"}, &out, &errOut)
		if code != 0 || out.String() != `{"resultType":"scalar","result":[1764000000,"8"]}`+"\n" {
			t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
		}
	})
	t.Run("a bad expression exits 1 with line:col, a hint and a caret", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"query", "--events", eventsFile, "sum(\n  irate(latency_ms[5m]))"}, &out, &errOut)
		msg := errOut.String()
		if code != 1 || !strings.Contains(msg, "2:3: function \"irate\" is not supported") || !strings.Contains(msg, "\n    ^") {
			t.Fatalf("exit %d: %q", code, msg)
		}
	})
}

// TestOneLimitCheckForRulesQueriesAndChecks: the configured max_window
// bounds `callwatch query`, `check rules` and `backtest` as it bounds
// serve's rules.
func TestOneLimitCheckForRulesQueriesAndChecks(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "callwatch.yaml")
	os.WriteFile(cfg, []byte("limits: {max_window: 1d}\n"), 0o644)
	rules := filepath.Join(dir, "r.yaml")
	os.WriteFile(rules, []byte("groups:\n  - name: g\n    rules:\n      - alert: Long\n        expr: count_over_time(events[2d]) > 1\n"), 0o644)
	eventsFile := filepath.Join("..", "..", "testdata", "sample_events.jsonl")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"check", "rules", "--config.file", cfg, rules}, &out, &errOut); code != 1 ||
		!strings.Contains(out.String(), "more than the configured maximum") {
		t.Errorf("check rules of a 2d window under max_window 1d: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"query", "--config.file", cfg, "--events", eventsFile, "count_over_time(events[2d])"}, &out, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), "more than the configured maximum") {
		t.Errorf("query of a 2d window under max_window 1d: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"backtest", "--config.file", cfg, "--events", eventsFile,
		"--from", "2025-11-24T16:00:00Z", "--to", "2025-11-24T16:10:00Z", rules}, &out, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), "more than the configured maximum") {
		t.Errorf("backtest of a 2d window under max_window 1d: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"query", "--events", eventsFile, "count_over_time(events[290y] offset 3y)"}, &out, &errOut); code == 0 ||
		!strings.Contains(errOut.String(), "longer than callwatch allows") {
		t.Errorf("query of [290y] offset 3y: exit %d\n%s%s", code, out.String(), errOut.String())
	}
}
