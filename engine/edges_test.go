package engine

// Edges found by a review: simpleTemplate against Prometheus' expander, and
// evalTimeInRange at and beyond its boundaries.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/testrules"
	"github.com/callwatch/callwatch/rulefmt"
)

// ---------------------------------------------------------------------
// Part 1: simpleTemplate.

func expandAsPrometheus(text string, lset labels.Labels, ext map[string]string, value float64) (string, error) {
	data := template.AlertTemplateData(lset.Map(), ext, "", promql.Sample{F: value})
	return template.NewTemplateExpander(context.Background(), rulefmt.TemplateDefs+text, "__alert_x", data, model.Time(0), nil, nil, nil).Expand()
}

// checkTemplate fails when simpleTemplate answers and the expander fails or
// gives another text.
func checkTemplate(t *testing.T, text string, lset labels.Labels, ext map[string]string, value float64) (ok bool) {
	t.Helper()
	got, ok := simpleTemplate(text, lset, ext, value)
	if !ok {
		return false
	}
	want, err := expandAsPrometheus(text, lset, ext, value)
	if err != nil {
		t.Errorf("%q (value %v): simpleTemplate answers %q, the expander fails: %v", text, value, got, err)
		return true
	}
	if got != want {
		t.Errorf("%q with %v %v value %v: simpleTemplate %q, expander %q", text, lset, ext, value, got, want)
	}
	return true
}

var templateValues = []float64{
	0, math.Copysign(0, -1), 1, -1, 2.5, 1e21, 1e20, -1e21, 1e-5, 1e-4, 123456789, 0.1 + 0.2,
	math.NaN(), math.Inf(1), math.Inf(-1), 5e-324, -5e-324, math.SmallestNonzeroFloat64 * 3,
	2.2250738585072014e-308, math.MaxFloat64, -math.MaxFloat64, 1 << 53, 1<<53 + 1, float64(math.MaxInt64),
	math.Float64frombits(0x7ff8000000000001), // a NaN with payload
	math.Float64frombits(0xfff8000000000000), // a negative NaN
}

func templateLabels() []labels.Labels {
	return []labels.Labels{
		labels.FromStrings("tenant_id", "acme", "empty", "", "if", "kw", "end", "kw2", "nil", "n", "true", "tr",
			"range", "r", "break", "b", "with", "w", "define", "d", "block", "bl", "else", "e", "continue", "c", "template", "tp",
			"_", "underscore", "A", "upper", "x1", "{{ $value }}", "len", "fn", "and", "fn2", "Labels", "capital",
			"é", "unicode", "日本", "cjk", "a.b", "dot", "a-b", "hyphen", "1x", "digit", "__name__", "metric"),
		labels.FromStrings("tenant_id", ""),
		labels.EmptyLabels(),
	}
}

var templateExternals = []map[string]string{nil, {}, {"region": "eu", "empty": "", "if": "kw", "é": "u"}}

// TestEdgeSimpleTemplateCases runs hand-written texts through both.
func TestEdgeSimpleTemplateCases(t *testing.T) {
	long := strings.Repeat("x{{ $value }}y{{ $labels.tenant_id }}}}{ ", 20000)
	texts := []string{
		// whitespace variants
		"{{ $value}}", "{{$value }}", "{{   $value   }}", "{{\t$value}}", "{{$value\t}}", "{{\n$value\n}}",
		"{{\r$value}}", "{{ $value\r\n}}", "{{\v$value}}", "{{\u00a0$value}}", "{{$value\u00a0}}", "{{\x00$value}}",
		"{{ $value }}\n", "\n{{ $value }}", "{{ $value }} ", " {{ $value }}",
		// delimiters in literal text
		"{{{ $value }}", "{{ $value }}}", "{{ $value }}}}", "}}{{ $value }}", "}} {{ $value }} }}", "{ {{ $value }} }",
		"{{{{ $value }}}}", "a}}b", "}}", "}", "{", "{ {", "{{", "{{ ", "{{ $value", "{{ $value }", "{{ $value }} {{",
		"{{ $value }} {{ $value", "{{}}", "{{ }}", "{{  }}", "{{$}}", "{{ $ }}", "{{ $value }}{{}}",
		// trim markers and comments
		"a {{- $value }}", "{{ $value -}} b", "{{-$value-}}", "{{- $value -}}", "{{ -$value }}", "{{ $value- }}",
		"{{/* c */}}", "{{- /* c */ -}}", "{{/* {{ $value }} */}}", "{{ /* c */ }}",
		// redefinitions
		"{{ $value := 5 }}{{ $value }}", "{{$value:=5}}{{$value}}", "{{ $value = 5 }}{{ $value }}",
		"{{ $labels := .ExternalLabels }}{{ $labels.region }}", "{{$labels:=.ExternalLabels}}{{$labels.region}}",
		"{{ $externalLabels := .Labels }}{{ $externalLabels.tenant_id }}",
		"{{ define \"x\" }}{{ $value }}{{ end }}{{ $value }}", "{{ template \"x\" }}",
		"{{ with $value }}{{ end }}{{ $value }}", "{{ $x := 1 }}{{ $value }}",
		// variables, fields
		"{{ $labels.tenant_id }}", "{{$labels.tenant_id}}", "{{ $labels.empty }}", "{{ $labels.missing }}",
		"{{ $labels.if }}", "{{ $labels.end }}", "{{ $labels.nil }}", "{{ $labels.true }}", "{{ $labels.range }}",
		"{{ $labels.break }}", "{{ $labels.continue }}", "{{ $labels.with }}", "{{ $labels.define }}", "{{ $labels.block }}",
		"{{ $labels.else }}", "{{ $labels.template }}", "{{ $labels.len }}", "{{ $labels.and }}", "{{ $labels.Labels }}",
		"{{ $labels._ }}", "{{ $labels.A }}", "{{ $labels.x1 }}", "{{ $labels.é }}", "{{ $labels.日本 }}", "{{ $labels.a.b }}",
		"{{ $labels.a-b }}", "{{ $labels.1x }}", "{{ $labels.__name__ }}", "{{ $labels. }}", "{{ $labels..x }}",
		"{{ $labels }}", "{{ $labels.tenant_id. }}", "{{ $labels.tenant_id.x }}", "{{ $labels.tenant_id }}{{ $labels.tenant_id }}",
		"{{ $Labels.tenant_id }}", "{{ $labels.Tenant_id }}", "{{ $label.tenant_id }}", "{{ $labelsx.tenant_id }}",
		"{{ $externalLabels.region }}", "{{ $externalLabels.empty }}", "{{ $externalLabels.if }}", "{{ $externalLabels.é }}",
		"{{ $externalLabels.missing }}", "{{ $externalLabels }}", "{{ $externalURL }}", "{{ $externalLabels.1 }}",
		"{{ $value.x }}", "{{ $values }}", "{{ $Value }}", "{{ .Value }}", "{{ $value }}{{ .Value }}",
		"{{ $labels.tenant_id\t}}", "{{ $labels .tenant_id }}", "{{ $labels. tenant_id }}", "{{ $ labels.tenant_id }}",
		"{{ ($value) }}", "{{ $value | print }}", "{{ $value }}{{ $labels.x | len }}",
		// text
		"über {{ $value }} 5%", "\xff{{ $value }}\xfe", "%s %d {{ $value }} %v", "<b>{{ $labels.tenant_id }}</b>&amp;",
		"", "plain",
	}
	// Long texts once each: parsing them 600 times is slow.
	for _, text := range []string{long, long + "{{", long + "{{ humanize $value }}", long + "{{ $value := 1 }}"} {
		checkTemplate(t, text, templateLabels()[0], templateExternals[2], 1e21)
	}
	answered := 0
	for _, text := range texts {
		for _, lset := range templateLabels() {
			for _, ext := range templateExternals {
				for _, v := range templateValues {
					if checkTemplate(t, text, lset, ext, v) {
						answered++
					}
				}
			}
		}
	}
	t.Logf("%d answered by simpleTemplate", answered)
}

// TestEdgeSimpleTemplateFuzzRandom builds texts from a fine-grained
// alphabet (delimiters, spaces, names, operators) and compares.
func TestEdgeSimpleTemplateFuzzRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 23))
	alpha := []string{
		"{{", "}}", "{", "}", " ", " ", "\t", "\n", "$value", "$labels", "$externalLabels", "$externalURL", ".",
		"tenant_id", "if", "end", "é", "1", "x", "-", ":=", "=", "/*", "*/", "\"", "`", "(", ")", "|", "$", "_",
		"empty", "region", "a", "{{ $value }}", "{{ $labels.", "{{ $externalLabels.", " }}",
	}
	lsets, answered := templateLabels(), 0
	const cases = 300000
	for range cases {
		text := randomText(r, alpha, 10)
		if !strings.Contains(text, "{{") {
			continue
		}
		if checkTemplate(t, text, lsets[r.IntN(len(lsets))], templateExternals[r.IntN(len(templateExternals))], templateValues[r.IntN(len(templateValues))]) {
			answered++
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d of %d answered by simpleTemplate", answered, cases)
}

// FuzzSimpleTemplate: go test ./engine -run '^$' -fuzz FuzzSimpleTemplate -fuzztime 60s
func FuzzSimpleTemplate(f *testing.F) {
	for _, s := range []string{"{{ $value }}", "{{ $labels.tenant_id }} at {{ $value }}", "{{$externalLabels.region}}", "}}{{ $labels.if }}"} {
		f.Add(s, 1.5, "tenant_id", "acme")
	}
	f.Fuzz(func(t *testing.T, text string, value float64, name, val string) {
		lb := labels.NewBuilder(labels.FromStrings("tenant_id", "t"))
		lb.Set(name, val)
		lset := lb.Labels()
		checkTemplate(t, text, lset, map[string]string{"region": "eu", name: val}, value)
	})
}

// TestEdgeExpandWithoutBraces: expand returns a text without "{{" as it
// is; the expander agrees for any such text (TemplateDefs prints nothing).
func TestEdgeExpandWithoutBraces(t *testing.T) {
	for _, text := range []string{"", "}}", "a } } b", "{ {", "{\n{", "%v", "\xff"} {
		want, err := expandAsPrometheus(text, labels.EmptyLabels(), nil, 1)
		if err != nil || want != text {
			t.Errorf("%q: expander %q, %v", text, want, err)
		}
	}
}

// ---------------------------------------------------------------------
// Part 2: evalTimeInRange.

var (
	edgeMax = time.Unix(0, math.MaxInt64).UTC() // 2262-04-11T23:47:16.854775807Z
	edgeMin = time.Unix(0, math.MinInt64).UTC() // 1677-09-21T00:12:43.145224192Z
)

// TestEdgeEvalTimeBoundaries: the accepted range after QueryWith's
// truncation to the millisecond.
func TestEdgeEvalTimeBoundaries(t *testing.T) {
	e := testrules.Expr(t, `max_over_time(latency_ms[5m])`)
	for _, c := range []struct {
		ts   time.Time
		want bool // evaluates
	}{
		{edgeMax, true},
		{edgeMax.Truncate(time.Millisecond), true},                           // .854
		{edgeMax.Add(1), true},                                               // .854775808 truncates to .854
		{edgeMax.Truncate(time.Millisecond).Add(time.Millisecond - 1), true}, // .854999999
		{edgeMax.Truncate(time.Millisecond).Add(time.Millisecond), false},    // .855
		{edgeMin.Truncate(time.Millisecond).Add(time.Millisecond), true},     // .146
		{edgeMin, false}, // inside int64 ns, but Truncate floors it to .145, which is not
	} {
		src := &rangeSource{steps: -1}
		res, err := NewQuerier(QuerierOptions{Source: src}).Query(context.Background(), e, c.ts)
		if got := err == nil; got != c.want {
			t.Errorf("%s: err = %v, want evaluating %v", c.ts.Format(time.RFC3339Nano), err, c.want)
			continue
		}
		if err == nil && (len(res.Vector) != 1 || res.Vector[0].Value != float64(c.ts.Unix())) {
			t.Errorf("%s: result %v, want one sample valued %d", c.ts.Format(time.RFC3339Nano), res.Vector, c.ts.Unix())
		}
		// The range query agrees at its edges.
		_, rerr := NewQuerier(QuerierOptions{Source: src}).QueryRange(context.Background(), e, c.ts, c.ts, time.Minute)
		if (rerr == nil) != c.want {
			t.Errorf("%s: range err = %v, want evaluating %v", c.ts.Format(time.RFC3339Nano), rerr, c.want)
		}
	}
}

// TestEdgeEvalTimeWrapAround: evalTimeInRange compares two wrapped
// values; a time whose UnixMilli also wraps can land back in range.
// time.Unix(2^64/1000 s) has UnixMilli 0 and UnixNano 0: it is accepted and
// evaluated at 1970-01-01 (year 584,556,019 in fact). dsl.ParseTime (the
// --time of `callwatch query`, --from/--to of backtest) takes any float:
// "18446744073709551.616" or "1e19" (int64(1e19) is MinInt64 on amd64,
// whose UnixMilli and UnixNano are both 0 as well).
func TestEdgeEvalTimeWrapAround(t *testing.T) {
	far := []time.Time{
		time.Unix(18446744073709551, 616_000_000),   // UnixMilli = 2^64 ≡ 0
		time.Unix(18446744073709552, 0),             // UnixMilli ≡ 384
		time.Unix(math.MinInt64, 0),                 // UnixMilli ≡ 0, UnixNano ≡ 0
		time.Unix(-18446744073709551, -616_000_000), // UnixMilli ≡ 0
		time.Unix(2*18446744073709551, 232_000_000), // 2·2^64 ms
	}
	for _, s := range []string{"18446744073709551.616", "1e19", "-1e19", "1e30", "9300000000", "2262-04-12T00:00:00Z"} {
		// Either the text is refused (past int64 seconds), or the time it
		// gives is refused at evaluation.
		ts, err := dsl.ParseTime(s)
		if err == nil {
			far = append(far, ts)
		}
	}
	e := testrules.Expr(t, `max_over_time(latency_ms[5m])`)
	for _, ts := range far {
		if err := evalTimeInRange(ts.Truncate(time.Millisecond)); err == nil {
			t.Errorf("%s (unix %d s): accepted by evalTimeInRange; UnixMilli %d", ts.Format(time.RFC3339), ts.Unix(), ts.UnixMilli())
		}
		res, err := NewQuerier(QuerierOptions{Source: &rangeSource{steps: -1}}).Query(context.Background(), e, ts)
		if err == nil {
			t.Errorf("%s: Query answers %v (evaluated at %s)", ts.Format(time.RFC3339), res.Vector, time.UnixMilli(ts.UnixMilli()).UTC().Format(time.RFC3339Nano))
		}
		if _, err := NewQuerier(QuerierOptions{Source: &rangeSource{steps: -1}}).QueryRange(context.Background(), e, ts, ts.Add(2*time.Minute), time.Minute); err == nil {
			t.Errorf("%s: QueryRange answers", ts.Format(time.RFC3339))
		}
	}
}

// TestEdgeRangeLongerThanDuration: both ends in range, the span longer
// than time.Duration holds (292 years; 1678..2262 is 584). Steps saturates
// end.Sub(start), so the leaves are computed for the first 292 years only
// while PromQL steps to end: the later steps come back empty, silently.
// /api/v1/query_range lets it through (its points check saturates too).
func TestEdgeRangeLongerThanDuration(t *testing.T) {
	e := testrules.Expr(t, `max_over_time(latency_ms[5m])`)
	start := time.Date(1700, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 24 * 365 * time.Hour * 10 // ~10 years
	_, err := NewQuerier(QuerierOptions{Source: &rangeSource{steps: -1}}).QueryRange(context.Background(), e, start, end, step)
	if err == nil || !strings.Contains(err.Error(), "longer than 292 years") {
		t.Fatalf("err = %v, want the range refused (it was answered for its first 292 years)", err)
	}
}

// TestEdgeBacktestAcrossTheEnd: a backtest over 2262-04-11T23:40 ..
// 23:55 evaluates past the end: the rule errs there (error_state
// keep_last keeps a firing alert firing; error_state ok resolves it),
// and the backtest neither refuses the range up front nor panics.
func TestEdgeBacktestAcrossTheEnd(t *testing.T) {
	for _, policy := range []string{"keep_last", "ok"} {
		rules := fmt.Sprintf("- alert: Any\n  expr: max_over_time(latency_ms[5m]) > 0\n  error_state: %s\n", policy)
		specs, err := rulefmt.ParseRuleFile("rules.yaml", []byte(testrules.File("", rules)), rulefmt.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		q := NewQuerier(QuerierOptions{Source: &rangeSource{steps: -1}})
		from := time.Date(2262, 4, 11, 23, 40, 0, 0, time.UTC)
		res, err := Backtest(context.Background(), specs, BacktestOptions{GroupOptions: GroupOptions{Query: q.QueryWith}, From: from, To: from.Add(15 * time.Minute)})
		var tr []string
		for _, x := range res.Transitions {
			tr = append(tr, fmt.Sprintf("%s %s→%s", x.Time.Format("15:04"), x.From, x.To))
		}
		t.Logf("error_state %s: err %v, evaluations %d, errors %d, transitions %v", policy, err, res.Evaluations, res.Errors, tr)
		if err == nil && res.Errors > 0 {
			t.Errorf("error_state %s: the backtest ran into the end of time (%d erring evaluations) instead of refusing --to past 2262", policy, res.Errors)
		}
	}
}

// TestEdgeRangeStepNotWholeMilliseconds: probe (outside the brief's
// boundary): a step that is not a whole number of milliseconds. Steps and
// the leaf times count in nanoseconds; PromQL truncates the step to ms.
func TestEdgeRangeStepNotWholeMilliseconds(t *testing.T) {
	e := testrules.Expr(t, `max_over_time(latency_ms[5m])`)
	start := time.Unix(1000, 0)
	step := 1500 * time.Microsecond
	end := start.Add(30 * time.Millisecond)
	res, err := NewQuerier(QuerierOptions{Source: &rangeSource{steps: -1}}).QueryRange(context.Background(), e, start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range res.Matrix {
		n += len(s.Points)
	}
	if int64(n) != Steps(start, end, step) {
		t.Errorf("step %s over %s: %d points, Steps %d", step, end.Sub(start), n, Steps(start, end, step))
	}
}
