package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/notify"
	"github.com/callwatch/callwatch/rulefmt"
)

// The status page's charts: each rule's expression over the last hours,
// computed with the query API's range query and drawn as SVG on the server.
// They are bounded like any query anyone may send: a fixed choice of
// ranges, at most chartPoints steps and chartSeries series, one query slot
// per chart, chartBudget for all the charts of one page view, and a cache
// that recomputes a chart at most once per step, so the page's reload every
// 10 seconds does not query again.
const (
	chartPoints = 120
	chartSeries = 8
	// chartBudget bounds the time one page view spends computing charts;
	// those left out are computed by the next view.
	chartBudget = 4 * time.Second
	// chartInlineDepth bounds the recording rules inlined into a chart.
	chartInlineDepth = 3
	chartWidth       = 640.0
	chartHeight      = 150.0
	chartLeft        = 56.0 // room for the value axis labels
	chartBottom      = 18.0 // room for the time axis labels
)

// builtinFile is the file of engine's built-in groups (DatasourceDownGroup).
const builtinFile = "<builtin>"

// chartRangeList are the ranges the page offers (?chart=), the first the
// default; any other value falls back to it. chartColorList are the
// series' colours, in legend order. (Constants: the package holds no
// mutable state.)
const (
	chartRangeList = "3h 1h 6h 12h 24h"
	chartColorList = "#175cd3 #7a5af8 #0e9384 #dd2590 #6172f3 #ca8504 #4e5ba6 #099250"
)

func chartRanges() []string { return strings.Fields(chartRangeList) }

// chartView is what the template shows for one rule's chart.
type chartView struct {
	Range string
	// Expr is the expression charted, when it is not the rule's own (the
	// value compared with the thresholds, recording rules inlined).
	Expr string
	// Note says why there is no chart, or what it leaves out.
	Note       string
	Width      float64
	Height     float64
	PlotLeft   float64
	PlotBottom float64
	Lines      []chartLine
	Thresholds []chartThreshold
	Spans      []chartSpan
	YTicks     []chartTick
	XTicks     []chartTick
	Legend     []chartLegend
	MoreSeries int
	NonFinite  int
	Drawn      bool
	Pending    int // spans, for the caption
	Firing     int
	StartText  string
	EndText    string
	Step       string
}

type chartLine struct {
	Color string
	Path  string // an SVG path of numbers and M/L only
	Dots  []chartDot
}

type chartDot struct{ X, Y float64 }

type chartThreshold struct {
	Y          float64
	Label      string
	Class      string // severity, or "recover"
	LabelY     float64
	OutOfRange bool
}

type chartSpan struct {
	X, W  float64
	State string // pending or firing
	Title string
}

type chartTick struct {
	Pos    float64
	Text   string
	Anchor string // SVG text-anchor: the last time label ends at the edge
}

type chartLegend struct {
	Color, Labels string
}

// chartSpec is what a rule's chart draws: an expression and the
// thresholds it is compared with.
type chartSpec struct {
	expr       *dsl.Expr
	rewritten  bool
	thresholds []chartThresholdSpec
}

type chartThresholdSpec struct {
	Op, Severity string
	Value        float64
	Recover      bool
}

// chartCache keeps the charts of the last page views by rule and range,
// each valid until the end of its step.
type chartCache struct {
	mu      sync.Mutex
	entries map[string]chartEntry
}

type chartEntry struct {
	end  time.Time
	view chartView
}

// get returns the chart of key, whether it is the chart ending at end,
// and whether there is one at all.
func (c *chartCache) get(key string, end time.Time) (v chartView, fresh, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.entries[key]
	return e.view, found && e.end.Equal(end), found
}

func (c *chartCache) put(key string, end time.Time, v chartView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]chartEntry{}
	}
	c.entries[key] = chartEntry{end: end, view: v}
}

// keep drops the entries of range rng whose key is not in live: rules
// that are gone or changed. Other ranges' entries stay for their viewers.
func (c *chartCache) keep(rng string, live map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if strings.HasPrefix(k, rng+"\x00") && !live[k] {
			delete(c.entries, k)
		}
	}
}

// chartRange returns the range the request asks for, one of chartRanges.
func chartRange(r *http.Request) (string, time.Duration) {
	ranges := chartRanges()
	want := r.URL.Query().Get("chart")
	for _, s := range ranges {
		if s == want {
			d, _ := time.ParseDuration(s)
			return s, d
		}
	}
	d, _ := time.ParseDuration(ranges[0])
	return ranges[0], d
}

// chartWindow returns the start, end and step of a chart of rng ending at
// now: end aligned to the step, so views within one step share a chart.
func chartWindow(now time.Time, rng time.Duration) (start, end time.Time, step time.Duration) {
	step = (rng / chartPoints).Truncate(time.Second)
	if step < time.Second {
		step = time.Second
	}
	ms := step.Milliseconds()
	end = time.UnixMilli(now.UnixMilli() - now.UnixMilli()%ms).UTC()
	return end.Add(-rng), end, step
}

// specOf returns what to chart for a rule: for an alerting rule, the value
// its thresholds are compared with, and those thresholds. Recording rules
// read by name are replaced by their expressions, because rules keep only
// their last output and the chart needs the past.
func (p *page) specOf(spec *rulefmt.RuleSpec, records map[string]*rulefmt.RuleSpec) (chartSpec, error) {
	text := spec.ExprText
	var ths []chartThresholdSpec
	switch {
	case spec.Quality != nil && spec.Quality.Value != nil:
		text = spec.Quality.Value.Input
		for _, t := range spec.Quality.Thresholds {
			ths = append(ths, chartThresholdSpec{Op: t.Op, Severity: string(t.Severity), Value: t.Value})
		}
		if rv := spec.Quality.Recover; rv != nil {
			ths = append(ths, chartThresholdSpec{Op: "recover", Severity: "recover", Value: *rv, Recover: true})
		}
	case spec.Alert != "":
		if c, ok := dsl.SplitComparison(conditionOf(p.parser, spec.ExprText)); ok {
			text = c.Value
			ths = append(ths, chartThresholdSpec{Op: c.Op, Severity: string(spec.Severity), Value: c.Threshold})
		}
	}
	opts := dsl.Options{Schema: p.opts.Schema, Limits: p.opts.Limits, Series: engine.Outputs{Groups: p.opts.Rules.Groups}.Has}
	inlined := inlineRecords(p.parser, text, records, chartInlineDepth)
	e, err := dsl.Parse(inlined, opts)
	if err != nil && inlined != text {
		// Inlined past a limit (size, nesting): chart the outputs by name.
		inlined = text
		e, err = dsl.Parse(text, opts)
	}
	if err != nil {
		return chartSpec{}, err
	}
	return chartSpec{expr: e, rewritten: inlined != spec.ExprText, thresholds: ths}, nil
}

// conditionOf returns the first operand of an expression joined by and
// or unless — `ratio > 0.05 and count >= 20` is charted as the ratio —
// and the expression itself otherwise.
func conditionOf(ps parser.Parser, text string) string {
	ast, err := ps.ParseExpr(text)
	if err != nil {
		return text
	}
	for {
		switch e := ast.(type) {
		case *parser.ParenExpr:
			ast = e.Expr
			continue
		case *parser.BinaryExpr:
			if e.Op == parser.LAND || e.Op == parser.LUNLESS {
				ast = e.LHS
				continue
			}
		}
		return ast.String()
	}
}

// inlineRecords replaces, up to depth times, each selector of a recording
// rule's output that has no matcher but its name by the rule's expression
// in parentheses. Selectors with matchers, and anything that does not
// parse, are left as they are (they chart the outputs the rules keep).
func inlineRecords(ps parser.Parser, text string, records map[string]*rulefmt.RuleSpec, depth int) string {
	for range depth {
		ast, err := ps.ParseExpr(text)
		if err != nil {
			return text
		}
		type cut struct {
			from, to int
			with     string
		}
		var cuts []cut
		parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok || vs.OriginalOffset != 0 || vs.Timestamp != nil || vs.StartOrEnd != 0 {
				return nil
			}
			r, found := records[vs.Name]
			if !found || len(vs.LabelMatchers) != 1 || len(r.Labels) > 0 {
				return nil
			}
			cuts = append(cuts, cut{int(vs.PosRange.Start), int(vs.PosRange.End), "(" + r.ExprText + ")"})
			return nil
		})
		if len(cuts) == 0 {
			return text
		}
		sort.Slice(cuts, func(i, j int) bool { return cuts[i].from > cuts[j].from })
		for _, c := range cuts {
			if c.from < 0 || c.to > len(text) || c.from > c.to {
				return text
			}
			text = text[:c.from] + c.with + text[c.to:]
		}
	}
	return text
}

// chart computes and draws one rule's chart.
func (p *page) chart(ctx context.Context, cs chartSpec, spans []engine.AuditRecord, alerts []engine.Alert, rng string, start, end time.Time, step time.Duration) chartView {
	v := chartView{Range: rng, Width: chartWidth, Height: chartHeight, PlotLeft: chartLeft, PlotBottom: chartHeight - chartBottom,
		StartText: start.UTC().Format("2006-01-02 15:04"), EndText: end.UTC().Format("15:04 UTC"), Step: roughDuration(step)}
	if cs.rewritten {
		v.Expr = cs.expr.Input
	}
	release, err := p.slots.take(ctx)
	if err != nil {
		v.Note = "not computed: every query slot (limits.max_concurrent_queries) stayed busy; the next reload shows it"
		return v
	}
	res, err := p.opts.QueryRange(ctx, cs.expr, start, end, step)
	release()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			v.Note = "not computed within the page's time for charts; the next reload shows it"
		} else {
			v.Note = "the expression failed over this range: " + err.Error()
		}
		return v
	}
	draw(&v, res, cs.thresholds, ruleSpans(spans, alerts, start, end), start, end)
	return v
}

// interval is a span of time an alert of the rule was in a state.
type interval struct {
	from, to time.Time
	state    string
}

// ruleSpans returns the spans a rule's alerts were pending and firing
// within [start, end]: from the audit trail's firing and resolved records
// (which carry when the alert became active, fired and resolved) and from
// the alerts the rule holds now. The spans of several alerts are merged.
func ruleSpans(recs []engine.AuditRecord, alerts []engine.Alert, start, end time.Time) []interval {
	var all []interval
	add := func(from, to time.Time, state string) {
		if from.IsZero() || to.IsZero() || !to.After(from) {
			return
		}
		all = append(all, interval{from, to, state})
	}
	// A firing record's end is the resolve of the same alert, or now when
	// it still fires.
	// A resolved record's time is the resolve (its ResolvedAt may be unset).
	resolvedAt := map[string]time.Time{}
	for i, r := range recs {
		if r.Kind == engine.AuditResolved {
			if r.ResolvedAt.IsZero() {
				recs[i].ResolvedAt = r.Time
			}
			resolvedAt[r.Fingerprint+"@"+r.FiredAt.String()] = recs[i].ResolvedAt
		}
	}
	firingNow := map[string]bool{}
	for _, a := range alerts {
		firingNow[engine.FingerprintString(a.Fingerprint())+"@"+a.FiredAt.String()] = a.State == engine.StateFiring
	}
	for _, r := range recs { // recs is the caller's copy
		if !r.FiredAt.IsZero() {
			add(r.ActiveAt, r.FiredAt, "pending")
		}
		switch r.Kind {
		case engine.AuditResolved:
			add(r.FiredAt, r.ResolvedAt, "firing")
		case engine.AuditFiring:
			key := r.Fingerprint + "@" + r.FiredAt.String()
			if to, ok := resolvedAt[key]; ok {
				add(r.FiredAt, to, "firing")
			} else if firingNow[key] {
				add(r.FiredAt, end, "firing")
			}
		}
	}
	for _, a := range alerts {
		switch {
		case a.State == engine.StatePending:
			add(a.ActiveAt, end, "pending")
		case a.State == engine.StateFiring:
			add(a.ActiveAt, a.FiredAt, "pending")
			add(a.FiredAt, end, "firing")
		case !a.ResolvedAt.IsZero() && !a.FiredAt.IsZero():
			add(a.ActiveAt, a.FiredAt, "pending")
			add(a.FiredAt, a.ResolvedAt, "firing")
		}
	}
	var out []interval
	for _, state := range []string{"pending", "firing"} {
		var s []interval
		for _, iv := range all {
			if iv.state != state || !iv.to.After(start) || iv.from.After(end) {
				continue
			}
			if iv.from.Before(start) {
				iv.from = start
			}
			if iv.to.After(end) {
				iv.to = end
			}
			s = append(s, iv)
		}
		sort.Slice(s, func(i, j int) bool { return s[i].from.Before(s[j].from) })
		for _, iv := range s {
			if n := len(out); n > 0 && out[n-1].state == state && !iv.from.After(out[n-1].to) {
				if iv.to.After(out[n-1].to) {
					out[n-1].to = iv.to
				}
				continue
			}
			out = append(out, iv)
		}
	}
	return out
}

// draw lays out the chart: NaN and ±Inf are not drawn (counted in the
// caption), a missing step breaks a line, and the value axis spans the
// finite values and the thresholds.
func draw(v *chartView, res engine.RangeResult, ths []chartThresholdSpec, spans []interval, start, end time.Time) {
	plotW, plotH := chartWidth-chartLeft-4, chartHeight-chartBottom-6
	x := func(t time.Time) float64 {
		return chartLeft + plotW*float64(t.Sub(start))/float64(end.Sub(start)+1)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	series := res.Matrix
	if len(series) > chartSeries {
		// The series that reach the highest values are the ones to see.
		peak := func(s engine.RangeSeries) float64 {
			m := math.Inf(-1)
			for _, pt := range s.Points {
				if !math.IsNaN(pt.V) && !math.IsInf(pt.V, 0) && pt.V > m {
					m = pt.V
				}
			}
			return m
		}
		series = append([]engine.RangeSeries(nil), series...)
		sort.SliceStable(series, func(i, j int) bool { return peak(series[i]) > peak(series[j]) })
		v.MoreSeries = len(series) - chartSeries
		series = series[:chartSeries]
	}
	for _, s := range series {
		for _, pt := range s.Points {
			if math.IsNaN(pt.V) || math.IsInf(pt.V, 0) {
				v.NonFinite++
				continue
			}
			lo, hi = math.Min(lo, pt.V), math.Max(hi, pt.V)
		}
	}
	for _, t := range ths {
		if !math.IsNaN(t.Value) && !math.IsInf(t.Value, 0) {
			lo, hi = math.Min(lo, t.Value), math.Max(hi, t.Value)
		}
	}
	if lo > hi { // nothing finite to draw
		lo, hi = 0, 1
	}
	if lo > 0 && lo < hi/2 {
		lo = 0 // counts and latencies read best from zero
	}
	// Halves keep every difference finite, up to ±MaxFloat64.
	if hi/2-lo/2 <= 1e-9*math.Max(1, math.Abs(hi)/2) {
		pad := math.Max(1, math.Abs(hi)/10)
		lo, hi = math.Max(lo-pad, -math.MaxFloat64), math.Min(hi+pad, math.MaxFloat64)
	}
	y := func(f float64) float64 {
		frac := (f/2 - lo/2) / (hi/2 - lo/2)
		if math.IsNaN(frac) {
			frac = 0
		}
		return 6 + plotH*(1-math.Max(0, math.Min(1, frac)))
	}
	colors := strings.Fields(chartColorList)
	for i, s := range series {
		l := chartLine{Color: colors[i%len(colors)]}
		var b strings.Builder
		var prev int64
		stepMs := int64((end.Sub(start) / chartPoints) / time.Millisecond)
		for _, pt := range s.Points {
			if math.IsNaN(pt.V) || math.IsInf(pt.V, 0) {
				prev = 0
				continue
			}
			px, py := x(time.UnixMilli(pt.T)), y(pt.V)
			if prev != 0 && pt.T-prev > stepMs+1 {
				b.WriteString(" M") // a gap: the group had no value at the steps between
			} else if b.Len() > 0 {
				b.WriteString(" L")
			} else {
				b.WriteString("M")
			}
			b.WriteString(num(px) + "," + num(py))
			l.Dots = append(l.Dots, chartDot{px, py})
			prev = pt.T
		}
		l.Path = b.String()
		if len(l.Dots) > 1 {
			l.Dots = nil // a line shows them; a lone point needs its dot
		}
		v.Lines = append(v.Lines, l)
		v.Legend = append(v.Legend, chartLegend{Color: l.Color, Labels: legendText(s)})
	}
	v.Drawn = true
	for _, t := range ths {
		label := t.Op + " " + notify.FormatValue(t.Value)
		if t.Severity != "" && !t.Recover {
			label += " (" + t.Severity + ")"
		}
		if t.Recover {
			label = "recovers at " + notify.FormatValue(t.Value)
		}
		class := "threshold " + t.Severity
		if t.Recover {
			class = "threshold recover"
		}
		ty, labelY := y(t.Value), y(t.Value)-3
		if labelY < 10 {
			labelY = ty + 11 // below a line at the top, inside the chart
		}
		v.Thresholds = append(v.Thresholds, chartThreshold{Y: ty, Label: label, Class: class, LabelY: labelY})
	}
	for _, sp := range spans {
		x0, x1 := x(sp.from), x(sp.to)
		if x1-x0 < 1.5 {
			x1 = x0 + 1.5 // a span shorter than a pixel still shows
		}
		v.Spans = append(v.Spans, chartSpan{X: x0, W: x1 - x0, State: sp.state,
			Title: sp.state + " " + sp.from.UTC().Format("15:04:05") + "–" + sp.to.UTC().Format("15:04:05 UTC")})
		if sp.state == "pending" {
			v.Pending++
		} else {
			v.Firing++
		}
	}
	for _, f := range []float64{lo, lo/2 + hi/2, hi} {
		v.YTicks = append(v.YTicks, chartTick{Pos: y(f) + 4, Text: notify.FormatValue(f)})
	}
	for i := range 4 {
		t := start.Add(end.Sub(start) * time.Duration(i) / 3)
		anchor := "middle"
		if i == 3 {
			anchor = "end"
		}
		v.XTicks = append(v.XTicks, chartTick{Pos: x(t), Text: t.UTC().Format("15:04"), Anchor: anchor})
	}
	if len(series) == 0 {
		v.Note = "no value over this range"
	}
}

// legendText writes a series' labels as PromQL does, at most 200 bytes.
func legendText(s engine.RangeSeries) string {
	t := s.Labels.String()
	if len(t) > 200 {
		t = strings.ToValidUTF8(t[:200], "") + "…"
	}
	return t
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// collectCharts fills in the charts of the rules of d: from the cache when
// it holds this step's, else computed within chartBudget, the charts never
// computed first and then the oldest; a chart the budget leaves out shows
// its last computed state, or says it comes with the next reload.
func (p *page) collectCharts(ctx context.Context, d *pageData, r *http.Request, now time.Time) {
	if p.opts.QueryRange == nil {
		return
	}
	rng, dur := chartRange(r)
	d.ChartRange, d.ChartRanges = rng, chartRanges()
	start, end, step := chartWindow(now, dur)
	// The rules are looked up by group and name: a reload since
	// collectRules read them may have changed the list.
	records := map[string]*rulefmt.RuleSpec{}
	rules := map[string]engine.Rule{}
	for _, g := range p.opts.Rules.Groups() {
		if g.File() == builtinFile {
			continue // built-in rules have no expression to chart
		}
		for _, rule := range g.Rules() {
			if rr, ok := rule.(*engine.RecordingRule); ok {
				records[rr.Name()] = rr.Spec()
			}
			rules[g.Name()+"\x00"+rule.Name()] = rule
		}
	}
	type todo struct {
		rv    *ruleView
		rule  engine.Rule
		group string
		key   string
		stale *chartView
	}
	var missing, stale []todo
	live := map[string]bool{}
	for gi := range d.Groups {
		for ri := range d.Groups[gi].Rules {
			rv := &d.Groups[gi].Rules[ri]
			rule, ok := rules[d.Groups[gi].Name+"\x00"+rv.Name]
			if !ok {
				continue
			}
			key := rng + "\x00" + d.Groups[gi].Name + "\x00" + rv.Name + "\x00" + rule.Spec().ExprText
			live[key] = true
			v, fresh, found := p.charts.get(key, end)
			switch {
			case fresh:
				rv.Chart = &v
			case found:
				stale = append(stale, todo{rv, rule, d.Groups[gi].Name, key, &v})
			default:
				missing = append(missing, todo{rv, rule, d.Groups[gi].Name, key, nil})
			}
		}
	}
	p.charts.keep(rng, live)
	ctx, cancel := context.WithTimeout(ctx, chartBudget)
	defer cancel()
	var recs []engine.AuditRecord
	recsRead := false
	for _, t := range append(missing, stale...) {
		if ctx.Err() != nil {
			if t.stale != nil {
				t.rv.Chart = t.stale
			} else {
				t.rv.Chart = &chartView{Range: rng, Note: "not computed yet (the page spends at most " + chartBudget.String() + " on charts per view): the next reload shows it"}
			}
			continue
		}
		spec := t.rule.Spec()
		cs, err := p.specOf(spec, records)
		if err != nil {
			t.rv.Chart = &chartView{Range: rng, Note: "not charted: " + err.Error()}
			continue
		}
		var alerts []engine.Alert
		if ar, ok := t.rule.(*engine.AlertingRule); ok {
			alerts = ar.Alerts()
			if !recsRead && p.opts.History != nil {
				recsRead = true
				recs = p.spanRecords(ctx, start, end)
			}
		}
		var mine []engine.AuditRecord
		for _, rec := range recs {
			if rec.Group == t.group && rec.Rule == spec.Name() {
				mine = append(mine, rec)
			}
		}
		v := p.chart(ctx, cs, mine, alerts, rng, start, end, step)
		switch {
		case v.Drawn:
			p.charts.put(t.key, end, v)
		case t.stale != nil && (ctx.Err() != nil || strings.HasPrefix(v.Note, "not computed")):
			v = *t.stale // out of time or slots: the last chart beats a note
		}
		t.rv.Chart = &v
	}
}

// spanRecords reads the firing and resolved records of [start−1d, end]
// (an alert that fired before the chart's start may still fire within
// it), taking a query slot as the history read does.
func (p *page) spanRecords(ctx context.Context, start, end time.Time) []engine.AuditRecord {
	release, err := p.slots.take(ctx)
	if err != nil {
		return nil
	}
	defer release()
	recs, err := p.opts.History.History(ctx, engine.AuditQuery{From: start.Add(-24 * time.Hour), To: end,
		Kinds: []engine.AuditKind{engine.AuditFiring, engine.AuditResolved}, Limit: 5000})
	if err != nil {
		p.opts.Logger.Warn("reading alert spans for the status page's charts failed", "err", err)
		return nil
	}
	return recs
}

// chartTitle is the accessible description of a chart.
func chartTitle(v *chartView) string {
	return fmt.Sprintf("values from %s to %s, every %s: %d series, %d pending and %d firing spans",
		v.StartText, v.EndText, v.Step, len(v.Lines)+v.MoreSeries, v.Pending, v.Firing)
}
