package dsl

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/promql/parser"
)

// Agg is the aggregate a leaf computes over the pooled events of a group.
type Agg int

// The aggregates. Rate and Increase are Sum (or Count for events) divided by
// the window or not; Absent and Present derive from Count.
const (
	AggCount Agg = iota
	AggSum
	AggAvg
	AggMin
	AggMax
	AggQuantile
	AggStddev
	AggRate
	AggIncrease
	AggAbsent
	AggPresent
	// AggCountLE and AggCountGT count the events whose value is at or
	// below, or above, the leaf's Threshold.
	AggCountLE
	AggCountGT
)

var aggNames = [...]string{"count", "sum", "avg", "min", "max", "quantile", "stddev", "rate", "increase", "absent", "present", "count_le", "count_gt"}

func (a Agg) String() string { return aggNames[a] }

// rangeFunc declares one range function of the language. The table below is
// the single list of range functions: the parser's function table, the
// checker and the documentation test are all derived from it.
type rangeFunc struct {
	agg Agg
	// quantile is the fixed φ of the pNN shorthands; param says φ is the
	// first argument instead (quantile_over_time).
	quantile float64
	param    bool
	// threshold says the second argument is a threshold (a number
	// literal), as in MetricsQL's count_le_over_time(m[d], le).
	threshold bool
	// events says the function accepts the value-less events selector.
	events bool
}

// rangeFuncs lists the range functions callwatch supports, by name.
var rangeFuncs = map[string]rangeFunc{
	"count_over_time":    {agg: AggCount, events: true},
	"sum_over_time":      {agg: AggSum},
	"avg_over_time":      {agg: AggAvg},
	"min_over_time":      {agg: AggMin},
	"max_over_time":      {agg: AggMax},
	"stddev_over_time":   {agg: AggStddev},
	"quantile_over_time": {agg: AggQuantile, param: true},
	"p50":                {agg: AggQuantile, quantile: 0.5},
	"p75":                {agg: AggQuantile, quantile: 0.75},
	"p90":                {agg: AggQuantile, quantile: 0.9},
	"p95":                {agg: AggQuantile, quantile: 0.95},
	"p99":                {agg: AggQuantile, quantile: 0.99},
	"p999":               {agg: AggQuantile, quantile: 0.999},
	"rate":               {agg: AggRate, events: true},
	"increase":           {agg: AggIncrease, events: true},
	"absent_over_time":   {agg: AggAbsent, events: true},
	"present_over_time":  {agg: AggPresent, events: true},
	"count_le_over_time": {agg: AggCountLE, threshold: true},
	"count_gt_over_time": {agg: AggCountGT, threshold: true},
}

// instantFuncs are PromQL functions over instant vectors and scalars that
// callwatch passes through to PromQL's own implementation.
var instantFuncs = map[string]bool{
	"abs": true, "ceil": true, "floor": true, "round": true, "sqrt": true, "exp": true,
	"ln": true, "log2": true, "log10": true, "sgn": true,
	"clamp": true, "clamp_min": true, "clamp_max": true,
	"time": true, "vector": true, "scalar": true, "absent": true,
	"label_replace": true, "label_join": true, "sort": true, "sort_desc": true,
	"minute": true, "hour": true, "day_of_week": true, "day_of_month": true,
	"day_of_year": true, "days_in_month": true, "month": true, "year": true,
}

// RangeFunctionNames returns the supported range functions, sorted.
func RangeFunctionNames() []string { return slices.Sorted(maps.Keys(rangeFuncs)) }

// InstantFunctionNames returns the supported instant functions, sorted.
func InstantFunctionNames() []string { return slices.Sorted(maps.Keys(instantFuncs)) }

// newParser builds the PromQL parser with callwatch's extra functions (the
// pNN quantile shorthands) added to a copy of Prometheus' function table; the
// global table is never modified.
var newParser = sync.OnceValue(func() parser.Parser {
	return parser.NewParser(parser.Options{Functions: ParserFunctions()})
})

// ParserFunctions returns the function table callwatch's parser uses, for
// components (such as a PromQL engine) that must parse rewritten queries.
func ParserFunctions() map[string]*parser.Function {
	funcs := maps.Clone(parser.Functions)
	for name, rf := range rangeFuncs {
		if _, ok := funcs[name]; !ok {
			f := &parser.Function{Name: name, ArgTypes: []parser.ValueType{parser.ValueTypeMatrix}, ReturnType: parser.ValueTypeVector}
			if rf.threshold {
				// The threshold may be left out for the parser, so
				// the checker says what to write (see checker.leaf).
				f.ArgTypes, f.Variadic = append(f.ArgTypes, parser.ValueTypeScalar), 1
			}
			funcs[name] = f
		}
	}
	for _, f := range calendarFunctions() {
		funcs[f.Name] = f
	}
	return funcs
}

// hintForFunction explains what to write instead of an unsupported function.
func hintForFunction(name string) string {
	supported := strings.Join(RangeFunctionNames(), ", ")
	switch {
	case strings.HasPrefix(name, "histogram_"):
		return "callwatch computes exact quantiles from events: write p95(latency_ms[5m]) or quantile_over_time(0.95, latency_ms[5m])"
	case name == "irate" || name == "idelta" || name == "delta" || name == "deriv" || name == "changes" ||
		name == "resets" || name == "predict_linear" || name == "double_exponential_smoothing" ||
		name == "holt_winters" || strings.HasSuffix(name, "_over_time") || strings.HasPrefix(name, "ts_of_"):
		return "call events are pooled per window, not sampled as a series, so " + name + " has no meaning here; use one of " + supported
	default:
		return "supported range functions: " + supported + "; instant functions: " + strings.Join(InstantFunctionNames(), ", ")
	}
}
