package chdb

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bind replaces each ? placeholder of sql with its argument written as a
// ClickHouse literal. The library has no client-side binding, and
// ClickHouse's server-side parameters use another syntax, so this is how
// the ? statements of engine/clickhouse run embedded.
//
// A ? is a placeholder only in SQL proper: not inside a quoted string
// ('…'), a quoted identifier ("…", `…`), a comment (-- …, # …, /* … */,
// nested as ClickHouse nests them) or a heredoc ($tag$…$tag$). The number
// of placeholders must equal the number of arguments.
//
// Arguments:
//   - strings (any type whose kind is string) become '…' literals in
//     which backslash and quote are escaped, and every control byte
//     (newline, NUL, …) and every byte that is not part of valid UTF-8 is
//     written as \xHH, so the literal is one line of valid UTF-8 that
//     ClickHouse decodes back to exactly the same bytes;
//   - integers (any size, signed or not) are written in decimal, negative
//     ones in parentheses, so that no - can join a preceding - into a
//     comment;
//   - floats are written as the shortest decimal that reads back as the
//     same float64 (strconv 'g', -1), always with a point or an exponent
//     so they are Float64 literals, and in parentheses: ClickHouse's SQL
//     parser reads a float literal exactly, but INSERT … VALUES reads a
//     bare number with its fast text parser, which rounds some decimals
//     wrongly (0.159511 becomes 0.15951100000000001, 5e-324 becomes 0,
//     also with precise_float_parsing=1); a parenthesized one is an
//     expression, evaluated by the SQL parser. NaN and infinities are nan,
//     inf and (-inf);
//   - a time.Time is its unix time in whole seconds, as toDateTime(?)
//     expects.
//
// Any other type (nil, bool, slices, …) is an error.
func Bind(sql string, args ...any) (string, error) {
	var b strings.Builder
	b.Grow(len(sql) + 16*len(args))
	n := 0
	var err error
	i := 0
	for i < len(sql) {
		j := skipQuoted(sql, i)
		if j > i {
			b.WriteString(sql[i:j])
			i = j
			continue
		}
		if sql[i] != '?' {
			b.WriteByte(sql[i])
			i++
			continue
		}
		if n < len(args) && err == nil {
			var lit string
			if lit, err = literal(args[n]); err != nil {
				err = fmt.Errorf("bind argument %d: %w", n+1, err)
			}
			b.WriteString(lit)
		}
		n++
		i++
	}
	if err != nil {
		return "", err
	}
	if n != len(args) {
		return "", fmt.Errorf("bind: the statement has %d placeholders and %d arguments", n, len(args))
	}
	return b.String(), nil
}

// skipQuoted returns the end of the string literal, quoted identifier,
// comment or heredoc that starts at sql[i], or i when none starts there.
// An unterminated one extends to the end.
func skipQuoted(sql string, i int) int {
	switch c := sql[i]; {
	case c == '\'' || c == '"' || c == '`':
		// ClickHouse escapes with a backslash or by doubling the quote; a
		// doubled quote reads here as the end of one and the start of the
		// next, which joins the same way.
		for j := i + 1; j < len(sql); j++ {
			switch sql[j] {
			case '\\':
				j++
			case c:
				return j + 1
			}
		}
		return len(sql)
	case c == '-' && strings.HasPrefix(sql[i:], "--"),
		c == '#' && (strings.HasPrefix(sql[i:], "# ") || strings.HasPrefix(sql[i:], "#!")):
		if k := strings.IndexByte(sql[i:], '\n'); k >= 0 {
			return i + k + 1
		}
		return len(sql)
	case c == '/' && strings.HasPrefix(sql[i:], "/*"):
		depth := 0
		for j := i; j < len(sql)-1; j++ {
			switch {
			case sql[j] == '/' && sql[j+1] == '*':
				depth++
				j++
			case sql[j] == '*' && sql[j+1] == '/':
				depth--
				j++
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(sql)
	case c == '$':
		// $tag$ … $tag$, the tag possibly empty.
		k := i + 1
		for k < len(sql) && (sql[k] == '_' || isAlnum(sql[k])) {
			k++
		}
		if k >= len(sql) || sql[k] != '$' {
			return i
		}
		tag := sql[i : k+1]
		if end := strings.Index(sql[k+1:], tag); end >= 0 {
			return k + 1 + end + len(tag)
		}
		return len(sql)
	}
	return i
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// literal writes one argument as a ClickHouse literal.
func literal(arg any) (string, error) {
	if t, ok := arg.(time.Time); ok {
		return intLiteral(t.Unix()), nil
	}
	v := reflect.ValueOf(arg)
	switch v.Kind() {
	case reflect.String:
		return stringLiteral(v.String()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intLiteral(v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		// A float32 is written as the float64 of the same value.
		return floatLiteral(v.Float()), nil
	}
	return "", fmt.Errorf("unsupported type %T: pass a string, an integer, a float or a time.Time", arg)
}

func intLiteral(x int64) string {
	if x < 0 {
		return "(" + strconv.FormatInt(x, 10) + ")"
	}
	return strconv.FormatInt(x, 10)
}

func floatLiteral(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "(-inf)"
	}
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return "(" + s + ")"
}

// stringLiteral quotes s as a ClickHouse string literal that decodes to
// exactly the bytes of s.
func stringLiteral(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			i++
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteString(`\x`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
		}
	}
	b.WriteByte('\'')
	return b.String()
}
