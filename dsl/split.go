package dsl

import (
	"github.com/prometheus/prometheus/promql/parser"
)

// Comparison is an expression of the form X op N: a vector compared with a
// number.
type Comparison struct {
	// Value is the compared expression X, as PromQL text.
	Value string
	// Op is one of > >= < <= == !=.
	Op string
	// Threshold is N.
	Threshold float64
}

// SplitComparison recognises input of the form `X op N` (or `N op X`,
// flipped) where X is a vector and op a filtering comparison (no bool). It
// reports false for anything else.
func SplitComparison(input string) (Comparison, bool) {
	ast, err := newParser().ParseExpr(input)
	if err != nil {
		return Comparison{}, false
	}
	be, ok := unparen(ast).(*parser.BinaryExpr)
	if !ok || !be.Op.IsComparisonOperator() || be.ReturnBool {
		return Comparison{}, false
	}
	op := be.Op.String()
	if n, ok := unparen(be.RHS).(*parser.NumberLiteral); ok && be.LHS.Type() == parser.ValueTypeVector {
		return Comparison{Value: be.LHS.String(), Op: op, Threshold: n.Val}, true
	}
	if n, ok := unparen(be.LHS).(*parser.NumberLiteral); ok && be.RHS.Type() == parser.ValueTypeVector {
		flip := map[string]string{">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}
		return Comparison{Value: be.RHS.String(), Op: flip[op], Threshold: n.Val}, true
	}
	return Comparison{}, false
}

// Compare applies a comparison operator.
func Compare(v float64, op string, threshold float64) bool {
	switch op {
	case ">":
		return v > threshold
	case ">=":
		return v >= threshold
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	case "==":
		return v == threshold
	case "!=":
		return v != threshold
	}
	return false
}

// CountExpr returns an expression counting the events of the leaf's
// selector in its window, grouped as the leaf is: the volume behind it.
func (l *Leaf) CountExpr() string {
	vs := &parser.VectorSelector{Name: l.Selector.Field, LabelMatchers: l.Selector.Matchers, OriginalOffset: l.Offset}
	ms := &parser.MatrixSelector{VectorSelector: vs, Range: l.Range}
	call := l.WrapCalendar("count_over_time(" + ms.String() + ")")
	if !l.Grouped {
		return call
	}
	agg := &parser.AggregateExpr{Op: parser.SUM, Grouping: l.By, Expr: &parser.VectorSelector{Name: "x"}}
	// Print "sum by (a, b) (" + call + ")" without re-deriving the grammar.
	s := agg.String()
	return s[:len(s)-len("(x)")] + "(" + call + ")"
}
