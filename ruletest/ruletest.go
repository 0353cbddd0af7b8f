package ruletest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

// Options configure a run.
type Options struct {
	// Schema maps the events table; the zero value means dsl.DefaultSchema().
	Schema dsl.Schema
	// Limits bound the rules' expressions, as in serve (see dsl.Limits).
	Limits dsl.Limits
	// Run selects tests by name; nil runs every test.
	Run *regexp.Regexp
	// Source, when set, evaluates each test's events somewhere else than in
	// memory (callwatch test rules --clickhouse loads them into a table of
	// the configured server); cleanup runs when the test ends.
	Source func(ctx context.Context, events []memory.Event) (src engine.LeafSource, cleanup func(), err error)
	// Logger receives the engine's warnings (default: discarded; rule
	// evaluation errors fail the test instead).
	Logger *slog.Logger
	// Now stamps results (default time.Now); tests fix it.
	Now func() time.Time
}

func (o *Options) applyDefaults() {
	if o.Schema.Time == "" {
		o.Schema = dsl.DefaultSchema()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// FileResult is the outcome of one test file.
type FileResult struct {
	File string
	// Started is when the file began to run (the JUnit timestamp).
	Started time.Time
	// Err is set when the file could not be run at all: unreadable, invalid
	// YAML, unknown keys, rule files that do not load. Tests is then empty.
	Err error
	// Tests are the tests that ran (those --run selected), in file order.
	Tests []TestResult
}

// Failed reports whether the file failed to run or any of its tests failed.
func (r *FileResult) Failed() bool {
	if r.Err != nil {
		return true
	}
	for _, t := range r.Tests {
		if len(t.Failures) > 0 {
			return true
		}
	}
	return false
}

// TestResult is the outcome of one test.
type TestResult struct {
	Name string
	// Failures are readable, multi-line descriptions of every expectation
	// that was not met (or why the test could not run); empty on success.
	Failures []string
	// Notifications are what the rules sent during the test, in order.
	// Nothing compares them yet; expected notifications will.
	Notifications []engine.Notification
}

// RunFile runs the tests of one file. Problems are in the result, never
// returned: a runner reports every file.
func RunFile(ctx context.Context, file string, opts Options) FileResult {
	opts.applyDefaults()
	res := FileResult{File: file, Started: opts.Now()}
	data, err := os.ReadFile(file)
	if err != nil {
		res.Err = fmt.Errorf("read test file: %w", err)
		return res
	}
	tf, err := parseTestFile(file, data)
	if err != nil {
		res.Err = err
		return res
	}
	groups, order, err := loadRules(file, tf, opts.Schema, opts.Limits)
	if err != nil {
		res.Err = err
		return res
	}
	for i := range tf.Tests {
		t := &tf.Tests[i]
		if opts.Run != nil && !opts.Run.MatchString(t.Name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		name := t.Name
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		r := &testRun{file: file, tf: tf, spec: t, name: name, groups: groups, order: order, opts: opts}
		res.Tests = append(res.Tests, r.run(ctx))
	}
	return res
}

// loadRules loads the rule files named by the test file (relative to it)
// with the production loader and orders their groups: group_eval_order
// first, in its order, then the others as loaded.
func loadRules(file string, tf *testFile, schema dsl.Schema, limits dsl.Limits) ([]*rulefmt.GroupSpec, []string, error) {
	dir := filepath.Dir(file)
	var globs []string
	var errs rulefmt.Errors
	for _, rf := range tf.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(dir, rf)
		}
		if m, err := filepath.Glob(rf); err != nil || len(m) == 0 {
			errs = append(errs, fmt.Errorf("%s: rule_files: %q matches no file", file, rf))
			continue
		}
		globs = append(globs, rf)
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	groups, err := rulefmt.LoadFiles(globs, rulefmt.LoadOptions{Schema: schema, Limits: limits})
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Name
	}
	rank := map[string]int{}
	for i, name := range tf.GroupEvalOrder {
		if _, dup := rank[name]; dup {
			errs = append(errs, fmt.Errorf("%s: group_eval_order: group %q is listed twice", file, name))
		}
		if !slices.Contains(names, name) {
			errs = append(errs, fmt.Errorf("%s: group_eval_order: no group named %q in the rule files; groups are %s", file, name, strings.Join(names, ", ")))
		}
		rank[name] = i
	}
	if len(errs) > 0 {
		return nil, nil, errs
	}
	ordered := slices.Clone(groups)
	slices.SortStableFunc(ordered, func(a, b *rulefmt.GroupSpec) int {
		ra, okA := rank[a.Name]
		rb, okB := rank[b.Name]
		switch {
		case okA && okB:
			return cmp.Compare(ra, rb)
		case okA:
			return -1
		case okB:
			return 1
		}
		return 0
	})
	order := make([]string, len(ordered))
	for i, g := range ordered {
		order[i] = g.Name
	}
	return ordered, order, nil
}

// testRun is one test being run.
type testRun struct {
	file   string
	tf     *testFile
	spec   *testSpec
	name   string
	groups []*rulefmt.GroupSpec
	order  []string
	opts   Options

	start    time.Time
	querier  *engine.Querier
	live     []*engine.Group
	notified []engine.Notification
	failures []failure
}

// recorder is the Notifier of a test: it keeps every notification.
type recorder struct{ run *testRun }

var _ engine.Notifier = (*recorder)(nil)

// Notify records n.
func (r *recorder) Notify(_ context.Context, n engine.Notification) {
	r.run.notified = append(r.run.notified, n)
}

// failure is one unmet expectation, at its place in the test file.
type failure struct {
	pos  rulefmt.Position
	text string
}

func (r *testRun) fail(pos rulefmt.Position, format string, args ...any) {
	r.failures = append(r.failures, failure{pos: pos, text: fmt.Sprintf(format, args...)})
}

func (r *testRun) line(p rulefmt.Position) int {
	if p.File != r.file {
		return math.MaxInt
	}
	return p.Line
}

func (r *testRun) result() TestResult {
	// Report in file order, which is how the reader goes through the test;
	// problems placed in other files (rules) come last.
	slices.SortStableFunc(r.failures, func(a, b failure) int { return cmp.Compare(r.line(a.pos), r.line(b.pos)) })
	res := TestResult{Name: r.name, Notifications: r.notified}
	for _, f := range r.failures {
		res.Failures = append(res.Failures, f.text)
	}
	return res
}

// check is what to verify at one eval_time: the alert and expression tests
// that name it.
type check struct {
	at     time.Duration
	alerts []*alertTest
	exprs  []*exprTest
}

func (r *testRun) run(ctx context.Context) TestResult {
	t := r.spec
	interval := time.Duration(t.Interval)
	evalInterval := time.Duration(r.tf.EvaluationInterval)
	if interval%time.Second != 0 || evalInterval%time.Second != 0 {
		r.fail(t.Pos, "%s: test %q: interval and evaluation_interval must be whole seconds (event times have second resolution)", t.Pos, r.name)
		return r.result()
	}
	r.start = time.Unix(0, 0).UTC()
	if !t.StartTimestamp.IsZero() {
		r.start = t.StartTimestamp.UTC()
	}
	events, err := newInputReader(r.file, r.opts.Schema).read(t, r.start)
	if len(err) > 0 {
		for _, e := range err {
			pos := t.Pos
			var fe *rulefmt.FileError
			if errors.As(e, &fe) {
				pos = fe.Pos
			}
			r.fail(pos, "%v", e)
		}
		return r.result()
	}
	store := memory.New(r.opts.Schema)
	store.Add(events...)
	var src engine.LeafSource = store
	if r.opts.Source != nil {
		s, cleanup, err := r.opts.Source(ctx, events)
		if err != nil {
			r.fail(t.Pos, "%s: test %q: load the events: %v", t.Pos, r.name, err)
			return r.result()
		}
		defer cleanup()
		src = s
	}
	r.querier = engine.NewQuerier(engine.QuerierOptions{Source: src, Logger: r.opts.Logger})

	gopts := engine.GroupOptions{
		Query: r.querier.QueryWith, Notifier: &recorder{run: r}, Schema: r.opts.Schema, Limits: r.opts.Limits,
		DefaultInterval: evalInterval, ExternalLabels: t.ExternalLabels, Logger: r.opts.Logger,
	}
	if t.ExternalURL != "" {
		u, err := url.Parse(t.ExternalURL)
		if err != nil {
			r.fail(t.Pos, "%s: test %q: external_url: %v", t.Pos, r.name, err)
			return r.result()
		}
		gopts.ExternalURL = u
	}
	for _, g := range r.groups {
		r.live = append(r.live, engine.NewGroup(g, gopts))
	}

	checks, ok := r.checks()
	if !ok || len(checks) == 0 {
		return r.result()
	}
	// Evaluate every group at every step, as promtool does, and verify each
	// eval_time against the step at or just before it.
	end := r.start.Add(checks[len(checks)-1].at)
	next := 0
	for ts := r.start; !ts.After(end) && next < len(checks); ts = ts.Add(evalInterval) {
		if ctx.Err() != nil {
			r.fail(t.Pos, "%s: test %q: cancelled at %s", t.Pos, r.name, offsetString(ts.Sub(r.start)))
			return r.result()
		}
		for _, g := range r.live {
			g.Eval(ctx, ts)
			if !r.ruleErrors(g, ts) {
				return r.result()
			}
		}
		for next < len(checks) && checks[next].at < ts.Sub(r.start)+evalInterval {
			c := checks[next]
			for _, at := range c.alerts {
				r.checkAlerts(at)
				r.checkNotifications(at, ts)
			}
			for _, et := range c.exprs {
				r.checkExpr(ctx, et)
			}
			next++
		}
	}
	return r.result()
}

// checks groups the alert and expression tests by eval_time, in time order.
func (r *testRun) checks() ([]check, bool) {
	byTime := map[time.Duration]*check{}
	get := func(d dsl.Duration) *check {
		at := time.Duration(d)
		if byTime[at] == nil {
			byTime[at] = &check{at: at}
		}
		return byTime[at]
	}
	ok := true
	for i := range r.spec.AlertRuleTests {
		at := &r.spec.AlertRuleTests[i]
		if at.Alertname == "" {
			r.fail(at.Pos, "%s: test %q: alert_rule_test needs alertname", at.Pos, r.name)
			ok = false
			continue
		}
		if !r.hasAlert(at.Alertname) {
			r.fail(at.Pos, "%s: test %q: no alerting rule named %q in the rule files", at.Pos, r.name, at.Alertname)
			ok = false
			continue
		}
		c := get(at.EvalTime)
		c.alerts = append(c.alerts, at)
	}
	for i := range r.spec.ExprTests {
		et := &r.spec.ExprTests[i]
		c := get(et.EvalTime)
		c.exprs = append(c.exprs, et)
	}
	out := make([]check, 0, len(byTime))
	for _, c := range byTime {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b check) int { return cmp.Compare(a.at, b.at) })
	return out, ok
}

func (r *testRun) hasAlert(name string) bool {
	for _, g := range r.groups {
		for _, rule := range g.Rules {
			if rule.Alert == name {
				return true
			}
		}
	}
	return false
}

// ruleErrors fails the test when a rule of g failed at ts: as in promtool,
// the test stops, since later expectations would only mislead.
func (r *testRun) ruleErrors(g *engine.Group, ts time.Time) bool {
	ok := true
	for _, rule := range g.Rules() {
		st := rule.Status()
		if err := st.LastError; err != nil && st.LastEval.Equal(ts) {
			r.fail(rule.Spec().Pos, "%s: test %q: group %q, rule %q, time %s: %v", rule.Spec().Pos, r.name, g.Name(), rule.Name(), offsetString(ts.Sub(r.start)), err)
			ok = false
		}
	}
	return ok
}

// checkAlerts compares the expected alerts of one rule with its alerts at
// the current step. Firing alerts are compared always (promtool's rule);
// pending ones only when the test expects some alert to be pending, so a
// promtool test that expects nothing while an alert is pending still passes.
// checkNotifications compares what the rule handed to its channels at the
// evaluation ts with exp_notifications, as multisets.
func (r *testRun) checkNotifications(at *alertTest, ts time.Time) {
	if at.ExpNotifications == nil {
		return
	}
	var got []string
	for _, n := range r.notified {
		if !n.Time.Equal(ts) || n.Rule.Name() != at.Alertname {
			continue
		}
		for _, a := range n.Alerts {
			status := "firing"
			if !a.ResolvedAt.IsZero() {
				status = "resolved"
			}
			ch := strings.Join(n.Rule.NotifyFor(a.Labels), ",")
			if ch == "" {
				ch = "default"
			}
			got = append(got, fmt.Sprintf("%s %s channel=%s", status, a.Labels, ch))
		}
	}
	sort.Strings(got)
	used := make([]bool, len(got))
	var missing []string
	for _, e := range *at.ExpNotifications {
		found := false
		for i, g := range got {
			if used[i] || !strings.HasPrefix(g, e.Status+" ") || (e.Channel != "" && !strings.HasSuffix(g, " channel="+e.Channel)) {
				continue
			}
			ok := true
			for k, v := range e.ExpLabels {
				if !strings.Contains(g, k+"=\""+v+"\"") {
					ok = false
				}
			}
			if ok {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, fmt.Sprintf("%s %v channel=%s", e.Status, e.ExpLabels, orDefault(e.Channel, "(any)")))
		}
	}
	var extra []string
	for i, g := range got {
		if !used[i] {
			extra = append(extra, g)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return
	}
	d := "    notifications:\n"
	for _, m := range missing {
		d += "      - expected, not sent: " + m + "\n"
	}
	for _, x := range extra {
		d += "      + sent, not expected: " + x + "\n"
	}
	r.fail(at.Pos, "%s: test %q: alertname %s, eval_time %s:\n%s", at.Pos, r.name, at.Alertname, at.EvalTime, d)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func (r *testRun) checkAlerts(at *alertTest) {
	withPending := false
	for _, e := range at.ExpAlerts {
		if engine.AlertState(e.ExpState) == engine.StatePending {
			withPending = true
		}
	}
	expValues := map[uint64]*float64{}
	var exp []line
	for _, e := range at.ExpAlerts {
		lm := map[string]string{}
		for k, v := range e.ExpLabels {
			lm[k] = v
		}
		lm[labels.AlertName] = at.Alertname
		lset := labels.FromMap(lm)
		state := engine.AlertState(e.ExpState)
		if state == engine.StateInactive {
			state = engine.StateFiring
		}
		expValues[lset.Hash()] = e.ExpValue
		exp = append(exp, alertLine(lset, state, e.ExpValue, labels.FromMap(e.ExpAnnotations)))
	}
	var got, pending []line
	for _, g := range r.live {
		for _, rule := range g.Rules() {
			ar, ok := rule.(*engine.AlertingRule)
			if !ok || ar.Name() != at.Alertname {
				continue
			}
			for _, a := range ar.Alerts() {
				// Show the value where the test asks for one (in the
				// expected spelling when it matches) and for alerts not
				// expected at all.
				v := a.Value
				value := &v
				if want, ok := expValues[a.Labels.Hash()]; ok {
					value = nil
					if want != nil {
						if r.equal(*want, v) {
							v = *want
						}
						value = &v
					}
				}
				l := alertLine(a.Labels, a.State, value, a.Annotations)
				switch {
				case a.State == engine.StateFiring, a.State == engine.StatePending && withPending:
					got = append(got, l)
				case a.State == engine.StatePending:
					pending = append(pending, l)
				}
			}
		}
	}
	d, same := diff(exp, got)
	if same {
		return
	}
	if len(pending) > 0 {
		d += "\n    pending, not compared (an expected alert with exp_state: pending compares them):"
		for _, l := range sortLines(pending) {
			d += "\n        " + l.text
		}
	}
	r.fail(at.Pos, "%s: test %q: alertname %s, eval_time %s:\n%s", at.Pos, r.name, at.Alertname, at.EvalTime, d)
}

// checkExpr evaluates an expression at eval_time and compares its samples.
func (r *testRun) checkExpr(ctx context.Context, et *exprTest) {
	head := fmt.Sprintf("%s: test %q: expr %q, eval_time %s", et.Pos, r.name, et.Expr, et.EvalTime)
	src := r.seriesNow()
	e, err := dsl.Parse(et.Expr, dsl.Options{Schema: r.opts.Schema, Series: r.records})
	if err != nil {
		r.fail(et.Pos, "%s: %v", head, err)
		return
	}
	res, err := r.querier.QueryWith(ctx, e, r.start.Add(time.Duration(et.EvalTime)), src)
	if err != nil {
		r.fail(et.Pos, "%s: %v", head, err)
		return
	}
	got := res.Vector
	if res.IsScalar {
		got = []engine.Sample{{Labels: labels.EmptyLabels(), Value: res.Scalar}}
	}
	p := parser.NewParser(parser.Options{})
	var exp []line
	expByLabels := map[uint64]float64{}
	for _, s := range et.ExpSamples {
		lset, err := p.ParseMetric(s.Labels)
		if err != nil {
			r.fail(s.Pos, "%s: labels %q: %v; write a series such as {tenant_id=\"acme\"}, or nothing for no labels", head, s.Labels, err)
			return
		}
		// Results carry no metric name; a name in the expectation documents
		// what is tested and is not compared.
		lset = lset.DropReserved(isMetricName)
		expByLabels[lset.Hash()] = s.Value
		exp = append(exp, sampleLine(lset, s.Value))
	}
	var gotLines []line
	for _, s := range got {
		v := s.Value
		if want, ok := expByLabels[s.Labels.Hash()]; ok && r.equal(want, v) {
			v = want
		}
		gotLines = append(gotLines, sampleLine(s.Labels, v))
	}
	if d, same := diff(exp, gotLines); !same {
		r.fail(et.Pos, "%s:\n%s", head, d)
	}
}

// records reports whether name is a recording rule of the rule files.
func (r *testRun) records(name string) bool {
	for _, g := range r.groups {
		for _, rule := range g.Rules {
			if rule.Record == name {
				return true
			}
		}
	}
	return name == "ALERTS" || name == "ALERTS_FOR_STATE"
}

// seriesNow serves the recording rules' outputs and ALERTS of the current
// step to expression tests.
func (r *testRun) seriesNow() seriesMap {
	m := seriesMap{}
	for _, g := range r.live {
		for _, rule := range g.Rules() {
			if rr, ok := rule.(*engine.RecordingRule); ok {
				samples, _ := rr.Samples()
				for _, s := range samples {
					m[rr.Name()] = append(m[rr.Name()], engine.Sample{Labels: s.Labels.DropReserved(isMetricName), Value: s.Value})
				}
			}
		}
		for _, s := range g.AlertSamples() {
			name := s.Metric.Get(model.MetricNameLabel)
			m[name] = append(m[name], engine.Sample{Labels: s.Metric.DropReserved(isMetricName), Value: s.F})
		}
	}
	return m
}

// seriesMap is an engine.SeriesSource over fixed samples.
type seriesMap map[string][]engine.Sample

var _ engine.SeriesSource = seriesMap(nil)

// Series returns the samples of name.
func (m seriesMap) Series(name string, _ time.Time) []engine.Sample { return m[name] }

// equal compares an expected and a got value: exactly (NaN equals NaN), or
// within one ulp with fuzzy_compare, as promtool.
func (r *testRun) equal(want, got float64) bool {
	if want == got || (math.IsNaN(want) && math.IsNaN(got)) {
		return true
	}
	return r.tf.FuzzyCompare && (math.Nextafter(want, math.Inf(-1)) == got || math.Nextafter(want, math.Inf(1)) == got)
}

// line is one alert or sample as shown to the user; key is its labels,
// which pair an expected line with a got line in the diff.
type line struct{ key, text string }

// alertLine renders one alert on one line: labels, state, value (when
// compared) and annotations (when there are any).
func alertLine(lset labels.Labels, state engine.AlertState, value *float64, ann labels.Labels) line {
	var sb strings.Builder
	sb.WriteString(lset.String())
	sb.WriteString(" ")
	sb.WriteString(state.String())
	if value != nil {
		sb.WriteString(" value=")
		sb.WriteString(formatFloat(*value))
	}
	if ann.Len() > 0 {
		sb.WriteString(" annotations=")
		sb.WriteString(ann.String())
	}
	return line{key: lset.String(), text: sb.String()}
}

func sampleLine(lset labels.Labels, v float64) line {
	return line{key: lset.String(), text: lset.String() + " " + formatFloat(v)}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// offsetString formats an offset from the start as eval_times are written.
func offsetString(d time.Duration) string { return dsl.Duration(d).String() }

func sortLines(ls []line) []line {
	slices.SortFunc(ls, func(a, b line) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.text, b.text)) })
	return ls
}

// diff renders the expected and got lines, sorted by labels, and a line
// diff: "- " only expected, "+ " only got, "  " both. Lines with the same
// labels are paired, so a changed state or value shows as - then +.
func diff(exp, got []line) (string, bool) {
	sortLines(exp)
	sortLines(got)
	if slices.Equal(exp, got) {
		return "", true
	}
	var sb strings.Builder
	list := func(title string, lines []line) {
		sb.WriteString("    " + title + ":\n")
		if len(lines) == 0 {
			sb.WriteString("        (none)\n")
		}
		for _, l := range lines {
			sb.WriteString("        " + l.text + "\n")
		}
	}
	list("exp", exp)
	list("got", got)
	sb.WriteString("    diff (-exp +got):\n")
	i, j := 0, 0
	for i < len(exp) || j < len(got) {
		switch {
		case j == len(got) || (i < len(exp) && exp[i].key < got[j].key):
			sb.WriteString("      - " + exp[i].text + "\n")
			i++
		case i == len(exp) || got[j].key < exp[i].key:
			sb.WriteString("      + " + got[j].text + "\n")
			j++
		case exp[i].text == got[j].text:
			sb.WriteString("        " + exp[i].text + "\n")
			i++
			j++
		default:
			sb.WriteString("      - " + exp[i].text + "\n")
			sb.WriteString("      + " + got[j].text + "\n")
			i++
			j++
		}
	}
	return strings.TrimSuffix(sb.String(), "\n"), false
}

// isMetricName selects __name__ for labels.Labels.DropReserved.
func isMetricName(name string) bool { return name == model.MetricNameLabel }
