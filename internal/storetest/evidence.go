package storetest

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
)

// EvidenceAgreesWithMemory gathers the evidence of alerts (the top
// values of labels and example request ids among a group's events) in the
// backend and in memory, over the same events, and requires the same
// answer: counts, ties broken by value, hostile and huge values cut to
// their bound, the window's edges, the group of events without a label,
// non-finite values skipped, examples ordered by the field or by time.
func EvidenceAgreesWithMemory(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	schema := dsl.DefaultSchema()
	schema.RequestID = "request_id"
	table := db + ".evidence_events"
	createEventsTable(t, conn, table, schema)
	ev := func(sec int64, id string, lbls map[string]string, latency, cost float64) memory.Event {
		e := event(sec, lbls, map[string]float64{"latency_ms": latency, "cost": cost})
		e.RequestID = id
		return e
	}
	acmeErr := func(code, model string) map[string]string {
		return map[string]string{"tenant_id": "acme", "status": "error", "error_code": code, "model": model}
	}
	events := []memory.Event{
		ev(-300, "out-of-window", acmeErr("timeout", "gpt-4o"), 9000, 1), // the window's open start
		ev(-299, "r01", acmeErr("rate_limited", "gpt-4o"), 100, 1),
		ev(-200, "r02", acmeErr("rate_limited", "gpt-4o"), 300, 1),
		ev(-200, "r03", acmeErr("rate_limited", "claude"), 300, 1),
		ev(-100, "r04", acmeErr("timeout", "claude"), 300, 1),
		ev(-100, "", acmeErr("timeout", "claude"), 5000, 1), // no request id: counted, never an example
		ev(-50, "r06", acmeErr("bad_request", "gpt-4o"), 20, 1),
		ev(-50, "r05", acmeErr("auth", "gpt-4o"), 20, 1),
		ev(0, "r07", acmeErr("", "gpt-4o"), 50, 1), // the window's closed end
		ev(-10, "g1", map[string]string{"tenant_id": "globex", "status": "error", "error_code": "timeout"}, 700, math.NaN()),
		ev(-10, "g2", map[string]string{"tenant_id": "globex", "status": "ok"}, 10, 2.5),
		ev(-10, "g3", map[string]string{"tenant_id": "globex", "status": "ok"}, 10, 7.25),
		ev(-20, "n1", map[string]string{"status": "error", "error_code": "timeout"}, 10, 1), // no tenant
	}
	// The long values are the most frequent, so they are listed.
	long := strings.Repeat("长", 400) // 1200 bytes: cut on a character boundary
	hostile := append(HostileValues(), long, long, long, strings.Repeat("long'\\", 20000), strings.Repeat("long'\\", 20000))
	for i, v := range hostile {
		events = append(events, ev(-5, fmt.Sprintf("h%03d%s", i, v), map[string]string{"tenant_id": "hostile", "error_code": v, "model": v}, float64(i), 1))
	}
	insertEvents(t, conn, table, schema, events)
	mem := memory.New(schema)
	mem.Add(events...)
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: schema, Distributed: distributed(conn)})
	if err != nil {
		t.Fatal(err)
	}
	gather := func(t *testing.T, expr string, group map[string]string, top []string, limit, examples int) engine.Evidence {
		t.Helper()
		e, err := dsl.Parse(expr, dsl.Options{Schema: schema})
		if err != nil {
			t.Fatal(err)
		}
		q := engine.EvidenceQuery{Leaf: e.Leaves[0], From: sqlAt(-300), To: sqlTS, Group: group, Top: top, Limit: limit, Examples: examples}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		m, err := mem.Evidence(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		c, err := src.Evidence(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		m, c = engine.FinishEvidence(e, q, m), engine.FinishEvidence(e, q, c)
		if !reflect.DeepEqual(m, c) {
			t.Fatalf("%s %v: the evidence differs\nmemory:     %+v\nClickHouse: %+v", expr, group, m, c)
		}
		return c
	}
	t.Run("an error burst's codes and models, and its latest calls", func(t *testing.T) {
		got := gather(t, `sum by (tenant_id) (count_over_time(events{status="error"}[5m]))`, map[string]string{"tenant_id": "acme"},
			[]string{"error_code", "model"}, 3, 3)
		want := engine.Evidence{
			Leaf: `count_over_time(events{status="error"}[5m])`, From: sqlAt(-300), To: sqlTS, Group: map[string]string{"tenant_id": "acme"}, Total: 8,
			Top: []engine.EvidenceLabel{
				{Label: "error_code", Values: []engine.EvidenceValue{{Value: "rate_limited", Count: 3, Share: 3.0 / 8}, {Value: "timeout", Count: 2, Share: 2.0 / 8}, {Value: "", Count: 1, Share: 1.0 / 8}}, Other: 2},
				{Label: "model", Values: []engine.EvidenceValue{{Value: "gpt-4o", Count: 5, Share: 5.0 / 8}, {Value: "claude", Count: 3, Share: 3.0 / 8}}},
			},
			Examples: []string{"r07", "r05", "r06"}, ExamplesBy: "latest",
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
	})
	t.Run("the slowest calls of a latency rule", func(t *testing.T) {
		got := gather(t, `p95(latency_ms{tenant_id="acme"}[5m])`, nil, []string{"model"}, 5, 4)
		if want := []string{"r04", "r02", "r03", "r01"}; !reflect.DeepEqual(got.Examples, want) || got.ExamplesBy != "highest latency_ms" {
			t.Fatalf("examples %v by %q, want %v by highest latency_ms", got.Examples, got.ExamplesBy, want)
		}
	})
	t.Run("a non-finite value is skipped as the leaf skips it", func(t *testing.T) {
		got := gather(t, `sum_over_time(cost{tenant_id="globex"}[5m])`, nil, []string{"status"}, 5, 5)
		if got.Total != 2 || !reflect.DeepEqual(got.Examples, []string{"g3", "g2"}) {
			t.Fatalf("total %d, examples %v; want 2 events and [g3 g2]", got.Total, got.Examples)
		}
	})
	t.Run("the group of events without a label", func(t *testing.T) {
		got := gather(t, `sum by (tenant_id) (count_over_time(events[5m]))`, map[string]string{"tenant_id": ""}, []string{"error_code"}, 5, 1)
		if got.Total != 1 || !reflect.DeepEqual(got.Examples, []string{"n1"}) {
			t.Fatalf("total %d, examples %v; want the one event without a tenant", got.Total, got.Examples)
		}
	})
	t.Run("no events", func(t *testing.T) {
		got := gather(t, `count_over_time(events{tenant_id="nobody"}[5m])`, nil, []string{"model"}, 5, 3)
		if got.Total != 0 || len(got.Top) != 1 || len(got.Top[0].Values) != 0 || got.Examples != nil {
			t.Fatalf("got %+v, want no values and no examples", got)
		}
	})
	t.Run("hostile and huge values are cut to their bounds, as valid UTF-8", func(t *testing.T) {
		got := gather(t, `count_over_time(events{tenant_id="hostile"}[5m])`, nil, []string{"error_code", "model"}, 20, 10)
		if got.Total != uint64(len(hostile)) || len(got.Top[0].Values) != 20 || len(got.Examples) != 10 {
			t.Fatalf("total %d, %d values, %d examples; want every hostile event, 20 values and 10 examples", got.Total, len(got.Top[0].Values), len(got.Examples))
		}
		cut := 0
		for i, v := range got.Top[0].Values {
			if len(v.Value) > engine.MaxEvidenceValueBytes || !utf8.ValidString(v.Value) {
				t.Errorf("value %q: %d bytes or invalid UTF-8", v.Value, len(v.Value))
			}
			if i < 2 && strings.HasSuffix(v.Value, "…") {
				cut++
			}
		}
		for _, id := range got.Examples {
			if len(id) > engine.MaxEvidenceIDBytes || !utf8.ValidString(id) {
				t.Errorf("request id %q: %d bytes or invalid UTF-8", id, len(id))
			}
		}
		if cut != 2 {
			t.Errorf("%d of the two most frequent (long) values were cut: the suite lost its long values", cut)
		}
	})
}
