package config

import (
	"context"
	"errors"
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
		{"callwatch's tables can live on a cluster", "clickhouse:\n  cluster: calls\n", ""},
		{"a cluster name is an identifier", "clickhouse:\n  cluster: \"calls; DROP\"\n", "clickhouse.cluster: \"calls; DROP\" is not a cluster name"},
		{"embedded ClickHouse has no cluster", "clickhouse:\n  cluster: calls\n  embedded: {path: /tmp/x}\n", "clickhouse.cluster: embedded ClickHouse"},
		{"a bad DSN hides its password", "clickhouse:\n  dsn: \"http://u:secret@h/db\"\n", "xxxxx"},
		{"a schema field naming a label column is rejected", "schema:\n  time: t\n  labels: [a]\n  fields: {x: a}\n", "not numeric"},
		{"a schema column that is not an identifier is rejected", "schema:\n  time: t\n  labels: [\"a`b\"]\n  fields: {x: y}\n", "not a plain column name"},
		{"a bad duration says where", "clickhouse:\n  query_timeout: soon\n", "2:"},
		{"a request-id column may be mapped alone, on the default schema", "schema:\n  request_id: request_id\nnotification: {evidence_timeout: 2s}\n", ""},
		{"a request-id column that is a label is rejected", "schema:\n  time: t\n  labels: [a]\n  fields: {x: y}\n  request_id: a\n", `schema.request_id: "a" is already a label`},
		{"a request-id column that is a field's column is rejected", "schema:\n  time: t\n  labels: [a]\n  fields: {x: y}\n  request_id: y\n", `schema.request_id: "y" is a numeric field's column`},
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

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct {
		name, dsn string
		// secrets must be gone; kept must stay.
		secrets, kept []string
	}{
		{"the password of the user is hidden", "clickhouse://u:pw-secret-1@h:9000/db", []string{"pw-secret-1"}, []string{"u:", "h:9000/db"}},
		{"a password parameter is hidden", "clickhouse://h:9000/db?username=u&password=pw-secret-2&dial_timeout=1s",
			[]string{"pw-secret-2"}, []string{"username=u", "dial_timeout=1s"}},
		{"any parameter named like a secret is hidden", "tcp://h:9000/db?access_token=tok-secret-3&api_key=key-secret-4&Secret=s-secret-5",
			[]string{"tok-secret-3", "key-secret-4", "s-secret-5"}, []string{"tcp://h:9000/db"}},
		{"a percent-encoded password parameter is hidden", "clickhouse://h:9000/db?password=pw%2Fsecret%266",
			[]string{"pw/secret&6", "pw%2Fsecret%266", "pw%2Fsecret"}, nil},
		{"the credentials of an http_proxy are hidden", "clickhouse://h:9000/db?http_proxy=" + "http%3A%2F%2Fp%3Aproxy-secret-7%40proxy%3A3128",
			[]string{"proxy-secret-7"}, []string{"http_proxy="}},
		{"a DSN that does not parse shows nothing of itself", "clickhouse://u:pw-secret-8@h:9000/db?password=pw-secret-9&x=%zz",
			[]string{"pw-secret-8", "pw-secret-9"}, nil},
		{"a DSN without secrets is unchanged", "clickhouse://127.0.0.1:9000/default?dial_timeout=1s", nil, []string{"clickhouse://127.0.0.1:9000/default?dial_timeout=1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := RedactDSN(tc.dsn)
			for _, s := range tc.secrets {
				if strings.Contains(got, s) {
					t.Errorf("RedactDSN(%q) = %q shows %q", tc.dsn, got, s)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(got, k) {
					t.Errorf("RedactDSN(%q) = %q lost %q", tc.dsn, got, k)
				}
			}
		})
	}
}

func TestConfigErrorsHideTheDSNsSecrets(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"a DSN of the wrong scheme with a password parameter", "clickhouse:\n  dsn: \"http://h/db?password=pw-secret-1\"\n"},
		{"a DSN without a host with a password", "clickhouse:\n  dsn: \"clickhouse://u:pw-secret-1@/db\"\n"},
		{"a DSN that does not parse", "clickhouse:\n  dsn: \"clickhouse://u:pw-secret-1@h:9000/%zz?password=pw-secret-1\"\n"},
		{"a DSN with a control character", "clickhouse:\n  dsn: \"clickhouse://u:pw-secret-1@h:9000/\\x7fdb\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("the DSN was accepted")
			}
			if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRedactDSNErrorHidesThePasswordInAnyForm(t *testing.T) {
	dsn := "clickhouse://u:pw%2Fsecret-1@h:9000/db?password=pw-secret-2&http_proxy=http%3A%2F%2Fp%3Aproxy-secret-3%40proxy%3A3128"
	for _, text := range []string{
		"code: 516, message: u: Authentication failed: password pw/secret-1 is incorrect",
		"dial clickhouse://u:pw%2Fsecret-1@h:9000/db: refused",
		"setting password=pw-secret-2 is unknown",
		"proxy http://p:proxy-secret-3@proxy:3128 refused",
		"open " + dsn,
	} {
		got := RedactDSNError(dsn, errors.New(text))
		for _, s := range []string{"pw/secret-1", "pw%2Fsecret-1", "pw-secret-2", "proxy-secret-3"} {
			if strings.Contains(got.Error(), s) {
				t.Errorf("%q → %q shows %q", text, got, s)
			}
		}
	}
	if RedactDSNError(dsn, nil) != nil {
		t.Error("no error became one")
	}
	plain := errors.New("connection refused")
	if got := RedactDSNError(dsn, plain); got != plain { //nolint:errorlint // the very same error must come back, not one wrapping it
		t.Errorf("an error without secrets changed: %v", got)
	}
	if got := RedactDSNError(dsn, context.DeadlineExceeded); !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("the cause is lost: %v", got)
	}
}

func TestRequestIDReachesTheSchema(t *testing.T) {
	c, err := Parse([]byte("schema:\n  request_id: request_id\nnotification: {evidence_timeout: 2s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Schema.DSL()
	if d.RequestID != "request_id" || d.Time != "created_at" || len(d.Labels) != 6 || c.Notification.EvidenceTimeout.D().String() != "2s" {
		t.Fatalf("schema %+v, evidence timeout %s", d, c.Notification.EvidenceTimeout.D())
	}
}
