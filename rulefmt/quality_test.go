package rulefmt_test

import (
	"strings"
	"testing"

	"github.com/callwatch/callwatch/internal/testrules"
	"github.com/callwatch/callwatch/rulefmt"
)

func TestQualityFileErrors(t *testing.T) {
	for _, tc := range []struct{ name, rule, want string }{
		{"thresholds with a comparison in expr", "- alert: A\n  expr: count_over_time(events[5m]) > 3\n  thresholds: [{severity: warning, op: \">\", value: 1}]", "leave the comparison out"},
		{"controls on an expression that is not X > N", "- alert: A\n  expr: count_over_time(events[5m]) > bool 3\n  min_events: 2", "write the expression as X > N"},
		{"recover on the wrong side", "- alert: A\n  expr: count_over_time(events[5m]) > 3\n  recover_below: 10", "healthy side"},
		{"recover_above for a > threshold", "- alert: A\n  expr: count_over_time(events[5m]) > 3\n  recover_above: 1", "give recover_below"},
		{"a bad tier severity", "- alert: A\n  expr: count_over_time(events[5m])\n  thresholds: [{severity: huge, op: \">\", value: 1}]", "threshold severity \"huge\""},
		{"two tiers with one severity", "- alert: A\n  expr: count_over_time(events[5m])\n  thresholds: [{severity: warning, op: \">\", value: 1}, {severity: warning, op: \">\", value: 2}]", "two thresholds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rulefmt.ParseRuleFile("rules.yaml", []byte(ruleFile("", tc.rule)), rulefmt.LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// ruleFile returns a rule file with one group "g" holding rules.
func ruleFile(groupExtra, rules string) string { return testrules.File(groupExtra, rules) }
