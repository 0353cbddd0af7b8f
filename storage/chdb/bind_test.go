package chdb

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestBindWritesEachArgumentAsALiteral(t *testing.T) {
	cases := []struct {
		name string
		arg  any
		want string
	}{
		{"a string is quoted", "acme", `'acme'`},
		{"a quote and a backslash are escaped", `it's a\b`, `'it\'s a\\b'`},
		{"control bytes are hex escapes", "a\nb\tc\x00d\re\x7f", `'a\x0Ab\x09c\x00d\x0De\x7F'`},
		{"valid UTF-8 is kept", "租户", `'租户'`},
		{"invalid UTF-8 bytes are hex escapes", "a\xffb\xe4\xb8", `'a\xFFb\xE4\xB8'`},
		{"a named string type is a string", kindOfString("firing"), `'firing'`},
		{"an int64 is decimal", int64(1764000000), `1764000000`},
		{"a negative integer is parenthesized", int64(-5), `(-5)`},
		{"the smallest int64", int64(math.MinInt64), `(-9223372036854775808)`},
		{"an int", 42, `42`},
		{"a uint32", uint32(7), `7`},
		{"the largest uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"a float keeps its shortest exact form, in parentheses", 0.1, `(0.1)`},
		{"a whole float is still a float", 3.0, `(3.0)`},
		{"a large float has an exponent", 1e300, `(1e+300)`},
		{"a negative float is parenthesized", -2.5, `(-2.5)`},
		{"negative zero keeps its sign", math.Copysign(0, -1), `(-0.0)`},
		{"NaN", math.NaN(), `nan`},
		{"infinity", math.Inf(1), `inf`},
		{"negative infinity", math.Inf(-1), `(-inf)`},
		{"a float32 is written as its float64", float32(0.5), `(0.5)`},
		{"a time is its unix second", time.Date(2025, 11, 24, 16, 0, 0, 999, time.UTC), `1764000000`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Bind("SELECT ?", tc.arg)
			if err != nil {
				t.Fatal(err)
			}
			if want := "SELECT " + tc.want; got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}

type kindOfString string

func TestBindFindsPlaceholdersOnlyInSQL(t *testing.T) {
	cases := []struct {
		name, sql string
		args      []any
		want      string
	}{
		{"placeholders in order", "f(?, ?)", []any{1, 2}, "f(1, 2)"},
		{"not in a string", "SELECT '?', ?", []any{1}, "SELECT '?', 1"},
		{"not in a string with an escaped quote", `SELECT 'a\'?', ?`, []any{1}, `SELECT 'a\'?', 1`},
		{"not in a string with a doubled quote", `SELECT 'a''?', ?`, []any{1}, `SELECT 'a''?', 1`},
		{"not in a string ending in an escaped backslash", `SELECT 'a\\', ?`, []any{1}, `SELECT 'a\\', 1`},
		{"not in a quoted identifier", "SELECT \"?\", `?`, ?", []any{1}, "SELECT \"?\", `?`, 1"},
		{"not in a line comment", "SELECT -- ?\n?", []any{1}, "SELECT -- ?\n1"},
		{"not in a hash comment", "SELECT # ?\n?", []any{1}, "SELECT # ?\n1"},
		{"not in a block comment", "SELECT /* ? */ ?", []any{1}, "SELECT /* ? */ 1"},
		{"not in a nested block comment", "SELECT /* /* ? */ ? */ ?", []any{1}, "SELECT /* /* ? */ ? */ 1"},
		{"not in a heredoc", "SELECT $$?$$, $x$ ? $$ ? $x$, ?", []any{1}, "SELECT $$?$$, $x$ ? $$ ? $x$, 1"},
		{"a lone dollar is SQL", "SELECT $a, ?", []any{1}, "SELECT $a, 1"},
		{"a minus before a placeholder is not a comment", "SELECT 3-?", []any{-1}, "SELECT 3-(-1)"},
		{"a value is not scanned for placeholders", "SELECT ?, ?", []any{"?", 2}, "SELECT '?', 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Bind(tc.sql, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBindRejectsWhatItCannotWrite(t *testing.T) {
	cases := []struct {
		name string
		sql  string
		args []any
		want string
	}{
		{"more arguments than placeholders", "SELECT ?", []any{1, 2}, "1 placeholders and 2 arguments"},
		{"fewer arguments than placeholders", "SELECT ?, ?", []any{1}, "2 placeholders and 1 arguments"},
		{"nil", "SELECT ?", []any{nil}, "unsupported type <nil>"},
		{"a bool", "SELECT ?", []any{true}, "unsupported type bool"},
		{"a slice", "SELECT ?", []any{[]string{"a"}}, "unsupported type []string"},
		{"a pointer", "SELECT ?", []any{new(int)}, "unsupported type *int"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Bind(tc.sql, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzBindStringLiteral checks, without the engine, that a bound string is
// one literal: the scanner that finds placeholders skips exactly the whole
// literal, so nothing in the value can end it early or leave a placeholder
// behind, and it contains no byte that could break a line or a parser.
func FuzzBindStringLiteral(f *testing.F) {
	for _, s := range []string{"", "'", `\`, `\'`, "''", "?", "--", "/*", "*/", "$$", "\x00", "\n", "\xff", "租户"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Bind("?,?", s, 1)
		if err != nil {
			t.Fatal(err)
		}
		lit := stringLiteral(s)
		if !strings.HasPrefix(got, lit+",") || got[len(lit)+1:] != "1" {
			t.Fatalf("Bind = %q", got)
		}
		if end := skipQuoted(lit, 0); end != len(lit) {
			t.Fatalf("the literal %q ends at %d of %d", lit, end, len(lit))
		}
		for i := 0; i < len(lit); i++ {
			if c := lit[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("the literal %q has the control byte %#x", lit, c)
			}
		}
		if !utf8.ValidString(lit) {
			t.Fatalf("the literal %q is not valid UTF-8", lit)
		}
	})
}
