package dsl

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Static checks.
//
// callwatch knows the labels of every range function's result before
// anything is evaluated, which Prometheus cannot: an ungrouped leaf's one
// sample carries its selector's equality matchers ({status="error"}), a
// grouped leaf's samples carry its grouping labels. From there the labels
// of every subexpression follow (aggregations keep their by labels,
// functions keep their argument's, …), and a binary operation between two
// vectors whose samples can never have equal label sets — the ungrouped
// error ratio count_over_time(events{status="error"}[5m]) /
// count_over_time(events[5m]) — is empty at every evaluation: a rule built on
// it never fires. Lint finds these.
//
// A grouping label is taken as present: a group whose value is empty
// drops the label, so such a rule would match only groups without it, which
// is not what its author meant either. Anything the checks cannot follow
// (recording-rule outputs, label_replace, count_values, group_left) is left
// alone: the checks report only what they prove.

// labelShape is what is known of the labels of a subexpression's samples.
type labelShape struct {
	// known is false when the labels cannot be followed.
	known bool
	// labels are the label names every sample carries, with their value
	// when it is the same for every sample ("" when it varies); any other
	// label is absent.
	labels map[string]string
}

func unknownShape() labelShape { return labelShape{} }

func (s labelShape) String() string {
	if !s.known {
		return "unknown labels"
	}
	if len(s.labels) == 0 {
		return "no labels ({})"
	}
	names := make([]string, 0, len(s.labels))
	for n := range s.labels {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		if v := s.labels[n]; v != "" {
			parts[i] = fmt.Sprintf("%s=%q", n, v)
		} else {
			parts[i] = n
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// linter walks a checked AST (leaves replaced by their names).
type linter struct {
	input    string
	leaves   map[string]*Leaf
	findings []*Error
}

// lint returns the static findings of ast and, when they can be followed,
// the label names its result's samples carry.
func lint(input string, ast parser.Expr, leaves []*Leaf) ([]*Error, []string, bool) {
	l := &linter{input: input, leaves: map[string]*Leaf{}}
	for _, lf := range leaves {
		l.leaves[lf.Name] = lf
	}
	s := l.shape(ast)
	if !s.known {
		return l.findings, nil, false
	}
	names := make([]string, 0, len(s.labels))
	for n := range s.labels {
		names = append(names, n)
	}
	sort.Strings(names)
	return l.findings, names, true
}

func (l *linter) shape(node parser.Expr) labelShape {
	switch n := node.(type) {
	case *parser.ParenExpr:
		return l.shape(n.Expr)
	case *parser.StepInvariantExpr:
		return l.shape(n.Expr)
	case *parser.SubqueryExpr:
		return l.shape(n.Expr)
	case *parser.UnaryExpr:
		return l.shape(n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return unknownShape()
	case *parser.VectorSelector:
		lf := l.leaves[n.Name]
		if lf == nil {
			return unknownShape() // a recording rule's output
		}
		s := labelShape{known: true, labels: map[string]string{}}
		if lf.Grouped {
			for _, b := range lf.By {
				s.labels[b] = ""
			}
			return s
		}
		lf.Labels().Range(func(lb labels.Label) { s.labels[lb.Name] = lb.Value })
		return s
	case *parser.AggregateExpr:
		in := l.shape(n.Expr)
		if n.Param != nil {
			l.shape(n.Param)
		}
		switch n.Op {
		case parser.TOPK, parser.BOTTOMK:
			return in
		case parser.COUNT_VALUES:
			return unknownShape()
		}
		if n.Without {
			if !in.known {
				return unknownShape()
			}
			out := labelShape{known: true, labels: map[string]string{}}
			for k, v := range in.labels {
				if !slices.Contains(n.Grouping, k) {
					out.labels[k] = v
				}
			}
			return out
		}
		out := labelShape{known: true, labels: map[string]string{}}
		for _, g := range n.Grouping {
			if !in.known {
				return unknownShape()
			}
			if v, ok := in.labels[g]; ok {
				out.labels[g] = v
			}
		}
		return out
	case *parser.Call:
		var first labelShape
		firstSet := false
		for _, a := range n.Args {
			s := l.shape(a)
			if _, sub := a.(*parser.SubqueryExpr); !firstSet && (a.Type() == parser.ValueTypeVector || sub) {
				first, firstSet = s, true
			}
		}
		switch n.Func.Name {
		case "vector":
			return labelShape{known: true, labels: map[string]string{}}
		case "abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "exp", "ln", "log2", "log10",
			"sqrt", "sgn", "sort", "sort_desc", "timestamp", "deg", "rad", "acos", "asin", "atan", "cos", "sin", "tan",
			"acosh", "asinh", "atanh", "cosh", "sinh", "tanh", "last_over_time",
			// over a subquery: its inner expression's labels
			"avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
			"stddev_over_time", "quantile_over_time", "present_over_time":
			if firstSet {
				return first
			}
		}
		return unknownShape()
	case *parser.BinaryExpr:
		ls, rs := l.shape(n.LHS), l.shape(n.RHS)
		if n.LHS.Type() != parser.ValueTypeVector || n.RHS.Type() != parser.ValueTypeVector {
			if n.LHS.Type() == parser.ValueTypeVector {
				return ls
			}
			return rs
		}
		m := n.VectorMatching
		if m == nil {
			m = &parser.VectorMatching{Card: parser.CardOneToOne}
		}
		if n.Op == parser.LOR {
			return unknownShape()
		}
		if ls.known && rs.known {
			if name, why := neverMatch(ls, rs, m); name != "" {
				l.report(n, ls, rs, name, why, m)
			}
		}
		if n.Op == parser.LAND || n.Op == parser.LUNLESS {
			return ls
		}
		if m.Card != parser.CardOneToOne || !ls.known {
			return unknownShape()
		}
		out := labelShape{known: true, labels: map[string]string{}}
		for k, v := range ls.labels {
			if m.On == slices.Contains(m.MatchingLabels, k) {
				out.labels[k] = v
			}
		}
		return out
	}
	return unknownShape()
}

// neverMatch returns a label that keeps the two sides' samples from ever
// matching under m, and why, or "".
func neverMatch(ls, rs labelShape, m *parser.VectorMatching) (name, why string) {
	var names []string
	if m.On {
		names = m.MatchingLabels
	} else {
		for k := range ls.labels {
			names = append(names, k)
		}
		for k := range rs.labels {
			names = append(names, k)
		}
		sort.Strings(names)
		names = slices.DeleteFunc(slices.Compact(names), func(k string) bool { return slices.Contains(m.MatchingLabels, k) })
	}
	for _, k := range names {
		lv, lok := ls.labels[k]
		rv, rok := rs.labels[k]
		switch {
		case lok && !rok:
			return k, "only the left side carries " + k
		case rok && !lok:
			return k, "only the right side carries " + k
		case lok && rok && lv != "" && rv != "" && lv != rv:
			return k, fmt.Sprintf("%s is %q on the left and %q on the right", k, lv, rv)
		}
	}
	return "", ""
}

func (l *linter) report(n *parser.BinaryExpr, ls, rs labelShape, name, why string, m *parser.VectorMatching) {
	hint := fmt.Sprintf("aggregate both sides to the labels you compare (sum(A) %s sum(B)), or leave the label out of the match (A %s ignoring(%s) B)",
		n.Op, n.Op, name)
	if m.On {
		hint = "match on labels both sides carry, or aggregate both sides to the same labels"
	}
	e := newError(l.input, n.PositionRange().Start, hint,
		"the two sides of %s never match, so the expression is always empty: the left side's samples have %s, the right side's %s (%s)",
		n.Op, ls, rs, why)
	l.findings = append(l.findings, e)
}
