// Package testrules writes rule files and parses expressions for tests:
// the tests of rulefmt (the format), of engine (the runtime) and of the
// backends build them the same way, so the helpers exist once.
package testrules

import "strings"

// File returns a rule file with one group "g" holding rules, which are
// written at the indentation of a rules: list item; groupExtra holds more
// keys of the group (interval: 30s), one per line.
func File(groupExtra, rules string) string {
	var sb strings.Builder
	sb.WriteString("groups:\n  - name: g\n")
	for _, l := range strings.Split(strings.TrimSpace(groupExtra), "\n") {
		if l != "" {
			sb.WriteString("    " + l + "\n")
		}
	}
	sb.WriteString("    rules:\n")
	for _, l := range strings.Split(strings.Trim(rules, "\n"), "\n") {
		sb.WriteString("      " + l + "\n")
	}
	return sb.String()
}
