// Package ruletest runs promtool-style unit tests of rule files, in memory,
// with call events as input: `callwatch test rules`.
//
// It reuses the production pieces, as promtool does: rule files are loaded
// by rulefmt.LoadFiles with the configured schema, groups are engine.Group
// evaluated with Eval over a virtual clock, leaves are computed by the
// memory evaluator and everything above them by engine.Querier.
//
// # File format
//
// Promtool's format (keys are strict: an unknown key is an error at
// file:line:col), with events instead of series:
//
//	rule_files: [../rules.d/*.yaml]  # globs, relative to this file; each must match
//	evaluation_interval: 1m           # default 1m: the step at which every group is evaluated
//	group_eval_order: [g1, g2]        # these groups first, in this order; the others after, as loaded
//	fuzzy_compare: false              # compare values within one ulp, as promtool
//	tests:
//	  - name: p95 latency per tenant  # --run REGEX selects tests by name
//	    interval: 1m                   # step of input_events (default evaluation_interval)
//	    start_timestamp: 0             # RFC 3339 or unix seconds; eval_time and event offsets count from it
//	    external_labels: {region: cn}  # $externalLabels in templates
//	    external_url: http://x         # $externalURL in templates
//	    input_events:
//	      - labels: {tenant_id: acme, app_code: chat, status: ok}  # labels of the schema; others are empty
//	        latency_ms: '800x9 6000x9'  # one value per step: 20 steps
//	        cost: '0.01x19'             # 20 steps too; every column of an input has the same length
//	        count: 3                    # events per step: a number for every step, or a value string
//	    events:                          # explicit events, for irregular data
//	      - {time: 90s, tenant_id: acme, status: error, latency_ms: 12000}
//	    alert_rule_test:
//	      - eval_time: 10m
//	        alertname: TenantP95Latency
//	        exp_alerts:
//	          - exp_labels: {tenant_id: acme, severity: error}   # alertname is added
//	            exp_annotations: {summary: "..."}               # compared exactly, as promtool
//	            exp_state: firing                                # callwatch: pending|firing (default firing)
//	            exp_value: 6000                                  # callwatch: optional, the expression's value
//	    expr_test:
//	      - expr: max by (tenant_id) (p95(latency_ms[5m]))
//	        eval_time: 10m
//	        exp_samples:
//	          - labels: '{tenant_id="acme"}'   # a series as promtool writes it; empty for no labels
//	            value: 6000
//
// # Input events
//
// Each item of input_events is one stream of identical-looking events. Its
// keys are labels (a mapping of the schema's label columns), count, and
// numeric columns of the schema (latency_ms, input_tokens, output_tokens,
// cost by default; a field that adds up columns, such as total_tokens, is
// given as its columns). A column's value string uses promtool's expanding
// notation, parsed by Prometheus' own series parser: "a" one value, "aXn" a
// then n more times (n+1 values), "a+bXn" and "a-bXn" n steps up or down
// from a (n+1 values), "_" no value, "_xN" N steps without value; "stale"
// and histograms are rejected. Step i of the expansion is an event at
// start_timestamp + i·interval. A step where any column is "_" has no event.
// Every column of one item must expand to the same number of steps.
//
// count is how many identical events each step has: a whole number (the
// same for every step; default 1) or a value string with one count per
// step ("0x4 5x5"), which also gives the number of steps when the item has
// no column (an item counted with events{...} needs no value).
//
// Items of events are single events: time (an offset from start_timestamp
// such as 90s or 1m30s, or an RFC 3339 time; the schema's time column name
// is accepted too), label columns and numeric columns side by side. Missing
// labels are empty and missing columns 0, as a ClickHouse row with defaults.
//
// # Evaluation
//
// For each test every group is evaluated at start, start+evaluation_interval,
// … up to the largest eval_time, as promtool does (a group's own interval is
// not used). An eval_time is checked against the evaluation at or just
// before it. A rule that fails to evaluate fails the test there.
//
// alert_rule_test compares the alerts of every alerting rule named
// alertname: labels (with alertname), annotations, state, and the value
// where exp_value is given. Firing alerts are always compared, as in
// promtool; pending alerts are compared only when an expected alert of that
// alert_rule_test says exp_state: pending. So a promtool test expecting no
// alert while one is still pending keeps passing, and a test that wants to
// see the pending phase says so.
//
// expr_test evaluates the expression at exactly start+eval_time. It may read
// events and, by name, the recording rules' outputs and ALERTS of the
// evaluation at or just before that time. Results carry no metric name; a
// name in an expected series is not compared.
//
// The notifications each test's rules send are recorded in TestResult; a
// later version compares them with expected notifications.
package ruletest
