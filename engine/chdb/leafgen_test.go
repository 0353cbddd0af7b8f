package chdb

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/memory"
)

// leafGen generates events and single-leaf expressions for
// TestRandomLeavesAgreeWithMemoryEmbedded: a small cousin of
// engine/clickhouse's differential generator that exercises only what the
// SQL computes (the PromQL above the leaves is the same Go code on both
// backends).
type leafGen struct {
	rng    *rand.Rand
	schema dsl.Schema
	// funcs are the range functions, whether they take φ first and whether
	// they accept the events selector, found by parsing.
	funcs    map[string]struct{ phi, events bool }
	features map[string]int
}

var (
	genLabelValues = map[string][]string{
		"tenant_id":  {"acme", "beta", "o'brien", "租户", ""},
		"app_code":   {"chat", "search", "batch", "", "checkout"},
		"model":      {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude 3\n(beta)", ""},
		"provider":   {"openai", "azure", "anthropic", ""},
		"status":     {"ok", "error", "timeout", ""},
		"error_code": {"", "429", "500", "503"},
	}
	genWindows = []time.Duration{time.Second, 10 * time.Second, time.Minute, 5 * time.Minute,
		7*time.Minute + 13*time.Second, 30 * time.Minute, time.Hour}
	genOffsets  = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}
	genFeatures = []string{"match:=", "match:!=", "match:=~", "match:!~", "offset", "events", "field",
		"ungrouped", "sum()", "by", "without"}
)

func newLeafGen(rng *rand.Rand) *leafGen {
	g := &leafGen{rng: rng, schema: dsl.DefaultSchema(), funcs: map[string]struct{ phi, events bool }{}, features: map[string]int{}}
	parses := func(s string) bool { _, err := dsl.Parse(s, dsl.Options{}); return err == nil }
	for _, fn := range dsl.RangeFunctionNames() {
		switch {
		case parses(fn + "(latency_ms[5m])"):
			g.funcs[fn] = struct{ phi, events bool }{false, parses(fn + "(events[5m])")}
		case parses(fn + "(0.5, latency_ms[5m])"):
			g.funcs[fn] = struct{ phi, events bool }{true, parses(fn + "(0.5, events[5m])")}
		}
	}
	return g
}

// missing lists the features and range functions not generated yet; a
// range function the generator cannot write stays missing.
func (g *leafGen) missing() []string {
	var m []string
	for _, f := range genFeatures {
		if g.features[f] == 0 {
			m = append(m, f)
		}
	}
	for _, fn := range dsl.RangeFunctionNames() {
		if g.features["fn:"+fn] == 0 {
			m = append(m, "fn:"+fn)
		}
	}
	return m
}

func genPick[T any](g *leafGen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// event is a random event at t: labels skewed towards the first values,
// integers with ties and zeros, and costs of every kind of float (on 26.x
// the bound float literals are stored exactly, which
// TestFloatsRoundTripExactly checks).
func (g *leafGen) event(t time.Time) memory.Event {
	ev := memory.Event{Time: t, Labels: make([]string, len(g.schema.Labels)), Nums: map[string]float64{}}
	for i, l := range g.schema.Labels {
		vals := genLabelValues[l]
		ev.Labels[i] = vals[min(g.rng.IntN(len(vals)), g.rng.IntN(len(vals)))]
	}
	switch p := g.rng.IntN(10); {
	case p == 0:
		ev.Nums["latency_ms"] = 0
	case p < 3:
		ev.Nums["latency_ms"] = float64(100 * g.rng.IntN(20))
	default:
		ev.Nums["latency_ms"] = float64(g.rng.IntN(120000))
	}
	ev.Nums["input_tokens"] = float64(g.rng.IntN(5000))
	ev.Nums["output_tokens"] = float64(g.rng.IntN(2000))
	switch p := g.rng.IntN(10); {
	case p == 0:
		ev.Nums["cost"] = 0
	case p < 4:
		ev.Nums["cost"] = float64(g.rng.IntN(10000)) / 10000
	case p < 6:
		ev.Nums["cost"] = float64(g.rng.IntN(800)) / 8
	default:
		ev.Nums["cost"] = g.rng.Float64() * 100
	}
	return ev
}

// events returns n events in the two hours up to end, some in bursts at
// one second.
func (g *leafGen) events(n int, end time.Time) []memory.Event {
	var out []memory.Event
	for len(out) < n {
		at := end.Add(-time.Duration(g.rng.IntN(2*3600)) * time.Second)
		for range 1 + g.rng.IntN(2)*g.rng.IntN(10) {
			out = append(out, g.event(at))
		}
	}
	return out
}

// edgeEvents are events exactly on the edges of every window and offset at
// ts: t−o−w is out, t−o is in.
func (g *leafGen) edgeEvents(ts time.Time) []memory.Event {
	sec := ts.Truncate(time.Second)
	var out []memory.Event
	for _, w := range genWindows {
		for _, o := range append([]time.Duration{0}, genOffsets...) {
			out = append(out, g.event(sec.Add(-o-w)), g.event(sec.Add(-o)))
		}
	}
	return out
}

// expr generates one expression with a single leaf.
func (g *leafGen) expr() string {
	fns := make([]string, 0, len(g.funcs))
	for fn := range g.funcs {
		fns = append(fns, fn)
	}
	slices.Sort(fns)
	fn := genPick(g, fns)
	spec := g.funcs[fn]
	g.features["fn:"+fn]++
	sel := "events"
	if !spec.events || g.rng.IntN(3) > 0 {
		sel = genPick(g, g.schema.FieldNames())
		g.features["field"]++
	} else {
		g.features["events"]++
	}
	var ms []string
	for range g.rng.IntN(4) {
		ms = append(ms, g.matcher())
	}
	if len(ms) > 0 {
		sel += "{" + strings.Join(ms, ", ") + "}"
	}
	sel += "[" + promDuration(genPick(g, genWindows)) + "]"
	if g.rng.IntN(3) == 0 {
		g.features["offset"]++
		sel += " offset " + promDuration(genPick(g, genOffsets))
	}
	call := fn + "(" + sel + ")"
	if spec.phi {
		phi := genPick(g, []float64{0, 0.25, 0.5, 0.9, 0.99, 1, float64(g.rng.IntN(1001)) / 1000})
		call = fn + "(" + strconv.FormatFloat(phi, 'g', -1, 64) + ", " + sel + ")"
	}
	switch g.rng.IntN(4) {
	case 0:
		g.features["ungrouped"]++
		return call
	case 1:
		g.features["sum()"]++
		return "sum(" + call + ")"
	case 2:
		g.features["by"]++
		return "sum by (" + strings.Join(g.labelSubset(1, 3), ", ") + ") (" + call + ")"
	default:
		g.features["without"]++
		return "sum without (" + strings.Join(g.labelSubset(1, 4), ", ") + ") (" + call + ")"
	}
}

func (g *leafGen) matcher() string {
	l := genPick(g, g.schema.Labels)
	vals := genLabelValues[l]
	op := genPick(g, []string{"=", "!=", "=~", "!~"})
	g.features["match:"+op]++
	var v string
	if op == "=" || op == "!=" {
		v = genPick(g, append(slices.Clone(vals), "", "nope", "GPT-4O"))
	} else {
		raw, b := genPick(g, vals), regexp.QuoteMeta(genPick(g, vals))
		a, prefix := regexp.QuoteMeta(raw), regexp.QuoteMeta(raw)
		if r := []rune(raw); len(r) > 2 {
			prefix = regexp.QuoteMeta(string(r[:1+g.rng.IntN(len(r)-1)]))
		}
		v = genPick(g, []string{a, prefix + ".*", prefix, a + "|" + b, a + "|", "", ".*", ".+",
			"(?i)" + strings.ToUpper(a), "[a-g].*", "..", "租.", "\\p{Han}+", ".{4,6}", "gpt-4o(-mini)?", "claude 3.\\(beta\\)"})
	}
	return l + op + strconv.Quote(v)
}

func (g *leafGen) labelSubset(lo, hi int) []string {
	ls := slices.Clone(g.schema.Labels)
	g.rng.Shuffle(len(ls), func(i, j int) { ls[i], ls[j] = ls[j], ls[i] })
	return ls[:lo+g.rng.IntN(hi-lo+1)]
}

// promDuration writes a whole number of seconds as PromQL does: 1h7m13s.
func promDuration(d time.Duration) string {
	sec := int64(d / time.Second)
	var b strings.Builder
	for _, u := range []struct {
		n    int64
		unit string
	}{{3600, "h"}, {60, "m"}, {1, "s"}} {
		if sec >= u.n {
			b.WriteString(strconv.FormatInt(sec/u.n, 10) + u.unit)
			sec %= u.n
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
