package notify

import (
	"maps"
	"strconv"
	"strings"
	"unicode"
)

// escaper returns the function that makes a value show as it is in format
// f: no mention, link, emphasis or tag can come out of it.
func escaper(f Format) func(string) string {
	switch f {
	case FormatSlack:
		return escapeSlack
	case FormatText:
		return func(s string) string { return s }
	case FormatDingTalk:
		return func(s string) string { return escapeMarkdown(s, true) }
	default: // WeCom, Feishu
		return func(s string) string { return escapeMarkdown(s, false) }
	}
}

// escapeMarkdown writes s for the markdown of WeCom, DingTalk and Feishu
// cards. The characters that could start markup are written as numeric
// character references (&#60; for <), which markdown and HTML show as the
// character and never read as markup (Feishu documents them as its way to
// show special characters; WeCom's and DingTalk's markdown take HTML such as
// <font>, so they read references too):
//
//   - < always: no mention (WeCom <@userid>, Feishu <at id=all>), no tag
//     (<font>), no autolink; & always, so that the references are the only
//     ones; * ` ~ \ | always: no emphasis, code, strikethrough, escape or
//     table;
//   - _ unless between two letters or digits (snake_case stays readable, and
//     markdown does not read an underscore there);
//   - ] when [ or : follows, or ( after blanks, or at the end: no link,
//     image or link definition ([HIGH] stays as it is);
//   - # and > at the start of a line, or after list and quote markers
//     ("- # h" is a heading in a list item): no heading or quote; a line of
//     only = or - is no heading underline. A carriage return alone ends a
//     line too, as markdown reads it;
//   - @ after anything but a letter or digit, in DingTalk, where @mobile and
//     @userid in the text are mentions (an e-mail address stays as it is).
func escapeMarkdown(s string, at bool) string {
	if !strings.ContainsAny(s, "<>&*`~\\|_]#=-@") {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	lineStart := true // only blanks so far on this line
	var block blockStart
	for i, c := range rs {
		var prev, next rune
		if i > 0 {
			prev = rs[i-1]
		}
		if i+1 < len(rs) {
			next = rs[i+1]
		}
		first, blockFirst := lineStart, block.at()
		if c == '\n' || c == '\r' {
			lineStart = true
		} else if c != ' ' && c != '\t' {
			lineStart = false
		}
		block.next(c)
		esc := false
		switch c {
		case '<', '&', '*', '`', '~', '\\', '|':
			esc = true
		case '_':
			esc = !isWordRune(prev) || !isWordRune(next)
		case ']':
			esc = next == 0 || next == '[' || next == ':' || nextNonBlank(rs, i+1) == '('
		case '#', '>':
			esc = blockFirst
		case '=', '-':
			esc = first && onlyRune(rs[i:], c)
		case '@':
			esc = at && !isWordRune(prev)
		}
		if esc {
			b.WriteString("&#")
			b.WriteString(strconv.Itoa(int(c)))
			b.WriteByte(';')
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// blockStart follows a line of markdown from its start and tells whether
// only blanks and block markers have come so far: list markers (-, +, *,
// 1. or 1) followed by a blank) and quote markers (>). A heading or a quote
// can start there.
type blockStart struct {
	// not is set once the line holds something else.
	not bool
	// pending is the marker being read: 0 none, 'm' a bullet, 'd' digits,
	// 'p' digits and their . or ), the last three awaiting a blank.
	pending rune
}

// at reports whether a heading or a quote may start at the next rune.
func (s *blockStart) at() bool { return !s.not && s.pending == 0 }

// next reads c, the next rune of the line.
func (s *blockStart) next(c rune) {
	switch {
	case c == '\n' || c == '\r':
		*s = blockStart{}
	case s.not:
	case c == ' ' || c == '\t':
		switch s.pending {
		case 'm', 'p':
			s.pending = 0
		case 'd':
			s.not = true
		}
	case (c == '-' || c == '+' || c == '*') && s.pending == 0:
		s.pending = 'm'
	case c == '>' && s.pending == 0:
	case c >= '0' && c <= '9' && (s.pending == 0 || s.pending == 'd'):
		s.pending = 'd'
	case (c == '.' || c == ')') && s.pending == 'd':
		s.pending = 'p'
	default:
		s.not = true
	}
}

// escapeSlack writes s for Slack's mrkdwn: &, < and > as the entities Slack
// asks for (no <@U…>, <!channel>, <!here> or <url|text> can come out of a
// value), and, since mrkdwn has no escape for them, the emphasis characters
// * ~ ` (and _ unless between letters or digits) as their look-alikes ∗ ∼ ˋ
// ˍ, so no bold, strikethrough, code or italics either.
func escapeSlack(s string) string {
	if !strings.ContainsAny(s, "&<>*~`_") {
		return s
	}
	rs := []rune(s)
	var b strings.Builder
	for i, c := range rs {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '*':
			b.WriteRune('∗') // U+2217 ASTERISK OPERATOR
		case '~':
			b.WriteRune('∼') // U+223C TILDE OPERATOR
		case '`':
			b.WriteRune('ˋ') // U+02CB MODIFIER LETTER GRAVE ACCENT
		case '_':
			if i > 0 && i+1 < len(rs) && isWordRune(rs[i-1]) && isWordRune(rs[i+1]) {
				b.WriteRune(c)
			} else {
				b.WriteRune('ˍ') // U+02CD MODIFIER LETTER LOW MACRON
			}
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func isWordRune(c rune) bool { return unicode.IsLetter(c) || unicode.IsDigit(c) }

// nextNonBlank is the first rune of rs[i:] that is no space or tab, 0 at
// the end.
func nextNonBlank(rs []rune, i int) rune {
	for ; i < len(rs); i++ {
		if rs[i] != ' ' && rs[i] != '\t' {
			return rs[i]
		}
	}
	return 0
}

// onlyRune reports whether the line starting rs holds only c (and trailing
// blanks).
func onlyRune(rs []rune, c rune) bool {
	for _, r := range rs {
		switch r {
		case '\n', '\r':
			return true
		case c, ' ', '\t':
		default:
			return false
		}
	}
	return true
}

// escapeMessage returns d with every value escaped by esc, but the links
// callwatch made.
func escapeMessage(d MessageData, esc func(string) string) MessageData {
	d.Status, d.Language, d.Group, d.Rule, d.Expr = esc(d.Status), esc(d.Language), esc(d.Group), esc(d.Rule), esc(d.Expr)
	d.Severity, d.Title, d.Time = esc(d.Severity), esc(d.Title), esc(d.Time)
	d.Alerts = escapeAlerts(d.Alerts, esc)
	return d
}

// escapeDigest returns d with every value escaped by esc, but the link
// callwatch made.
func escapeDigest(d DigestData, esc func(string) string) DigestData {
	d.Language, d.Title, d.Time = esc(d.Language), esc(d.Title), esc(d.Time)
	rules := make([]DigestRule, len(d.Rules))
	for i, r := range d.Rules {
		r.Group, r.Rule, r.Title, r.Severity = esc(r.Group), esc(r.Rule), esc(r.Title), esc(r.Severity)
		r.Alerts = escapeAlerts(r.Alerts, esc)
		rules[i] = r
	}
	d.Rules = rules
	return d
}

func escapeAlerts(alerts []AlertData, esc func(string) string) []AlertData {
	if alerts == nil {
		return nil
	}
	out := make([]AlertData, len(alerts))
	for i, a := range alerts {
		a.Fingerprint, a.Status, a.Rule, a.Title, a.Severity = esc(a.Fingerprint), esc(a.Status), esc(a.Rule), esc(a.Title), esc(a.Severity)
		a.Text, a.Message, a.Summary, a.Value, a.Threshold = esc(a.Text), esc(a.Message), esc(a.Summary), esc(a.Value), esc(a.Threshold)
		a.TenantID, a.AppCode, a.Key, a.Time = esc(a.TenantID), esc(a.AppCode), esc(a.Key), esc(a.Time)
		a.ActiveAt, a.FiredAt, a.ResolvedAt = esc(a.ActiveAt), esc(a.FiredAt), esc(a.ResolvedAt)
		a.Labels, a.Annotations = escapeMap(a.Labels, esc), escapeMap(a.Annotations, esc)
		a.Evidence = escapeEvidence(a.Evidence, esc)
		out[i] = a
	}
	return out
}

// escapeMap escapes the values of m; the keys are label names, which are
// identifiers.
func escapeMap(m map[string]string, esc func(string) string) map[string]string {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = esc(v)
	}
	return out
}
