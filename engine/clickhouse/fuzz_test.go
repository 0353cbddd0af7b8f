package clickhouse

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/storetest/gen"
)

// fuzzTable is qualified by a database, so table names take the quoting
// path of qualified names too.
const fuzzTable = "calls.ai_call_events"

// fuzzValues are label values that would break or subvert SQL built by
// string concatenation; the fuzzer mutates them.
var fuzzValues = []string{
	"acme", "", `it's`, `a\'b`, `"double"`, "x -- comment", "/* block */", `'; DROP TABLE events; --`,
	`\`, `?`, "tab\tnew\nline", "租户", "`backtick`", "count", "tenant_id", "SELECT", "0.95", "$1", "{0}",
}

// fuzzTemplates put a label value (%[1]s: quoted as written, %[2]s: quoted
// as a literal regexp) into expressions.
var fuzzTemplates = []string{
	`count_over_time(events{tenant_id=%[1]s}[5m])`,
	`count_over_time(events{tenant_id!=%[1]s, model=~%[2]s}[5m]) > 1`,
	`sum by (model) (p95(latency_ms{model!~%[2]s, app_code=%[1]s}[5m] offset 1h))`,
	`quantile_over_time(0.3, cost{status=~%[1]s}[1m]) / avg_over_time(cost{status=%[1]s}[1m])`,
	`absent_over_time(events{provider=%[1]s, provider!~%[1]s}[15m]) or sum without (status) (rate(total_tokens{status=%[1]s}[15m]))`,
}

// FuzzCompile checks, for any expression dsl accepts, that Compile does
// not panic and that user text never reaches the SQL: every statement is
// made only of schema identifiers, known keywords and functions, numbers,
// punctuation and ? placeholders (one per argument), and its text does not
// change when every label value and regexp of the expression is replaced.
// The second input is a label value, put into fuzzTemplates.
func FuzzCompile(f *testing.F) {
	for _, tc := range goldenCases {
		f.Add(tc.expr, "")
	}
	for _, s := range dslFuzzSeeds(f) {
		f.Add(s, "")
	}
	for _, s := range gen.Pinned {
		f.Add(s, "")
	}
	g := gen.NewExprs(gen.Options{Rand: rand.New(rand.NewPCG(1, 2))})
	for range 30 {
		f.Add(g.Expr(), "")
	}
	for _, v := range fuzzValues {
		f.Add("", v)
	}
	f.Fuzz(func(t *testing.T, input, value string) {
		checkCompile(t, input)
		for _, tmpl := range fuzzTemplates {
			checkCompile(t, fmt.Sprintf(tmpl, strconv.Quote(value), strconv.Quote(regexp.QuoteMeta(value))))
		}
	})
}

// dslFuzzSeeds reads the seed expressions of dsl's FuzzParse from its
// source, so both fuzzers start from the same corpus.
func dslFuzzSeeds(tb testing.TB) []string {
	const path = "../../dsl/fuzz_test.go"
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		tb.Fatalf("read dsl's fuzz seeds: %v", err)
	}
	var seeds []string
	ast.Inspect(file, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "fuzzSeeds" || len(vs.Values) != 1 {
			return true
		}
		if lit, ok := vs.Values[0].(*ast.CompositeLit); ok {
			for _, elt := range lit.Elts {
				if bl, ok := elt.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					if s, err := strconv.Unquote(bl.Value); err == nil {
						seeds = append(seeds, s)
					}
				}
			}
		}
		return false
	})
	if len(seeds) < 10 {
		tb.Fatalf("found %d seeds in var fuzzSeeds of %s; update dslFuzzSeeds if they moved", len(seeds), path)
	}
	return seeds
}

// checkCompile parses input and, when dsl accepts it, compiles its leaves
// and checks the statements.
func checkCompile(t *testing.T, input string) {
	t.Helper()
	e, err := dsl.Parse(input, dsl.Options{})
	if err != nil {
		return
	}
	schema := dsl.DefaultSchema()
	stmts := Compile(CompileOptions{Table: fuzzTable}, goldenTS, e.Leaves)
	allowed := sqlIdentifiers(schema, fuzzTable)
	seen := make([]int, len(e.Leaves))
	for _, st := range stmts {
		if err := checkStatement(st, allowed); err != nil {
			t.Fatalf("expression %q: %v\n%s\n-- args: %#v", input, err, st.SQL, st.Args)
		}
		for j, li := range st.Leaves {
			seen[li]++
			c := st.Columns[j]
			cols := []int{c.Count, c.Time}
			for _, pc := range c.Partials {
				cols = append(cols, pc.Cols...)
			}
			for _, col := range cols {
				if col != -1 && (col < len(st.By) || col >= st.Width) {
					t.Fatalf("expression %q: leaf %d has column %d outside %d..%d", input, li, col, len(st.By), st.Width-1)
				}
			}
		}
		if err := checkStringArgs(st, e.Leaves); err != nil {
			t.Fatalf("expression %q: %v\n%s\n-- args: %#v", input, err, st.SQL, st.Args)
		}
	}
	for li, n := range seen {
		if n != 1 {
			t.Fatalf("expression %q: leaf %d is computed by %d statements", input, li, n)
		}
	}
	// The SQL is a function of the expression's shape only: renaming every
	// label value and regexp changes the arguments, never the text.
	renamed := renameValues(e.Leaves)
	stmts2 := Compile(CompileOptions{Table: fuzzTable}, goldenTS, renamed)
	if len(stmts2) != len(stmts) {
		t.Fatalf("expression %q: %d statements, %d once values are renamed", input, len(stmts), len(stmts2))
	}
	for i := range stmts {
		if stmts[i].SQL != stmts2[i].SQL {
			t.Fatalf("expression %q: the SQL depends on label values or regexps:\n%s\n-- with renamed values:\n%s", input, stmts[i].SQL, stmts2[i].SQL)
		}
	}
}

// sqlKeywords are the bare words compiled SQL may contain.
var sqlKeywords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true, "GROUP": true, "BY": true,
	"toDateTime": true, "toFloat64": true, "match": true, "ifNull": true, "isFinite": true,
	"count": true, "countIf": true, "sum": true, "sumIf": true, "avg": true, "avgIf": true,
	"min": true, "minIf": true, "max": true, "maxIf": true, "quantileExact": true, "quantileExactIf": true, "quantilesExact": true, "quantilesExactIf": true, "arrayElement": true,
	"stddevPopStable": true, "stddevPopStableIf": true, "varPopStable": true, "varPopStableIf": true,
	// The thresholds of count_le_over_time and count_gt_over_time.
	"inf": true, "reinterpretAsFloat64": true, "reinterpretAsString": true, "toUInt64": true,
}

// sqlIdentifiers are the names compiled SQL may quote: the schema's columns
// and the parts of the table name.
func sqlIdentifiers(schema dsl.Schema, table string) map[string]bool {
	ids := map[string]bool{schema.Time: true}
	for _, l := range schema.Labels {
		ids[l] = true
	}
	for _, c := range schema.NumericColumns() {
		ids[c] = true
	}
	for _, p := range strings.Split(table, ".") {
		ids[p] = true
	}
	return ids
}

// checkStatement tokenizes SQL against a whitelist: backquoted schema
// identifiers, keywords and function names, numbers, operators and
// punctuation, and ? placeholders, one per argument. Anything else, and
// in particular any quote that could start a string literal, is an error.
func checkStatement(st Statement, allowed map[string]bool) error {
	sql := st.SQL
	placeholders := 0
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t':
			i++
		case c == '`':
			end := strings.IndexByte(sql[i+1:], '`')
			if end < 0 {
				return fmt.Errorf("unterminated identifier at byte %d", i)
			}
			if id := sql[i+1 : i+1+end]; !allowed[id] {
				return fmt.Errorf("identifier %q at byte %d is not a schema column or the table", id, i)
			}
			i += end + 2
		case c == '_' || isLetter(c):
			j := i
			for j < len(sql) && (sql[j] == '_' || isLetter(sql[j]) || isDigit(sql[j])) {
				j++
			}
			if w := sql[i:j]; !sqlKeywords[w] {
				return fmt.Errorf("word %q at byte %d is not a known keyword or function", w, i)
			}
			i = j
		case isDigit(c):
			m := sqlNumber.FindString(sql[i:])
			if _, err := strconv.ParseFloat(m, 64); err != nil {
				return fmt.Errorf("number %q at byte %d: %w", m, i, err)
			}
			i += len(m)
			if i < len(sql) && (sql[i] == '_' || isLetter(sql[i])) {
				return fmt.Errorf("number followed by %q at byte %d", sql[i], i)
			}
		case c == '?':
			placeholders++
			i++
		case strings.HasPrefix(sql[i:], "''"):
			// The empty string, which NULL labels read as, is the one
			// literal: it carries no text.
			i += 2
		case strings.HasPrefix(sql[i:], "!=") || strings.HasPrefix(sql[i:], "<=") || strings.HasPrefix(sql[i:], ">="):
			i += 2
		case strings.IndexByte("(),=<>+.", c) >= 0:
			i++
		case c == '-' && !strings.HasPrefix(sql[i:], "--"):
			// A negative threshold; -- would start a comment.
			i++
		default:
			return fmt.Errorf("unexpected %q at byte %d", sql[i:i+1], i)
		}
	}
	if placeholders != len(st.Args) {
		return fmt.Errorf("%d placeholders for %d arguments", placeholders, len(st.Args))
	}
	return nil
}

var sqlNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?`)

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// checkStringArgs checks that the arguments are the window bounds (int64)
// and the statement's matcher values and anchored regexps, and that every
// matcher of its leaves is among them.
func checkStringArgs(st Statement, leaves []*dsl.Leaf) error {
	want := map[string]bool{}
	for _, li := range st.Leaves {
		for _, m := range leaves[li].Selector.Matchers {
			arg := m.Value
			if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
				arg = anchor(m.Value)
			}
			want[arg] = true
		}
	}
	got := map[string]bool{}
	ints := 0
	for _, a := range st.Args {
		switch a := a.(type) {
		case int64:
			ints++
		case string:
			if !want[a] {
				return fmt.Errorf("argument %q is not a value or regexp of the statement's matchers", a)
			}
			got[a] = true
		default:
			return fmt.Errorf("argument %#v has type %T", a, a)
		}
	}
	// A window that starts before 1970 has no lower bound.
	if ints != 1 && ints != 2 {
		return fmt.Errorf("%d integer arguments, want the 2 window bounds (or 1)", ints)
	}
	for w := range want {
		if !got[w] {
			return fmt.Errorf("matcher argument %q is missing", w)
		}
	}
	return nil
}

// renameValues copies leaves with every distinct label value and regexp
// replaced by a distinct new one, so equal values stay equal.
func renameValues(leaves []*dsl.Leaf) []*dsl.Leaf {
	orig := map[string]bool{}
	for _, l := range leaves {
		for _, m := range l.Selector.Matchers {
			orig[m.Value] = true
		}
	}
	names := map[string]string{}
	next := 0
	rename := func(v string) string {
		if n, ok := names[v]; ok {
			return n
		}
		for {
			n := "renamed" + strconv.Itoa(next)
			next++
			if !orig[n] {
				names[v] = n
				return n
			}
		}
	}
	out := make([]*dsl.Leaf, len(leaves))
	for i, l := range leaves {
		c := *l
		c.Selector.Matchers = make([]*labels.Matcher, len(l.Selector.Matchers))
		for j, m := range l.Selector.Matchers {
			c.Selector.Matchers[j] = labels.MustNewMatcher(m.Type, m.Name, rename(m.Value))
		}
		c.Selector.Columns = slices.Clone(l.Selector.Columns)
		out[i] = &c
	}
	return out
}
