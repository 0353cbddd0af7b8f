package ruletest

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/golden"
)

var fixedNow = func() time.Time { return time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC) }

func runFile(t *testing.T, file string, opts Options) FileResult {
	t.Helper()
	opts.Now = fixedNow
	return RunFile(context.Background(), file, opts)
}

// wantFailure fails the test unless r failed with an output (out) that holds
// each of wants.
func wantFailure(t *testing.T, r FileResult, out string, wants []string) {
	t.Helper()
	if !r.Failed() {
		t.Fatalf("passed, want a failure:\n%s", out)
	}
	for _, s := range wants {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func text(t *testing.T, r FileResult) string {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteText(&buf, r); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// writeTest writes a test file using testdata/rules.yaml into a temporary
// directory and returns its path. RULES in body is replaced by the rules' path.
func writeTest(t *testing.T, body string) string {
	t.Helper()
	rules, err := filepath.Abs("testdata/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "RULES", rules)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGoodFilesPass(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			r := runFile(t, f, Options{})
			if r.Failed() {
				t.Fatalf("%s failed:\n%s", f, text(t, r))
			}
			if len(r.Tests) == 0 {
				t.Fatalf("%s ran no tests", f)
			}
			if got, want := text(t, r), "Unit Testing: "+f+"\n  SUCCESS\n\n"; got != want {
				t.Fatalf("output:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestAWrongExpectationFailsWithAReadableDiff(t *testing.T) {
	const file = "testdata/wrong_expectation.bad.yaml"
	r := runFile(t, file, Options{})
	if !r.Failed() {
		t.Fatal("the file passed")
	}
	if len(r.Tests) != 2 || len(r.Tests[0].Failures) != 3 || len(r.Tests[1].Failures) != 0 {
		t.Fatalf("want 3 failures in the first test and none in the second, got %+v", r.Tests)
	}
	got := text(t, r)
	golden.Compare(t, strings.TrimSuffix(file, ".yaml")+".out", []byte(got))
	// The essentials, spelled out.
	for _, s := range []string{
		"wrong_expectation.bad.yaml:12:9: test \"acme is still pending at 11m\": alertname TenantP95Latency, eval_time 11m:",
		"      - {alertname=\"TenantP95Latency\", severity=\"error\", tenant_id=\"acme\"} firing value=5000",
		"      + {alertname=\"TenantP95Latency\", severity=\"error\", tenant_id=\"acme\"} firing value=6000",
		"pending, not compared",
		"      - {tenant_id=\"acme\"} 800\n          + {tenant_id=\"acme\"} 6000",
	} {
		if !strings.Contains(got, s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

// acmeAt12m expects TenantP95Latency's alert for acme at 12m; a case adds
// keys of the expected alert.
const acmeAt12m = `    alert_rule_test:
      - eval_time: 12m
        alertname: TenantP95Latency
        exp_alerts:
          - exp_labels: {tenant_id: acme, severity: error}
            exp_annotations: {summary: "tenant acme: p95 latency 6000 ms"}`

func TestExpectations(t *testing.T) {
	const head = "rule_files: [RULES]\ntests:\n  - name: t\n    input_events:\n" +
		"      - labels: {tenant_id: acme}\n        latency_ms: '800x9 6000x9'\n        count: 3\n"
	cases := []struct {
		name  string
		tests string // alert_rule_test / expr_test of the one test
		file  string // top-level keys before tests
		fail  []string
	}{
		{
			name: "a pending alert is not compared unless some expected alert is pending",
			tests: `    alert_rule_test:
      - {eval_time: 10m, alertname: TenantP95Latency, exp_alerts: []}`,
		},
		{
			name: "an alert expected pending that is firing fails",
			tests: acmeAt12m + `
            exp_state: pending`,
			fail: []string{
				`      - {alertname="TenantP95Latency", severity="error", tenant_id="acme"} pending annotations=`,
				`      + {alertname="TenantP95Latency", severity="error", tenant_id="acme"} firing annotations=`,
			},
		},
		{
			name: "exp_value compares the expression's value",
			tests: acmeAt12m + `
            exp_value: 6001`,
			fail: []string{"firing value=6001 annotations", "+ {alertname=\"TenantP95Latency\", severity=\"error\", tenant_id=\"acme\"} firing value=6000"},
		},
		{
			name: "an unexpected alert shows its value",
			tests: `    alert_rule_test:
      - {eval_time: 12m, alertname: TenantP95Latency, exp_alerts: []}`,
			fail: []string{"      + {alertname=\"TenantP95Latency\", severity=\"error\", tenant_id=\"acme\"} firing value=6000 annotations="},
		},
		{
			name: "annotations are compared exactly, as promtool",
			tests: `    alert_rule_test:
      - eval_time: 12m
        alertname: TenantP95Latency
        exp_alerts:
          - exp_labels: {tenant_id: acme, severity: error}`,
			fail: []string{"      - {alertname=\"TenantP95Latency\", severity=\"error\", tenant_id=\"acme\"} firing\n"},
		},
		{
			name: "fuzzy_compare accepts the neighbouring float",
			file: "fuzzy_compare: true\n",
			tests: `    expr_test:
      - expr: avg_over_time(latency_ms[5m]) / 3
        eval_time: 0m
        exp_samples:
          - value: 266.66666666666663`,
		},
		{
			name: "values are compared exactly without fuzzy_compare",
			tests: `    expr_test:
      - expr: avg_over_time(latency_ms[5m]) / 3
        eval_time: 0m
        exp_samples:
          - value: 266.66666666666663`,
			fail: []string{"      + {} 266.6666666666667"},
		},
		{
			name: "an expr_test may read ALERTS",
			tests: `    expr_test:
      - expr: ALERTS
        eval_time: 12m
        exp_samples:
          - labels: 'ALERTS{alertname="TenantP95Latency", alertstate="firing", severity="error", tenant_id="acme"}'
            value: 1`,
		},
		{
			name: "a scalar result is one sample without labels",
			tests: `    expr_test:
      - {expr: "1 + 1", eval_time: 0m, exp_samples: [{value: 2}]}`,
		},
		{
			name: "a bad expression is reported with the test",
			tests: `    expr_test:
      - {expr: "p95(latency[5m])", eval_time: 0m}`,
			fail: []string{`test.yaml:9:9: test "t": expr "p95(latency[5m])", eval_time 0s: 1:5: unknown selector "latency"`},
		},
		{
			name: "an alertname no rule has is an error",
			tests: `    alert_rule_test:
      - {eval_time: 1m, alertname: Nope}`,
			fail: []string{`test.yaml:9:9: test "t": no alerting rule named "Nope" in the rule files`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTest(t, tc.file+head+tc.tests+"\n")
			r := runFile(t, path, Options{})
			out := text(t, r)
			if len(tc.fail) == 0 {
				if r.Failed() {
					t.Fatalf("failed:\n%s", out)
				}
				return
			}
			wantFailure(t, r, out, tc.fail)
		})
	}
}

func TestARuleThatFailsToEvaluateFailsTheTest(t *testing.T) {
	limit, err := filepath.Abs("testdata/limit.rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := writeTest(t, `rule_files: [`+limit+`]
tests:
  - name: two tenants
    events:
      - {time: 0s, tenant_id: acme}
      - {time: 2m, tenant_id: beta}
    alert_rule_test:
      - {eval_time: 5m, alertname: AnyTraffic}
`)
	out := text(t, runFile(t, path, Options{}))
	want := `limit.rules.yaml:6:9: test "two tenants": group "limited", rule "AnyTraffic", time 2m: exceeded limit of 1 with 2 alerts`
	if !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
}

func TestRunSelectsTestsByName(t *testing.T) {
	r := runFile(t, "testdata/errors.good.yaml", Options{Run: regexp.MustCompile("explicit")})
	if len(r.Tests) != 1 || r.Tests[0].Name != "explicit events at irregular times" {
		t.Fatalf("tests run: %+v", r.Tests)
	}
	r = runFile(t, "testdata/wrong_expectation.bad.yaml", Options{Run: regexp.MustCompile("^this one passes$")})
	if r.Failed() || len(r.Tests) != 1 {
		t.Fatalf("selecting the passing test should pass: %s", text(t, r))
	}
}

func TestJUnitReportParses(t *testing.T) {
	results := []FileResult{
		runFile(t, "testdata/latency.good.yaml", Options{}),
		runFile(t, "testdata/wrong_expectation.bad.yaml", Options{}),
		runFile(t, "testdata/missing.yaml", Options{}),
	}
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, results); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Suites []struct {
			Name      string `xml:"name,attr"`
			Tests     int    `xml:"tests,attr"`
			Failures  int    `xml:"failures,attr"`
			Errors    int    `xml:"errors,attr"`
			Timestamp string `xml:"timestamp,attr"`
			Cases     []struct {
				Name     string   `xml:"name,attr"`
				Failures []string `xml:"failure"`
				Error    string   `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	if len(rep.Suites) != 3 {
		t.Fatalf("suites: %+v", rep.Suites)
	}
	good, bad, missing := rep.Suites[0], rep.Suites[1], rep.Suites[2]
	if good.Name != "testdata/latency.good.yaml" || good.Tests != 1 || good.Failures != 0 || good.Timestamp != "2025-11-24T16:00:00" {
		t.Errorf("good suite: %+v", good)
	}
	if bad.Tests != 2 || bad.Failures != 3 || len(bad.Cases) != 2 || len(bad.Cases[0].Failures) != 3 ||
		bad.Cases[1].Name != "this one passes" || len(bad.Cases[1].Failures) != 0 {
		t.Errorf("bad suite: %+v", bad)
	}
	if !strings.Contains(bad.Cases[0].Failures[0], "diff (-exp +got)") {
		t.Errorf("a failure carries the diff: %q", bad.Cases[0].Failures[0])
	}
	if missing.Errors != 1 || len(missing.Cases) != 1 || !strings.Contains(missing.Cases[0].Error, "no such file") {
		t.Errorf("missing suite: %+v", missing)
	}
}

func TestInputAndFileErrorsAreClear(t *testing.T) {
	const head = "rule_files: [RULES]\ntests:\n  - name: t\n"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"columns of different lengths say which", `    input_events:
      - labels: {tenant_id: acme}
        latency_ms: '800x10 6000x10'
        cost: '0.01x20'
`, []string{"test.yaml:5:9: input_events[0]: the columns expand to different numbers of steps: cost 21, latency_ms 22;", "n+1 values"}},
		{"a count of another length is a mismatch too", `    input_events:
      - {labels: {tenant_id: acme}, latency_ms: '1 2 3', count: '1 2'}
`, []string{"test.yaml:5:9:", "count 2, latency_ms 3"}},
		{"an unknown label lists the labels", `    input_events:
      - labels: {tenant: acme}
        latency_ms: '1'
`, []string{`test.yaml:5:18: input_events[0].labels: "tenant" is not a label of call events; labels are tenant_id, app_code, model, provider, status, error_code`}},
		{"an unknown column lists the columns", `    input_events:
      - labels: {tenant_id: acme}
        latency: '1'
`, []string{`test.yaml:6:9: input_events[0]: "latency" is not a numeric column; the columns are cost, input_tokens, latency_ms, output_tokens`}},
		{"a field that adds up columns names them", `    input_events:
      - total_tokens: '1'
`, []string{`"total_tokens" is a field that adds up the columns input_tokens, output_tokens; give those columns instead`}},
		{"a label next to the columns belongs under labels", `    input_events:
      - {tenant_id: acme, latency_ms: '1'}
`, []string{`test.yaml:5:10: input_events[0]: "tenant_id" is a label; put it under labels:`}},
		{"a column under labels belongs next to them", `    input_events:
      - {labels: {latency_ms: '1'}, cost: '1'}
`, []string{`"latency_ms" is a numeric column, not a label`}},
		{"a bad value string points at the value", `    input_events:
      - labels: {tenant_id: acme}
        latency_ms: '800x9 fast'
`, []string{`test.yaml:6:28: input_events[0].latency_ms: unexpected identifier "fast" in series values`, "aXn is a, then n more times"}},
		{"stale is rejected", `    input_events:
      - {latency_ms: '1 stale'}
`, []string{"step 1 is stale; stale markers mean nothing for events: write _"}},
		{"a fractional count is rejected", `    input_events:
      - {latency_ms: '1 2', count: 1.5}
`, []string{"count at step 0 is 1.5; a count is a whole number"}},
		{"an input without columns or count", `    input_events:
      - labels: {tenant_id: acme}
`, []string{"give at least one column"}},
		{"an explicit event needs a time", `    events:
      - {tenant_id: acme}
`, []string{"test.yaml:5:9: events[0]: time: is missing"}},
		{"an explicit event time in unix seconds is ambiguous", `    events:
      - {time: 90, tenant_id: acme}
`, []string{`test.yaml:5:16: events[0].time: "90" is neither an offset from start_timestamp (90s, 1m30s) nor an RFC 3339 time`}},
		{"an explicit event with an unknown key", `    events:
      - {time: 1s, tenant: acme}
`, []string{`test.yaml:5:20: events[0]: "tenant" is not a numeric column`, "or a label (tenant_id,"}},
		{"an explicit event's number must be a number", `    events:
      - {time: 1s, latency_ms: fast}
`, []string{`events[0].latency_ms: "fast" is not a number`}},
		{"promtool's input_series gets a hint", `    input_series: []
`, []string{`test.yaml:4:5: unknown key "input_series"; callwatch tests take events, not series: use input_events`}},
		{"a misspelt key gets a suggestion", `    alert_rule_tests: []
`, []string{`test.yaml:4:5: unknown key "alert_rule_tests"; did you mean "alert_rule_test"?`}},
		{"exp_state is pending or firing", `    alert_rule_test:
      - {eval_time: 1m, alertname: ErrorBurst, exp_alerts: [{exp_state: resolved}]}
`, []string{`exp_state: "resolved" is not an alert state; write pending or firing`}},
		{"eval_time is a duration", `    alert_rule_test:
      - {eval_time: soon, alertname: ErrorBurst}
`, []string{`test.yaml:5:21: eval_time: "soon" is not a duration`}},
		{"a list where a mapping belongs", `    alert_rule_test: {eval_time: 1m}
`, []string{`test.yaml:4:22: alert_rule_test must be a list`}},
		{"a repeated key", `    name: u
`, []string{`test.yaml:4:5: key "name" appears twice`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTest(t, head+tc.body)
			r := runFile(t, path, Options{})
			wantFailure(t, r, text(t, r), tc.want)
		})
	}
}

func TestFileLevelErrors(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"a rule_files pattern must match", "rule_files: [nothing/*.yaml]\ntests: []\n", `rule_files: "`},
		{"group_eval_order names existing groups", "rule_files: [RULES]\ngroup_eval_order: [nope]\ntests: []\n", `group_eval_order: no group named "nope" in the rule files; groups are latency, errors, cost`},
		{"group_eval_order lists a group once", "rule_files: [RULES]\ngroup_eval_order: [cost, cost]\ntests: []\n", `group "cost" is listed twice`},
		{"invalid YAML has a line", "tests: []\nrule_files: a\n  b: c\n", "test.yaml:3:1: invalid YAML: mapping values are not allowed in this context"},
		{"a test file is a mapping", "- a\n", "test.yaml:1:1: a test file is a mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runFile(t, writeTest(t, tc.body), Options{})
			if r.Err == nil {
				t.Fatalf("no error: %+v", r)
			}
			if out := text(t, r); !strings.Contains(out, tc.want) || !strings.Contains(out, "  FAILED:\n") {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestInputEventsExpand(t *testing.T) {
	start := time.Unix(1000, 0).UTC()
	cases := []struct {
		name, body string
		want       []string // "offset labels nums", one per event
	}{
		{"one event per step, none where a column is _", `
input_events:
  - labels: {tenant_id: acme, status: ok}
    latency_ms: '100 _ 300'
    cost: '1+1x2'
`, []string{"0s acme,ok cost=1,latency_ms=100", "2m acme,ok cost=3,latency_ms=300"}},
		{"count multiplies every step", `
input_events:
  - {labels: {tenant_id: a}, latency_ms: '5x1', count: 3}
`, []string{"0s a, latency_ms=5", "0s a, latency_ms=5", "0s a, latency_ms=5", "1m a, latency_ms=5", "1m a, latency_ms=5", "1m a, latency_ms=5"}},
		{"a count string gives the steps of an input without columns", `
input_events:
  - {labels: {status: error}, count: '2 0 _ 1'}
`, []string{"0s ,error ", "0s ,error ", "3m ,error "}},
		{"a count string with columns counts each step", `
input_events:
  - {latency_ms: '7 8', count: '0 2'}
`, []string{"1m , latency_ms=8", "1m , latency_ms=8"}},
		{"explicit events: offsets, RFC 3339 and the time column", `
events:
  - {time: 90s, tenant_id: acme, status: error, latency_ms: 12000}
  - {time: '1970-01-01T00:20:00Z', cost: 0.5}
  - {created_at: 1m30s, input_tokens: 7}
`, []string{"1m30s acme,error latency_ms=12000", "3m20s , cost=0.5", "1m30s , input_tokens=7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTest(t, "tests:\n  - "+strings.ReplaceAll(strings.TrimPrefix(tc.body, "\n"), "\n", "\n    ")+"\n")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tf, err := parseTestFile(path, data)
			if err != nil {
				t.Fatal(err)
			}
			schema := dsl.DefaultSchema()
			events, errs := newInputReader(path, schema).read(&tf.Tests[0], start)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var got []string
			for _, ev := range events {
				lbl := []string{ev.Labels[0], ev.Labels[4]} // tenant_id, status
				var nums []string
				for _, c := range schema.NumericColumns() {
					if v, ok := ev.Nums[c]; ok {
						nums = append(nums, c+"="+formatFloat(v))
					}
				}
				got = append(got, offsetString(ev.Time.Sub(start))+" "+strings.Join(lbl, ",")+" "+strings.Join(nums, ","))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestExpNotificationsAreCompared(t *testing.T) {
	dir := t.TempDir()
	rules := "groups:\n  - name: g\n    rules:\n      - alert: Slow\n        expr: max_over_time(latency_ms[1m]) > 1000\n        notify: [pager]\n"
	test := `rule_files: [rules.yaml]
tests:
  - input_events:
      - labels: {tenant_id: acme}
        latency_ms: '5000 5000 100'
    alert_rule_test:
      - eval_time: 0m
        alertname: Slow
        exp_alerts: [{exp_labels: {}}]
        exp_notifications: [{status: firing, channel: pager}]
      - eval_time: 2m
        alertname: Slow
        exp_alerts: []
        exp_notifications: [{status: firing}]
`
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rules), 0o644)
	os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(test), 0o644)
	res := RunFile(context.Background(), filepath.Join(dir, "t.yaml"), Options{})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var failures []string
	for _, tr := range res.Tests {
		failures = append(failures, tr.Failures...)
	}
	if len(failures) != 1 || !strings.Contains(failures[0], "eval_time 2m") ||
		!strings.Contains(failures[0], "- expected, not sent: firing") || !strings.Contains(failures[0], "+ sent, not expected: resolved") {
		t.Fatalf("failures = %q, want only the 2m notification mismatch", failures)
	}
}
