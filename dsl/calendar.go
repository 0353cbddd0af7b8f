package dsl

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	// The zone database in the binary: a time zone named in a rule must
	// load on a machine without /usr/share/zoneinfo too.
	_ "time/tzdata"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"

	"github.com/prometheus/common/model"
)

// Calendar windows. A rolling window is (t − w, t]; a calendar month is
// (M, t], where M is the start of the calendar month, in a time zone, that
// holds the instant just before t. Both are open on the left, as every
// window of the language: at the first instant of a month (t = M′) the
// window is the whole month that just ended, (M, M′], and an event at
// exactly midnight belongs to the month it closes.
//
//	month_to_date(sum_over_time(cost[31d]), "Asia/Shanghai")
//	month_progress("Asia/Shanghai")
//
// month_to_date restricts the range function inside it to the month so
// far; its window must be at least 31d, the longest month, so that the
// written window bounds the look-back (limits, buckets). month_progress is
// the share of the month elapsed, in (0, 1], so that a month-to-date sum
// over it projects the whole month at the month-to-date pace.
const (
	FuncMonthToDate   = "month_to_date"
	FuncMonthProgress = "month_progress"
	// ClockPrefix starts the synthetic metric name that stands for a clock
	// (month_progress) in Expr.Query.
	ClockPrefix = "__clock_"
	// LongestMonth is the shortest window month_to_date accepts: 31 days.
	// A month with a change back from summer time is longer by the change
	// (31d1h, 31d2h in Antarctica/Troll): MonthSlack bounds that, and the
	// look-back of a calendar leaf (Leaf.Lookback) counts it.
	LongestMonth = 31 * 24 * time.Hour
	MonthSlack   = 2 * time.Hour
)

// MonthStart returns the start, in loc, of the calendar month that holds
// the instant just before t: the M of the window (M, t].
func MonthStart(t time.Time, loc *time.Location) time.Time {
	l := t.Add(-time.Nanosecond).In(loc)
	return firstInstant(l.Year(), l.Month(), loc)
}

// MonthBounds returns the calendar month (M, M′] in loc that holds t.
func MonthBounds(t time.Time, loc *time.Location) (start, end time.Time) {
	start = MonthStart(t, loc)
	l := start.In(loc)
	return start, firstInstant(l.Year(), l.Month()+1, loc)
}

// firstInstant returns the first instant of month m of year y in loc: its
// midnight on the 1st, or, where the clocks jump over that midnight
// (America/Asuncion on 1 October 2023), the instant they jump to. For such
// a gap time.Date may give the hour before it, on the last day of the
// month before; the zone's change then is the month's start.
func firstInstant(y int, m time.Month, loc *time.Location) time.Time {
	t := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	if t.Day() != 1 {
		_, t = t.ZoneBounds()
	}
	return t
}

// MonthProgress returns the share of its calendar month in loc that has
// elapsed at t, in (0, 1].
func MonthProgress(t time.Time, loc *time.Location) float64 {
	start, end := MonthBounds(t, loc)
	return float64(t.Sub(start)) / float64(end.Sub(start))
}

// Clock is a value of the evaluation time alone (month_progress), served
// to PromQL as a one-sample series named Name by every backend alike.
type Clock struct {
	Name string
	Loc  *time.Location
}

// Value returns the clock's value at ts.
func (c *Clock) Value(ts time.Time) float64 { return MonthProgress(ts, c.Loc) }

// LoadZone loads a time zone named in a rule or a rule file ("UTC",
// "Asia/Shanghai"); its error says what to write.
func LoadZone(name string) (*time.Location, error) {
	if strings.TrimSpace(name) == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q is not a zone: the machine's own zone differs between machines; name an IANA zone such as UTC, Europe/Berlin or Asia/Shanghai", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		if c := zoneCase(name); c != name {
			if _, err := time.LoadLocation(c); err == nil {
				return nil, fmt.Errorf("time zone %q is not a zone of the IANA database; did you mean %q? (zone names are case-sensitive)", name, c)
			}
		}
		return nil, fmt.Errorf("time zone %q is not a zone of the IANA database; write e.g. UTC, Europe/Berlin or Asia/Shanghai", name)
	}
	return loc, nil
}

// zoneCase writes a zone name in the case the IANA database uses for
// most names: UTC and other short names in capitals, else each word
// capitalized (asia/shanghai → Asia/Shanghai, america/new_york →
// America/New_York).
func zoneCase(name string) string {
	if len(name) <= 4 && !strings.Contains(name, "/") {
		return strings.ToUpper(name)
	}
	b := []byte(strings.ToLower(name))
	for i := range b {
		if (i == 0 || strings.IndexByte("/_-", b[i-1]) >= 0) && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// calendarFunctions are the parser's entries of the calendar functions.
func calendarFunctions() []*parser.Function {
	return []*parser.Function{
		{Name: FuncMonthToDate, ArgTypes: []parser.ValueType{parser.ValueTypeVector, parser.ValueTypeString}, Variadic: 1, ReturnType: parser.ValueTypeVector},
		{Name: FuncMonthProgress, ArgTypes: []parser.ValueType{parser.ValueTypeString}, Variadic: 1, ReturnType: parser.ValueTypeScalar},
	}
}

// zoneArg reads the optional time zone argument of a calendar function.
func (c *checker) zoneArg(call *parser.Call, i int) (*time.Location, error) {
	if len(call.Args) <= i {
		return time.UTC, nil
	}
	s, ok := unparen(call.Args[i]).(*parser.StringLiteral)
	if !ok {
		return nil, c.errf(call.Args[i].PositionRange().Start, fmt.Sprintf(`write the zone as a string, e.g. %s(…, "Asia/Shanghai")`, call.Func.Name),
			"the time zone of %s must be a string literal", call.Func.Name)
	}
	loc, err := LoadZone(s.Val)
	if err != nil {
		msg, hint, _ := strings.Cut(err.Error(), "; ")
		return nil, c.errf(s.PosRange.Start, hint, "%s", msg)
	}
	return loc, nil
}

// Lookback is how far before its evaluation time the leaf reads: its
// window and offset, and for a calendar month the hours a month with a
// change back from summer time lasts beyond 31 days.
func (l *Leaf) Lookback() time.Duration {
	if l.Calendar != nil {
		return l.Range + l.Offset + MonthSlack
	}
	return l.Range + l.Offset
}

// WrapCalendar writes text (a range function call) as the leaf reads it:
// inside month_to_date when the leaf's window is a calendar month.
func (l *Leaf) WrapCalendar(text string) string {
	if l.Calendar == nil {
		return text
	}
	return FuncMonthToDate + "(" + text + ", " + strconv.Quote(l.Calendar.String()) + ")"
}

// monthToDate checks month_to_date(f(sel[w]), "zone") and returns the leaf
// selector of f restricted to the calendar month.
func (c *checker) monthToDate(call *parser.Call, g *grouping) (parser.Expr, error) {
	example := `write e.g. month_to_date(sum_over_time(cost[31d]), "Asia/Shanghai")`
	inner, ok := unparen(call.Args[0]).(*parser.Call)
	var rf rangeFunc
	if ok {
		rf, ok = rangeFuncs[inner.Func.Name]
	}
	switch {
	case !ok:
		return nil, c.errf(call.Args[0].PositionRange().Start, example, "%s takes one range function, such as sum_over_time(cost[31d])", FuncMonthToDate)
	case c.sub != nil:
		return nil, c.errf(call.PosRange.Start, "compute the month so far in a recording rule and read its output", "%s inside a subquery is not supported", FuncMonthToDate)
	case c.calendar != nil:
		return nil, c.errf(call.PosRange.Start, example, "%s cannot be nested", FuncMonthToDate)
	case rf.agg == AggRate:
		return nil, c.errf(inner.PosRange.Start, "a calendar month has no fixed width: write increase or count_over_time, and divide by the seconds you mean",
			"rate over a calendar month is not supported")
	}
	for _, a := range inner.Args {
		if sq, isSub := unparen(a).(*parser.SubqueryExpr); isSub {
			return nil, c.errf(sq.PositionRange().Start, example, "%s over a subquery is not supported", FuncMonthToDate)
		}
	}
	loc, err := c.zoneArg(call, 1)
	if err != nil {
		return nil, err
	}
	c.calendar = loc
	out, err := c.leaf(inner, rf, g)
	c.calendar = nil
	return out, err
}

// monthProgress checks month_progress("zone") and returns the clock's
// series as a scalar.
func (c *checker) monthProgress(call *parser.Call) (parser.Expr, error) {
	if c.sub != nil {
		return nil, c.errf(call.PosRange.Start, "compute it in a recording rule and read its output", "%s inside a subquery is not supported", FuncMonthProgress)
	}
	loc, err := c.zoneArg(call, 0)
	if err != nil {
		return nil, err
	}
	var clock *Clock
	for _, k := range c.clocks {
		if k.Loc.String() == loc.String() {
			clock = k
		}
	}
	if clock == nil {
		clock = &Clock{Name: ClockPrefix + strconv.Itoa(len(c.clocks)), Loc: loc}
		c.clocks = append(c.clocks, clock)
	}
	sel := &parser.VectorSelector{
		Name:          clock.Name,
		LabelMatchers: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, clock.Name)},
		PosRange:      call.PosRange,
	}
	return &parser.Call{Func: parser.Functions["scalar"], Args: parser.Expressions{sel}, PosRange: call.PosRange}, nil
}

// calendarWindow checks the window of a leaf inside month_to_date.
func (c *checker) calendarWindow(pos posrange.Pos, leaf *Leaf) error {
	if leaf.Range < LongestMonth {
		return c.errf(pos, `the window bounds the month: write [31d], e.g. month_to_date(sum_over_time(cost[31d]), "Asia/Shanghai")`,
			"%s needs a window of at least 31d (the longest month), not %s", FuncMonthToDate, model.Duration(leaf.Range))
	}
	leaf.Calendar = c.calendar
	return nil
}
