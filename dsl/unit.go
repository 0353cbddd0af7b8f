package dsl

import (
	"github.com/prometheus/prometheus/promql/parser"
)

// The unit of an expression's values, for the status page and the charts:
// p95(latency_ms[5m]) > 5000 is in ms, sum by (tenant_id)
// (sum_over_time(total_tokens[1d])) in tokens, when the schema gives the
// fields their units (Schema.Units). A value is given a unit only when
// every value it is made of has that unit and nothing rescales it: a
// count, a ratio, a product, a rate (per second) or a number written
// in the expression has none.

// unitOf returns the unit of ast's values, or "".
func unitOf(ast parser.Expr, leaves map[string]*Leaf, units map[string]string) string {
	if len(units) == 0 {
		return ""
	}
	switch n := ast.(type) {
	case *parser.ParenExpr:
		return unitOf(n.Expr, leaves, units)
	case *parser.StepInvariantExpr:
		return unitOf(n.Expr, leaves, units)
	case *parser.SubqueryExpr:
		return unitOf(n.Expr, leaves, units)
	case *parser.UnaryExpr:
		return unitOf(n.Expr, leaves, units)
	case *parser.VectorSelector:
		lf := leaves[n.Name]
		if lf == nil {
			return "" // a recording rule's output
		}
		switch lf.Agg {
		case AggSum, AggAvg, AggMin, AggMax, AggQuantile, AggStddev, AggIncrease:
			return units[lf.Selector.Field]
		}
		return ""
	case *parser.AggregateExpr:
		switch n.Op {
		case parser.SUM, parser.AVG, parser.MIN, parser.MAX, parser.TOPK, parser.BOTTOMK, parser.QUANTILE, parser.STDDEV:
			return unitOf(n.Expr, leaves, units)
		}
		return ""
	case *parser.Call:
		switch n.Func.Name {
		case "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "sort", "sort_desc",
			"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "quantile_over_time",
			"stddev_over_time", "last_over_time":
			for _, a := range n.Args {
				if a.Type() == parser.ValueTypeVector || a.Type() == parser.ValueTypeMatrix {
					return unitOf(a, leaves, units)
				}
			}
		}
		return ""
	case *parser.BinaryExpr:
		switch {
		case n.Op.IsComparisonOperator() && !n.ReturnBool:
			// A filter keeps the values of its vector side.
			if n.LHS.Type() == parser.ValueTypeVector {
				return unitOf(n.LHS, leaves, units)
			}
			return unitOf(n.RHS, leaves, units)
		case n.Op == parser.LAND || n.Op == parser.LUNLESS:
			return unitOf(n.LHS, leaves, units)
		case n.Op == parser.LOR, n.Op == parser.ADD, n.Op == parser.SUB:
			if l, r := unitOf(n.LHS, leaves, units), unitOf(n.RHS, leaves, units); l == r || n.RHS.Type() == parser.ValueTypeScalar && n.Op != parser.LOR {
				return l
			}
		}
	}
	return ""
}
