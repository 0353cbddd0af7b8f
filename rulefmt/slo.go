package rulefmt

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
)

// SLOSpec is one service level objective of a rule file (its slos: list).
// It is compiled into an ordinary rule group (GroupSpec.SLO points back to
// it): recording rules for the SLI over the window, the error budget
// remaining and the burn rate per alert window, and the SRE workbook's
// multiwindow, multi-burn-rate alerts. Every ratio is a ratio of sums over
// its window, never an average of ratios.
type SLOSpec struct {
	Name string
	// Objective is the share of good events promised, in percent (99.9).
	Objective float64
	// Window is the rolling window the objective is judged over (30d); for
	// a calendar month, 30d, the width its burn-rate factors scale with.
	Window time.Duration
	// Calendar, when set, judges the objective over the calendar month so
	// far in this zone instead of a rolling window.
	Calendar *time.Location
	// By are the labels that make one SLO per group (tenant_id).
	By []string
	// MinEvents: a group with fewer events than this in an alert's long
	// window is not judged by that alert (the min_events noise control).
	MinEvents int
	// Errors and Total are the event selectors of a ratio SLI
	// (events{status="error"} and events); for a latency SLI, Errors is
	// empty and Field and LE say which events are good.
	Errors, Total string
	Field         string
	LE            float64
	// Alerts are the burn-rate alerts, page first.
	Alerts []BurnAlert
	Pos    Position
}

// BurnAlert is one multiwindow burn-rate alert of an SLO: it fires when the
// burn rate over both Long and Short exceeds Factor.
type BurnAlert struct {
	Severity    Severity
	Long, Short time.Duration
	For         time.Duration
	Factor      float64
}

// ErrorBudget returns the share of events the objective allows to be bad
// (0.001 for 99.9), rounded to 12 significant digits so that 100 − 99.9
// gives 0.1 and not 0.09999999999999432.
func (s *SLOSpec) ErrorBudget() float64 {
	b, _ := strconv.ParseFloat(strconv.FormatFloat(100-s.Objective, 'g', 12, 64), 64)
	return b / 100
}

// Windows returns the distinct windows whose burn rate the SLO records,
// shortest first.
func (s *SLOSpec) Windows() []time.Duration {
	var ws []time.Duration
	for _, a := range s.Alerts {
		ws = append(ws, a.Long, a.Short)
	}
	slices.Sort(ws)
	return slices.Compact(ws)
}

// BudgetSpec is one spend budget of a rule file (its budgets: list),
// compiled into an ordinary rule group (GroupSpec.Budget points back to
// it): the spend over the period per group, its share of the limit, the
// spend projected over the period at the pace of PaceWindow, an alert per
// threshold and a pace alert.
type BudgetSpec struct {
	Name string
	// Cost is the field selector summed (cost, or cost{app_code="chat"}).
	Cost  string
	Limit float64
	By    []string
	// Period is the rolling window the limit applies to; PaceWindow the
	// recent window whose spend is projected over it. For a calendar month
	// (Calendar set), Period is 30d and the projection is the month-to-date
	// spend at the month-to-date pace, made once PaceWindow's share of a
	// 30-day month has passed.
	Period, PaceWindow time.Duration
	// Calendar, when set, applies the limit to the calendar month in this
	// zone instead of a rolling window.
	Calendar *time.Location
	// Thresholds are the percents of the limit that alert, ascending.
	Thresholds []float64
	Pos        Position
}

// The recorded series of SLO and budget groups.
const (
	SLISeries             = "slo:sli:ratio"
	BudgetRemainingSeries = "slo:error_budget_remaining:ratio"
	BurnRateSeries        = "slo:burn_rate:ratio"
	SpentSeries           = "budget:spent:sum"
	SpentRatioSeries      = "budget:spent:ratio"
	ProjectedSeries       = "budget:projected:sum"
)

var (
	sloKeys      = []string{"name", "objective", "window", "time_zone", "interval", "by", "min_events", "sli", "alerting"}
	sliKeys      = []string{"errors", "total", "field", "le"}
	alertingKeys = []string{"name", "labels", "annotations", "page", "ticket", "notify"}
	tierKeys     = []string{"labels", "annotations", "notify"}
	budgetKeys   = []string{"name", "cost", "limit", "by", "period", "time_zone", "pace_window", "interval", "thresholds", "alerting"}
)

// workbookAlerts are the SRE workbook's alerts for a 30-day SLO, as the
// share of the error budget each spends in its long window: page when 2%
// is spent in 1h (14.4×) and 5% in 6h (6×), ticket when 10% is spent in
// 1d (3×) or in 3d (1×). The windows stay (they are whole buckets, so they
// slide); the factors scale with the SLO window, as Sloth does.
var workbookAlerts = []struct {
	severity    Severity
	long, short time.Duration
	forDur      time.Duration
	share       float64
}{
	{SeverityCritical, time.Hour, 5 * time.Minute, 2 * time.Minute, 0.02},
	{SeverityCritical, 6 * time.Hour, 30 * time.Minute, 15 * time.Minute, 0.05},
	{SeverityWarning, 24 * time.Hour, 2 * time.Hour, time.Hour, 0.10},
	{SeverityWarning, 72 * time.Hour, 6 * time.Hour, 3 * time.Hour, 0.10},
}

// minSLOWindow is the shortest SLO window: the workbook's longest alert
// window is 3d, and an SLO window must hold it with room to spare.
const minSLOWindow = 7 * 24 * time.Hour

// genRule and genGroup are a generated group in the rule-file format, so
// that it is checked by the same code as a written one.
type genRule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
	Severity    string            `yaml:"severity,omitempty"`
	Notify      []string          `yaml:"notify,omitempty"`
	MinEvents   int               `yaml:"min_events,omitempty"`
}

type genGroup struct {
	Name     string    `yaml:"name"`
	Interval string    `yaml:"interval,omitempty"`
	Rules    []genRule `yaml:"rules"`
}

// alerting is the parsed alerting: key of an SLO or budget.
type alerting struct {
	name                string
	labels, annotations map[string]string
	notify              []string
	tiers               map[string]alertTier // page, ticket
}

type alertTier struct {
	labels, annotations map[string]string
	notify              []string
}

// slos parses the slos: list of a file into generated groups.
func (p *fileParser) slos(list *yaml.Node) []*GroupSpec {
	return p.specList(list, "slos must be a list of SLOs, each with name:, objective:, window: and sli:", p.slo)
}

// budgets parses the budgets: list of a file into generated groups.
func (p *fileParser) budgets(list *yaml.Node) []*GroupSpec {
	return p.specList(list, "budgets must be a list of budgets, each with name:, limit: and period:", p.budget)
}

// specList parses each item of a slos: or budgets: list with one.
func (p *fileParser) specList(list *yaml.Node, notList string, one func(*yaml.Node) *GroupSpec) []*GroupSpec {
	if list.Kind != yaml.SequenceNode {
		p.add(p.errAt(list, "", "", "%s", notList))
		return nil
	}
	var out []*GroupSpec
	for _, n := range list.Content {
		if g := one(n); g != nil {
			out = append(out, g)
		}
	}
	return out
}

// named reads the name: of an SLO or budget mapping.
func (p *fileParser) named(n *yaml.Node, what, example string) (string, bool) {
	if n.Kind != yaml.MappingNode {
		p.add(p.errAt(n, "", "", "%s is a mapping, e.g. %s", what, example))
		return "", false
	}
	v := mapValue(n, "name")
	if v == nil || v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
		p.add(p.errAt(n, "", "", "%s needs a name:, e.g. %s", what, example))
		return "", false
	}
	if !model.LabelValue(v.Value).IsValid() || strings.ContainsAny(v.Value, "{}\"\\\n") {
		p.add(p.errAt(v, "", "", "%s name %q: use letters, digits, - and _", what, v.Value))
		return "", false
	}
	return v.Value, true
}

func (p *fileParser) slo(n *yaml.Node) *GroupSpec {
	name, ok := p.named(n, "an SLO", "{name: chat-availability, objective: 99.9, window: 30d, sli: {errors: 'events{status=\"error\"}', total: events}}")
	if !ok {
		return nil
	}
	what := fmt.Sprintf("slo %q", name)
	errAt := func(at *yaml.Node, format string, args ...any) {
		p.add(p.errAt(at, "", "", what+": "+format, args...))
	}
	p.checkKeys(n, sloKeys, "", "")
	s := &SLOSpec{Name: name, Pos: Position{File: p.file, Line: n.Line, Col: n.Column}}
	before := len(p.errs)
	if v := mapValue(n, "objective"); v == nil {
		errAt(n, "objective: is missing; write the percent of good events, e.g. objective: 99.9")
	} else if err := v.Decode(&s.Objective); err != nil || !(s.Objective > 0 && s.Objective < 100) {
		errAt(v, "objective %q: write a percent strictly between 0 and 100, e.g. 99.9", v.Value)
	}
	s.Window, s.Calendar = p.window(n, "window", what, true)
	interval := p.sloInterval(n, what)
	s.By = p.byLabels(n, what)
	if v := mapValue(n, "min_events"); v != nil {
		if err := v.Decode(&s.MinEvents); err != nil || s.MinEvents < 1 {
			errAt(v, "min_events must be a positive integer: the events an alert's long window must hold before it is judged")
		}
	}
	p.sli(n, s, what)
	al := p.alerting(n, what, []string{"page", "ticket"})
	if len(p.errs) > before {
		return nil
	}
	for _, w := range workbookAlerts {
		s.Alerts = append(s.Alerts, BurnAlert{Severity: w.severity, Long: w.long, Short: w.short, For: w.forDur,
			Factor: round(w.share*float64(s.Window)/float64(w.long), 6)})
	}
	g := p.generated(n, what, sloGroup(s, al, interval))
	if g == nil {
		return nil
	}
	g.SLO = s
	if s.MinEvents > 0 {
		// Held by the events of the alert's long window (the quality
		// controls would otherwise count its broadest leaf).
		for i, r := range g.Rules[len(g.Rules)-len(s.Alerts):] {
			c, err := dsl.Parse(s.countExpr(window{d: s.Alerts[i].Long}), dsl.Options{Schema: p.opts.Schema, Limits: p.opts.Limits})
			if err != nil {
				errAt(n, "min_events: %v", err)
				return nil
			}
			r.Quality.Count = c
		}
	}
	return g
}

// sloInterval reads the interval: of an SLO or budget (default 1m).
func (p *fileParser) sloInterval(n *yaml.Node, what string) time.Duration {
	v := mapValue(n, "interval")
	if v == nil {
		return 0
	}
	d := p.duration(v, "", "", what+": interval")
	if d <= 0 {
		p.add(p.errAt(v, "", "", "%s: interval must be positive, e.g. 1m", what))
	}
	return d
}

// CalendarMonth is how a rule file names a calendar month as an SLO's
// window or a budget's period.
const CalendarMonth = "month"

// window reads the window: of an SLO or the period: of a budget: a rolling
// window (30d), or month with an optional time_zone: (UTC by default), a
// calendar month, returned as 30d and its zone.
func (p *fileParser) window(n *yaml.Node, key, what string, slo bool) (time.Duration, *time.Location) {
	v := mapValue(n, key)
	tz := mapValue(n, "time_zone")
	if v == nil {
		p.add(p.errAt(n, "", "", "%s: %s: is missing; write a rolling window, e.g. %s: 30d, or %s: %s", what, key, key, key, CalendarMonth))
		return 0, nil
	}
	switch strings.ToLower(strings.TrimSpace(v.Value)) {
	case CalendarMonth, "calendar_month", "monthly", "calendar month":
		loc := time.UTC
		if tz != nil {
			var err error
			if loc, err = dsl.LoadZone(tz.Value); err != nil {
				p.add(p.errAt(tz, "", "", "%s: time_zone: %v", what, err))
				return 0, nil
			}
		}
		return 30 * 24 * time.Hour, loc
	}
	if tz != nil {
		p.add(p.errAt(tz, "", "", "%s: time_zone applies to a calendar month; write %s: %s, or remove time_zone: for a rolling window", what, key, CalendarMonth))
	}
	return p.rollingWindow(v, key, what, slo), nil
}

// rollingWindow reads a rolling window (window: of an SLO, period: of a
// budget).
func (p *fileParser) rollingWindow(v *yaml.Node, key, what string, slo bool) time.Duration {
	d, err := dsl.ParseDuration(v.Value)
	switch {
	case err != nil:
		p.add(p.errAt(v, "", "", "%s: %s: %v; write a rolling window such as 30d, or %s for a calendar month", what, key, err, CalendarMonth))
	case slo && d < minSLOWindow:
		p.add(p.errAt(v, "", "", "%s: window %s is shorter than 7d: the slowest burn-rate alert reads 3d; write 7d, 28d or 30d", what, model.Duration(d)))
	case d%time.Minute != 0 || d <= 0:
		p.add(p.errAt(v, "", "", "%s: %s %s: write a positive whole number of minutes, e.g. 30d", what, key, model.Duration(d)))
	default:
		return d
	}
	return 0
}

// byLabels reads the by: labels of an SLO or budget.
func (p *fileParser) byLabels(n *yaml.Node, what string) []string {
	v := mapValue(n, "by")
	if v == nil {
		return nil
	}
	var by []string
	if err := v.Decode(&by); err != nil {
		p.add(p.errAt(v, "", "", "%s: by must be a list of labels, e.g. by: [tenant_id]", what))
		return nil
	}
	for i, l := range by {
		at := v
		if i < len(v.Content) {
			at = v.Content[i]
		}
		if !p.opts.Schema.IsLabel(l) {
			hint := "labels are " + strings.Join(p.opts.Schema.Labels, ", ")
			if c := dsl.Closest(l, p.opts.Schema.Labels); c != "" {
				hint = fmt.Sprintf("did you mean %q?", c)
			}
			p.add(p.errAt(at, "", "", "%s: by: %q is not a label of call events; %s", what, l, hint))
		}
	}
	return by
}

// sli reads the sli: of an SLO: errors and total selectors, or a field
// with le (a latency objective) and an optional total selector.
func (p *fileParser) sli(n *yaml.Node, s *SLOSpec, what string) {
	v := mapValue(n, "sli")
	example := `sli: {errors: 'events{status="error"}', total: events} or sli: {field: latency_ms, le: 2000}`
	if v == nil || v.Kind != yaml.MappingNode {
		at := n
		if v != nil {
			at = v
		}
		p.add(p.errAt(at, "", "", "%s: sli: is missing or not a mapping; write %s", what, example))
		return
	}
	p.checkKeys(v, sliKeys, "", "")
	errs, total, field, le := mapValue(v, "errors"), mapValue(v, "total"), mapValue(v, "field"), mapValue(v, "le")
	s.Total = dsl.EventsSelector
	if total != nil {
		s.Total = p.selector(total, what, "total", dsl.EventsSelector)
	}
	switch {
	case errs != nil && (field != nil || le != nil):
		p.add(p.errAt(v, "", "", "%s: sli: give errors: (a ratio of events) or field: and le: (a latency objective), not both", what))
	case errs != nil:
		if total == nil {
			p.add(p.errAt(v, "", "", "%s: sli: errors: needs total: too, e.g. total: events", what))
		}
		s.Errors = p.selector(errs, what, "errors", dsl.EventsSelector)
	case field != nil || le != nil:
		if field == nil || le == nil {
			p.add(p.errAt(v, "", "", "%s: sli: a latency objective needs field: and le:, e.g. {field: latency_ms, le: 2000}", what))
			return
		}
		s.Field = field.Value
		if _, ok := p.opts.Schema.Fields[s.Field]; !ok {
			p.add(p.errAt(field, "", "", "%s: sli: field %q is not a numeric field of call events; fields are %s", what, s.Field, strings.Join(p.opts.Schema.FieldNames(), ", ")))
		}
		if err := le.Decode(&s.LE); err != nil || math.IsNaN(s.LE) || math.IsInf(s.LE, 0) {
			p.add(p.errAt(le, "", "", "%s: sli: le must be a number: events whose %s is at or below it are good", what, s.Field))
		}
	default:
		p.add(p.errAt(v, "", "", "%s: sli: write %s", what, example))
	}
}

// selector checks a selector of events (or of a field, for a budget's
// cost) and returns it in the form the generated rules use. A bare
// {matchers} selects from def.
func (p *fileParser) selector(v *yaml.Node, what, key, def string) string {
	text := strings.TrimSpace(v.Value)
	if v.Kind != yaml.ScalarNode || text == "" {
		p.add(p.errAt(v, "", "", "%s: %s must be a selector such as %s{status=\"error\"}", what, key, def))
		return ""
	}
	added := 0 // the runes of text not typed in the file
	if strings.HasPrefix(text, "{") {
		text = def + text
		added = utf8.RuneCountInString(def)
	}
	if e, err := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()}).ParseExpr(text); err == nil {
		if _, ok := e.(*parser.VectorSelector); !ok {
			p.add(p.errAt(v, "", "", "%s: %s must be one selector, such as %s{status=\"error\"}, not an expression", what, key, def))
			return ""
		}
	}
	name := text
	if i := strings.IndexAny(text, "{["); i >= 0 {
		name = text[:i]
	}
	if strings.TrimSpace(name) != def {
		p.add(p.errAt(v, "", "", "%s: %s selects %q; write a selector of %s, e.g. %s{status=\"error\"}", what, key, strings.TrimSpace(name), def, def))
		return ""
	}
	fn := "count_over_time("
	if def != dsl.EventsSelector {
		fn = "sum_over_time("
	}
	if _, err := dsl.Parse(fn+text+"[1m])", dsl.Options{Schema: p.opts.Schema, Limits: p.opts.Limits}); err != nil {
		var de *dsl.Error
		if errors.As(err, &de) {
			msg := de.Msg
			if de.Hint != "" {
				msg += "; " + de.Hint
			}
			fe := p.errAt(v, "", "", "%s: %s: %s", what, key, msg)
			// Point at the column inside the selector, as for an expr.
			if off := de.Col - 1 - utf8.RuneCountInString(fn); de.Line == 1 && off >= 0 {
				fe.Pos = p.valuePos(v, max(off-added, 0)+leadingSpace(v.Value))
			}
			p.add(fe)
		} else {
			p.add(p.errAt(v, "", "", "%s: %s: %v", what, key, err))
		}
		return ""
	}
	return text
}

// leadingSpace counts the blanks selector trimmed off the front of a value.
func leadingSpace(s string) int {
	return utf8.RuneCountInString(s) - utf8.RuneCountInString(strings.TrimLeft(s, " \t\n"))
}

// alerting reads the alerting: of an SLO or budget: the alert name,
// labels, annotations and channels, and per tier (page, ticket) more of
// them.
func (p *fileParser) alerting(n *yaml.Node, what string, tiers []string) alerting {
	a := alerting{tiers: map[string]alertTier{}}
	v := mapValue(n, "alerting")
	if v == nil {
		return a
	}
	if v.Kind != yaml.MappingNode {
		p.add(p.errAt(v, "", "", "%s: alerting must be a mapping with name, labels, annotations and notify", what))
		return a
	}
	allowed := alertingKeys
	if len(tiers) == 0 {
		allowed = slices.DeleteFunc(slices.Clone(alertingKeys), func(k string) bool { return k == "page" || k == "ticket" })
	}
	p.checkKeys(v, allowed, "", "")
	if nn := mapValue(v, "name"); nn != nil {
		a.name = nn.Value
		if !model.LabelValue(a.name).IsValid() || strings.TrimSpace(a.name) == "" {
			p.add(p.errAt(nn, "", "", "%s: alerting.name %q is not a valid alert name", what, a.name))
		}
	}
	read := func(m *yaml.Node) (labels, annotations map[string]string, notify []string) {
		if l := mapValue(m, "labels"); l != nil {
			labels = p.labelMap(l, "", "", "labels", true)
			for _, k := range []string{"slo", "budget", "severity", "long", "short", "burn_rate", "threshold"} {
				if _, set := labels[k]; set {
					p.add(p.errAt(l, "", "", "%s: labels.%s is set by callwatch on the generated alerts; choose another label name", what, k))
				}
			}
		}
		if an := mapValue(m, "annotations"); an != nil {
			annotations = p.labelMap(an, "", "", "annotations", true)
		}
		if nv := mapValue(m, "notify"); nv != nil {
			if err := nv.Decode(&notify); err != nil {
				p.add(p.errAt(nv, "", "", "%s: notify must be a list of channel names, e.g. [ops-wecom]", what))
			}
			for _, c := range notify {
				if p.opts.Channels != nil && !slices.Contains(p.opts.Channels, c) {
					p.add(p.errAt(nv, "", "", "%s: notify: no channel named %q; configured channels: %s", what, c, strings.Join(p.opts.Channels, ", ")))
				}
			}
		}
		return labels, annotations, notify
	}
	a.labels, a.annotations, a.notify = read(v)
	for _, t := range tiers {
		tn := mapValue(v, t)
		if tn == nil {
			continue
		}
		if tn.Kind != yaml.MappingNode {
			p.add(p.errAt(tn, "", "", "%s: alerting.%s must be a mapping with labels, annotations and notify", what, t))
			continue
		}
		p.checkKeys(tn, tierKeys, "", "")
		var at alertTier
		at.labels, at.annotations, at.notify = read(tn)
		a.tiers[t] = at
	}
	return a
}

// merged returns base with over's entries added (over wins).
func merged(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// WindowString prints a window as it is written in rule files: whole
// days as days (28d, not Prometheus' 4w), anything else as Prometheus does.
func WindowString(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return model.Duration(d).String()
}

// round rounds f to n significant digits.
func round(f float64, n int) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', n, 64), 64)
	return r
}

// num formats a number for an expression or a label.
func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// sumBy wraps a range function in sum by (the SLO's labels).
func sumBy(by []string, inner string) string {
	if len(by) == 0 {
		return "sum(" + inner + ")"
	}
	return "sum by (" + strings.Join(by, ", ") + ") (" + inner + ")"
}

// window is the window of a generated range function: rolling (d), or
// the calendar month so far in cal.
type window struct {
	d   time.Duration
	cal *time.Location
}

// rangeFn writes fn(sel[w]extra): a range function over a selector such
// as events{status="error"}, inside month_to_date for a calendar month.
func rangeFn(fn, sel string, w window, extra string) string {
	if w.cal == nil {
		return fn + "(" + sel + "[" + WindowString(w.d) + "]" + extra + ")"
	}
	return dsl.FuncMonthToDate + "(" + fn + "(" + sel + "[" + WindowString(dsl.LongestMonth) + "]" + extra + "), " + strconv.Quote(w.cal.String()) + ")"
}

// rangeOf writes sel[w] of a selector such as events{status="error"}.
func rangeOf(sel string, w time.Duration) string {
	return sel + "[" + WindowString(w) + "]"
}

// countExpr counts the SLO's events in window w, per group.
func (s *SLOSpec) countExpr(w window) string {
	return sumBy(s.By, rangeFn("count_over_time", s.Total, w, ""))
}

// ErrorRatioExpr is the share of bad events in the rolling window w, per
// group: bad events over all events, both summed over the whole window. A
// group with events and no bad one has 0.
func (s *SLOSpec) ErrorRatioExpr(w time.Duration) string { return s.errorRatio(window{d: w}) }

func (s *SLOSpec) errorRatio(w window) string {
	var bad string
	if s.Errors != "" {
		bad = sumBy(s.By, rangeFn("count_over_time", s.Errors, w, ""))
	} else {
		sel := s.Field + strings.TrimPrefix(s.Total, dsl.EventsSelector)
		bad = sumBy(s.By, rangeFn("count_gt_over_time", sel, w, ", "+num(s.LE)))
	}
	total := s.countExpr(w)
	return "(" + bad + " or 0 * " + total + ") / " + total
}

// WindowName names the SLO's window in labels and reports: 30d, or month
// for a calendar month.
func (s *SLOSpec) WindowName() string { return windowName(s.Window, s.Calendar) }

// PeriodName names the budget's period: 30d, or month.
func (b *BudgetSpec) PeriodName() string { return windowName(b.Period, b.Calendar) }

func windowName(d time.Duration, cal *time.Location) string {
	if cal != nil {
		return CalendarMonth
	}
	return WindowString(d)
}

// Describe says what a window is, for messages and pages: "rolling 30d",
// or "calendar month (Asia/Shanghai)".
func Describe(d time.Duration, cal *time.Location) string {
	if cal != nil {
		return "calendar month (" + cal.String() + ")"
	}
	return "rolling " + WindowString(d)
}

// inText names a window in a sentence: 30d, or the calendar month
// (Asia/Shanghai).
func inText(d time.Duration, cal *time.Location) string {
	if cal != nil {
		return "the " + Describe(d, cal)
	}
	return WindowString(d)
}

// PeriodAt returns the period (from, to] whose length the budget's or
// SLO's window has at t: the calendar month holding t, or (t − d, t].
func PeriodAt(t time.Time, d time.Duration, cal *time.Location) (from, to time.Time) {
	if cal != nil {
		return dsl.MonthBounds(t, cal)
	}
	return t.Add(-d), t
}

// BurnRateExpr is the burn rate over window w: the error ratio over the
// error budget (1 spends the budget exactly over the SLO window).
func (s *SLOSpec) BurnRateExpr(w time.Duration) string {
	return "(" + s.ErrorRatioExpr(w) + ") / " + num(s.ErrorBudget())
}

func sloGroup(s *SLOSpec, al alerting, interval time.Duration) genGroup {
	g := genGroup{Name: "slo:" + s.Name}
	if interval > 0 {
		g.Interval = WindowString(interval)
	}
	win := s.WindowName()
	g.Rules = append(g.Rules,
		genRule{Record: SLISeries, Expr: "1 - (" + s.errorRatio(window{s.Window, s.Calendar}) + ")", Labels: map[string]string{"slo": s.Name, "window": win}},
		genRule{Record: BudgetRemainingSeries, Labels: map[string]string{"slo": s.Name},
			Expr: fmt.Sprintf(`1 - (1 - %s{slo=%q, window=%q}) / %s`, SLISeries, s.Name, win, num(s.ErrorBudget()))})
	for _, w := range s.Windows() {
		g.Rules = append(g.Rules, genRule{Record: BurnRateSeries, Expr: s.BurnRateExpr(w),
			Labels: map[string]string{"slo": s.Name, "window": WindowString(w)}})
	}
	name := al.name
	if name == "" {
		name = "SLOBurnRate"
	}
	for _, a := range s.Alerts {
		tier := "ticket"
		if a.Severity == SeverityCritical {
			tier = "page"
		}
		t := al.tiers[tier]
		labels := merged(merged(al.labels, t.labels), map[string]string{
			"slo": s.Name, "long": WindowString(a.Long), "short": WindowString(a.Short), "burn_rate": num(a.Factor),
		})
		annotations := merged(al.annotations, t.annotations)
		if _, ok := annotations["summary"]; !ok {
			annotations["summary"] = fmt.Sprintf("SLO %s%s: the error budget burns faster than %s× over %s and %s (objective %s%% over %s)",
				s.Name, byTemplate(s.By), labels["burn_rate"], labels["long"], labels["short"], num(s.Objective), inText(s.Window, s.Calendar))
		}
		notify := al.notify
		if t.notify != nil {
			notify = t.notify
		}
		// The smaller of the two burn rates is above the factor exactly
		// when both are: one comparison, so the noise controls apply.
		long, short := s.BurnRateExpr(a.Long), s.BurnRateExpr(a.Short)
		g.Rules = append(g.Rules, genRule{
			Alert: name, Expr: "((" + long + ") <= (" + short + ") or (" + short + ")) > " + num(a.Factor),
			For: WindowString(a.For), Labels: labels, Annotations: annotations,
			Severity: string(a.Severity), Notify: notify, MinEvents: s.MinEvents,
		})
	}
	return g
}

// byTemplate names the SLO's group in an annotation.
func byTemplate(by []string) string {
	if len(by) == 0 {
		return ""
	}
	parts := make([]string, len(by))
	for i, l := range by {
		parts[i] = l + "={{ $labels." + l + " }}"
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func (p *fileParser) budget(n *yaml.Node) *GroupSpec {
	name, ok := p.named(n, "a budget", "{name: tenant-spend, limit: 500, period: 30d, by: [tenant_id]}")
	if !ok {
		return nil
	}
	what := fmt.Sprintf("budget %q", name)
	p.checkKeys(n, budgetKeys, "", "")
	b := &BudgetSpec{Name: name, Cost: "cost", Thresholds: []float64{50, 80, 100}, Pos: Position{File: p.file, Line: n.Line, Col: n.Column}}
	before := len(p.errs)
	if v := mapValue(n, "cost"); v != nil {
		field := v.Value
		if i := strings.IndexAny(field, "{["); i >= 0 {
			field = field[:i]
		}
		if _, ok := p.opts.Schema.Fields[strings.TrimSpace(field)]; !ok {
			p.add(p.errAt(v, "", "", "%s: cost: %q is not a numeric field of call events; fields are %s", what, strings.TrimSpace(field), strings.Join(p.opts.Schema.FieldNames(), ", ")))
		} else {
			b.Cost = p.selector(v, what, "cost", strings.TrimSpace(field))
		}
	} else if _, ok := p.opts.Schema.Fields["cost"]; !ok {
		p.add(p.errAt(n, "", "", "%s: the schema has no cost field; write cost: FIELD", what))
	}
	if v := mapValue(n, "limit"); v == nil {
		p.add(p.errAt(n, "", "", "%s: limit: is missing; write the spend allowed per group and period, e.g. limit: 500", what))
	} else if err := v.Decode(&b.Limit); err != nil || !(b.Limit > 0) || math.IsInf(b.Limit, 0) {
		p.add(p.errAt(v, "", "", "%s: limit %q: write a positive number", what, v.Value))
	}
	b.Period, b.Calendar = p.window(n, "period", what, false)
	interval := p.sloInterval(n, what)
	b.PaceWindow = (b.Period / 30).Truncate(time.Minute)
	if v := mapValue(n, "pace_window"); v != nil {
		b.PaceWindow = p.duration(v, "", "", what+": pace_window")
		if b.PaceWindow <= 0 || b.PaceWindow%time.Minute != 0 || (b.Period > 0 && b.PaceWindow >= b.Period) {
			p.add(p.errAt(v, "", "", "%s: pace_window must be a whole number of minutes shorter than the period, e.g. 1d", what))
		}
	}
	if b.PaceWindow > 0 {
		b.PaceWindow = b.PaceWindow.Truncate(time.Minute)
	}
	b.By = p.byLabels(n, what)
	if v := mapValue(n, "thresholds"); v != nil {
		b.Thresholds = nil
		if err := v.Decode(&b.Thresholds); err != nil || len(b.Thresholds) == 0 {
			p.add(p.errAt(v, "", "", "%s: thresholds must be a list of percents of the limit, e.g. [50, 80, 100]", what))
		}
		for _, t := range b.Thresholds {
			if !(t > 0) || math.IsInf(t, 0) {
				p.add(p.errAt(v, "", "", "%s: threshold %v: write a positive percent of the limit", what, t))
			}
		}
		slices.Sort(b.Thresholds)
		if len(slices.Compact(slices.Clone(b.Thresholds))) != len(b.Thresholds) {
			p.add(p.errAt(v, "", "", "%s: a threshold is listed twice", what))
		}
	}
	al := p.alerting(n, what, nil)
	if len(p.errs) > before {
		return nil
	}
	g := p.generated(n, what, budgetGroup(b, al, interval))
	if g != nil {
		g.Budget = b
	}
	return g
}

// SpentExpr is the spend over the period, per group.
func (b *BudgetSpec) SpentExpr() string {
	return sumBy(b.By, rangeFn("sum_over_time", b.Cost, window{b.Period, b.Calendar}, ""))
}

// ProjectedExpr is the spend over the period at the pace of the last
// PaceWindow; for a calendar month, the month-to-date spend at the
// month-to-date pace, once PaceWindow's share of a 30-day month has
// passed (before that, a few early calls would project wildly).
func (b *BudgetSpec) ProjectedExpr() string {
	if b.Calendar != nil {
		progress := dsl.FuncMonthProgress + "(" + strconv.Quote(b.Calendar.String()) + ")"
		return "(" + b.SpentExpr() + ") / " + progress + " and on () vector(" + progress + ") >= " + num(float64(b.PaceWindow)/float64(30*24*time.Hour))
	}
	return sumBy(b.By, "sum_over_time("+rangeOf(b.Cost, b.PaceWindow)+")") + " * " + num(float64(b.Period)/float64(b.PaceWindow))
}

func budgetGroup(b *BudgetSpec, al alerting, interval time.Duration) genGroup {
	g := genGroup{Name: "budget:" + b.Name}
	if interval > 0 {
		g.Interval = WindowString(interval)
	}
	per := inText(b.Period, b.Calendar)
	pace := "the last " + WindowString(b.PaceWindow)
	if b.Calendar != nil {
		pace = "the month so far"
	}
	lbl := map[string]string{"budget": b.Name}
	g.Rules = append(g.Rules,
		genRule{Record: SpentSeries, Expr: b.SpentExpr(), Labels: lbl},
		genRule{Record: SpentRatioSeries, Expr: fmt.Sprintf("%s{budget=%q} / %s", SpentSeries, b.Name, num(b.Limit)), Labels: lbl},
		genRule{Record: ProjectedSeries, Expr: b.ProjectedExpr(), Labels: lbl})
	name := al.name
	if name == "" {
		name = "BudgetConsumed"
	}
	for _, t := range b.Thresholds {
		sev := SeverityWarning
		if t >= 100 {
			sev = SeverityCritical
		}
		ann := merged(al.annotations, nil)
		if _, ok := ann["summary"]; !ok {
			ann["summary"] = fmt.Sprintf("budget %s%s: {{ $value | humanize }}%% of the limit %s spent in %s (alert at %s%%)", b.Name, byTemplate(b.By), num(b.Limit), per, num(t))
		}
		g.Rules = append(g.Rules, genRule{
			Alert: name, Expr: fmt.Sprintf("100 * %s{budget=%q} >= %s", SpentRatioSeries, b.Name, num(t)),
			Labels: merged(al.labels, map[string]string{"budget": b.Name, "threshold": num(t)}), Annotations: ann,
			Severity: string(sev), Notify: al.notify,
		})
	}
	ann := merged(al.annotations, nil)
	if _, ok := ann["summary"]; !ok {
		ann["summary"] = fmt.Sprintf("budget %s%s: at the pace of %s, %s would spend {{ $value | humanize }}%% of the limit %s", b.Name, byTemplate(b.By), pace, per, num(b.Limit))
	}
	paceAlert := name + "Pace"
	if al.name == "" {
		paceAlert = "BudgetPace"
	}
	g.Rules = append(g.Rules, genRule{
		Alert: paceAlert, Expr: fmt.Sprintf("100 * %s{budget=%q} / %s > 100", ProjectedSeries, b.Name, num(b.Limit)),
		For: WindowString(max(b.PaceWindow/24, time.Minute)), Labels: merged(al.labels, map[string]string{"budget": b.Name}),
		Annotations: ann, Severity: string(SeverityWarning), Notify: al.notify,
	})
	return g
}

// generated checks a generated group as a written one; a problem is
// reported at the SLO or budget it comes from.
func (p *fileParser) generated(at *yaml.Node, what string, gg genGroup) *GroupSpec {
	data, err := yaml.Marshal(gg)
	var doc yaml.Node
	if err == nil {
		err = yaml.Unmarshal(data, &doc)
	}
	if err != nil {
		p.add(p.errAt(at, "", "", "%s: generating its rules: %v", what, err))
		return nil
	}
	sub := &fileParser{file: p.file, lines: strings.Split(string(data), "\n"), opts: p.opts}
	g := sub.group(doc.Content[0])
	reposition := func(e error) error {
		var fe *FileError
		if errors.As(e, &fe) {
			e = fe.Err
			if fe.Rule != "" {
				e = fmt.Errorf("generated rule %q: %w", fe.Rule, fe.Err)
			}
		}
		return p.errAt(at, "", "", "%s: %v", what, e)
	}
	for _, e := range sub.errs {
		p.add(reposition(e))
	}
	if len(sub.errs) > 0 || g == nil {
		return nil
	}
	pos := Position{File: p.file, Line: at.Line, Col: at.Column}
	for _, r := range g.Rules {
		r.Pos = pos
		for i, w := range r.Warnings {
			r.Warnings[i] = reposition(w)
		}
	}
	return g
}
