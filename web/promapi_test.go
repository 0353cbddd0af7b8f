package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
)

// promFixture serves the query API over events in memory and one group
// with a recording and an alerting rule, evaluated once.
type promFixture struct {
	srv *httptest.Server
	reg *prometheus.Registry
	now time.Time
}

func newPromFixture(t testing.TB) *promFixture {
	t.Helper()
	store := memory.New(dsl.Schema{})
	base := time.Unix(1764000000, 0)
	for i := range 60 {
		tenant := []string{"acme", "beta"}[i%2]
		status := "ok"
		if i%3 == 0 {
			status = "error"
		}
		store.Add(memory.Event{Time: base.Add(time.Duration(i*10) * time.Second), Labels: []string{tenant, "chat", "gpt-4o", "openai", status, ""},
			Nums: map[string]float64{"latency_ms": float64(100 * (i + 1)), "cost": 0.5}})
	}
	now := base.Add(10 * time.Minute)
	var groups staticRules
	q := engine.NewQuerier(engine.QuerierOptions{Source: store, Series: engine.Outputs{Groups: func() []*engine.Group { return groups }}})
	groups = evalRules(t, q, t.TempDir()+"/rules.yaml", tenantErrorsRules+`    for: 0s
  - alert: Quiet
    expr: tenant:errors:5m > 1000
    for: 5m
    keep_firing_for: 1m
`, now)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(Handler(Options{
		Rules:      groups,
		Query:      q.Query,
		QueryRange: q.QueryRange,
		Limits:     dsl.Limits{MaxRange: 31 * 24 * time.Hour},
		Now:        func() time.Time { return now.Add(30 * time.Second) },
		Registerer: reg,
		Gatherer:   reg,
		CORSOrigin: mustCORS(t, ".*"),
		BuildInfo:  BuildInfo{Version: "0.1.0", Revision: "abc", Branch: "main", BuildUser: "test", BuildDate: "today", GoVersion: "go"},
	}))
	t.Cleanup(srv.Close)
	return &promFixture{srv: srv, reg: reg, now: now}
}

func mustCORS(t testing.TB, p string) *regexp.Regexp {
	t.Helper()
	r, err := CORSOrigin(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// call sends a request and returns its status, headers and decoded body.
func (f *promFixture) call(t testing.TB, method, path string, form url.Values, header map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	return f.callURL(t, f.srv.URL, method, path, form, header)
}

// callURL is call to the server at base.
func (f *promFixture) callURL(t testing.TB, base, method, path string, form url.Values, header map[string]string) (int, http.Header, map[string]any) {
	t.Helper()
	req := newRequest(t, method, base+path, form)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, raw := do(t, http.DefaultClient, req)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func dataJSON(out map[string]any) string {
	b, _ := json.Marshal(out["data"])
	return string(b)
}

func TestQueryAPI(t *testing.T) {
	f := newPromFixture(t)
	q := func(query string, more ...string) string {
		v := url.Values{"query": {query}}
		for i := 0; i+1 < len(more); i += 2 {
			v.Set(more[i], more[i+1])
		}
		return v.Encode()
	}
	cases := []struct {
		name, method, path string
		form               url.Values
		code               int
		want               string // the data as JSON, or the error type and a part of the error
	}{
		{"Grafana's health check (1+1 at time 4) is a scalar", "POST", "/api/v1/query", url.Values{"query": {"1+1"}, "time": {"4"}}, 200,
			`{"result":[4,"2"],"resultType":"scalar"}`},
		{"a GET instant query at a time", "GET", "/api/v1/query?" + q(`sum by (tenant_id) (count_over_time(events[5m]))`, "time", "1764000300"), nil, 200,
			`{"result":[{"metric":{"tenant_id":"acme"},"value":[1764000300,"15"]},{"metric":{"tenant_id":"beta"},"value":[1764000300,"15"]}],"resultType":"vector"}`},
		{"an RFC 3339 time", "GET", "/api/v1/query?" + q(`count_over_time(events[5m])`, "time", "2025-11-24T16:05:00Z"), nil, 200,
			`{"result":[{"metric":{},"value":[1764000300,"30"]}],"resultType":"vector"}`},
		{"a string literal is a string result", "GET", "/api/v1/query?" + q(`"abc"`, "time", "100"), nil, 200,
			`{"result":[100,"abc"],"resultType":"string"}`},
		{"a recording rule's output is queryable by name", "GET", "/api/v1/query?" + q(`tenant:errors:5m`), nil, 200,
			`{"result":[{"metric":{"tenant_id":"acme"},"value":[1764000630,"4"]},{"metric":{"tenant_id":"beta"},"value":[1764000630,"5"]}],"resultType":"vector"}`},
		{"ALERTS is queryable by name", "GET", "/api/v1/query?" + q(`count(ALERTS{alertstate="firing"})`), nil, 200,
			`{"result":[{"metric":{},"value":[1764000630,"2"]}],"resultType":"vector"}`},
		{"a missing query is bad_data", "GET", "/api/v1/query", nil, 400, `bad_data: invalid parameter "query": 1:1: empty expression`},
		{"a parse error is bad_data with a position", "GET", "/api/v1/query?" + q(`p95(latency_ms[5m]`), nil, 400, `bad_data: invalid parameter "query": 1:`},
		{"a bad time is bad_data", "GET", "/api/v1/query?" + q(`1`, "time", "abc"), nil, 400, `bad_data: invalid parameter "time": cannot parse "abc"`},
		{"a NaN time is bad_data", "GET", "/api/v1/query?" + q(`1`, "time", "NaN"), nil, 400, `bad_data: invalid parameter "time"`},
		{"a huge time is bad_data", "GET", "/api/v1/query?" + q(`1`, "time", "1e300"), nil, 400, `bad_data: invalid parameter "time"`},
		{"a bad timeout is bad_data", "GET", "/api/v1/query?" + q(`1`, "timeout", "abc"), nil, 400, `bad_data: invalid parameter "timeout"`},
		{"a negative timeout is bad_data", "GET", "/api/v1/query?" + q(`1`, "timeout", "-1"), nil, 400, `bad_data: invalid parameter "timeout"`},
		{"a window beyond limits.max_window is bad_data", "GET", "/api/v1/query?" + q(`count_over_time(events[60d])`), nil, 400, `bad_data: invalid parameter "query": 1:1: count_over_time looks back 60d, more than the configured maximum; shorten the window, or raise limits.max_window`},
		{"a range query steps from start to end", "GET", "/api/v1/query_range?" + q(`count_over_time(events[1m])`, "start", "1764000000", "end", "1764000120", "step", "60"), nil, 200,
			`{"result":[{"metric":{},"values":[[1764000000,"1"],[1764000060,"6"],[1764000120,"6"]]}],"resultType":"matrix"}`},
		{"a range query by form POST with Grafana's step in seconds", "POST", "/api/v1/query_range", url.Values{"query": {"1+1"}, "start": {"100"}, "end": {"102.5"}, "step": {"1"}}, 200,
			`{"result":[{"metric":{},"values":[[100,"2"],[101,"2"],[102,"2"]]}],"resultType":"matrix"}`},
		{"a range query with a duration step", "GET", "/api/v1/query_range?" + q(`time()`, "start", "2020-01-01T00:00:00Z", "end", "2020-01-01T00:02:00Z", "step", "1m"), nil, 200,
			`{"result":[{"metric":{},"values":[[1577836800,"1577836800"],[1577836860,"1577836860"],[1577836920,"1577836920"]]}],"resultType":"matrix"}`},
		{"end before start is bad_data", "GET", "/api/v1/query_range?" + q(`1`, "start", "1", "end", "0", "step", "1"), nil, 400, `bad_data: invalid parameter "end": end timestamp must not be before start time`},
		{"a zero step is bad_data", "GET", "/api/v1/query_range?" + q(`1`, "start", "0", "end", "10", "step", "0"), nil, 400, `bad_data: invalid parameter "step": zero or negative`},
		{"a missing step is bad_data", "GET", "/api/v1/query_range?" + q(`1`, "start", "0", "end", "10"), nil, 400, `bad_data: invalid parameter "step"`},
		{"more than 11,000 points is bad_data", "GET", "/api/v1/query_range?" + q(`1`, "start", "0", "end", "100000", "step", "1"), nil, 400, `bad_data: exceeded maximum resolution of 11,000 points per timeseries`},
		{"a string in a range query is bad_data", "GET", "/api/v1/query_range?" + q(`"a"`, "start", "0", "end", "10", "step", "1"), nil, 400, `bad_data: invalid expression type "string" for range query`},
		{"label names", "GET", "/api/v1/labels", nil, 200, `["__name__","alertname","alertstate","app_code","error_code","model","provider","status","tenant_id"]`},
		{"label names of a selector", "GET", "/api/v1/labels?" + url.Values{"match[]": {`latency_ms{tenant_id="acme"}`}, "start": {"1764000000"}, "end": {"1764000600"}}.Encode(), nil, 200,
			`["__name__","app_code","model","provider","status","tenant_id"]`},
		{"metric names", "GET", "/api/v1/label/__name__/values", nil, 200,
			`["ALERTS","ALERTS_FOR_STATE","cost","events","input_tokens","latency_ms","output_tokens","tenant:errors:5m","total_tokens"]`},
		{"label values in a span", "GET", "/api/v1/label/tenant_id/values?start=1764000000&end=1764000600", nil, 200, `["acme","beta"]`},
		{"label values with match[]", "GET", "/api/v1/label/tenant_id/values?" + url.Values{"match[]": {`events{status="error", tenant_id!="beta"}`}, "start": {"1764000000"}, "end": {"1764000600"}}.Encode(), nil, 200, `["acme"]`},
		{"label values of a label events lack, with match[] on it, are empty", "GET", "/api/v1/label/tenant_id/values?" + url.Values{"match[]": {`events{job="x"}`}}.Encode(), nil, 200, `[]`},
		{"values of a label nothing has are empty", "GET", "/api/v1/label/job/values", nil, 200, `[]`},
		{"values of an invalid label name are bad_data", "GET", "/api/v1/label/a%20b/values", nil, 400, `bad_data: invalid label name`},
		{"a bad match[] is bad_data", "GET", "/api/v1/label/job/values?match[]=foo(", nil, 400, `bad_data: invalid parameter "match[]"`},
		{"an empty match[] is bad_data", "GET", "/api/v1/label/job/values?match[]=%7B%7D", nil, 400, `bad_data: match[] must contain at least one non-empty matcher`},
		{"series need match[]", "GET", "/api/v1/series", nil, 400, `bad_data: no match[] parameter provided`},
		{"series of events and of a rule output", "POST", "/api/v1/series", url.Values{"match[]": {`cost{tenant_id="acme", status="error"}`, `tenant:errors:5m{tenant_id="beta"}`}, "start": {"1764000000"}, "end": {"1764000600"}}, 200,
			`[{"__name__":"cost","app_code":"chat","model":"gpt-4o","provider":"openai","status":"error","tenant_id":"acme"},{"__name__":"tenant:errors:5m","tenant_id":"beta"}]`},
		{"metadata of one metric", "GET", "/api/v1/metadata?metric=total_tokens", nil, 200,
			`{"total_tokens":[{"help":"Field of call events (sum of the columns input_tokens + output_tokens), pooled by range functions: p95(total_tokens[5m]), sum_over_time(total_tokens[1h]), max by (tenant_id) (avg_over_time(total_tokens[5m])).","type":"unknown","unit":""}]}`},
		{"build info has no feature list", "GET", "/api/v1/status/buildinfo", nil, 200,
			`{"branch":"main","buildDate":"today","buildUser":"test","goVersion":"go","revision":"abc","version":"0.1.0"}`},
		{"an unknown API path is a JSON 404", "GET", "/api/v1/nope", nil, 404, `not_found: unknown API endpoint /api/v1/nope`},
		{"a wrong method is a JSON 405", "DELETE", "/api/v1/query", nil, 405, `bad_data: method DELETE is not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, out := f.call(t, tc.method, tc.path, tc.form, nil)
			if code != tc.code {
				t.Fatalf("code %d, want %d: %v", code, tc.code, out)
			}
			if code == 200 {
				if out["status"] != "success" || dataJSON(out) != tc.want {
					t.Fatalf("data = %s\nwant   %s", dataJSON(out), tc.want)
				}
				return
			}
			got := out["errorType"].(string) + ": " + out["error"].(string)
			if out["status"] != "error" || !strings.HasPrefix(got, tc.want) {
				t.Fatalf("error = %s\nwant   %s…", got, tc.want)
			}
		})
	}
}

func TestQueryAPIRangeEqualsInstantAtEachStep(t *testing.T) {
	f := newPromFixture(t)
	expr := `sum by (tenant_id) (count_over_time(events{status="error"}[2m])) / sum by (tenant_id) (count_over_time(events[2m]))`
	_, _, out := f.call(t, "GET", "/api/v1/query_range?"+url.Values{"query": {expr}, "start": {"1763999900"}, "end": {"1764000700"}, "step": {"45"}}.Encode(), nil, nil)
	var matrix []struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	b, _ := json.Marshal(out["data"].(map[string]any)["result"])
	json.Unmarshal(b, &matrix)
	points := 0
	for _, s := range matrix {
		for _, p := range s.Values {
			ts := p[0].(float64)
			_, _, inst := f.call(t, "GET", "/api/v1/query?"+url.Values{"query": {expr}, "time": {strconvF(ts)}}.Encode(), nil, nil)
			found := false
			for _, r := range inst["data"].(map[string]any)["result"].([]any) {
				r := r.(map[string]any)
				if r["metric"].(map[string]any)["tenant_id"] == s.Metric["tenant_id"] {
					found = r["value"].([]any)[1] == p[1]
				}
			}
			if !found {
				t.Fatalf("at %v the range gives %v for %v; the instant query %v", ts, p[1], s.Metric, inst["data"])
			}
			points++
		}
	}
	if points < 20 {
		t.Fatalf("only %d points compared", points)
	}
}

func strconvF(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func TestQueryAPICORSAsPrometheus(t *testing.T) {
	f := newPromFixture(t)
	t.Run("a preflight is answered 204 with the CORS headers", func(t *testing.T) {
		code, h, _ := f.call(t, "OPTIONS", "/api/v1/query_range", nil, map[string]string{"Origin": "https://grafana.example"})
		if code != 204 || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" ||
			h.Get("Access-Control-Allow-Headers") != "Accept, Authorization, Content-Type, Origin" {
			t.Fatalf("%d %v", code, h)
		}
	})
	t.Run("a cross-origin form POST query is answered as Prometheus answers it", func(t *testing.T) {
		code, h, out := f.call(t, "POST", "/api/v1/query", url.Values{"query": {"1+1"}, "time": {"100"}},
			map[string]string{"Origin": "https://grafana.example", "Sec-Fetch-Site": "cross-site"})
		if code != 200 || h.Get("Access-Control-Allow-Origin") != "*" || dataJSON(out) != `{"result":[100,"2"],"resultType":"scalar"}` {
			t.Fatalf("%d %v %v", code, h, out)
		}
	})
	t.Run("a request without Origin gets only Vary", func(t *testing.T) {
		_, h, _ := f.call(t, "GET", "/api/v1/query?query=1", nil, nil)
		if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Vary") != "Origin" {
			t.Fatalf("%v", h)
		}
	})
	t.Run("the audit history gets no CORS headers", func(t *testing.T) {
		_, h, _ := f.call(t, "GET", "/api/v1/alerts/history", nil, map[string]string{"Origin": "https://evil.example"})
		if h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%v", h)
		}
	})
}

func TestRulesAlwaysCarryAlertsDurationAndKeepFiringFor(t *testing.T) {
	f := newPromFixture(t)
	_, _, out := f.call(t, "GET", "/api/v1/rules", nil, nil)
	rules := out["data"].(map[string]any)["groups"].([]any)[0].(map[string]any)["rules"].([]any)
	for _, r := range rules {
		r := r.(map[string]any)
		_, hasAlerts := r["alerts"]
		_, hasDur := r["duration"]
		_, hasKeep := r["keepFiringFor"]
		alerting := r["type"] == "alerting"
		if hasAlerts != alerting || hasDur != alerting || hasKeep != alerting {
			t.Errorf("%s rule %s: alerts %v, duration %v, keepFiringFor %v", r["type"], r["name"], hasAlerts, hasDur, hasKeep)
		}
		if r["name"] == "Quiet" && (string(mustJSON(r["alerts"])) != "[]" || r["duration"] != 300.0 || r["keepFiringFor"] != 60.0) {
			t.Errorf("Quiet = %v", r)
		}
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func TestLimitViolationsAreCountedOnMetrics(t *testing.T) {
	f := newPromFixture(t)
	f.call(t, "GET", "/api/v1/query?"+url.Values{"query": {"count_over_time(events[60d])"}}.Encode(), nil, nil)
	f.call(t, "GET", "/api/v1/query_range?query=1&start=0&end=100000&step=1", nil, nil)
	f.call(t, "GET", "/api/v1/query_range?query=1&start=0&end=100000&step=1", nil, nil)
	// And /metrics shows them.
	_, body := fetch(t, http.DefaultClient, f.srv.URL+"/metrics")
	for _, want := range []string{`callwatch_query_api_limit_exceeded_total{limit="max_points"} 2`, `callwatch_query_api_limit_exceeded_total{limit="max_window"} 1`,
		`callwatch_query_api_limit_exceeded_total{limit="query_timeout"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("/metrics lacks the counter:\n%s", body)
	}
}

// TestSeriesAreListedByLabels: a rule keeps its alerts in a map; the
// series endpoint lists rule outputs by labels, so limit keeps the same
// ones at every call (Grafana's label browser sends limit).
func TestSeriesAreListedByLabels(t *testing.T) {
	for run := range 20 {
		f := newPromFixture(t)
		code, _, out := f.call(t, "GET", "/api/v1/series?match[]=ALERTS&match[]=ALERTS_FOR_STATE&limit=3", nil, nil)
		want := `[{"__name__":"ALERTS","alertname":"TenantErrors","alertstate":"firing","tenant_id":"acme"},` +
			`{"__name__":"ALERTS","alertname":"TenantErrors","alertstate":"firing","tenant_id":"beta"},` +
			`{"__name__":"ALERTS_FOR_STATE","alertname":"TenantErrors","tenant_id":"acme"}]`
		if got := dataJSON(out); code != 200 || got != want {
			t.Fatalf("run %d: %d %s\nwant %s", run, code, got, want)
		}
	}
}
