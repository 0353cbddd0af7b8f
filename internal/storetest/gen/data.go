package gen

import (
	"math/rand/v2"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/memory"
)

// labelValues are the values of each label (the empty string included)
// in the generated events.
var labelValues = map[string][]string{
	"tenant_id":  {"acme", "beta", "o'brien", "租户", ""},
	"app_code":   {"chat", "search", "batch", "", "checkout"},
	"model":      {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude 3\n(beta)", ""},
	"provider":   {"openai", "azure", "anthropic", ""},
	"status":     {"ok", "error", "timeout", ""},
	"error_code": {"", "429", "500", "503"},
}

// windows and offsets are the windows and offsets the generator
// prefers; events are placed on their edges at every evaluation time.
var (
	windows = []time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute,
		7*time.Minute + 13*time.Second, 30 * time.Minute, time.Hour, 2 * time.Hour}
	offsets = []time.Duration{0, 30 * time.Second, 5 * time.Minute, time.Hour}
)

// Data are random events and the times to evaluate expressions over them.
type Data struct {
	// Events hold about 3000 events over two hours, bursts of events at
	// the same second, events in the first hour of 1970 and events exactly
	// on the edges of every window and offset of the generator at every
	// evaluation time.
	Events []memory.Event
	// EvalTimes are times with and without fractions of a second, and one
	// just after the start of DateTime, where windows reach before 1970.
	EvalTimes []time.Time
	// weights skews each label's values, so some groups are small.
	weights map[string][]int
}

// NewData generates events of schema (the default schema's labels and
// fields) from rng.
func NewData(rng *rand.Rand, schema dsl.Schema) *Data {
	base := time.Date(2025, 11, 24, 14, 0, 0, 0, time.UTC)
	end := base.Add(2 * time.Hour)
	d := &Data{
		EvalTimes: []time.Time{
			end,
			base.Add(90*time.Minute + 250*time.Millisecond),
			base.Add(time.Hour + 999*time.Millisecond),
			base.Add(30*time.Minute + time.Duration(rng.Int64N(int64(90*time.Minute)))).Truncate(time.Millisecond),
			// Just after the start of DateTime, where rule unit tests run:
			// windows reach before 1970.
			time.Unix(1800, 250_000_000).UTC(),
		},
		weights: map[string][]int{},
	}
	for _, l := range schema.Labels {
		w := []int{16, 8, 4, 2, 1}[:len(labelValues[l])]
		rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
		d.weights[l] = w
	}
	add := func(at time.Time) {
		if at.Unix() >= 0 { // a DateTime cannot hold earlier times
			d.Events = append(d.Events, d.event(rng, schema, at))
		}
	}
	for range 2500 + rng.IntN(1000) {
		add(base.Add(time.Duration(rng.IntN(7201)) * time.Second))
	}
	// The first hour of 1970, starting at 00:00:00 exactly.
	for range 3 {
		add(time.Unix(0, 0).UTC())
	}
	for range 100 {
		add(time.Unix(int64(rng.IntN(3601)), 0).UTC())
	}
	// Bursts of events at identical times.
	for range 20 {
		at := base.Add(time.Duration(rng.IntN(7201)) * time.Second)
		for range 2 + rng.IntN(12) {
			add(at)
		}
	}
	// Events exactly on the edges of the windows: t−o−w is out, t−o is in.
	for _, ts := range d.EvalTimes {
		sec := ts.Truncate(time.Second)
		for _, w := range windows {
			for _, o := range offsets {
				add(sec.Add(-o - w))
				add(sec.Add(-o))
			}
		}
	}
	return d
}

func (d *Data) event(rng *rand.Rand, schema dsl.Schema, at time.Time) memory.Event {
	ev := memory.Event{Time: at, Labels: make([]string, len(schema.Labels)), Nums: map[string]float64{}}
	for i, l := range schema.Labels {
		ev.Labels[i] = labelValues[l][weighted(rng, d.weights[l])]
	}
	// Integers with ties (a few round values) and zeros.
	switch p := rng.IntN(10); {
	case p == 0:
		ev.Nums["latency_ms"] = 0
	case p < 3:
		ev.Nums["latency_ms"] = float64(100 * rng.IntN(20))
	case p < 9:
		ev.Nums["latency_ms"] = float64(rng.IntN(8000))
	default:
		ev.Nums["latency_ms"] = float64(rng.IntN(120000))
	}
	ev.Nums["input_tokens"] = float64(rng.IntN(5000))
	ev.Nums["output_tokens"] = float64(rng.IntN(2000))
	// Costs of every kind: zeros, four decimals below 1 (which the text
	// parser of 18.16 does not always read exactly: the suites store a
	// float's bits, not its text), multiples of 1/8, and any float below
	// 100.
	switch p := rng.IntN(10); {
	case p == 0:
		ev.Nums["cost"] = 0
	case p < 5:
		ev.Nums["cost"] = float64(rng.IntN(10000)) / 10000
	case p < 7:
		ev.Nums["cost"] = float64(rng.IntN(800)) / 8
	default:
		ev.Nums["cost"] = rng.Float64() * 100
	}
	return ev
}

func weighted(rng *rand.Rand, w []int) int {
	total := 0
	for _, x := range w {
		total += x
	}
	n := rng.IntN(total)
	for i, x := range w {
		if n < x {
			return i
		}
		n -= x
	}
	return len(w) - 1
}
