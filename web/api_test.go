package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

type staticRules []*engine.Group

func (s staticRules) Groups() []*engine.Group { return s }

// setup evaluates one group over a few events and serves it.
func setup(t testing.TB) (*httptest.Server, *int) {
	t.Helper()
	store := memory.New(dsl.Schema{})
	base := time.Unix(1764000000, 0)
	for i := range 5 {
		store.Add(memory.Event{Time: base.Add(time.Duration(i) * time.Second), Labels: []string{"acme", "chat", "gpt-4o", "openai", "error", ""}, Nums: map[string]float64{"latency_ms": 6000}})
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: store})
	groups := evalRules(t, q, t.TempDir()+"/rules.yaml", tenantErrorsRules+`    annotations:
      summary: "{{ $labels.tenant_id }} has {{ $value }} errors"
`, base.Add(time.Minute))
	reloads := 0
	srv := httptest.NewServer(Handler(Options{
		Rules: groups,
		Query: q.Query,
		Reload: func(context.Context) error {
			reloads++
			return nil
		},
		Now: func() time.Time { return base.Add(time.Minute) },
	}))
	t.Cleanup(srv.Close)
	return srv, &reloads
}

// tenantErrorsRules is a rule file whose one group g records each tenant's
// errors over 5m and alerts on more than 3 (TenantErrors); more keys of
// the alert may follow.
const tenantErrorsRules = `groups:
- name: g
  rules:
  - record: tenant:errors:5m
    expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m]))
  - alert: TenantErrors
    expr: tenant:errors:5m > 3
`

// evalRules parses the rule file path, of text data, and evaluates each of
// its groups over q at each of the times at, in order; it returns the
// groups.
func evalRules(t testing.TB, q *engine.Querier, path, data string, at ...time.Time) staticRules {
	t.Helper()
	var groups staticRules
	for _, spec := range parseRules(t, path, data) {
		g := engine.NewGroup(spec, engine.GroupOptions{Query: q.QueryWith})
		for _, ts := range at {
			g.Eval(context.Background(), ts)
		}
		groups = append(groups, g)
	}
	return groups
}

// parseRules parses the rule file path, of text data, with the default
// options, and fails the test when it does not parse.
func parseRules(t testing.TB, path, data string) []*rulefmt.GroupSpec {
	t.Helper()
	specs, err := rulefmt.ParseRuleFile(path, []byte(data), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, body := fetch(t, http.DefaultClient, u)
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("%s: not JSON: %s", u, body)
	}
	return resp.StatusCode, out
}

func TestAPI(t *testing.T) {
	srv, reloads := setup(t)
	t.Run("alerts lists the firing alert in Prometheus' shape", func(t *testing.T) {
		code, out := get(t, srv.URL+"/api/v1/alerts")
		alerts := out["data"].(map[string]any)["alerts"].([]any)
		if code != 200 || len(alerts) != 1 {
			t.Fatalf("code %d, alerts %v", code, alerts)
		}
		a := alerts[0].(map[string]any)
		if a["state"] != "firing" || a["labels"].(map[string]any)["tenant_id"] != "acme" || a["value"] != "5e+00" {
			t.Fatalf("alert = %v", a)
		}
		if a["annotations"].(map[string]any)["summary"] != "acme has 5 errors" {
			t.Fatalf("annotations = %v", a["annotations"])
		}
	})
	t.Run("rules lists both rules with health and type", func(t *testing.T) {
		_, out := get(t, srv.URL+"/api/v1/rules")
		groups := out["data"].(map[string]any)["groups"].([]any)
		rules := groups[0].(map[string]any)["rules"].([]any)
		if len(rules) != 2 || rules[0].(map[string]any)["type"] != "recording" || rules[1].(map[string]any)["type"] != "alerting" {
			t.Fatalf("rules = %v", rules)
		}
		if rules[1].(map[string]any)["health"] != "ok" || rules[1].(map[string]any)["state"] != "firing" {
			t.Fatalf("alerting rule = %v", rules[1])
		}
		_, out = get(t, srv.URL+"/api/v1/rules?type=record")
		rules = out["data"].(map[string]any)["groups"].([]any)[0].(map[string]any)["rules"].([]any)
		if len(rules) != 1 {
			t.Fatalf("type=record gave %d rules", len(rules))
		}
	})
	t.Run("query returns the data object of /api/v1/query", func(t *testing.T) {
		_, out := get(t, srv.URL+"/api/v1/query?query="+url.QueryEscape(`count_over_time(events[5m])`)+"&time=1764000060")
		data, _ := json.Marshal(out["data"])
		if want := `{"result":[{"metric":{},"value":[1764000060,"5"]}],"resultType":"vector"}`; string(data) != want {
			t.Fatalf("data = %s, want %s", data, want)
		}
	})
	t.Run("a time past 2262 is refused, not answered with no data", func(t *testing.T) {
		// 10^10 s is the year 2286: PromQL's engine counts in nanoseconds
		// and would find no sample there.
		code, out := get(t, srv.URL+"/api/v1/query?query="+url.QueryEscape(`count_over_time(events[5m])`)+"&time=10000000000")
		if code < 400 || !strings.Contains(fmt.Sprint(out["error"]), "between 1678 and 2262") {
			t.Fatalf("code %d, out %v", code, out)
		}
	})
	t.Run("a bad query is a 400 with a position", func(t *testing.T) {
		code, out := get(t, srv.URL+"/api/v1/query?query="+url.QueryEscape(`irate(latency_ms[5m])`))
		if code != 400 || out["errorType"] != "bad_data" || !strings.HasPrefix(out["error"].(string), `invalid parameter "query": 1:1:`) {
			t.Fatalf("code %d, out %v", code, out)
		}
	})
	t.Run("evaluations show the last evaluation of a rule", func(t *testing.T) {
		_, out := get(t, srv.URL+"/api/v1/rules/evaluations?rule=TenantErrors")
		evals := out["data"].([]any)[0].(map[string]any)["evaluations"].([]any)
		if len(evals) != 1 || evals[0].(map[string]any)["samples"].(float64) != 1 {
			t.Fatalf("evaluations = %v", evals)
		}
		code, _ := get(t, srv.URL+"/api/v1/rules/evaluations?rule=Nope")
		if code != 404 {
			t.Fatalf("unknown rule: code %d", code)
		}
	})
	t.Run("reload calls the reload function on POST only", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/-/reload", "", nil)
		if err != nil || resp.StatusCode != 200 || *reloads != 1 {
			t.Fatalf("POST: %v %v reloads=%d", err, resp.StatusCode, *reloads)
		}
		resp, _ = http.Get(srv.URL + "/-/reload")
		if resp.StatusCode != http.StatusMethodNotAllowed || *reloads != 1 {
			t.Fatalf("GET: %v reloads=%d", resp.StatusCode, *reloads)
		}
	})
}

func TestAdminEndpointsNeedTheTokenWhenOneIsSet(t *testing.T) {
	reloads := 0
	srv := httptest.NewServer(Handler(Options{
		Rules:      staticRules{},
		Reload:     func(context.Context) error { reloads++; return nil },
		Silences:   engine.NewSilences(engine.SilencesOptions{}),
		AdminToken: "s3cret",
	}))
	defer srv.Close()
	do := func(method, path, token, body string) int {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	silence := `{"matchers":"{tenant_id=\"acme\"}","duration":"1h","createdBy":"bob"}`
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/-/reload", ""},
		{"POST", "/api/v1/alerts/00000000000000ff/ack", `{"by":"x"}`},
		{"POST", "/api/v1/alerts/00000000000000ff/resolve", `{"by":"x"}`},
		{"POST", "/api/v1/silences", silence},
		{"DELETE", "/api/v1/silences/nope", ""},
	} {
		if code := do(tc.method, tc.path, "", tc.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", tc.method, tc.path, code)
		}
		if code := do(tc.method, tc.path, "wrong", tc.body); code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d, want 401", tc.method, tc.path, code)
		}
	}
	if reloads != 0 {
		t.Fatal("a request without the token reloaded")
	}
	if code := do("POST", "/-/reload", "s3cret", ""); code != 200 || reloads != 1 {
		t.Fatalf("with the token: %d, reloads %d", code, reloads)
	}
	if code := do("POST", "/api/v1/silences", "s3cret", silence); code != 200 {
		t.Fatalf("silence with the token: %d", code)
	}
	// Reading stays open.
	if code := do("GET", "/api/v1/silences", "", ""); code != 200 {
		t.Fatalf("GET silences: %d", code)
	}
}

// TestQueriesAreBoundedBySlotsAndADeadline: at most MaxConcurrentQueries
// run at once, a query waits for a slot no longer than its deadline, a
// query past its deadline answers 503 timeout, and a huge body or an
// expression over the limits is refused before anything runs.
func TestQueriesAreBoundedBySlotsAndADeadline(t *testing.T) {
	var running, most atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(Handler(Options{
		Rules: staticRules{}, Schema: dsl.DefaultSchema(), QueryTimeout: 300 * time.Millisecond, MaxConcurrentQueries: 2,
		Limits: dsl.Limits{MaxRange: 24 * time.Hour},
		Query: func(ctx context.Context, _ *dsl.Expr, _ time.Time) (engine.Result, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				if m := most.Load(); n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			select {
			case <-release:
				return engine.Result{IsScalar: true, Scalar: 1}, nil
			case <-ctx.Done():
				return engine.Result{}, ctx.Err()
			}
		},
	}))
	defer srv.Close()
	codes := make(chan int, 6)
	for range 6 {
		go func() {
			resp, err := http.PostForm(srv.URL+"/api/v1/query", url.Values{"query": {"1"}})
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for range 6 {
		if c := <-codes; c != http.StatusServiceUnavailable {
			t.Errorf("a query blocked past its deadline answered %d, want 503", c)
		}
	}
	if m := most.Load(); m > 2 {
		t.Errorf("%d queries ran at once, more than the 2 slots", m)
	}
	close(release)
	for _, tc := range []struct {
		name string
		form url.Values
		want int
		msg  string
	}{
		{"a query runs", url.Values{"query": {"1"}}, http.StatusOK, ""},
		{"a window over the maximum is refused", url.Values{"query": {"count_over_time(events[60d])"}}, http.StatusBadRequest, "more than the configured maximum"},
		{"a request timeout that is not a duration is refused", url.Values{"query": {"1"}, "timeout": {"soon"}}, http.StatusBadRequest, "timeout"},
		{"a huge form body is refused", url.Values{"query": {"1"}, "x": {strings.Repeat("x", 2<<20)}}, http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := submit(t, http.DefaultClient, srv.URL+"/api/v1/query", tc.form)
			if resp.StatusCode != tc.want || !strings.Contains(body, tc.msg) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tc.want, tc.msg)
			}
		})
	}
}
