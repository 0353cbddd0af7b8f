package engine

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
)

var instantCases = flag.Int("instant-cases", 4000, "random expressions TestInstantPathMatchesPromQL checks")

// namedSeries serves fixed samples by name.
type namedSeries map[string][]Sample

func (s namedSeries) Series(name string, _ time.Time) []Sample { return s[name] }

// instantGen writes random expressions of the shapes the instant path
// plans, and some it does not, over the series a, b and c.
type instantGen struct{ r *rand.Rand }

func (g instantGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g instantGen) scalar(depth int) string {
	if depth > 0 && g.r.IntN(4) == 0 {
		return fmt.Sprintf("(%s %s %s)", g.scalar(depth-1), g.pick("+", "-", "*", "/", "%", "^", "== bool", "> bool", "atan2"), g.scalar(depth-1))
	}
	return g.pick("0", "1", "2.5", "-3", "100", "0.05", "1e308", "-1e308", "NaN", "Inf", "-Inf")
}

func (g instantGen) matching() string {
	switch g.r.IntN(7) {
	case 0:
		return " on(tenant_id)"
	case 1:
		return " on(tenant_id, app)"
	case 2:
		return " ignoring(app)"
	case 3:
		return " on()"
	case 4:
		return ` ignoring(_x, "é")`
	}
	return ""
}

func (g instantGen) vector(depth int) string {
	if depth <= 0 {
		return g.pick("a", "b", "c")
	}
	switch g.r.IntN(9) {
	case 0:
		return g.pick("a", "b", "c")
	case 1, 2:
		grouping := g.pick("", " by (tenant_id)", " by (app)", " by (tenant_id, app)", " without (app)", " without (tenant_id, app)", " by ()", ` by ("é", tenant_id)`, " without (_x)")
		op := g.pick("sum", "sum", "avg", "min", "max", "count", "stddev", "topk")
		if op == "topk" {
			return fmt.Sprintf("topk%s (2, %s)", grouping, g.vector(depth-1))
		}
		return fmt.Sprintf("%s%s (%s)", op, grouping, g.vector(depth-1))
	case 3:
		return fmt.Sprintf("%s %s %s", g.vector(depth-1), g.pick("+", "-", "*", "/", "%", "^", ">", "<", ">=", "<=", "==", "!=", "> bool", "!= bool", "atan2"), g.scalar(1))
	case 4:
		return fmt.Sprintf("%s %s %s", g.scalar(1), g.pick("+", "-", "/", ">", "<", "== bool", "<= bool"), g.vector(depth-1))
	case 5, 6:
		op := g.pick("+", "-", "*", "/", ">", "<", "==", ">=", "> bool", "<= bool", "and", "unless", "or")
		return fmt.Sprintf("(%s %s%s %s)", g.vector(depth-1), op, g.matching(), g.vector(depth-1))
	case 7:
		return fmt.Sprintf("(%s)", g.vector(depth-1))
	}
	return fmt.Sprintf("abs(%s)", g.vector(depth-1))
}

// series returns random samples for a, b and c: tenants and apps that
// partly overlap, values with NaN, ±Inf, ±0, huge and tiny numbers, and now
// and then two samples of one label set, a stale marker, an empty label
// value or a label whose name sorts before __name__.
func (g instantGen) series() namedSeries {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 2.5, 3, 100, 0.1, 1e308, -1e308, 5e-324, math.NaN(), math.Inf(1), math.Inf(-1), math.Float64frombits(value.StaleNaN)}
	out := namedSeries{}
	for _, name := range []string{"a", "b", "c"} {
		var v []Sample
		for _, t := range []string{"t1", "t2", "t3"} {
			for _, app := range []string{"", "x", "y"} {
				if g.r.IntN(3) == 0 {
					continue
				}
				lset := labels.FromStrings("tenant_id", t)
				switch {
				case g.r.IntN(60) == 0:
					lset = labels.FromStrings("Region", "eu", "tenant_id", t)
				case g.r.IntN(60) == 0:
					lset = labels.FromStrings("app", "", "tenant_id", t)
				case g.r.IntN(20) == 0:
					lset = labels.FromStrings("_x", app, "tenant_id", t, "é", "1")
				case app != "":
					lset = labels.FromStrings("app", app, "tenant_id", t)
				}
				f := g.r.NormFloat64() * 1000
				if g.r.IntN(3) == 0 {
					f = vals[g.r.IntN(len(vals))]
				}
				v = append(v, Sample{Labels: lset, Value: f})
				if g.r.IntN(40) == 0 {
					v = append(v, Sample{Labels: lset, Value: f + 1})
				}
			}
		}
		g.r.Shuffle(len(v), func(i, j int) { v[i], v[j] = v[j], v[i] })
		out[name] = v
	}
	return out
}

// TestInstantPathMatchesPromQL evaluates random expressions over random
// samples both on the instant path and with Prometheus' engine: wherever
// the instant path answers, the engine gives the same samples and values
// to the bit; wherever the engine fails, the instant path leaves the query
// to it.
func TestInstantPathMatchesPromQL(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (go test ./engine -run TestInstantPathMatchesPromQL -instant-seed=%d)", seed, seed)
	if *instantSeed != 0 {
		seed = *instantSeed
	}
	g := instantGen{r: rand.New(rand.NewPCG(seed, 7))}
	ctx := context.Background()
	p := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	var fast, fallback, failed int
	for range *instantCases {
		query := g.vector(1 + g.r.IntN(4))
		if g.r.IntN(20) == 0 {
			query = g.scalar(2)
		}
		parsed, err := p.ParseExpr(query)
		if err != nil {
			continue // the generator wrote something PromQL refuses
		}
		in := g.series()
		maxSamples := 5_000_000
		if g.r.IntN(50) == 0 {
			maxSamples = 1 + g.r.IntN(60) // near what the query holds
		}
		if _, ok := compileInstant(parsed).result(in, maxSamples); ok {
			fast++
		} else {
			fallback++
		}
		got, want, _, gerr, werr := instantBothWays(ctx, query, in, maxSamples)
		if d := diffResults(got, want, gerr, werr); d != "" {
			failed++
			t.Errorf("%s\n  input %v\n  %s", query, in, d)
		}
		if failed > 5 {
			t.FailNow()
		}
	}
	t.Logf("%d expressions on the instant path, %d left to the engine", fast, fallback)
	// The generator writes mostly planned shapes: a plan that refused
	// everything would pass the comparison above without checking anything.
	if fast < *instantCases/5 {
		t.Errorf("only %d of %d expressions took the instant path", fast, *instantCases)
	}
}

var instantSeed = flag.Uint64("instant-seed", 0, "seed of TestInstantPathMatchesPromQL (0: the time)")

// TestInstantPathPlans pins which shapes the instant path takes: the rule
// shapes of rules.d and the bench, and not the ones it leaves to PromQL.
func TestInstantPathPlans(t *testing.T) {
	p := parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()})
	for query, want := range map[string]bool{
		`a > 100`: true,
		`sum by (tenant_id) (a) / sum by (tenant_id) (b) > 0.05`: true,
		`max by (tenant_id) (a) > 3000`:                          true,
		`a > 5 and on(tenant_id) b > 100`:                        true,
		`a unless b`:                                             true,
		`-a`:                                                     false,
		`a or b`:                                                 false,
		`a / on(tenant_id) group_left b`:                         false,
		`topk(3, a)`:                                             false,
		`abs(a)`:                                                 false,
		`a offset 5m`:                                            false,
		`a{tenant_id="t1"}`:                                      false,
		`sum by (__name__) (a)`:                                  false,
		`1 + 2`:                                                  true,
	} {
		e, err := p.ParseExpr(query)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if got := compileInstant(e) != nil; got != want {
			t.Errorf("%s: planned %v, want %v", query, got, want)
		}
	}
}
