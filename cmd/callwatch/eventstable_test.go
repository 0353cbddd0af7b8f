package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/chtest"
)

// serveExit runs `callwatch serve` on db and returns its exit code and
// what it wrote to stderr, when it stops within 20 seconds by itself.
func serveExit(t *testing.T, s *chtest.Server, db string) (int, string) {
	t.Helper()
	cfgFile := serveConfig(t, t.TempDir(), s.DSN(db), "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut syncBuffer
	code := run(ctx, []string{"serve", "--config.file", cfgFile, "--web.listen-address", "127.0.0.1:0"}, &out, &errOut)
	if ctx.Err() != nil {
		t.Fatalf("serve did not stop by itself: %s", errOut.String())
	}
	return code, errOut.String()
}

// TestServeSaysWhatTheEventsTableLacks: serve against a server without
// the events table, or with one whose columns do not fit the schema, stops
// at start saying what is missing and what to run; a table dropped while
// serve runs raises DatasourceDown with cause="events_table" (the rules
// themselves only say ClickHouse's "Table … doesn't exist"), which resolves
// when the table is back.
func TestServeSaysWhatTheEventsTableLacks(t *testing.T) {
	s := server.Get(t)
	t.Run("no events table: serve stops and says how to create it", func(t *testing.T) {
		code, stderr := serveExit(t, s, s.NewDatabase(t))
		if code == 0 || !strings.Contains(stderr, `the events table ai_call_events does not exist: create it (docs/language.md, "The events table", gives the DDL) or set clickhouse.events_table; `+
			"for this configuration's schema, run:\nCREATE TABLE IF NOT EXISTS `ai_call_events` (\n    `created_at` DateTime,") {
			t.Errorf("exit %d, want non-zero and what to run:\n%s", code, stderr)
		}
	})
	t.Run("a missing and a mistyped column: serve stops and names both", func(t *testing.T) {
		db := s.NewDatabase(t)
		s.Exec(t, "CREATE TABLE "+db+".ai_call_events (created_at DateTime, tenant_id String, app_code String, model String, provider String, status String, "+
			"latency_ms String, input_tokens UInt32, output_tokens UInt32, cost Float64) ENGINE = MergeTree ORDER BY created_at")
		code, stderr := serveExit(t, s, db)
		for _, want := range []string{
			"the events table ai_call_events does not fit the schema:",
			`column "error_code" (a label) is missing; map an existing column in schema.labels, or add it: ALTER TABLE ` + "`ai_call_events` ADD COLUMN `error_code`" + ` String`,
			`column "latency_ms" (a field) has type String; it must be a number (Int*, UInt*, Float*, Decimal*)`,
		} {
			if code == 0 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, want non-zero and %q in:\n%s", code, want, stderr)
			}
		}
	})
	t.Run("the table dropped while serving raises DatasourceDown saying so", func(t *testing.T) {
		db := errorEvents(t, s, 5)
		base, _, _ := serveOn(t, s, db, serveRules, "  health_interval: 1s\n  down_after: 1s\n")
		waitForErrorsAlert(t, base)
		s.Exec(t, "RENAME TABLE "+db+".ai_call_events TO "+db+".moved")
		var down map[string]string
		waitFor(t, "DatasourceDown with cause events_table", 20*time.Second, func() bool {
			for _, al := range apiAlerts(t, base).Data.Alerts {
				if al.Labels["alertname"] == engine.DatasourceDownName && al.State == "firing" && al.Labels["cause"] == engine.CauseEventsTable {
					down = al.Annotations
					return true
				}
			}
			return false
		})
		if !strings.HasPrefix(down["summary"], "the events table is missing or does not fit the schema") {
			t.Errorf("DatasourceDown's summary: %q", down["summary"])
		}
		ev := ruleEvaluations(t, base, engine.DatasourceDownName)
		if len(ev.Data) == 0 || len(ev.Data[0].Evaluations) == 0 {
			t.Fatalf("no evaluations of %s", engine.DatasourceDownName)
		}
		e := ev.Data[0].Evaluations
		if last := e[len(e)-1]; len(last.Statements) != 1 || !strings.Contains(last.Statements[0], "the events table ai_call_events does not exist: create it") {
			t.Errorf("DatasourceDown's last evaluation does not say what to run: %+v", last)
		}
		s.Exec(t, "RENAME TABLE "+db+".moved TO "+db+".ai_call_events")
		waitFor(t, "DatasourceDown to resolve", 20*time.Second, func() bool {
			for _, al := range apiAlerts(t, base).Data.Alerts {
				if al.Labels["alertname"] == engine.DatasourceDownName && al.State == "firing" {
					return false
				}
			}
			return true
		})
	})
}
