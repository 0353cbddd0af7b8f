package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// This file serves Prometheus' HTTP query API (web/api/v1/api.go of
// Prometheus) over callwatch's language, so that Grafana's Prometheus data
// source, promtool query and any Prometheus client read callwatch as they
// read Prometheus: the same parameters (GET or form-encoded POST), the same
// response and error shapes, the same limits where Prometheus has them.

// MaxPointsPerSeries is Prometheus' limit on the points one series of a
// range query may have: (end-start)/step may not exceed it.
const MaxPointsPerSeries = 11000

// DefaultLabelsWindow is the span /api/v1/labels, /api/v1/label/<name>/values
// and /api/v1/series look back from end when a request has no start.
const DefaultLabelsWindow = time.Hour

// maxMatchers bounds the match[] selectors of one request: each is a range
// function of the query sent to the store.
const maxMatchers = 16

// RangeQueryFunc evaluates an expression at start, start+step, ... end.
type RangeQueryFunc func(ctx context.Context, e *dsl.Expr, start, end time.Time, step time.Duration) (engine.RangeResult, error)

// BuildInfo is what /api/v1/status/buildinfo reports. It has no feature
// list, so Grafana takes callwatch for plain Prometheus.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// DefaultBuildInfo reads the build information of the running binary.
func DefaultBuildInfo() BuildInfo {
	bi := BuildInfo{Version: "devel", Revision: "unknown", Branch: "unknown", BuildUser: "unknown", BuildDate: "unknown", GoVersion: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return bi
	}
	bi.GoVersion = info.GoVersion
	if v := info.Main.Version; v != "" && v != "(devel)" {
		bi.Version = strings.TrimPrefix(v, "v")
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			bi.Revision = s.Value
		case "vcs.time":
			bi.BuildDate = s.Value
		}
	}
	return bi
}

// corsHeaders are the headers Prometheus sets on a cross-origin request.
var corsHeaders = map[string]string{
	"Access-Control-Allow-Headers":  "Accept, Authorization, Content-Type, Origin",
	"Access-Control-Allow-Methods":  "GET, POST, OPTIONS",
	"Access-Control-Expose-Headers": "Date",
}

// setCORS sets the CORS headers as Prometheus' httputil.SetCORS does: for a
// request with an Origin that the pattern matches, "*" when the pattern
// matches everything.
func setCORS(w http.ResponseWriter, origin *regexp.Regexp, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if o == "" || origin == nil {
		return
	}
	for k, v := range corsHeaders {
		w.Header().Set(k, v)
	}
	if origin.String() == "^(?:.*)$" {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		return
	}
	if origin.MatchString(o) {
		w.Header().Set("Access-Control-Allow-Origin", o)
	}
}

// CORSOrigin compiles a --web.cors.origin pattern as Prometheus does: fully
// anchored.
func CORSOrigin(pattern string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + pattern + ")$")
}

// promEndpoints are the endpoints of the query API, for the error of a
// wrong method.
var promEndpoints = []string{"query", "query_range", "labels", "series", "metadata", "status/buildinfo", "rules", "alerts"}

// limitCounter counts the requests refused for a limit, by limit.
type limitCounter struct{ c *prometheus.CounterVec }

func newLimitCounter(reg prometheus.Registerer) limitCounter {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callwatch", Subsystem: "query_api", Name: "limit_exceeded_total",
		Help: "Requests of the query API refused for exceeding a limit, by limit (max_window, max_points, max_series_per_rule, max_samples, query_timeout, max_concurrent_queries, max_bytes, max_depth, max_leaves, max_matchers)."},
		[]string{"limit"})
	for _, l := range []string{"max_window", "max_points", "max_series_per_rule", "max_samples", "query_timeout", "max_concurrent_queries"} {
		c.WithLabelValues(l)
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				c = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return limitCounter{c}
}

func (l limitCounter) inc(limit string) { l.c.WithLabelValues(limit).Inc() }

// apiError is an error answered in Prometheus' shape.
type apiError struct {
	code int
	typ  string
	err  error
}

func (e *apiError) Error() string { return e.err.Error() }

func badData(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "bad_data", fmt.Errorf(format, args...)}
}

// promHandler wraps an endpoint of the query API: CORS, the form (a
// bounded body), and the answer.
func (a *api) promHandler(f func(r *http.Request) (any, *apiError)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setCORS(w, a.opts.CORSOrigin, r)
		// An expression is at most dsl.Limits.MaxBytes; a form body far
		// beyond that is refused instead of parsed.
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			fail(w, http.StatusBadRequest, "bad_data", fmt.Errorf("error parsing form values: %w", err))
			return
		}
		data, aerr := f(r)
		if aerr != nil {
			fail(w, aerr.code, aerr.typ, aerr.err)
			return
		}
		ok(w, data)
	}
}

// options answers a CORS preflight as Prometheus does: 204.
func (a *api) options(w http.ResponseWriter, r *http.Request) {
	setCORS(w, a.opts.CORSOrigin, r)
	w.WriteHeader(http.StatusNoContent)
}

// notFound answers an unknown /api/v1 path, or a known one with a method it
// does not serve, with a JSON error instead of a plain-text page.
func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	setCORS(w, a.opts.CORSOrigin, r)
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	if slices.Contains(promEndpoints, rest) || (strings.HasPrefix(rest, "label/") && strings.HasSuffix(rest, "/values")) {
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		fail(w, http.StatusMethodNotAllowed, "bad_data", fmt.Errorf("method %s is not allowed on %s: use GET or a form-encoded POST", r.Method, r.URL.Path))
		return
	}
	fail(w, http.StatusNotFound, "not_found", fmt.Errorf("unknown API endpoint %s: the query API serves /api/v1/query, /api/v1/query_range, /api/v1/labels, "+
		"/api/v1/label/<name>/values, /api/v1/series, /api/v1/metadata, /api/v1/rules, /api/v1/alerts and /api/v1/status/buildinfo", r.URL.Path))
}

// parseTime reads a time parameter as Prometheus does: unix seconds
// (fractions allowed) or RFC 3339. Non-finite values and times beyond the
// years ±200,000 are refused.
func parseTime(name, s string) (time.Time, *apiError) {
	const maxSeconds = 6.3e12
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > maxSeconds {
			return time.Time{}, badData("invalid parameter %q: cannot parse %q to a valid timestamp: write unix seconds or RFC 3339", name, s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, badData("invalid parameter %q: cannot parse %q to a valid timestamp: write unix seconds (1764000000) or RFC 3339 (2025-11-24T16:00:00Z)", name, s)
}

// parseDuration reads a duration parameter as Prometheus does: seconds
// (fractions allowed) or a Prometheus duration (5m, 1h30m).
func parseDuration(name, s string) (time.Duration, *apiError) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
			return 0, badData("invalid parameter %q: cannot parse %q to a valid duration", name, s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, badData("invalid parameter %q: cannot parse %q to a valid duration: write seconds (15) or a duration (15s, 5m)", name, s)
}

// timeParam reads an optional time parameter.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, *apiError) {
	v := r.Form.Get(name)
	if v == "" {
		return def, nil
	}
	return parseTime(name, v)
}

// deadline returns the request's timeout: limits.query_timeout, or less
// when the request's timeout= asks for less.
func (a *api) deadline(r *http.Request) (time.Duration, *apiError) {
	timeout := a.opts.QueryTimeout
	if t := r.Form.Get("timeout"); t != "" {
		d, err := parseDuration("timeout", t)
		if err != nil {
			return 0, err
		}
		if d <= 0 {
			return 0, badData(`invalid parameter "timeout": %q is not positive: write a duration such as 30s`, t)
		}
		timeout = min(timeout, d)
	}
	return timeout, nil
}

// parse parses an expression of the query API with the limits of rules,
// reading rule outputs by name.
func (a *api) parse(q string) (*dsl.Expr, *apiError) {
	e, err := dsl.Parse(q, dsl.Options{Schema: a.opts.Schema, Limits: a.opts.Limits, Series: a.outputs().Has})
	if err != nil {
		var de *dsl.Error
		if errors.As(err, &de) && de.Limit != "" {
			a.limits.inc(de.Limit)
		}
		return nil, badData("invalid parameter \"query\": %w", err)
	}
	return e, nil
}

func (a *api) outputs() engine.Outputs {
	if a.opts.Rules == nil {
		return engine.Outputs{}
	}
	return engine.Outputs{Groups: a.opts.Rules.Groups}
}

// queryExpr reads what both query endpoints need: the request's timeout
// and its parsed query. A query that does not parse but is a string
// literal comes back as lit, without an expression or an error, for the
// endpoint to answer as Prometheus does.
func (a *api) queryExpr(r *http.Request) (timeout time.Duration, e *dsl.Expr, lit *string, aerr *apiError) {
	if timeout, aerr = a.deadline(r); aerr != nil {
		return 0, nil, nil, aerr
	}
	q := r.Form.Get("query")
	if e, aerr = a.parse(q); aerr != nil {
		if s, isString := stringLiteral(q); isString {
			return timeout, nil, &s, nil
		}
		return 0, nil, nil, aerr
	}
	return timeout, e, nil, nil
}

// stringLiteral returns the value of q when it is a string literal,
// possibly in parentheses, as Prometheus answers it: a "string" result.
func stringLiteral(q string) (string, bool) {
	s := strings.TrimSpace(q)
	for len(s) > 1 && s[0] == '(' && s[len(s)-1] == ')' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if len(s) < 2 || !strings.ContainsRune(`"'`+"`", rune(s[0])) || s[len(s)-1] != s[0] {
		return "", false
	}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(s)
	if err != nil {
		return "", false
	}
	lit, isLit := e.(*parser.StringLiteral)
	if !isLit {
		return "", false
	}
	return lit.Val, true
}

// runQuery runs query within the request's deadline, once one of the
// query slots is free, and turns its error into Prometheus' error.
func runQuery[T any](a *api, r *http.Request, timeout time.Duration, query func(ctx context.Context) (T, error)) (T, *apiError) {
	// The deadline covers the wait for a slot: a flood of queries waits
	// here, bounded, and never reaches ClickHouse beyond the slots.
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var res T
	release, err := a.slots.take(ctx)
	if err != nil {
		a.limits.inc("max_concurrent_queries")
		return res, &apiError{http.StatusServiceUnavailable, "timeout", fmt.Errorf("query timed out after %s waiting for one of the %d query slots (limits.max_concurrent_queries)",
			timeout, cap(a.slots))}
	}
	defer release()
	res, err = query(ctx)
	var tooMany promql.ErrTooManySamples
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The driver may report the deadline as a read timeout of its
		// connection; the request's own deadline says what happened.
		a.limits.inc("query_timeout")
		return res, &apiError{http.StatusServiceUnavailable, "timeout", fmt.Errorf("query timed out after %s (limits.query_timeout, or the request's timeout): %w", timeout, err)}
	case errors.Is(err, engine.ErrTooManySeries) || strings.Contains(err.Error(), "limits.max_series_per_rule"):
		a.limits.inc("max_series_per_rule")
	case errors.Is(err, engine.ErrTooManySamples) || errors.As(err, &tooMany):
		a.limits.inc("max_samples")
		err = fmt.Errorf("%w: shorten the range, raise the step or group by fewer labels", err)
	case errors.Is(err, context.Canceled):
		return res, &apiError{499, "canceled", err}
	}
	return res, &apiError{http.StatusUnprocessableEntity, "execution", err}
}

// query serves /api/v1/query.
func (a *api) query(r *http.Request) (any, *apiError) {
	if a.opts.Query == nil {
		return nil, &apiError{http.StatusNotFound, "not_found", errors.New("queries are not enabled")}
	}
	ts, aerr := timeParam(r, "time", a.opts.Now())
	if aerr != nil {
		return nil, aerr
	}
	timeout, e, lit, aerr := a.queryExpr(r)
	if aerr != nil {
		return nil, aerr
	}
	if lit != nil {
		return engine.NewStringData(*lit, ts), nil
	}
	res, aerr := runQuery(a, r, timeout, func(ctx context.Context) (engine.Result, error) { return a.opts.Query(ctx, e, ts) })
	if aerr != nil {
		return nil, aerr
	}
	return engine.NewQueryData(res, ts), nil
}

// queryRange serves /api/v1/query_range.
func (a *api) queryRange(r *http.Request) (any, *apiError) {
	if a.opts.QueryRange == nil {
		return nil, &apiError{http.StatusNotFound, "not_found", errors.New("range queries are not enabled")}
	}
	start, aerr := parseTime("start", r.Form.Get("start"))
	if aerr != nil {
		return nil, aerr
	}
	end, aerr := parseTime("end", r.Form.Get("end"))
	if aerr != nil {
		return nil, aerr
	}
	if end.Before(start) {
		return nil, badData(`invalid parameter "end": end timestamp must not be before start time`)
	}
	step, aerr := parseDuration("step", r.Form.Get("step"))
	if aerr != nil {
		return nil, aerr
	}
	if step <= 0 {
		return nil, badData(`invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`)
	}
	if step < time.Millisecond {
		return nil, badData(`invalid parameter "step": %s is shorter than a millisecond, the resolution of timestamps`, step)
	}
	// For safety, limit the number of returned points per timeseries, as
	// Prometheus does.
	if end.Sub(start)/step > MaxPointsPerSeries {
		a.limits.inc("max_points")
		return nil, badData("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
	}
	timeout, e, lit, aerr := a.queryExpr(r)
	if aerr != nil {
		return nil, aerr
	}
	if lit != nil {
		return nil, badData(`invalid expression type "string" for range query, must be Scalar or instant Vector`)
	}
	res, aerr := runQuery(a, r, timeout, func(ctx context.Context) (engine.RangeResult, error) {
		return a.opts.QueryRange(ctx, e, start, end, step)
	})
	if aerr != nil {
		return nil, aerr
	}
	return engine.NewMatrixData(res), nil
}

// selector is one match[] selector, split into the metric name it asks
// for (matchers on __name__) and the matchers on other labels.
type selector struct {
	text  string
	names []*labels.Matcher
	rest  []*labels.Matcher
}

// matches reports whether a metric name is selected.
func (s selector) matches(name string) bool {
	for _, m := range s.names {
		if !m.Matches(name) {
			return false
		}
	}
	return true
}

// selectors parses the match[] parameters.
func (a *api) selectors(r *http.Request) ([]selector, *apiError) {
	ms := r.Form["match[]"]
	if len(ms) > maxMatchers {
		a.limits.inc("max_matchers")
		return nil, badData("%d match[] selectors, more than the maximum of %d: send fewer, or one with a regex matcher", len(ms), maxMatchers)
	}
	var out []selector
	for _, m := range ms {
		if len(m) > dsl.DefaultMaxBytes {
			a.limits.inc("max_bytes")
			return nil, badData("invalid parameter \"match[]\": a selector of %d bytes, more than the maximum of %d", len(m), dsl.DefaultMaxBytes)
		}
		matchers, err := parser.NewParser(parser.Options{}).ParseMetricSelector(m)
		if err != nil {
			return nil, badData("invalid parameter \"match[]\": %s: write a series selector such as latency_ms{tenant_id=\"acme\"}", err)
		}
		empty := true
		s := selector{text: m}
		for _, mt := range matchers {
			if !mt.Matches("") {
				empty = false
			}
			if mt.Name == model.MetricNameLabel {
				s.names = append(s.names, mt)
			} else {
				s.rest = append(s.rest, mt)
			}
		}
		if empty {
			return nil, badData("match[] must contain at least one non-empty matcher")
		}
		out = append(out, s)
	}
	return out, nil
}

// span reads start and end of the label endpoints: end defaults to now,
// start to DefaultLabelsWindow before end, and the span never exceeds
// limits.max_window (start is moved up to it).
func (a *api) span(r *http.Request) (start, end time.Time, aerr *apiError) {
	end, aerr = timeParam(r, "end", a.opts.Now())
	if aerr != nil {
		return
	}
	start, aerr = timeParam(r, "start", end.Add(-DefaultLabelsWindow))
	if aerr != nil {
		return
	}
	if end.Before(start) {
		return start, end, badData(`invalid parameter "end": end timestamp must not be before start time`)
	}
	if longest := a.opts.Limits.MaxRange; longest > 0 && end.Sub(start) > longest {
		start = end.Add(-longest)
	}
	return start, end, nil
}

// eventNames are the metric names that select events: the fields and
// events itself.
func (a *api) eventNames() []string {
	return append(a.opts.Schema.FieldNames(), dsl.EventsSelector)
}

// eventGroups returns the distinct values of the by labels among the
// events of [start, end] that a selector selects, by one grouped count in
// the store. It returns no groups for a selector that names no events, or
// that requires a label events do not have.
func (a *api) eventGroups(r *http.Request, timeout time.Duration, sels []selector, by []string, start, end time.Time) ([]labels.Labels, *apiError) {
	if a.opts.Query == nil {
		return nil, nil
	}
	if len(sels) == 0 {
		sels = []selector{{}}
	}
	var parts []string
	for _, s := range sels {
		name := s.exactName()
		switch {
		case name == "" && slices.ContainsFunc(a.eventNames(), s.matches):
			name = dsl.EventsSelector // every event, whichever field a name pattern matches
		case name == "" || !slices.Contains(a.eventNames(), name) || !s.matches(name):
			continue // a rule output, or no name of events
		}
		var ms []string
		possible := true
		for _, m := range s.rest {
			if !a.opts.Schema.IsLabel(m.Name) {
				// Events do not have the label: it is empty for them.
				possible = possible && m.Matches("")
				continue
			}
			ms = append(ms, m.String())
		}
		if !possible {
			continue
		}
		window := max(end.Sub(start).Round(time.Second), time.Second)
		parts = append(parts, fmt.Sprintf("count by (%s) (count_over_time(%s{%s}[%ds]))", strings.Join(by, ", "), name, strings.Join(ms, ", "), int64(window/time.Second)))
	}
	if len(parts) == 0 {
		return nil, nil
	}
	e, err := dsl.Parse(strings.Join(parts, " or "), dsl.Options{Schema: a.opts.Schema, Limits: dsl.Limits{MaxBytes: 1 << 20}})
	if err != nil {
		return nil, badData("invalid parameter \"match[]\": %s", err)
	}
	res, aerr := runQuery(a, r, timeout, func(ctx context.Context) (engine.Result, error) { return a.opts.Query(ctx, e, end) })
	if aerr != nil {
		return nil, aerr
	}
	out := make([]labels.Labels, 0, len(res.Vector))
	for _, s := range res.Vector {
		out = append(out, s.Labels)
	}
	return out, nil
}

// exactName returns the name an equality matcher on __name__ asks for.
func (s selector) exactName() string {
	for _, m := range s.names {
		if m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// outputSeries returns the rule outputs current at end that the
// selectors select (every output without selectors), by labels: a rule
// keeps its alerts in a map, and a limit must keep the same series.
func (a *api) outputSeries(sels []selector, end time.Time) []labels.Labels {
	var out []labels.Labels
	o := a.outputs()
	for _, name := range o.Names() {
		for _, s := range o.Series(name, end) {
			if len(sels) == 0 {
				out = append(out, s.Labels)
				continue
			}
			for _, sel := range sels {
				if sel.matches(name) && matchAll(sel.rest, s.Labels) {
					out = append(out, s.Labels)
					break
				}
			}
		}
	}
	slices.SortFunc(out, labels.Compare)
	return out
}

func matchAll(ms []*labels.Matcher, l labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

// metaParams reads what the label and series endpoints share, in this
// order: start and end, match[] (required when requireMatch), timeout.
func (a *api) metaParams(r *http.Request, requireMatch bool) (start, end time.Time, sels []selector, timeout time.Duration, aerr *apiError) {
	if start, end, aerr = a.span(r); aerr != nil {
		return
	}
	if sels, aerr = a.selectors(r); aerr != nil {
		return
	}
	if requireMatch && len(sels) == 0 {
		aerr = badData("no match[] parameter provided")
		return
	}
	timeout, aerr = a.deadline(r)
	return
}

// labelNames serves /api/v1/labels: the labels of events (and __name__)
// and those of the rules' outputs.
func (a *api) labelNames(r *http.Request) (any, *apiError) {
	start, end, sels, timeout, aerr := a.metaParams(r, false)
	if aerr != nil {
		return nil, aerr
	}
	names := map[string]bool{}
	if len(sels) == 0 {
		names[model.MetricNameLabel] = true
		for _, l := range a.opts.Schema.Labels {
			names[l] = true
		}
	} else {
		// The labels that have a value among the selected events.
		groups, aerr := a.eventGroups(r, timeout, sels, a.opts.Schema.Labels, start, end)
		if aerr != nil {
			return nil, aerr
		}
		for _, g := range groups {
			names[model.MetricNameLabel] = true
			g.Range(func(l labels.Label) { names[l.Name] = true })
		}
	}
	for _, l := range a.outputSeries(sels, end) {
		l.Range(func(l labels.Label) { names[l.Name] = true })
	}
	return sortedSet(names), nil
}

// sortedSet returns the members of a set in order, an empty list (not
// null) for none.
func sortedSet(set map[string]bool) []string {
	return orEmpty(slices.Sorted(maps.Keys(set)))
}

// labelValues serves /api/v1/label/<name>/values.
func (a *api) labelValues(r *http.Request) (any, *apiError) {
	name := r.PathValue("name")
	if !model.LegacyValidation.IsValidLabelName(name) {
		return nil, badData("invalid label name: %q", name)
	}
	start, end, sels, timeout, aerr := a.metaParams(r, false)
	if aerr != nil {
		return nil, aerr
	}
	values := map[string]bool{}
	switch {
	case name == model.MetricNameLabel:
		for _, n := range append(a.eventNames(), a.outputs().Names()...) {
			if len(sels) == 0 || slices.ContainsFunc(sels, func(s selector) bool { return s.matches(n) }) {
				values[n] = true
			}
		}
	case a.opts.Schema.IsLabel(name):
		groups, aerr := a.eventGroups(r, timeout, sels, []string{name}, start, end)
		if aerr != nil {
			return nil, aerr
		}
		for _, g := range groups {
			if v := g.Get(name); v != "" {
				values[v] = true
			}
		}
	}
	for _, l := range a.outputSeries(sels, end) {
		if v := l.Get(name); v != "" {
			values[v] = true
		}
	}
	return sortedSet(values), nil
}

// series serves /api/v1/series: the label sets of the selected events
// (one per combination of label values, with the selector's name) and of
// the rules' outputs.
func (a *api) series(r *http.Request) (any, *apiError) {
	start, end, sels, timeout, aerr := a.metaParams(r, true)
	if aerr != nil {
		return nil, aerr
	}
	var out []map[string]string
	for _, s := range sels {
		name := s.exactName()
		if name == "" || !slices.Contains(a.eventNames(), name) {
			continue
		}
		groups, aerr := a.eventGroups(r, timeout, []selector{s}, a.opts.Schema.Labels, start, end)
		if aerr != nil {
			return nil, aerr
		}
		for _, g := range groups {
			m := g.Map()
			m[model.MetricNameLabel] = name
			out = append(out, m)
		}
	}
	for _, l := range a.outputSeries(sels, end) {
		out = append(out, l.Map())
	}
	if limit := r.Form.Get("limit"); limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 0 {
			return nil, badData(`invalid parameter "limit": %q is not a non-negative integer`, limit)
		}
		if n > 0 && len(out) > n {
			out = out[:n]
		}
	}
	if out == nil {
		out = []map[string]string{}
	}
	return out, nil
}

// metadataJSON is one entry of /api/v1/metadata.
type metadataJSON struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata serves /api/v1/metadata: the fields and events of the schema,
// and the rules' outputs, with what they are and how to query them.
func (a *api) metadata(r *http.Request) (any, *apiError) {
	out := map[string][]metadataJSON{}
	for name, cols := range a.opts.Schema.Fields {
		what := "column " + cols[0]
		if len(cols) > 1 {
			what = "sum of the columns " + strings.Join(cols, " + ")
		}
		out[name] = []metadataJSON{{Type: "unknown", Help: fmt.Sprintf("Field of call events (%s), pooled by range functions: p95(%s[5m]), sum_over_time(%s[1h]), max by (tenant_id) (avg_over_time(%s[5m])).", what, name, name, name)}}
	}
	out[dsl.EventsSelector] = []metadataJSON{{Type: "unknown", Help: "Call events without a value, for counting: count_over_time(events{status=\"error\"}[5m]), rate(events[5m])."}}
	if a.opts.Rules != nil {
		for _, g := range a.opts.Rules.Groups() {
			for _, rule := range g.Rules() {
				switch rule.(type) {
				case *engine.RecordingRule:
					out[rule.Name()] = []metadataJSON{{Type: "gauge", Help: fmt.Sprintf("Recording rule of group %s: %s (its last evaluation only).", g.Name(), rule.Spec().ExprText)}}
				case *engine.AlertingRule:
					out["ALERTS"] = []metadataJSON{{Type: "gauge", Help: "Pending and firing alerts of callwatch's alerting rules (1 per alert), as Prometheus' ALERTS."}}
					out["ALERTS_FOR_STATE"] = []metadataJSON{{Type: "gauge", Help: "The time (unix seconds) each pending or firing alert became active, as Prometheus' ALERTS_FOR_STATE."}}
				}
			}
		}
	}
	if m := r.Form.Get("metric"); m != "" {
		if md, found := out[m]; found {
			return map[string][]metadataJSON{m: md}, nil
		}
		return map[string][]metadataJSON{}, nil
	}
	if limit := r.Form.Get("limit"); limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil {
			return nil, badData(`invalid parameter "limit": %q is not an integer`, limit)
		}
		if n >= 0 && len(out) > n {
			names := make([]string, 0, len(out))
			for k := range out {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names[n:] {
				delete(out, k)
			}
		}
	}
	return out, nil
}

// buildInfo serves /api/v1/status/buildinfo.
func (a *api) buildInfo(*http.Request) (any, *apiError) {
	return a.opts.BuildInfo, nil
}
