package memory

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/testrules"
)

const sample = `{"created_at": 1000, "tenant_id": "acme", "app_code": "chat", "model": "gpt-4o", "status": "ok", "latency_ms": 100, "input_tokens": 10, "output_tokens": 5, "cost": 0.5}
{"created_at": "1970-01-01T00:16:50Z", "tenant_id": "acme", "app_code": "chat", "model": "gpt-4o-mini", "status": "error", "latency_ms": 300, "input_tokens": 1, "output_tokens": 0, "cost": 0.25}
{"created_at": 1100, "tenant_id": "beta", "app_code": "", "model": "gpt-4o", "status": "ok", "latency_ms": 200, "input_tokens": 7, "output_tokens": 3, "cost": 1, "request_id": "ignored"}
{"created_at": 1200, "tenant_id": "beta", "app_code": "search", "model": "gpt", "status": "ok", "latency_ms": 400, "input_tokens": 2, "output_tokens": 2, "cost": 0}
`

func load(t *testing.T) *engine.Querier {
	t.Helper()
	events, err := ReadJSONL(strings.NewReader(sample), dsl.DefaultSchema())
	if err != nil {
		t.Fatal(err)
	}
	s := New(dsl.Schema{})
	s.Add(events...)
	return engine.NewQuerier(engine.QuerierOptions{Source: s})
}

func TestLeaves(t *testing.T) {
	q := load(t)
	at := time.Unix(1200, 0)
	cases := []struct {
		name, expr string
		want       string // "labels=value" joined by "; ", sorted
	}{
		{"count pools every event in (t-w, t]", `count_over_time(events[200s])`, "{}=3"},
		{"an event exactly at t-w is outside the window", `count_over_time(events[199s])`, "{}=3"},
		{"an event exactly at t is inside the window", `count_over_time(events[1s])`, "{}=1"},
		{"equality matchers label an ungrouped result", `count_over_time(events{status="error"}[1h])`, `{status="error"}=1`},
		{"regex matchers are fully anchored", `count_over_time(events{model=~"gpt"}[1h])`, "{}=1"},
		{"negative regex", `count_over_time(events{model!~"gpt-4o.*"}[1h])`, "{}=1"},
		{"not-equal matcher", `count_over_time(events{tenant_id!="acme"}[1h])`, "{}=2"},
		{"a field that is a sum of columns", `sum_over_time(total_tokens[1h])`, "{}=30"},
		{"quantile is quantileExact: index floor(φ·n)", `p50(latency_ms[1h])`, "{}=300"},
		{"quantile clamps to the last value", `quantile_over_time(1, latency_ms[1h])`, "{}=400"},
		{"quantile of the lowest", `quantile_over_time(0, latency_ms[1h])`, "{}=100"},
		{"p99 of four values is the largest", `p99(latency_ms[1h])`, "{}=400"},
		{"avg", `avg_over_time(latency_ms[1h])`, "{}=250"},
		{"min and max", `min_over_time(latency_ms[1h]) + max_over_time(latency_ms[1h])`, "{}=500"},
		{"population stddev", `stddev_over_time(latency_ms[1h])`, "{}=111.80339887498948"},
		{"rate of events is count per second of window", `rate(events[100s])`, "{}=0.01"},
		{"rate of a field is sum per second", `rate(latency_ms[100s])`, "{}=4"},
		{"increase of events is count", `increase(events[1h])`, "{}=4"},
		{"grouping by the enclosing aggregation", `max by (tenant_id) (p95(latency_ms[1h]))`, `{tenant_id="acme"}=300; {tenant_id="beta"}=400`},
		{"without groups by the other labels", `count without (app_code, model, provider, status, error_code) (count_over_time(events[1h]))`, `{tenant_id="acme"}=1; {tenant_id="beta"}=1`},
		{"empty label values are dropped from groups", `sum by (app_code) (count_over_time(events[1h]))`, `{}=1; {app_code="chat"}=2; {app_code="search"}=1`},
		{"per-tenant error ratio", `sum by (tenant_id) (count_over_time(events{status="error"}[1h])) / sum by (tenant_id) (count_over_time(events[1h]))`, `{tenant_id="acme"}=0.5`},
		{"offset moves the window into the past", `count_over_time(events[100s] offset 100s)`, "{}=2"},
		{"absent_over_time is 1 with matcher labels when nothing matches", `absent_over_time(events{tenant_id="gone"}[1h])`, `{tenant_id="gone"}=1`},
		{"absent_over_time is empty when something matches", `absent_over_time(events{tenant_id="acme"}[1h])`, ""},
		{"present_over_time per group", `sum by (tenant_id) (present_over_time(events[250s]))`, `{tenant_id="acme"}=1; {tenant_id="beta"}=1`},
		{"no events gives no sample", `count_over_time(events{tenant_id="gone"}[1h])`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := testrules.Expr(t, tc.expr)
			res, err := q.Query(context.Background(), e, at)
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, s := range res.Vector {
				parts = append(parts, s.Labels.String()+"="+fmtFloat(s.Value))
			}
			if got := strings.Join(parts, "; "); got != tc.want {
				t.Errorf("%s\n got: %s\nwant: %s", tc.expr, got, tc.want)
			}
		})
	}
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestReadJSONLReportsLineAndColumn(t *testing.T) {
	_, err := ReadJSONL(strings.NewReader("{\"created_at\": 1}\n{\"created_at\": 2, \"latency_ms\": \"fast\"}\n"), dsl.DefaultSchema())
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "latency_ms") {
		t.Fatalf("err = %v, want line 2 and the column", err)
	}
	_, err = ReadJSONL(strings.NewReader(`{"latency_ms": 1}`), dsl.DefaultSchema())
	if err == nil || !strings.Contains(err.Error(), "created_at") {
		t.Fatalf("err = %v, want missing time column", err)
	}
	// Of several bad columns, the first by name, at every read (the line's
	// columns are a map).
	for range 30 {
		_, err = ReadJSONL(strings.NewReader(`{"created_at": 1, "total_tokens": "x", "latency_ms": "y", "cost": "z", "input_tokens": "w"}`), dsl.DefaultSchema())
		if err == nil || !strings.Contains(err.Error(), `column "cost"`) {
			t.Fatalf("err = %v, want the column cost named", err)
		}
	}
}

func TestReadJSONLReadsTheRequestID(t *testing.T) {
	schema := dsl.DefaultSchema()
	schema.RequestID = "request_id"
	in := `{"created_at": 1, "request_id": "req-1"}
{"created_at": 2, "request_id": 42}
{"created_at": 3, "request_id": null}
{"created_at": 4}`
	evs, err := ReadJSONL(strings.NewReader(in), schema)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.RequestID)
	}
	if want := []string{"req-1", "42", "", ""}; !slices.Equal(got, want) {
		t.Fatalf("request ids %q, want %q", got, want)
	}
	evs, _ = ReadJSONL(strings.NewReader(in), dsl.DefaultSchema())
	if evs[0].RequestID != "" {
		t.Errorf("a schema without request_id read %q", evs[0].RequestID)
	}
}
