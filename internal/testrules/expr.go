package testrules

import (
	"testing"

	"github.com/callwatch/callwatch/dsl"
)

// Expr parses the DSL expression src with the default options, failing t
// when it does not parse: the expressions tests evaluate are literals that
// must parse.
func Expr(t testing.TB, src string) *dsl.Expr {
	t.Helper()
	e, err := dsl.Parse(src, dsl.Options{})
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return e
}
