package dsl

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// This file is the one description of every aggregate of the language: the
// partial states it needs per group, how partial states merge and leave a
// sliding window, and how a group's value is finished from them. Every
// backend is driven by it — the memory evaluator accumulates the partials
// event by event, ClickHouse's full query computes them per group, the
// incremental path keeps them per bucket and slides them — and each backend
// declares, per partial, how it computes it; CheckBackend turns a partial a
// backend lacks into an error at start, never a silent 0.
//
// A range function that reuses existing partials (p80, median_over_time) is
// one entry in rangeFuncs (functions.go). A new aggregate is one entry in
// aggregates below; a new partial is one entry in partials plus one line per
// backend (memory.go, and the fullPartials and bucketPartials tables of
// engine/clickhouse).

// Partial is a partial state of an aggregate, kept per group.
type Partial int

// The partial states.
const (
	// PartialCount is the number of events (with a finite value, for a
	// field).
	PartialCount Partial = iota
	// PartialSum is the sum of the values.
	PartialSum
	// PartialMoments are the mean and the sum of squared deviations from
	// it (M2), which merge exactly and stably (Chan et al.): the standard
	// deviation without the cancellation of a sum of squares.
	PartialMoments
	// PartialMin and PartialMax are the extremes, with the time of an
	// event holding them.
	PartialMin
	PartialMax
	// PartialValues are the counts of each distinct value: an exact
	// quantile is read from them by an order-statistics walk.
	PartialValues
	// PartialAtOrBelow is the number of values at or below the leaf's
	// Threshold: the events of count_le_over_time, and, taken off the
	// count, those of count_gt_over_time. The leaf key holds the
	// threshold, so two thresholds never share a state.
	PartialAtOrBelow
	numPartials
)

// TakeOff is how a partial state leaves a sliding window.
type TakeOff int

const (
	// Subtract takes the leaving bucket's state off.
	Subtract TakeOff = iota
	// Reread reads an extreme again when its time leaves the window: an
	// extreme cannot be subtracted.
	Reread
)

// PartialSpec describes a partial state.
type PartialSpec struct {
	Partial Partial
	Name    string
	// TakeOff says how the state leaves a sliding window.
	TakeOff TakeOff
}

var partials = [numPartials]PartialSpec{
	PartialCount:     {PartialCount, "count", Subtract},
	PartialSum:       {PartialSum, "sum", Subtract},
	PartialMoments:   {PartialMoments, "moments", Subtract},
	PartialMin:       {PartialMin, "min", Reread},
	PartialMax:       {PartialMax, "max", Reread},
	PartialValues:    {PartialValues, "value counts", Subtract},
	PartialAtOrBelow: {PartialAtOrBelow, "count at or below the threshold", Subtract},
}

func (p Partial) String() string {
	if p >= 0 && p < numPartials {
		return partials[p].Name
	}
	return fmt.Sprintf("partial(%d)", int(p))
}

// Partials returns the descriptions of every partial state.
func Partials() []PartialSpec { return partials[:] }

// ValueCount is how many events of a group have one value.
type ValueCount struct {
	Value, Count float64
}

// State holds the partial states of one group; an aggregate reads the
// fields of its partials. Values are sorted by value.
type State struct {
	Count, Sum float64
	Mean, M2   float64
	// M2Noise bounds the rounding error that taking parts off (Remove)
	// has left in M2: a subtraction of large moments that nearly cancel
	// leaves noise of about ε times their size, which no later step can
	// tell from a spread. A variance at or below it is 0.
	M2Noise  float64
	Min, Max float64
	// AtOrBelow is the number of values at or below the leaf's threshold.
	AtOrBelow float64
	Values    []ValueCount
	// Dist, when set, holds the distribution in place of Values (a
	// sliding window's).
	Dist *Distribution
}

// Add adds one event's value to the partials ps of s; le is the leaf's
// Threshold, which PartialAtOrBelow compares the value with.
func (s *State) Add(v float64, ps []Partial, le float64) {
	n := s.Count + 1
	for _, p := range ps {
		switch p {
		case PartialSum:
			s.Sum += v
		case PartialMoments:
			// Welford.
			d := v - s.Mean
			s.Mean += d / n
			s.M2 += d * (v - s.Mean)
		case PartialMin:
			if s.Count == 0 || v < s.Min {
				s.Min = v
			}
		case PartialMax:
			if s.Count == 0 || v > s.Max {
				s.Max = v
			}
		case PartialValues:
			s.Values = append(s.Values, ValueCount{v, 1}) // sorted by Finish
		case PartialAtOrBelow:
			if v <= le {
				s.AtOrBelow++
			}
		}
	}
	s.Count = n
}

// Merge adds o's partials ps into s (the states of disjoint events).
func (s *State) Merge(o *State, ps []Partial) {
	if o.Count == 0 {
		return
	}
	n := s.Count + o.Count
	for _, p := range ps {
		switch p {
		case PartialSum:
			s.Sum += o.Sum
		case PartialMoments:
			// Chan et al.'s parallel combination.
			d := o.Mean - s.Mean
			s.M2 += o.M2 + d*d*s.Count*o.Count/n
			s.M2Noise += o.M2Noise
			s.Mean += d * o.Count / n
			if math.IsNaN(s.M2) || math.IsNaN(s.Mean) {
				// Finite values whose differences overflow: the
				// variance is beyond float64, +Inf, as a direct
				// computation says.
				s.M2 = math.Inf(1)
			}
		case PartialMin:
			if s.Count == 0 || o.Min < s.Min {
				s.Min = o.Min
			}
		case PartialMax:
			if s.Count == 0 || o.Max > s.Max {
				s.Max = o.Max
			}
		case PartialValues:
			s.Values = MergeValues(s.Values, o.Values, 1)
		case PartialAtOrBelow:
			s.AtOrBelow += o.AtOrBelow
		}
	}
	s.Count = n
}

// Remove takes o's partials ps off s, where o's events are among s's: the
// inverse of Merge for the partials whose TakeOff is Subtract. Extremes are
// left as they are (their TakeOff is Reread).
func (s *State) Remove(o *State, ps []Partial) {
	if o.Count == 0 {
		return
	}
	n := s.Count - o.Count
	if n <= 0 {
		*s = State{}
		return
	}
	for _, p := range ps {
		switch p {
		case PartialSum:
			s.Sum -= o.Sum
		case PartialMoments:
			// Chan's combination solved for the remaining part.
			// s.Mean·S = o.Mean·O + mean·n, written without the large
			// products that would cancel.
			mean := s.Mean + (s.Mean-o.Mean)*o.Count/n
			d := o.Mean - mean
			if !math.IsInf(s.M2, 0) { // an overflowed M2 cannot be taken apart: it stays +Inf
				between := d * d * n * o.Count / s.Count
				// Each operand carries a relative error of a few ε (the
				// reads' own summation included); the difference carries
				// their sum, however small it is.
				s.M2Noise += o.M2Noise + removeNoise*(s.M2+o.M2+between)
				s.M2 = max(s.M2-o.M2-between, 0)
			}
			s.Mean = mean
		case PartialValues:
			s.Values = MergeValues(s.Values, o.Values, -1)
		case PartialAtOrBelow:
			s.AtOrBelow -= o.AtOrBelow
		}
	}
	s.Count = n
}

// MergeValues returns a + sign·b for value counts sorted by value; values
// whose count drops to zero or below are left out. a's array is reused when
// it can be.
func MergeValues(a, b []ValueCount, sign float64) []ValueCount {
	if len(b) == 0 {
		return a
	}
	return MergeValuesInto(make([]ValueCount, 0, len(a)+len(b)), a, b, sign)
}

// MergeValuesInto is MergeValues appending to out (which must not share a
// or b's array), so a caller can reuse one buffer between evaluations.
func MergeValuesInto(out, a, b []ValueCount, sign float64) []ValueCount {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Value < b[j].Value):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Value < a[i].Value:
			if c := sign * b[j].Count; c > 0 {
				out = append(out, ValueCount{b[j].Value, c})
			}
			j++
		default:
			if c := a[i].Count + sign*b[j].Count; c > 0 {
				out = append(out, ValueCount{a[i].Value, c})
			}
			i++
			j++
		}
	}
	return out
}

// SortValues sorts value counts by value and folds equal values. Counts
// that arrive sorted (a read ordered by value) are only folded.
func SortValues(vs []ValueCount) []ValueCount {
	byValue := func(a, b ValueCount) int { return cmp.Compare(a.Value, b.Value) }
	if !slices.IsSortedFunc(vs, byValue) {
		slices.SortFunc(vs, byValue)
	}
	out := vs[:0]
	for _, v := range vs {
		if n := len(out); n > 0 && out[n-1].Value == v.Value {
			out[n-1].Count += v.Count
			continue
		}
		out = append(out, v)
	}
	return out
}

// QuantileOfValues is ClickHouse's quantileExact over value counts sorted
// by value: the value at index ⌊φ·n⌋ of the sorted values, clamped to n−1,
// found by walking the cumulative counts (from the top for φ > 0.5).
func QuantileOfValues(phi float64, vs []ValueCount) float64 {
	var n float64
	for _, v := range vs {
		n += v.Count
	}
	if n == 0 {
		return math.NaN()
	}
	k := math.Min(math.Floor(phi*n), n-1)
	if phi > 0.5 {
		// The values above vs[i] hold the indexes from n−above; vs[i]
		// holds those below that.
		var above float64
		for i := len(vs) - 1; i >= 0; i-- {
			if above += vs[i].Count; n-above <= k {
				return vs[i].Value
			}
		}
		return math.NaN() // not reached: above reaches n
	}
	var seen float64
	for _, v := range vs {
		if seen += v.Count; seen > k {
			return v.Value
		}
	}
	return math.NaN() // not reached: seen reaches n > k
}

// stddevResolution is the smallest variance, relative to the mean squared,
// that a standard deviation tells apart from 0: merging and taking apart
// moments (the incremental path, ClickHouse's own aggregation order) leaves
// float64 noise of about ε·mean² in a variance that is 0, so every path
// gives 0 below it (a spread under 1e-7 of the mean's magnitude).
const stddevResolution = 1e-14

// removeNoise is the relative error, in units of the moments' size, that
// one Remove leaves in M2: 64 ε (float64's ε is 2⁻⁵²), room for the few
// roundings of the subtraction and for what the operands bring from
// their own summation.
const removeNoise = 64 * 0x1p-52

func stddev(s *State) float64 {
	v := s.M2 / s.Count
	if s.M2 <= s.M2Noise || v <= stddevResolution*s.Mean*s.Mean {
		return 0
	}
	return math.Sqrt(v)
}

// Aggregate describes one aggregate of the language.
type Aggregate struct {
	Agg Agg
	// Partials are the partial states it needs; PartialCount is always
	// among them (a group exists when it has events).
	Partials []Partial
	// Finish turns a group's states into the leaf's value.
	Finish func(s *State, l *Leaf) float64
}

var aggregates = [...]Aggregate{
	AggCount: {AggCount, []Partial{PartialCount}, func(s *State, _ *Leaf) float64 { return s.Count }},
	AggSum:   {AggSum, []Partial{PartialCount, PartialSum}, func(s *State, _ *Leaf) float64 { return s.Sum }},
	AggAvg:   {AggAvg, []Partial{PartialCount, PartialSum}, func(s *State, _ *Leaf) float64 { return s.Sum / s.Count }},
	AggMin:   {AggMin, []Partial{PartialCount, PartialMin}, func(s *State, _ *Leaf) float64 { return s.Min }},
	AggMax:   {AggMax, []Partial{PartialCount, PartialMax}, func(s *State, _ *Leaf) float64 { return s.Max }},
	AggQuantile: {AggQuantile, []Partial{PartialCount, PartialValues}, func(s *State, l *Leaf) float64 {
		if s.Dist != nil {
			return s.Dist.Quantile(l.Quantile)
		}
		return QuantileOfValues(l.Quantile, s.Values)
	}},
	AggStddev: {AggStddev, []Partial{PartialCount, PartialMoments}, func(s *State, _ *Leaf) float64 { return stddev(s) }},
	AggRate: {AggRate, []Partial{PartialCount, PartialSum}, func(s *State, l *Leaf) float64 {
		if l.Selector.Field == EventsSelector {
			return s.Count / l.Range.Seconds()
		}
		return s.Sum / l.Range.Seconds()
	}},
	AggIncrease: {AggIncrease, []Partial{PartialCount, PartialSum}, func(s *State, l *Leaf) float64 {
		if l.Selector.Field == EventsSelector {
			return s.Count
		}
		return s.Sum
	}},
	AggAbsent:  {AggAbsent, []Partial{PartialCount}, func(*State, *Leaf) float64 { return 1 }},
	AggPresent: {AggPresent, []Partial{PartialCount}, func(*State, *Leaf) float64 { return 1 }},
	// A group exists when it has events (the count): with none at or
	// below the threshold it is 0, not absent, so good/total ratios read
	// 0 instead of nothing. The values above are the others: a value is
	// finite (non-finite ones are skipped), so it is above or at or below.
	AggCountLE: {AggCountLE, []Partial{PartialCount, PartialAtOrBelow}, func(s *State, _ *Leaf) float64 { return s.AtOrBelow }},
	AggCountGT: {AggCountGT, []Partial{PartialCount, PartialAtOrBelow}, func(s *State, _ *Leaf) float64 { return s.Count - s.AtOrBelow }},
}

// Aggregates returns the description of every aggregate.
func Aggregates() []Aggregate { return aggregates[:] }

// Aggregate returns the description of the leaf's aggregate.
func (l *Leaf) Aggregate() *Aggregate { return &aggregates[l.Agg] }

// Partials returns the partial states the leaf needs. The events selector
// has no value: its leaves need the count only.
func (l *Leaf) Partials() []Partial {
	if l.Selector.Field == EventsSelector {
		return []Partial{PartialCount}
	}
	return aggregates[l.Agg].Partials
}

// Finish returns the leaf's value from a group's states.
func (l *Leaf) Finish(s *State) float64 { return aggregates[l.Agg].Finish(s, l) }

// CheckBackend reports an error naming every aggregate that needs a partial
// the backend cannot compute (has reports whether it can): a backend
// calls it once, at start, so a missing piece fails loudly instead of
// computing 0.
func CheckBackend(backend string, has func(Partial) bool) error {
	var missing []string
	for _, a := range aggregates {
		if a.Finish == nil {
			missing = append(missing, fmt.Sprintf("%s has no finish", a.Agg))
		}
		for _, p := range a.Partials {
			if !has(p) {
				missing = append(missing, fmt.Sprintf("%s needs %s", a.Agg, p))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s cannot compute every aggregate: %v", backend, missing)
	}
	return nil
}
