package gen

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/callwatch/callwatch/dsl"
)

func TestTheGeneratorKnowsEveryRangeFunction(t *testing.T) {
	var known []string
	for name := range rangeFuncs {
		known = append(known, name)
	}
	sort.Strings(known)
	if got := dsl.RangeFunctionNames(); !slices.Equal(got, known) {
		t.Fatalf("dsl has range functions %v, the generator knows %v", got, known)
	}
}

func TestTheGeneratorReachesEveryFeatureAndParses(t *testing.T) {
	g := NewExprs(Options{Rand: rand.New(rand.NewPCG(1, 2))})
	parsed, n := 0, 0
	for ; n < 1500 && (n < 300 || len(g.Missing()) > 0); n++ {
		if _, err := dsl.Parse(g.Expr(), dsl.Options{}); err == nil {
			parsed++
		}
	}
	if m := g.Missing(); len(m) > 0 {
		t.Errorf("after %d expressions the generator has not produced %v", n, m)
	}
	if parsed < n*95/100 {
		t.Errorf("only %d of %d generated expressions parse", parsed, n)
	}
}
