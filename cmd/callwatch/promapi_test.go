package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/promtest"
	"github.com/callwatch/callwatch/internal/testrules"
)

// spreadEvents writes n events over the two hours before now, three
// tenants taking turns, every fifth one an error, and returns the
// database and a JSON Lines file of the same events (for `callwatch query
// --events`).
func spreadEvents(t *testing.T, n int) (db string, now time.Time, jsonl string) {
	t.Helper()
	now = time.Now().UTC().Truncate(time.Second)
	rows := make([]map[string]any, 0, n)
	for i := range n {
		status := "ok"
		if i%5 == 0 {
			status = "error"
		}
		rows = append(rows, map[string]any{"created_at": now.Add(-time.Duration(i) * 2 * time.Hour / time.Duration(n)), "tenant_id": []string{"acme", "beta", "gamma"}[i%3],
			"model": []string{"gpt-4o", "claude"}[(i/3)%2], "status": status, "latency_ms": 100 + (i*37)%5000, "cost": 0.25})
	}
	db = eventsTable(t, server.Get(t), "ai_call_events", dsl.DefaultSchema(), rows)
	var b strings.Builder
	for _, r := range rows {
		r["created_at"] = r["created_at"].(time.Time).Format(time.RFC3339)
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	jsonl = filepath.Join(t.TempDir(), "events.jsonl")
	writeFile(t, jsonl, b.String())
	return db, now, jsonl
}

var promAPIRules = testrules.File("interval: 1s", `- record: tenant:calls:5m
  expr: sum by (tenant_id) (count_over_time(events[5m]))
- alert: TenantBusy
  expr: tenant:calls:5m > 0`)

type apiAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func apiCall(t *testing.T, req *http.Request) (int, apiAnswer) {
	t.Helper()
	resp, body := do(t, req)
	var a apiAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("%s %s: not JSON: %s", req.Method, req.URL, body)
	}
	return resp.StatusCode, a
}

// grafanaPOST is a request as Grafana's Prometheus data source sends it
// with its default HTTP method, POST (pkg/promlib/client): a form body.
func grafanaPOST(t *testing.T, base, path string, form url.Values) *http.Request {
	t.Helper()
	req := newRequest(t, http.MethodPost, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Grafana/12.0.0")
	req.Header.Set("Accept", "application/json, text/plain, */*")
	return req
}

func grafanaGET(t *testing.T, base, path string, q url.Values) *http.Request {
	t.Helper()
	req := newRequest(t, http.MethodGet, base+path+"?"+q.Encode(), nil)
	req.Header.Set("User-Agent", "Grafana/12.0.0")
	return req
}

// sec formats a time as Grafana does: unix seconds with a fraction.
func sec(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64) }

// TestQueryAPIOnClickHouse runs the query API of a real `callwatch serve`
// on ClickHouse 18.16: Grafana's own requests, a range query equal to the
// instant queries at each of its steps, rule outputs by name, and
// Debian's promtool as a client.
func TestQueryAPIOnClickHouse(t *testing.T) {
	db, now, jsonl := spreadEvents(t, 600)
	base, dir, _ := serveOn(t, server.Get(t), db, promAPIRules, "")
	waitFor(t, "the recording rule to be evaluated", 20*time.Second, func() bool {
		_, a := apiCall(t, grafanaGET(t, base, "/api/v1/query", url.Values{"query": {"tenant:calls:5m"}}))
		return a.Status == "success" && strings.Contains(string(a.Data), "acme")
	})

	t.Run("Grafana's health check, a POST of 1+1 at time 4, is a scalar 2", func(t *testing.T) {
		code, a := apiCall(t, grafanaPOST(t, base, "/api/v1/query", url.Values{"query": {"1+1"}, "time": {"4"}, "timeout": {"60s"}}))
		if code != 200 || string(a.Data) != `{"resultType":"scalar","result":[4,"2"]}` {
			t.Fatalf("%d %+v", code, a)
		}
	})
	t.Run("Grafana's build info request finds plain Prometheus (no features)", func(t *testing.T) {
		code, a := apiCall(t, grafanaGET(t, base, "/api/v1/status/buildinfo", nil))
		if code != 200 || strings.Contains(string(a.Data), "features") || !strings.Contains(string(a.Data), `"version"`) {
			t.Fatalf("%d %+v", code, a)
		}
	})
	t.Run("Grafana's metadata request lists the fields", func(t *testing.T) {
		_, a := apiCall(t, grafanaGET(t, base, "/api/v1/metadata", nil))
		if !strings.Contains(string(a.Data), `"latency_ms":[{"type":"unknown"`) || !strings.Contains(string(a.Data), `"tenant:calls:5m"`) {
			t.Fatalf("%+v", a)
		}
	})
	t.Run("Grafana's label values request with match[] (a template variable) reads ClickHouse", func(t *testing.T) {
		q := url.Values{"match[]": {`latency_ms{model="claude"}`}, "start": {sec(now.Add(-time.Hour))}, "end": {sec(now)}}
		_, a := apiCall(t, grafanaGET(t, base, "/api/v1/label/tenant_id/values", q))
		if string(a.Data) != `["acme","beta","gamma"]` {
			t.Fatalf("%+v", a)
		}
		q.Set("match[]", `events{tenant_id="beta"}`)
		_, a = apiCall(t, grafanaGET(t, base, "/api/v1/label/model/values", q))
		if string(a.Data) != `["claude","gpt-4o"]` {
			t.Fatalf("%+v", a)
		}
	})
	t.Run("Grafana's series request by POST", func(t *testing.T) {
		_, a := apiCall(t, grafanaPOST(t, base, "/api/v1/series", url.Values{"match[]": {`cost{tenant_id="acme",status="error"}`}, "start": {sec(now.Add(-time.Hour))}, "end": {sec(now)}, "limit": {"40000"}}))
		if a.Status != "success" || !strings.Contains(string(a.Data), `"__name__":"cost"`) || strings.Contains(string(a.Data), `"beta"`) {
			t.Fatalf("%+v", a)
		}
	})
	t.Run("a range query over ClickHouse equals the instant queries at each step", func(t *testing.T) {
		expr := `sum by (tenant_id) (count_over_time(events{status="error"}[10m])) / sum by (tenant_id) (count_over_time(events[10m]))`
		start, end, step := now.Add(-2*time.Hour-5*time.Minute), now, 7*time.Minute
		_, a := apiCall(t, grafanaPOST(t, base, "/api/v1/query_range", url.Values{"query": {expr}, "start": {sec(start)}, "end": {sec(end)}, "step": {"420"}}))
		var m struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		}
		if err := json.Unmarshal(a.Data, &m); err != nil || a.Status != "success" {
			t.Fatalf("%+v %v", a, err)
		}
		points := 0
		for _, s := range m.Result {
			for _, p := range s.Values {
				ts := p[0].(float64)
				if int64(ts*1000)%int64(step/time.Millisecond) != start.UnixMilli()%int64(step/time.Millisecond) {
					t.Fatalf("a point at %v is not at start + k·step", ts)
				}
				_, inst := apiCall(t, grafanaGET(t, base, "/api/v1/query", url.Values{"query": {expr}, "time": {strconv.FormatFloat(ts, 'f', -1, 64)}}))
				if !strings.Contains(string(inst.Data), fmt.Sprintf(`{"metric":{"tenant_id":%q},"value":[%s,%q]}`, s.Metric["tenant_id"], strconv.FormatFloat(ts, 'f', -1, 64), p[1])) {
					t.Fatalf("at %v the range gives %v for %v; the instant query %s", ts, p[1], s.Metric, inst.Data)
				}
				points++
			}
		}
		if points < 30 {
			t.Fatalf("only %d points compared: %s", points, a.Data)
		}
	})
	t.Run("a range query equals `callwatch query --time` at each step, over ClickHouse and over the same events in memory", func(t *testing.T) {
		rangeEqualsCLI(t, base, filepath.Join(dir, "callwatch.yaml"), jsonl, now)
	})
	t.Run("promtool query instant reads callwatch as a Prometheus", func(t *testing.T) {
		out, err := promtest.Run(t, nil, "query", "instant", "--time="+now.Format(time.RFC3339), base, `sum by (tenant_id) (count_over_time(events[2h]))`)
		if err != nil || !strings.Contains(string(out), `{tenant_id="acme"} => 200 @[`) {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("promtool query range reads callwatch as a Prometheus", func(t *testing.T) {
		out, err := promtest.Run(t, nil, "query", "range", "--start="+now.Add(-time.Hour).Format(time.RFC3339), "--end="+now.Format(time.RFC3339), "--step=30m",
			base, `count_over_time(events{tenant_id="beta"}[1h])`)
		if err != nil || strings.Count(string(out), " @[") != 3 || !strings.Contains(string(out), `{tenant_id="beta"} =>`) {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}

// rangeEqualsCLI checks that every step of /api/v1/query_range answers
// what `callwatch query --time` answers at that time, on the ClickHouse of
// configFile and in memory over the events of jsonl: each sample equal,
// and no series present in one and missing in the other.
func rangeEqualsCLI(t *testing.T, base, configFile, jsonl string, now time.Time) {
	type vector map[string]string // labels as JSON -> value
	start, end, step := now.Add(-2*time.Hour), now, 15*time.Minute
	for _, expr := range []string{
		`sum by (tenant_id) (count_over_time(events{status="error"}[10m])) / sum by (tenant_id) (count_over_time(events[10m]))`,
		`max by (tenant_id, model) (p95(latency_ms[20m])) > 1000`,
		`sum(sum_over_time(cost[30m])) * 2`,
		`scalar(count_over_time(events{tenant_id="beta"}[1h]))`,
	} {
		_, a := apiCall(t, grafanaGET(t, base, "/api/v1/query_range", url.Values{"query": {expr}, "start": {sec(start)}, "end": {sec(end)}, "step": {"900"}}))
		var m struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric json.RawMessage `json:"metric"`
				Values [][2]any        `json:"values"`
			} `json:"result"`
		}
		if err := json.Unmarshal(a.Data, &m); err != nil || a.Status != "success" || m.ResultType != "matrix" {
			t.Fatalf("%s: %+v %v", expr, a, err)
		}
		byStep := map[string]vector{}
		for _, s := range m.Result {
			for _, p := range s.Values {
				ts := strconv.FormatFloat(p[0].(float64), 'f', -1, 64)
				if byStep[ts] == nil {
					byStep[ts] = vector{}
				}
				byStep[ts][string(s.Metric)] = p[1].(string)
			}
		}
		compared := 0
		for ts := start; !ts.After(end); ts = ts.Add(step) {
			at := sec(ts)
			for _, src := range [][]string{{"--config.file", configFile}, {"--events", jsonl}} {
				args := append([]string{"query"}, src...)
				code, out, errOut := runCLI(append(args, "--time", at, expr)...)
				if code != 0 {
					t.Fatalf("callwatch query %s --time %s %q: exit %d: %s", src[0], at, expr, code, errOut)
				}
				var inst struct {
					ResultType string          `json:"resultType"`
					Result     json.RawMessage `json:"result"`
				}
				if err := json.Unmarshal([]byte(out), &inst); err != nil {
					t.Fatalf("callwatch query printed %q: %v", out, err)
				}
				got := vector{}
				switch inst.ResultType {
				case "scalar":
					var p [2]any
					json.Unmarshal(inst.Result, &p)
					got["{}"] = p[1].(string)
				case "vector":
					var v []struct {
						Metric json.RawMessage `json:"metric"`
						Value  [2]any          `json:"value"`
					}
					json.Unmarshal(inst.Result, &v)
					for _, s := range v {
						got[string(s.Metric)] = s.Value[1].(string)
					}
				default:
					t.Fatalf("callwatch query printed a %s", inst.ResultType)
				}
				want := byStep[at]
				if len(want) == 0 && len(got) == 0 {
					continue
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s at %s: the range query gives\n  %v\nand callwatch query %s gives\n  %v", expr, at, want, src[0], got)
				}
				compared += len(got)
			}
		}
		if compared < 10 {
			t.Fatalf("%s: only %d samples compared: %s", expr, compared, a.Data)
		}
	}
}
