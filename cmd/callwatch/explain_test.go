package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestExplain: explain lists each range function with its grouping, window
// and path in serve, the result labels, the static checks and the SQL;
// --run reads the rows and bytes ClickHouse read; --rule explains a rule
// of a file.
func TestExplain(t *testing.T) {
	s := server.Get(t)
	at := time.Unix(1764000000, 0).UTC()
	var rows []map[string]any
	for i := range 200 {
		rows = append(rows, map[string]any{"created_at": at.Add(-time.Duration(i) * time.Second), "tenant_id": fmt.Sprintf("t%d", i%3), "status": "ok", "latency_ms": 100 + i})
	}
	cfgFile := callsConfig(t, s, callsTable(t, s, rows))
	dir := filepath.Dir(cfgFile)
	code, got, errOut := runCLI("explain", "--config.file", cfgFile, "--time", at.Format(time.RFC3339), "--run",
		`max by (tenant_id) (p95(latency_ms[5m])) > 150 and on(tenant_id) sum by (tenant_id) (count_over_time(events[90s])) > 0`+
			` and on(tenant_id) sum by (tenant_id) (count_le_over_time(latency_ms[5m], 250)) > 0`)
	for _, want := range []string{
		"result labels: {tenant_id}",
		"1. p95(latency_ms[5m])\n   window 5m, offset 0s; grouped by tenant_id\n   path in serve: incremental (value counts per bucket)",
		"2. count_over_time(events[90s])\n   window 1m30s, offset 0s; grouped by tenant_id\n   path in serve: full at every evaluation: the window or offset is not a multiple of clickhouse.incremental.bucket",
		"3. count_le_over_time(latency_ms[5m], 250)\n   window 5m, offset 0s; grouped by tenant_id\n   path in serve: incremental (partial aggregates per bucket)",
		"static checks: no findings",
		"SQL of a full evaluation (2 statements",
		"quantileExact(0.95)(`latency_ms`)",
		"countIf(toFloat64(`latency_ms`) <= (250))",
	} {
		if code != 0 || !strings.Contains(got, want) {
			t.Errorf("explain: exit %d, want %q in\n%s%s", code, want, got, errOut)
		}
	}
	// Both statements ran: the 5m one read the 200 rows' time range.
	ran := regexp.MustCompile(`-- ran in \S+: read (\d+) rows, (\d+) bytes; returned (\d+) groups`).FindAllStringSubmatch(got, -1)
	if len(ran) != 2 || ran[0][1] == "0" || ran[0][2] == "0" || ran[0][3] != "3" {
		t.Errorf("--run: want two statements with rows and bytes read and 3 groups for the first, got %q\n%s", ran, got)
	}

	rules := writeErrorRatioRules(t, dir)
	code, out, errOut := runCLI("explain", "--rule", "ErrorRatio", rules)
	if code != 0 || !strings.Contains(out, "static checks: 1 findings") || !strings.Contains(out, "one group, labelled {status=\"error\"}") {
		t.Errorf("explain --rule: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI("explain", "--rule", "Nope", rules); code != 1 || !strings.Contains(errOut, `no rule named "Nope"`) {
		t.Errorf("explain --rule of a missing rule: exit %d %s", code, errOut)
	}
}
