package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/promtest"
)

// dashboardsFastRules fire at once on demo traffic, so ALERTS, the rule
// engine's metrics and the notifiers' have data within seconds; rules.d's
// own groups run every minute beside them.
const dashboardsFastRules = `groups:
- name: fast
  interval: 1s
  rules:
  - alert: DemoTraffic
    expr: sum by (tenant_id) (count_over_time(events[1m])) > 0
    severity: info
`

// serveDemo runs `callwatch serve --demo` (make run's setup) on ClickHouse
// 18.16: demo traffic with a 15-minute backfill, rules.d's rules and the
// fast ones, alerts printed on the console, the exporter updated every
// second.
func serveDemo(t *testing.T) (base string) {
	t.Helper()
	s := server.Get(t)
	db := eventsTable(t, s, "ai_call_events", dsl.DefaultSchema(), nil)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rules"), 0o755)
	for _, f := range []string{"baseline.yaml", "quality.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "rules.d", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "rules", f), string(data))
	}
	writeFile(t, filepath.Join(dir, "rules", "fast.yaml"), dashboardsFastRules)
	cfgFile := writeConfig(t, dir, fmt.Sprintf(`clickhouse:
  dsn: %s
  events_table: ai_call_events
rule_files: [rules/*.yaml]
notifiers:
  - {name: console, type: log}
default_notify: [console]
exporter:
  interval: 1s
`, s.DSN(db)))
	base, _, _ = serveInProcess(t, serveRun{config: cfgFile, args: []string{"--demo", "--demo.rate", "40"},
		startTimeout: 30 * time.Second})
	return base
}

// dashboard is what the tests read of a Grafana dashboard: the queries of
// its panels, annotations and template variables.
type dashboard struct {
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID   string `json:"refId"`
			Expr    string `json:"expr"`
			Instant bool   `json:"instant"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T, name string) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", name))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// panelQuery is one query of a dashboard, with Grafana's variables
// replaced as Grafana replaces them.
type panelQuery struct {
	where, expr string
	instant     bool
}

// queries returns every panel and annotation query of d, its variables
// set to vars and Grafana's built-in ones to what Grafana sends for a
// dashboard over the last rng.
func (d dashboard) queries(vars map[string]string, rng string) []panelQuery {
	r := []string{"$__rate_interval", "1m", "$__range", rng, "$__interval", "1m"}
	for k, v := range vars {
		r = append(r, "$"+k, v)
	}
	rep := strings.NewReplacer(r...)
	var out []panelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{fmt.Sprintf("panel %q, query %s", p.Title, tg.RefID), rep.Replace(tg.Expr), tg.Instant})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, panelQuery{fmt.Sprintf("annotation %q", a.Name), rep.Replace(a.Expr), false})
		}
	}
	return out
}

// labelValuesQuery matches Grafana's label_values(selector, label) and
// label_values(label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// variableValues asks base, as Grafana's Prometheus data source does, for
// the values of every query variable of d (GET
// /api/v1/label/<label>/values?match[]=...), in the order they are
// declared, each one's earlier variables set to All.
func variableValues(t *testing.T, base string, d dashboard, start, end time.Time, all map[string]string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	rep := func(s string) string {
		for k, v := range all {
			s = strings.ReplaceAll(s, "$"+k, v)
		}
		return s
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesQuery.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Fatalf("variable %s: %q is not label_values(...), which this test knows how Grafana sends", v.Name, v.Definition)
		}
		q := url.Values{"start": {sec(start)}, "end": {sec(end)}}
		if m[1] != "" {
			q.Set("match[]", rep(m[1]))
		}
		code, a := apiCall(t, grafanaGET(t, base, "/api/v1/label/"+m[2]+"/values", q))
		var values []string
		if code != 200 || json.Unmarshal(a.Data, &values) != nil || len(values) == 0 {
			t.Errorf("variable %s (%s) has no values: %d %+v", v.Name, v.Definition, code, a)
		}
		out[v.Name] = values
	}
	return out
}

// hasData runs q against base as Grafana would — a range query over
// [start, end] at step, or an instant query now (Grafana sends the
// dashboard's "to"; callwatch's ALERTS holds only the rules' last
// evaluation, which an instant query at an earlier end may predate) —
// and reports whether it returned any sample, with the answer when not.
func hasData(t *testing.T, base string, q panelQuery, start, end time.Time, step time.Duration) (bool, string) {
	t.Helper()
	form := url.Values{"query": {q.expr}, "start": {sec(start)}, "end": {sec(end)}, "step": {fmt.Sprint(step.Seconds())}}
	path := "/api/v1/query_range"
	if q.instant {
		form = url.Values{"query": {q.expr}, "time": {sec(time.Now())}}
		path = "/api/v1/query"
	}
	code, a := apiCall(t, grafanaPOST(t, base, path, form))
	var data struct {
		Result []json.RawMessage `json:"result"`
	}
	if code != 200 || json.Unmarshal(a.Data, &data) != nil {
		return false, fmt.Sprintf("%d %s: %s", code, a.ErrorType, a.Error)
	}
	return len(data.Result) > 0, string(a.Data)
}

// TestDashboardsReturnData runs make run's setup — `callwatch serve
// --demo` — and checks that every query of both shipped dashboards
// returns data: the one on scraped metrics through real Prometheus 2.42
// servers scraping callwatch as the classic text format (le="10"), as
// OpenMetrics (le="10.0") and as protobuf with native histograms on; the
// one on the events through callwatch's own query API, as Grafana sends
// its requests. The status page charts every rule of rules.d there too.
func TestDashboardsReturnData(t *testing.T) {
	base := serveDemo(t)
	u, _ := url.Parse(base)
	target := net.JoinHostPort(u.Hostname(), u.Port())
	// Prometheus 2.42 asks for OpenMetrics, whose buckets read le="10.0";
	// scrapers of the classic text format (vmagent, older Prometheus) read
	// le="10": this proxy asks for that format only.
	textOnly := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, base+r.URL.Path, nil)
		req.Header.Set("Accept", "text/plain;version=0.0.4")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(textOnly.Close)
	text := promtest.Start(t, promtest.Options{Targets: []string{textOnly.Listener.Addr().String()}})
	om := promtest.Start(t, promtest.Options{Targets: []string{target}})
	proto := promtest.Start(t, promtest.Options{Targets: []string{target}, EnableFeatures: []string{"native-histograms"}})

	scraped := readDashboard(t, "callwatch.json")
	all := map[string]string{"job": ".*", "tenant": ".*", "app_code": ".*", "model": ".*"}
	for _, p := range []struct {
		name string
		srv  *promtest.Server
	}{{"the classic text format", text}, {"OpenMetrics", om}, {"protobuf with native histograms", proto}} {
		t.Run("every query of callwatch.json returns data from a Prometheus scraping callwatch as "+p.name, func(t *testing.T) {
			var empty []string
			for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
				empty = nil
				end := time.Now()
				for _, q := range scraped.queries(all, "1h") {
					if ok, ans := hasData(t, p.srv.URL, q, end.Add(-5*time.Minute), end, 15*time.Second); !ok {
						empty = append(empty, fmt.Sprintf("%s: %s\n    %s", q.where, q.expr, ans))
					}
				}
				if len(empty) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if len(empty) > 0 {
				t.Fatalf("%d queries return nothing:\n%s", len(empty), strings.Join(empty, "\n"))
			}
			vals := variableValues(t, p.srv.URL, scraped, time.Now().Add(-time.Hour), time.Now(), all)
			if !strings.Contains(strings.Join(vals["tenant"], ","), "globex") {
				t.Errorf("the tenant variable lists %v", vals["tenant"])
			}
		})
	}
	t.Run(`"Calls slower than 10s" reads the 10 s bucket whether Prometheus stores it as le="10" or le="10.0"`, func(t *testing.T) {
		for _, c := range []struct {
			srv  *promtest.Server
			want string
		}{{text, "10"}, {om, "10.0"}} {
			v := c.srv.Query(t, `count by (le) (callwatch_call_duration_seconds_bucket{le=~"10(\\.0)?"})`)
			if len(v) != 1 || v[0].Metric["le"] != c.want {
				t.Errorf("want the bucket stored as le=%q, got %+v", c.want, v)
			}
		}
		// The panel's query before the fix is empty on OpenMetrics.
		if v := om.Query(t, `callwatch_call_duration_seconds_bucket{le="10"}`); len(v) != 0 {
			t.Errorf(`le="10" matches an OpenMetrics scrape's buckets (%d series): the fix proves nothing`, len(v))
		}
	})

	t.Run("the status page charts every rule over ClickHouse 18.16", func(t *testing.T) {
		var page string
		for range 4 { // a view charts for at most 4 s; the next ones add the rest
			_, page = httpGet(t, base+"/")
		}
		rows := strings.Split(page, `<tr class="rule"`)[1:]
		if len(rows) < 10 {
			t.Fatalf("%d rules on the page", len(rows))
		}
		for _, row := range rows {
			row, _, _ = strings.Cut(row, "</tr>")
			if strings.Contains(row, `id="rule-callwatch-builtin/`) {
				if strings.Contains(row, "<figure") {
					t.Errorf("a built-in rule, which has no expression, has a chart:\n%s", row)
				}
				continue
			}
			if !strings.Contains(row, "<svg") || strings.Contains(row, "failed") || strings.Contains(row, "not charted") {
				t.Errorf("a rule without its chart:\n%s", row)
			}
		}
	})

	events := readDashboard(t, "callwatch-events.json")
	t.Run("every query and variable of callwatch-events.json returns data from callwatch's own query API", func(t *testing.T) {
		end := time.Now()
		start := end.Add(-30 * time.Minute)
		vals := variableValues(t, base, events, start, end, all)
		if len(vals) != 3 {
			t.Fatalf("variables %v", vals)
		}
		// One tenant: one that had errors in the span, so the error
		// panels have something to show (which tenants fail depends on
		// where the demo's 30-minute script is, not only on callwatch).
		tenant := vals["tenant"][0]
		for _, v := range vals["tenant"] {
			q := panelQuery{expr: fmt.Sprintf(`sum(count_over_time(events{status="error", tenant_id=%q}[30m]))`, v), instant: true}
			if ok, _ := hasData(t, base, q, start, end, time.Minute); ok {
				tenant = v
				break
			}
		}
		one := map[string]string{"tenant": tenant, "app_code": ".*", "model": ".*"}
		for _, vars := range []map[string]string{all, one} {
			for _, q := range events.queries(vars, "30m") {
				if ok, ans := hasData(t, base, q, start, end, time.Minute); !ok {
					t.Errorf("%s (tenant %s) returns nothing: %s\n    %s", q.where, vars["tenant"], q.expr, ans)
				}
			}
		}
	})
}

// TestEventsDashboardIsCallwatchsLanguage checks, without servers, that
// every query of callwatch-events.json is an expression callwatch accepts
// within the default limits, that its variables are the ones its queries
// use, and that it does not share the scraped dashboard's uid.
func TestEventsDashboardIsCallwatchsLanguage(t *testing.T) {
	d := readDashboard(t, "callwatch-events.json")
	declared := map[string]bool{}
	for _, v := range d.Templating.List {
		declared[v.Name] = true
	}
	varRef := regexp.MustCompile(`\$([a-z_]+)`)
	qs := d.queries(map[string]string{"tenant": ".*", "app_code": ".*", "model": ".*"}, "31d")
	if len(qs) < 20 {
		t.Fatalf("%d queries", len(qs))
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range varRef.FindAllStringSubmatch(tg.Expr, -1) {
				if !declared[m[1]] && !strings.HasPrefix(m[1], "__") {
					t.Errorf("panel %q uses $%s, which is not a variable of the dashboard", p.Title, m[1])
				}
			}
		}
	}
	limits := config.Default().Limits.DSL()
	for _, q := range qs {
		if _, err := dsl.Parse(q.expr, dsl.Options{Schema: dsl.DefaultSchema(), Limits: limits, Series: func(name string) bool { return name == "ALERTS" }}); err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
	}
	var uids [2]struct {
		UID string `json:"uid"`
	}
	for i, name := range []string{"callwatch.json", "callwatch-events.json"} {
		data, _ := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", name))
		json.Unmarshal(data, &uids[i])
	}
	if uids[0].UID == "" || uids[0].UID == uids[1].UID {
		t.Errorf("the dashboards' uids %q and %q must differ", uids[0].UID, uids[1].UID)
	}
}
