package engine

import (
	"fmt"
	"net/url"
	"strings"
)

// RuleAnchor is the id of a rule's row on the status page: the fragment of
// the link that opens it (RuleURL).
func RuleAnchor(group, rule string) string { return "rule-" + group + "/" + rule }

// RuleURL links to a rule's row on the status page of the callwatch at
// base: the generatorURL of its alerts, as Prometheus links to its graph
// page. It returns "" without a base.
func RuleURL(base *url.URL, group, rule string) string {
	if base == nil || rule == "" {
		return ""
	}
	return strings.TrimRight(base.String(), "/") + "/#" + escapeFragment(RuleAnchor(group, rule))
}

// escapeFragment percent-encodes every byte but letters, digits, "-._~/",
// so that the link survives the markdown and chat formats it is put in
// (parentheses and brackets included); browsers decode it to find the id.
func escapeFragment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~/", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
