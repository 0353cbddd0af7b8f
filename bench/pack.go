// The rule pack: 100 baseline rules over three windows and four scopes,
// and the SLO pack.

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/callwatch/callwatch/rulefmt"
)

// sloRules is the SLO pack: one availability SLO per tenant over 30 days
// (the dataset's 50 tenants), compiled by rulefmt into a group of 9
// recording and 4 burn-rate alerting rules.
const sloRules = `slos:
  - name: tenant-availability
    objective: 99.9
    window: 30d
    by: [tenant_id]
    sli: {errors: '{status="error"}', total: events}
`

// kind is a baseline rule type (latency split by statistic, and the error
// ratio added).
type kind struct {
	name      string // rule name prefix
	alertType string // the baseline's rule type, as the alert_type label
	// thresholds per window (5m, 1h, 1d).
	thresholds [3]float64
}

var kinds = []kind{
	{"ErrorCount", "error_rate", [3]float64{100, 1000, 20000}},
	{"ErrorRatio", "error_rate", [3]float64{0.05, 0.05, 0.05}},
	{"CallCount", "call_count", [3]float64{10000, 100000, 2000000}},
	{"TokenUsage", "token_usage", [3]float64{5e6, 5e7, 1e9}},
	{"Cost", "cost_threshold", [3]float64{100, 1000, 20000}},
	{"LatencyAvg", "latency", [3]float64{3000, 3000, 3000}},
	{"LatencyP95", "latency", [3]float64{5000, 5000, 5000}},
	{"LatencyP99", "latency", [3]float64{10000, 10000, 10000}},
	{"LatencyMax", "latency", [3]float64{120000, 120000, 120000}},
}

var windows = []struct {
	text string
	d    time.Duration
}{{"5m", 5 * time.Minute}, {"1h", time.Hour}, {"1d", 24 * time.Hour}}

// scope is where a rule looks: one tenant, one app, the whole platform, or
// every tenant (grouped).
type scope struct {
	name    string // in rule and group names
	label   string // matcher label, "" for platform and grouped
	value   string
	grouped bool
}

var (
	scopeTenant   = scope{name: "t7", label: "tenant_id", value: "t7"}
	scopeApp      = scope{name: "a3", label: "app_code", value: "a3"}
	scopeByTenant = scope{name: "by_tenant", grouped: true}
	scopePlatform = scope{name: "platform"}
)

// benchRule is one rule of the pack.
type benchRule struct {
	name   string
	kind   kind
	window int // index into windows
	scope  scope
	// guard adds the minimum-volume guard of rules.d's TenantErrorRatio.
	guard bool
}

// pack returns the 100 rules: the 9 rule types × 3 windows × {tenant t7,
// app a3, by tenant} (81), the 9 types platform-wide at 5m and 1h (18) and
// the per-tenant error ratio with a minimum-volume guard (1).
func pack() []benchRule {
	var out []benchRule
	for w := range windows {
		scopes := []scope{scopeTenant, scopeApp, scopeByTenant, scopePlatform}
		if windows[w].text == "1d" {
			scopes = scopes[:3]
		}
		for _, s := range scopes {
			for _, k := range kinds {
				out = append(out, benchRule{name: k.name + "_" + s.name + "_" + windows[w].text, kind: k, window: w, scope: s})
			}
			if w == 0 && s == scopeByTenant {
				out = append(out, benchRule{name: "ErrorRatioGuarded_by_tenant_5m", kind: kinds[1], window: w, scope: s, guard: true})
			}
		}
	}
	return out
}

// group returns the name of the rule's group: one per window and scope.
func (r benchRule) group() string { return "bench-" + windows[r.window].text + "-" + r.scope.name }

// valueExpr is the rule's expression without its comparison.
func (r benchRule) valueExpr() string {
	w := windows[r.window].text
	sel := func(field string, extra ...string) string {
		var ms []string
		ms = append(ms, extra...)
		if r.scope.label != "" {
			ms = append(ms, r.scope.label+`="`+r.scope.value+`"`)
		}
		if len(ms) == 0 {
			return field + "[" + w + "]"
		}
		return field + "{" + strings.Join(ms, ", ") + "}[" + w + "]"
	}
	wrap := func(agg, inner string) string {
		if r.scope.grouped {
			return agg + " by (tenant_id) (" + inner + ")"
		}
		return inner
	}
	switch r.kind.name {
	case "ErrorCount":
		return wrap("sum", "count_over_time("+sel("events", `status="error"`)+")")
	case "ErrorRatio":
		// sum drops the status label that the equality matcher adds to
		// an ungrouped leaf, so numerator and denominator match.
		agg := "sum"
		if r.scope.grouped {
			agg = "sum by (tenant_id) "
		}
		return agg + "(count_over_time(" + sel("events", `status="error"`) + ")) / " + agg + "(count_over_time(" + sel("events") + "))"
	}
	k, ok := oneFunctionKinds[r.kind.name]
	if !ok {
		panic("unknown kind " + r.kind.name)
	}
	return wrap(k.agg, k.fn+"("+sel(k.field)+")")
}

// oneFunctionKinds are the rule kinds whose value is one range function of
// one field, aggregated across tenants by agg.
var oneFunctionKinds = map[string]struct{ agg, fn, field string }{
	"CallCount":  {"sum", "count_over_time", "events"},
	"TokenUsage": {"sum", "sum_over_time", "total_tokens"},
	"Cost":       {"sum", "sum_over_time", "cost"},
	"LatencyAvg": {"max", "avg_over_time", "latency_ms"},
	"LatencyP95": {"max", "p95", "latency_ms"},
	"LatencyP99": {"max", "p99", "latency_ms"},
	"LatencyMax": {"max", "max_over_time", "latency_ms"},
}

func (r benchRule) threshold() float64 { return r.kind.thresholds[r.window] }

// expr is the rule's full expression.
func (r benchRule) expr() string {
	e := r.valueExpr() + " > " + strconv.FormatFloat(r.threshold(), 'f', -1, 64)
	if r.guard {
		e += "\n  and sum by (tenant_id) (count_over_time(events[" + windows[r.window].text + "])) >= 20"
	}
	return e
}

// writeRules writes the pack as one rule file per window.
func writeRules(dir string, rules []benchRule) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for w := range windows {
		var b strings.Builder
		fmt.Fprintf(&b, "# Generated by `go run ./bench -write-rules`; do not edit.\n")
		fmt.Fprintf(&b, "# The bench's rule pack, window %s: the baseline rule types, scoped to\n# tenant t7 or app a3, grouped by tenant, or platform-wide.\ngroups:\n", windows[w].text)
		last := ""
		for _, r := range rules {
			if r.window != w {
				continue
			}
			if g := r.group(); g != last {
				fmt.Fprintf(&b, "  - name: %s\n    interval: 1m\n    rules:\n", g)
				last = g
			}
			expr := r.expr()
			if strings.Contains(expr, "\n") {
				expr = "|\n          " + strings.ReplaceAll(expr, "\n", "\n          ")
			}
			fmt.Fprintf(&b, "      - alert: %s\n        expr: %s\n        severity: warning\n", r.name, expr)
			fmt.Fprintf(&b, "        labels:\n          alert_type: %s\n", r.kind.alertType)
			fmt.Fprintf(&b, "        annotations:\n          summary: \"%s is {{ $value }} (threshold %s)\"\n",
				r.name, strconv.FormatFloat(r.threshold(), 'f', -1, 64))
		}
		if err := os.WriteFile(filepath.Join(dir, windows[w].text+".yaml"), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkPack checks that the rule files hold exactly the pack defined here.
func checkPack(specs []*rulefmt.GroupSpec, rules []benchRule) error {
	want := map[string]string{}
	for _, r := range rules {
		want[r.name] = r.expr()
	}
	n := 0
	for _, g := range specs {
		for _, r := range g.Rules {
			n++
			if e, ok := want[r.Name()]; !ok || strings.TrimSpace(r.ExprText) != e {
				return fmt.Errorf("bench/rules differ from the pack defined in bench/main.go (rule %q); run go run ./bench -write-rules", r.Name())
			}
		}
	}
	if n != len(rules) {
		return fmt.Errorf("bench/rules hold %d rules, the pack %d; run go run ./bench -write-rules", n, len(rules))
	}
	return nil
}
