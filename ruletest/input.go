package ruletest

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/rulefmt"
)

// Keys of an input_events item that are not numeric columns.
const (
	labelsKey = "labels"
	countKey  = "count"
	timeKey   = "time"
)

// notationHint explains the expanding notation in error messages.
const notationHint = "write values such as '800x9 6000x9' (aXn is a, then n more times: n+1 values, as in promtool), " +
	"'100+50x4' (100 150 200 250 300), and _ or _xN for steps without an event"

// inputReader turns a test's input_events and events into events, checking
// every label and column against the schema.
type inputReader struct {
	file     string
	schema   dsl.Schema
	labelIdx map[string]int
	columns  []string // numeric columns, sorted
	parser   parser.Parser
	errs     rulefmt.Errors
}

func newInputReader(file string, schema dsl.Schema) *inputReader {
	idx := map[string]int{}
	for i, l := range schema.Labels {
		idx[l] = i
	}
	return &inputReader{
		file: file, schema: schema, labelIdx: idx, columns: schema.NumericColumns(),
		parser: parser.NewParser(parser.Options{}),
	}
}

func (r *inputReader) errorf(n *yaml.Node, format string, args ...any) {
	r.errs = append(r.errs, &rulefmt.FileError{Pos: rulefmt.Position{File: r.file, Line: n.Line, Col: n.Column}, Err: fmt.Errorf(format, args...)})
}

// read returns the events of one test: input_events expanded step by step
// from start (step i at start + i·interval), and the explicit events.
func (r *inputReader) read(t *testSpec, start time.Time) ([]memory.Event, rulefmt.Errors) {
	var events []memory.Event
	for i := range t.InputEvents {
		events = append(events, r.inputEvents(fmt.Sprintf("input_events[%d]", i), &t.InputEvents[i], start, time.Duration(t.Interval))...)
	}
	for i := range t.Events {
		if ev, ok := r.event(fmt.Sprintf("events[%d]", i), &t.Events[i], start); ok {
			events = append(events, ev)
		}
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return events, nil
}

// series is one expanded value string; nil entries are steps without a value (_).
type series struct {
	name   string
	values []*float64
}

func (r *inputReader) inputEvents(what string, n *yaml.Node, start time.Time, interval time.Duration) []memory.Event {
	if n.Kind != yaml.MappingNode {
		r.errorf(n, "%s: an input is a mapping with labels:, a value string per column (latency_ms: '800x9'), and optionally count:", what)
		return nil
	}
	lbls := make([]string, len(r.schema.Labels))
	var fields []series
	var count *series
	ok := true
	for k, v := range r.pairs(what, n) {
		switch {
		case k.Value == labelsKey:
			if !r.labels(what, v, lbls) {
				ok = false
			}
		case k.Value == countKey:
			s, good := r.expand(what+"."+countKey, v)
			ok = ok && good
			s.name = countKey
			count = &s
		case slices.Contains(r.columns, k.Value):
			s, good := r.expand(what+"."+k.Value, v)
			ok = ok && good
			s.name = k.Value
			fields = append(fields, s)
		default:
			r.errorf(k, "%s: %s", what, r.unknownColumn(k.Value, true))
			ok = false
		}
	}
	if !ok {
		return nil
	}
	if len(fields) == 0 && count == nil {
		r.errorf(n, "%s: give at least one column (latency_ms: '800x9') or count: '1x9' to say how many steps have events", what)
		return nil
	}
	steps := -1
	lengths := map[string]int{}
	for _, f := range fields {
		lengths[f.name] = len(f.values)
		if steps < 0 {
			steps = len(f.values)
		}
	}
	if count != nil && (len(fields) == 0 || len(count.values) != 1) {
		lengths[countKey] = len(count.values)
		if steps < 0 {
			steps = len(count.values)
		}
	}
	if !allEqual(lengths) {
		r.errorf(n, "%s: the columns expand to different numbers of steps: %s; give every column one value (or _) per step "+
			"(aXn is a, then n more times: n+1 values, as in promtool); count may also be a single number for every step",
			what, describeLengths(lengths))
		return nil
	}
	var events []memory.Event
	for i := range steps {
		num := 1
		if count != nil {
			c := count.values[0]
			if len(count.values) > 1 {
				c = count.values[i]
			}
			if c == nil {
				continue
			}
			if *c < 0 || *c != math.Trunc(*c) || *c > 1e6 {
				r.errorf(n, "%s: count at step %d is %s; a count is a whole number of events between 0 and 1000000", what, i, formatFloat(*c))
				return nil
			}
			num = int(*c)
		}
		nums := map[string]float64{}
		skip := false
		for _, f := range fields {
			if f.values[i] == nil {
				skip = true
				break
			}
			nums[f.name] = *f.values[i]
		}
		if skip {
			continue
		}
		at := start.Add(time.Duration(i) * interval)
		for range num {
			events = append(events, memory.Event{Time: at, Labels: slices.Clone(lbls), Nums: nums})
		}
	}
	return events
}

// pairs yields the keys and values of a mapping, reporting repeated keys.
func (r *inputReader) pairs(what string, n *yaml.Node) iter.Seq2[*yaml.Node, *yaml.Node] {
	return mappingPairs(n, func(k *yaml.Node) { r.errorf(k, "%s: key %q appears twice", what, k.Value) })
}

// mappingPairs yields the keys and values of a mapping node; a key that
// appears again is passed to repeated instead, with its value left out.
func mappingPairs(n *yaml.Node, repeated func(k *yaml.Node)) iter.Seq2[*yaml.Node, *yaml.Node] {
	return func(yield func(k, v *yaml.Node) bool) {
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if seen[k.Value] {
				repeated(k)
				continue
			}
			seen[k.Value] = true
			if !yield(k, v) {
				return
			}
		}
	}
}

// labels reads a labels: mapping into lbls (schema order).
func (r *inputReader) labels(what string, n *yaml.Node, lbls []string) bool {
	if n.Kind != yaml.MappingNode {
		r.errorf(n, "%s.labels must be a mapping such as {tenant_id: acme, status: ok}", what)
		return false
	}
	ok := true
	for k, v := range r.pairs(what+".labels", n) {
		if !r.label(what+".labels", k, v, lbls) {
			ok = false
		}
	}
	return ok
}

func (r *inputReader) label(what string, k, v *yaml.Node, lbls []string) bool {
	i, isLabel := r.labelIdx[k.Value]
	switch {
	case !isLabel && slices.Contains(r.columns, k.Value):
		r.errorf(k, "%s: %q is a numeric column, not a label; give it next to labels:, e.g. %s: '100x9'", what, k.Value, k.Value)
		return false
	case !isLabel:
		r.errorf(k, "%s: %q is not a label of call events; labels are %s (map more in the config's schema.labels)",
			what, k.Value, strings.Join(r.schema.Labels, ", "))
		return false
	case v.Kind != yaml.ScalarNode:
		r.errorf(v, "%s.%s must be a string", what, k.Value)
		return false
	}
	lbls[i] = v.Value
	if isNullValue(v) {
		lbls[i] = ""
	}
	return true
}

// unknownColumn explains a key that is neither a label nor a numeric column.
func (r *inputReader) unknownColumn(key string, nested bool) string {
	if cols, ok := r.schema.Fields[key]; ok {
		return fmt.Sprintf("%q is a field that adds up the columns %s; give those columns instead", key, strings.Join(cols, ", "))
	}
	if _, ok := r.labelIdx[key]; ok && nested {
		return fmt.Sprintf("%q is a label; put it under labels:, e.g. labels: {%s: acme}", key, key)
	}
	if nested && (key == r.schema.Time || key == timeKey) {
		return "input_events are placed at start_timestamp + step·interval; use events: for events at explicit times"
	}
	return fmt.Sprintf("%q is not a numeric column; the columns are %s", key, strings.Join(r.columns, ", "))
}

// expand reads a value string in promtool's expanding notation.
func (r *inputReader) expand(what string, n *yaml.Node) (series, bool) {
	if n.Kind != yaml.ScalarNode {
		r.errorf(n, "%s must be a value string such as '800x9'", what)
		return series{}, false
	}
	const prefix = "{} "
	_, vals, err := r.parser.ParseSeriesDesc(prefix + n.Value)
	if err != nil {
		msg, off := err.Error(), 0
		var pe parser.ParseErrors
		if errors.As(err, &pe) && len(pe) > 0 {
			msg = pe[0].Err.Error()
			off = max(int(pe[0].PositionRange.Start)-len(prefix), 0)
		}
		at := *n
		at.Column = scalarColumn(n, off)
		r.errorf(&at, "%s: %s; %s", what, msg, notationHint)
		return series{}, false
	}
	if len(vals) == 0 {
		r.errorf(n, "%s is empty; %s", what, notationHint)
		return series{}, false
	}
	s := series{values: make([]*float64, len(vals))}
	for i, v := range vals {
		switch {
		case v.Omitted:
		case v.Histogram != nil:
			r.errorf(n, "%s: step %d is a histogram; events have plain numbers", what, i)
			return series{}, false
		case value.IsStaleNaN(v.Value):
			r.errorf(n, "%s: step %d is stale; stale markers mean nothing for events: write _ for a step without an event", what, i)
			return series{}, false
		default:
			f := v.Value
			s.values[i] = &f
		}
	}
	return s, true
}

// scalarColumn is the column of the character at byte offset off in a
// scalar's value (past the opening quote of a quoted scalar).
func scalarColumn(n *yaml.Node, off int) int {
	if off > len(n.Value) {
		off = len(n.Value)
	}
	col := n.Column + utf8.RuneCountInString(n.Value[:off])
	if n.Style == yaml.SingleQuotedStyle || n.Style == yaml.DoubleQuotedStyle {
		col++
	}
	return col
}

// event reads one explicit event: time, labels and numeric columns side by side.
func (r *inputReader) event(what string, n *yaml.Node, start time.Time) (memory.Event, bool) {
	if n.Kind != yaml.MappingNode {
		r.errorf(n, "%s: an event is a mapping such as {time: 90s, tenant_id: acme, status: error, latency_ms: 12000}", what)
		return memory.Event{}, false
	}
	ev := memory.Event{Labels: make([]string, len(r.schema.Labels)), Nums: map[string]float64{}}
	var timeNode *yaml.Node
	ok := true
	for k, v := range r.pairs(what, n) {
		_, isLabel := r.labelIdx[k.Value]
		isColumn := slices.Contains(r.columns, k.Value)
		switch {
		case (k.Value == timeKey || k.Value == r.schema.Time) && !isLabel && !isColumn:
			if timeNode != nil {
				r.errorf(k, "%s: give the time once", what)
				ok = false
			}
			timeNode = v
		case isLabel:
			ok = r.label(what, k, v, ev.Labels) && ok
		case isColumn:
			f, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || v.Kind != yaml.ScalarNode {
				r.errorf(v, "%s.%s: %q is not a number", what, k.Value, v.Value)
				ok = false
				continue
			}
			ev.Nums[k.Value] = f
		case k.Value == labelsKey:
			r.errorf(k, "%s: explicit events are flat: write the labels next to time, e.g. {time: 90s, tenant_id: acme, status: error}", what)
			ok = false
		default:
			r.errorf(k, "%s: %s", what, r.unknownColumn(k.Value, false)+" or a label ("+strings.Join(r.schema.Labels, ", ")+")")
			ok = false
		}
	}
	if timeNode == nil {
		r.errorf(n, "%s: time: is missing; write an offset from start_timestamp such as 90s, or an RFC 3339 time", what)
		return memory.Event{}, false
	}
	t, err := eventTime(timeNode.Value, start)
	if err != nil {
		r.errorf(timeNode, "%s.time: %v", what, err)
		return memory.Event{}, false
	}
	ev.Time = t
	return ev, ok
}

// eventTime reads an explicit event's time: a duration offset from start,
// or an RFC 3339 time. Unix seconds are not accepted: 90 could be either.
func eventTime(s string, start time.Time) (time.Time, error) {
	if d, err := model.ParseDuration(s); err == nil {
		return start.Add(time.Duration(d)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an offset from start_timestamp (90s, 1m30s) nor an RFC 3339 time", s)
}

func isNullValue(n *yaml.Node) bool { return n.Tag == "!!null" }

func allEqual(m map[string]int) bool {
	first := -1
	for _, n := range m {
		if first >= 0 && n != first {
			return false
		}
		first = n
	}
	return true
}

func describeLengths(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
