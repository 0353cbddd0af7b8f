package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
)

const chartRules = `groups:
- name: charts
  interval: 1m
  rules:
  - record: tenant:p95:5m
    expr: max by (tenant_id) (p95(latency_ms[5m]))
  - alert: SlowTenant
    expr: tenant:p95:5m > 5000
    for: 10m
    severity: warning
  - alert: LatencyTiers
    expr: max by (tenant_id) (p95(latency_ms[5m]))
    thresholds:
      - {severity: warning, op: ">", value: 3000}
      - {severity: critical, op: ">", value: 8000}
    recover_below: 2500
  - alert: BusyAndSlow
    expr: max by (tenant_id) (p95(latency_ms[5m])) > 5000 and sum by (tenant_id) (count_over_time(events[5m])) >= 5
  - record: latency:inf
    expr: max_over_time(latency_ms[5m]) / 0 + (max_over_time(latency_ms[5m]) - max_over_time(latency_ms[5m])) / 0
`

// chartFixture serves the page over three hours of calls: acme is slow
// (9 s) from minute 60 to 90, the hostile tenant is always fast. The rules
// were evaluated every minute of those hours, so the audit trail holds
// SlowTenant's pending and firing spans.
func chartFixture(t *testing.T, configure ...func(*Options)) *httptest.Server {
	t.Helper()
	base := time.Unix(1764000000, 0).UTC()
	store := memory.New(dsl.Schema{})
	for m := range 180 {
		for s := 0; s < 60; s += 20 {
			ts := base.Add(time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
			lat := 120.0
			if m >= 60 && m < 90 {
				lat = 9000
			}
			store.Add(memory.Event{Time: ts, Labels: []string{"acme", "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"latency_ms": lat}})
			store.Add(memory.Event{Time: ts, Labels: []string{hostile, "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"latency_ms": 50}})
		}
	}
	now := base.Add(180 * time.Minute)
	clock := base
	audit := &memAudit{}
	var mgr *engine.Manager
	q := engine.NewQuerier(engine.QuerierOptions{Source: store, Series: engine.Outputs{Groups: func() []*engine.Group { return mgr.Groups() }}})
	mgr = loadRules(t, q, audit, chartRules, func() time.Time { return clock })
	ctx := context.Background()
	for ; !clock.After(now); clock = clock.Add(time.Minute) {
		for _, g := range mgr.Groups() {
			g.Eval(ctx, clock)
		}
	}
	clock = now
	opts := Options{Rules: mgr, History: audit, QueryRange: q.QueryRange, Now: func() time.Time { return now }}
	for _, c := range configure {
		c(&opts)
	}
	srv := httptest.NewServer(Handler(opts))
	t.Cleanup(srv.Close)
	return srv
}

// figure returns the chart of a rule's row in the page.
func figure(t *testing.T, page, rule string) string {
	t.Helper()
	_, row, found := strings.Cut(page, `id="`+engine.RuleAnchor("charts", rule)+`"`)
	if !found {
		t.Fatalf("no row for %s", rule)
	}
	row, _, _ = strings.Cut(row, "</tr>")
	_, fig, found := strings.Cut(row, `<figure class="chart"`)
	if !found {
		t.Fatalf("no chart for %s:\n%s", rule, row)
	}
	fig, _, _ = strings.Cut(fig, "</figure>")
	return fig
}

func TestRuleCharts(t *testing.T) {
	srv := chartFixture(t)
	_, page := fetch(t, http.DefaultClient, srv.URL+"/")

	t.Run("an alert's chart draws the compared value, its threshold and the spans it was pending and firing", func(t *testing.T) {
		fig := figure(t, page, "SlowTenant")
		for _, want := range []string{`<svg role="img"`, `class="span pending"`, `class="span firing"`, `&gt; 5000 (warning)`,
			`class="series"`, "last 3h", `{tenant_id=&#34;acme&#34;}`,
		} {
			if !strings.Contains(fig, want) {
				t.Fatalf("the chart lacks %q:\n%s", want, fig)
			}
		}
		// The recording rule read by name is charted through its
		// expression (a rule keeps only its last output), without the
		// comparison (which would leave only the values above 5000).
		if !strings.Contains(fig, "charted: <code>(max by (tenant_id) (p95(latency_ms[5m])))</code>") {
			t.Fatalf("the chart does not say it inlined the recording rule:\n%s", fig)
		}
		// Pending from minute 60, firing from minute 70 (for: 10m) until
		// the slow calls leave the 5m window.
		for _, want := range []string{"pending 17:00:00–17:10:00 UTC", "firing 17:10:00–17:35:00 UTC"} {
			if !strings.Contains(fig, want) {
				t.Fatalf("want a span %q:\n%s", want, fig)
			}
		}
	})
	t.Run("severity tiers and the recovery threshold are drawn", func(t *testing.T) {
		fig := figure(t, page, "LatencyTiers")
		for _, want := range []string{`&gt; 3000 (warning)`, `&gt; 8000 (critical)`, `recovers at 2500`, `class="threshold recover"`} {
			if !strings.Contains(fig, want) {
				t.Fatalf("the chart lacks %q:\n%s", want, fig)
			}
		}
	})
	t.Run("a condition joined by and charts its first comparison's value", func(t *testing.T) {
		fig := figure(t, page, "BusyAndSlow")
		if !strings.Contains(fig, "&gt; 5000") || !strings.Contains(fig, `class="span firing"`) || strings.Contains(fig, "no value") {
			t.Fatalf("%s", fig)
		}
	})
	t.Run("labels that are markup are shown as text", func(t *testing.T) {
		if strings.Contains(page, hostile) || strings.Contains(page, "<script>alert") {
			t.Fatal("the hostile tenant's name reached the page unescaped")
		}
		if !strings.Contains(figure(t, page, "LatencyTiers"), "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatal("the hostile tenant's series is not in the legend")
		}
	})
	t.Run("NaN and infinite values are left out and said so", func(t *testing.T) {
		fig := figure(t, page, "latency:inf")
		if !strings.Contains(fig, "NaN or infinite values not drawn") || strings.Contains(fig, "NaN,") || strings.Contains(fig, "Inf") {
			t.Fatalf("%s", fig)
		}
	})
	t.Run("the range is one of a fixed few: anything else is the default", func(t *testing.T) {
		_, p := fetch(t, http.DefaultClient, srv.URL+"/?chart=24h")
		if !strings.Contains(figure(t, p, "SlowTenant"), "last 24h") {
			t.Fatal("?chart=24h did not chart a day")
		}
		for _, bad := range []string{"100000h", "-1h", "NaN", "1e308s", "<script>"} {
			_, p := fetch(t, http.DefaultClient, srv.URL+"/?chart="+strings.ReplaceAll(bad, "<", "%3C"))
			if !strings.Contains(figure(t, p, "SlowTenant"), "last 3h") {
				t.Fatalf("?chart=%s did not fall back to 3h", bad)
			}
		}
	})
	t.Run("every path holds at most 120 points", func(t *testing.T) {
		for _, d := range strings.Split(page, ` d="`)[1:] {
			d, _, _ = strings.Cut(d, `"`)
			if n := strings.Count(d, ","); n > chartPoints+1 {
				t.Fatalf("a path of %d points", n)
			}
		}
	})
}

func TestRuleChartsAreBounded(t *testing.T) {
	t.Run("a page view charts for at most 4 s, and the charts it left out come with the next views", func(t *testing.T) {
		var calls atomic.Int32
		srv := chartFixture(t, func(o *Options) {
			inner := o.QueryRange
			o.QueryRange = func(ctx context.Context, e *dsl.Expr, start, end time.Time, step time.Duration) (engine.RangeResult, error) {
				calls.Add(1)
				select { // a slow ClickHouse: 1.5 s a chart
				case <-time.After(1500 * time.Millisecond):
				case <-ctx.Done():
					return engine.RangeResult{}, ctx.Err()
				}
				return inner(ctx, e, start, end, step)
			}
		})
		began := time.Now()
		_, page := fetch(t, http.DefaultClient, srv.URL+"/")
		if took := time.Since(began); took > chartBudget+2*time.Second {
			t.Fatalf("the page took %s", took)
		}
		if n := strings.Count(page, "not computed"); n == 0 || strings.Count(page, "<svg") == 0 {
			t.Fatalf("want some charts drawn and some left for later: %d notes, %d charts", n, strings.Count(page, "<svg"))
		}
		for range 3 {
			_, page = fetch(t, http.DefaultClient, srv.URL+"/")
		}
		if n := strings.Count(page, "<svg"); n != 5 {
			t.Fatalf("after four views, %d of 5 charts are drawn", n)
		}
		before := calls.Load()
		fetch(t, http.DefaultClient, srv.URL+"/")
		if calls.Load() != before {
			t.Fatalf("a view within the same step queried again (%d range queries)", calls.Load()-before)
		}
	})
	t.Run("with every query slot taken, the page still answers and says why a chart is missing", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv := chartFixture(t, func(o *Options) {
			o.MaxConcurrentQueries = 1
			inner := o.QueryRange
			o.QueryRange = func(ctx context.Context, e *dsl.Expr, start, end time.Time, step time.Duration) (engine.RangeResult, error) {
				if e.Input == "count_over_time(events[1m])" {
					<-release // a Grafana query holding the only slot
				}
				return inner(ctx, e, start, end, step)
			}
		})
		go http.Get(srv.URL + "/api/v1/query_range?query=count_over_time(events[1m])&start=0&end=60&step=60")
		time.Sleep(200 * time.Millisecond)
		began := time.Now()
		_, page := fetch(t, http.DefaultClient, srv.URL+"/")
		// The charts and the history read share the page's 5 s.
		if took := time.Since(began); took > 6*time.Second || !strings.Contains(page, "query slot") {
			t.Fatalf("took %s; the page says: %s", took, page)
		}
	})
}

// chartCheck loads the status page in an iframe and reports, for each
// chart, what Chromium made of its SVG: whether it is SVG, the length of
// its lines, the size of its spans and whether everything lies inside the
// chart.
var chartCheck = framePage("chart check", 3000, `document.getElementById("f").addEventListener("load", function () {
  var d = document.getElementById("f").contentDocument, out = [];
  d.querySelectorAll("tr.rule").forEach(function (row) {
    var svg = row.querySelector("figure.chart svg");
    if (!svg) { out.push({rule: row.id, svg: false}); return; }
    var vb = svg.viewBox.baseVal, r = {rule: row.id, svg: svg.namespaceURI === "http://www.w3.org/2000/svg", lines: 0, length: 0, spans: {}, thresholds: 0, outside: 0};
    svg.querySelectorAll("path.series").forEach(function (p) { r.lines++; r.length += p.getTotalLength(); });
    svg.querySelectorAll("rect.span").forEach(function (s) { var c = s.getAttribute("class").split(" ")[1]; r.spans[c] = (r.spans[c] || 0) + s.getBBox().width; });
    svg.querySelectorAll("line.threshold").forEach(function () { r.thresholds++; });
    svg.querySelectorAll("path, rect, line, circle").forEach(function (e) {
      var b = e.getBBox();
      if (b.x < -0.5 || b.y < -0.5 || b.x + b.width > vb.width + 0.5 || b.y + b.height > vb.height + 0.5) r.outside++;
    });
    r.shown = svg.getBoundingClientRect().width;
    out.push(r);
  });
  document.getElementById("out").textContent = JSON.stringify(out);
});
`)

func TestBrowserShowsRuleCharts(t *testing.T) {
	bin := chromium(t)
	srv := chartFixture(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /test/charts", htmlPage(chartCheck))
	mux.Handle("/", srv.Config.Handler)
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	dom := dumpDOM(t, bin, front.URL+"/test/charts", 3*time.Second)
	_, report, _ := strings.Cut(dom, `<pre id="out">`)
	report, _, _ = strings.Cut(report, "</pre>")
	var charts []struct {
		Rule       string             `json:"rule"`
		SVG        bool               `json:"svg"`
		Lines      int                `json:"lines"`
		Length     float64            `json:"length"`
		Spans      map[string]float64 `json:"spans"`
		Thresholds int                `json:"thresholds"`
		Outside    int                `json:"outside"`
		Shown      float64            `json:"shown"`
	}
	if err := json.Unmarshal([]byte(strings.ReplaceAll(report, "&quot;", `"`)), &charts); err != nil || len(charts) != 5 {
		t.Fatalf("%v: %s", err, dom)
	}
	t.Logf("%+v", charts)
	for _, c := range charts {
		if !c.SVG || c.Outside != 0 || c.Shown < 300 {
			t.Errorf("%s: Chromium drew %+v", c.Rule, c)
		}
	}
	slow := charts[1]
	if slow.Lines != 2 || slow.Length < 500 || slow.Thresholds != 1 || slow.Spans["pending"] < 20 || slow.Spans["firing"] < 50 {
		t.Errorf("SlowTenant's chart in Chromium: %+v", slow)
	}
	if tiers := charts[2]; tiers.Thresholds != 3 {
		t.Errorf("LatencyTiers's chart in Chromium: %+v", tiers)
	}
}

// FuzzChartDraw: whatever the values — NaN, ±Inf, ±MaxFloat64, values a
// hair apart — every coordinate drawn is a finite number inside the chart.
func FuzzChartDraw(f *testing.F) {
	f.Add(1.0, 2.0, 3.0, 5000.0)
	f.Add(math.NaN(), math.Inf(1), math.Inf(-1), 0.0)
	f.Add(math.MaxFloat64, -math.MaxFloat64, 0.0, math.MaxFloat64)
	f.Add(1.0, 1.0+1e-15, 1.0, 1.0)
	f.Add(-1e-300, 1e-300, 0.0, -5.0)
	f.Fuzz(func(t *testing.T, a, b, c, threshold float64) {
		start := time.Unix(1764000000, 0).UTC()
		end := start.Add(3 * time.Hour)
		res := engine.RangeResult{Matrix: []engine.RangeSeries{{Points: []engine.Point{
			{T: start.UnixMilli(), V: a}, {T: start.Add(time.Hour).UnixMilli(), V: b}, {T: end.UnixMilli(), V: c},
		}}}}
		var v chartView
		draw(&v, res, []chartThresholdSpec{{Op: ">", Value: threshold, Severity: "warning"}}, nil, start, end)
		inside := func(what string, x, y float64) {
			if math.IsNaN(x) || math.IsNaN(y) || x < 0 || x > chartWidth || y < 0 || y > chartHeight {
				t.Fatalf("%s at (%v, %v) for values %v %v %v, threshold %v", what, x, y, a, b, c, threshold)
			}
		}
		for _, l := range v.Lines {
			for _, pt := range strings.Fields(strings.NewReplacer("M", " ", "L", " ").Replace(l.Path)) {
				var x, y float64
				if _, err := fmt.Sscanf(pt, "%g,%g", &x, &y); err != nil {
					t.Fatalf("path %q: %v", l.Path, err)
				}
				inside("a point", x, y)
			}
		}
		for _, th := range v.Thresholds {
			if !math.IsInf(threshold, 0) && !math.IsNaN(threshold) {
				inside("a threshold", chartLeft, th.Y)
			}
		}
		for _, tk := range v.YTicks {
			if strings.Contains(tk.Text, "NaN") {
				t.Fatalf("a value axis label %q", tk.Text)
			}
		}
	})
}
