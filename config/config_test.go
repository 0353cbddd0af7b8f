package config

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"an empty file is the default configuration", "", ""},
		{"the issue's example loads", `
clickhouse:
  dsn: clickhouse://127.0.0.1:9000/default
  events_table: ai_call_events
schema:
  time: created_at
  labels: [tenant_id, app_code, model, provider, status, error_code]
  fields:
    latency_ms: latency_ms
    input_tokens: input_tokens
    output_tokens: output_tokens
    total_tokens: [input_tokens, output_tokens]
    cost: cost
`, ""},
		{"an unknown key is an error with its line", "clickhouse:\n  dns: x\n", `2: unknown key "dns"`},
		{"a bad table name says what to write", "clickhouse:\n  events_table: \"t; DROP\"\n", "write table or database.table"},
		{"a bad DSN hides its password", "clickhouse:\n  dsn: \"http://u:secret@h/db\"\n", "xxxxx"},
		{"a schema field naming a label column is rejected", "schema:\n  time: t\n  labels: [a]\n  fields: {x: a}\n", "not numeric"},
		{"a schema column that is not an identifier is rejected", "schema:\n  time: t\n  labels: [\"a`b\"]\n  fields: {x: y}\n", "not a plain column name"},
		{"a bad duration says where", "clickhouse:\n  query_timeout: soon\n", "2:"},
		{"incremental evaluation can be tuned or turned off", "clickhouse:\n  incremental: {enabled: false, bucket: 30s, late_window: 5m}\n", ""},
		{"an incremental bucket must be whole seconds", "clickhouse:\n  incremental: {bucket: 1500ms}\n", "clickhouse.incremental.bucket: 1.5s is not a whole number of seconds"},
		{"an unknown incremental key is an error", "clickhouse:\n  incremental: {buckets: 1m}\n", `unknown key "buckets"`},
		{"sender election loads", "ha: {enabled: true, replica: a, heartbeat: 2s, ttl: 10s}\n", ""},
		{"an HA ttl must outlast the heartbeat", "ha: {enabled: true, heartbeat: 5s, ttl: 5s}\n", "ttl longer than it"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.ClickHouse.EventsTable != "ai_call_events" || c.Schema.Time != "created_at" || c.HA.LeaseTable != "callwatch_replicas" {
					t.Fatalf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
