package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/engine/memory"
)

// transitionRules has one rule of each kind the evaluators must agree on:
// a ratio by tenant through a recording rule with `for`, keep_firing_for,
// p95 and p99 over 5m and 1h (exact quantiles on the incremental path),
// count and sum over 1h, max_over_time and stddev_over_time.
const transitionRules = `groups:
  - name: errors
    interval: 1m
    rules:
      - record: tenant:error_ratio:5m
        expr: |
          sum by (tenant_id) (count_over_time(events{status="error"}[5m]))
            / sum by (tenant_id) (count_over_time(events[5m]))
      - alert: TenantErrorRatio
        expr: tenant:error_ratio:5m > 0.2
        for: 3m
      - alert: TenantErrorBurst
        expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 6
        keep_firing_for: 4m
  - name: latency
    interval: 1m
    rules:
      - alert: TenantP95High
        expr: max by (tenant_id) (p95(latency_ms[5m])) > 1500
        for: 2m
      - alert: TenantP95High1h
        expr: max by (tenant_id) (p95(latency_ms[1h])) > 700
      - alert: TenantP99High1h
        expr: max by (tenant_id) (p99(latency_ms[1h])) > 3000
      - alert: AppP99High5m
        expr: max by (app_code) (p99(latency_ms{status="ok"}[5m])) > 2500
      - alert: TenantLatencyMax
        expr: max by (tenant_id) (max_over_time(latency_ms[10m])) > 4500
      - alert: TenantLatencyJitter
        expr: max by (tenant_id) (stddev_over_time(latency_ms[15m])) > 900
  - name: volume
    interval: 1m
    rules:
      - alert: TenantVolume1h
        expr: sum by (tenant_id) (count_over_time(events[1h])) > 700
      - alert: TenantTokens1h
        expr: sum by (tenant_id) (sum_over_time(total_tokens[1h])) > 500000
`

// callEvent is one generated call and the time it lands in the table.
type callEvent struct {
	at, arrives                  time.Time
	tenant, app, model           string
	status                       string
	latency, inTokens, outTokens int
}

// incidentEvents generates three hours of calls from start (seed fixed):
// three tenants at 4–8 calls a minute each, an error burst for acme at
// 40m–55m and a short one at 130m–134m, a latency spike for beta at
// 80m–95m, a volume surge for gamma at 120m–150m, rare slow calls, and
// one call in seven landing late: up to 2m after the end of its bucket,
// the default late window (the last ones just before the evaluation that
// makes their bucket final).
func incidentEvents(start time.Time) []callEvent {
	rng := rand.New(rand.NewPCG(13, 2026))
	var evs []callEvent
	for m := range 180 {
		for _, tenant := range []string{"acme", "beta", "gamma"} {
			n := 4 + rng.IntN(5)
			if tenant == "gamma" && m >= 120 && m < 150 {
				n += 12
			}
			for range n {
				ev := callEvent{
					at:     start.Add(time.Duration(m)*time.Minute + time.Duration(rng.IntN(60))*time.Second),
					tenant: tenant, app: []string{"chat", "search"}[rng.IntN(2)], model: []string{"m-large", "m-small"}[rng.IntN(2)],
					status: "ok", latency: 80 + rng.IntN(500), inTokens: 100 + rng.IntN(900), outTokens: 50 + rng.IntN(400),
				}
				errP := 0.03
				if tenant == "acme" && (m >= 40 && m < 55 || m >= 130 && m < 134) {
					errP = 0.45
				}
				if rng.Float64() < errP {
					ev.status = "error"
				}
				if tenant == "beta" && m >= 80 && m < 95 {
					ev.latency = 1500 + rng.IntN(3500)
				} else if rng.Float64() < 0.01 {
					ev.latency = 3000 + rng.IntN(3000)
				}
				ev.arrives = ev.at
				if rng.IntN(7) == 0 {
					ev.arrives = bucketEnd(ev.at).Add(time.Duration(rng.IntN(121)) * time.Second)
				}
				evs = append(evs, ev)
			}
		}
	}
	return evs
}

// bucketEnd is the end of the 1m bucket of a call at t. A bucket is
// (k−1m, k], as windows are: a call at 00:05:00 is in the bucket that ends
// then.
func bucketEnd(t time.Time) time.Time {
	end := t.Truncate(time.Minute)
	if end.Before(t) {
		end = end.Add(time.Minute)
	}
	return end
}

func (ev callEvent) row() map[string]any {
	return map[string]any{"created_at": ev.at, "tenant_id": ev.tenant, "app_code": ev.app, "model": ev.model, "status": ev.status,
		"latency_ms": ev.latency, "input_tokens": ev.inTokens, "output_tokens": ev.outTokens}
}

func (ev callEvent) memory(schema dsl.Schema) memory.Event {
	row := map[string]string{"tenant_id": ev.tenant, "app_code": ev.app, "model": ev.model, "status": ev.status}
	lbls := make([]string, len(schema.Labels))
	for i, l := range schema.Labels {
		lbls[i] = row[l]
	}
	return memory.Event{Time: ev.at, Labels: lbls, Nums: map[string]float64{
		"latency_ms": float64(ev.latency), "input_tokens": float64(ev.inTokens), "output_tokens": float64(ev.outTokens)}}
}

// transition is what the evaluators must agree on: a rule's series
// changing state at a time, and the value it had then.
type transition struct {
	Time   time.Time         `json:"time"`
	Rule   string            `json:"rule"`
	Labels map[string]string `json:"labels"`
	From   string            `json:"from"`
	To     string            `json:"to"`
	Value  float64           `json:"value"`
}

func (tr transition) String() string {
	ls := make([]string, 0, len(tr.Labels))
	for k, v := range tr.Labels {
		if k != "alertname" {
			ls = append(ls, k+"="+v)
		}
	}
	sort.Strings(ls)
	return fmt.Sprintf("%s %s{%s} %s→%s (%g)", tr.Time.UTC().Format("15:04:05"), tr.Rule, strings.Join(ls, ","), tr.From, tr.To, tr.Value)
}

// sameTransitions fails t unless got and want list the same transitions in
// the same order: rule, labels, states and time exactly, values within
// 1e-9 relative (the stddev tolerance the README states).
func sameTransitions(t *testing.T, what string, got, want []transition) {
	t.Helper()
	key := func(tr transition) string {
		return fmt.Sprintf("%s %s{%v} %s→%s", tr.Time.UTC().Format(time.RFC3339), tr.Rule, tr.Labels, tr.From, tr.To)
	}
	var diffs []string
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			diffs = append(diffs, "missing: "+want[i].String())
		case i >= len(want):
			diffs = append(diffs, "extra:   "+got[i].String())
		case key(got[i]) != key(want[i]) || math.Abs(got[i].Value-want[i].Value) > 1e-9*math.Max(1, math.Abs(want[i].Value)):
			diffs = append(diffs, "got:     "+got[i].String()+"\n  want:    "+want[i].String())
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s: %d of %d transitions differ from the memory evaluator's:\n  %s", what, len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 15)], "\n  "))
	}
}

// TestEvaluatorsGiveTheMemoryEvaluatorsTransitions checks issue 13's
// acceptance criterion: over the same events, `backtest` on ClickHouse
// (incremental and full), `test rules --clickhouse` and serve's groups
// stepping a clock while rows arrive (late ones included) give the same
// alert transitions as the memory evaluator.
func TestEvaluatorsGiveTheMemoryEvaluatorsTransitions(t *testing.T) {
	s := server.Get(t)
	schema := dsl.DefaultSchema()
	start := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)
	end := start.Add(3*time.Hour + 15*time.Minute) // the last windows empty out
	evs := incidentEvents(start)

	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	writeFile(t, rulesFile, transitionRules)
	var jsonl bytes.Buffer
	rows := make([]map[string]any, len(evs))
	for i, ev := range evs {
		rows[i] = ev.row()
		r := ev.row()
		r["created_at"] = ev.at.Format(time.RFC3339)
		b, _ := json.Marshal(r)
		jsonl.Write(append(b, '\n'))
	}
	eventsFile := filepath.Join(dir, "events.jsonl")
	writeFile(t, eventsFile, jsonl.String())
	db := eventsTable(t, s, "calls", schema, rows)
	config := func(name, extra string) string {
		f := filepath.Join(dir, name)
		writeFile(t, f, fmt.Sprintf("clickhouse:\n  dsn: %s\n  events_table: calls\n%s", s.DSN(db), extra))
		return f
	}

	backtest := func(t *testing.T, args ...string) []transition {
		t.Helper()
		args = append([]string{"--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339)}, args...)
		var res struct {
			Transitions []transition `json:"transitions"`
			Errors      int          `json:"errors"`
		}
		backtestJSON(t, &res, append(args, rulesFile)...)
		if res.Errors != 0 {
			t.Fatalf("backtest %v: %d evaluations failed", args, res.Errors)
		}
		return res.Transitions
	}
	want := backtest(t, "--events", eventsFile)
	// The events must exercise every alert, or agreeing proves little.
	fired := map[string]int{}
	for _, tr := range want {
		if tr.To == "firing" {
			fired[tr.Rule]++
		}
	}
	for _, r := range []string{"TenantErrorRatio", "TenantErrorBurst", "TenantP95High", "TenantP95High1h", "TenantP99High1h",
		"AppP99High5m", "TenantLatencyMax", "TenantLatencyJitter", "TenantVolume1h", "TenantTokens1h"} {
		if fired[r] == 0 {
			t.Errorf("the memory evaluator's backtest never fires %s: change the incidents or the threshold", r)
		}
	}
	if t.Failed() {
		for _, tr := range want {
			t.Log(tr)
		}
		t.FailNow()
	}

	t.Run("backtest on ClickHouse with incremental evaluation gives the memory evaluator's transitions", func(t *testing.T) {
		sameTransitions(t, "incremental", backtest(t, "--config.file", config("incremental.yaml", "")), want)
	})
	t.Run("backtest on ClickHouse with full queries gives the memory evaluator's transitions", func(t *testing.T) {
		sameTransitions(t, "full", backtest(t, "--config.file", config("full.yaml", "  incremental:\n    enabled: false\n")), want)
	})
	t.Run("test rules gives the same results in memory and with --clickhouse, and they are the backtest's", func(t *testing.T) {
		testFile := writeRuleTest(t, dir, rulesFile, start, evs, want)
		memCode, memOut, memErr := runCLI("test", "rules", testFile)
		chCode, chOut, chErr := runCLI("test", "rules", "--clickhouse", "--config.file", config("ruletest.yaml", ""), testFile)
		if memCode != 0 || chCode != 0 || memOut != chOut {
			t.Fatalf("in memory: exit %d\n%s%s\nwith --clickhouse: exit %d\n%s%s", memCode, memOut, memErr, chCode, chOut, chErr)
		}
	})
	t.Run("serve's groups stepping a clock while rows arrive, late ones included, audit the memory evaluator's transitions", func(t *testing.T) {
		db := eventsTable(t, s, "calls", schema, nil)
		conn, err := clickhouse.Open(context.Background(), s.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		cols, err := clickhouse.ReadColumns(context.Background(), conn, "calls")
		if err != nil {
			t.Fatal(err)
		}
		var now time.Time
		clock := func() time.Time { return now }
		src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: "calls", Schema: schema, Columns: cols,
			Incremental: &clickhouse.Incremental{Bucket: time.Minute, LateWindow: 2 * time.Minute, Now: clock, FillSettle: -1}})
		if err != nil {
			t.Fatal(err)
		}
		store := memory.New(schema)
		onServer, onServerAudit := steppedManager(t, src, rulesFile, clock)
		inMemory, inMemoryAudit := steppedManager(t, store, rulesFile, clock)
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].arrives.Before(evs[j].arrives) })
		next := 0
		late, edge := 0, 0
		for now = start; !now.After(end); now = now.Add(time.Minute) {
			// The rows that landed by now, late ones with them.
			var batch []map[string]any
			var mem []memory.Event
			for ; next < len(evs) && !evs[next].arrives.After(now); next++ {
				batch = append(batch, evs[next].row())
				mem = append(mem, evs[next].memory(schema))
				if evs[next].arrives.Sub(evs[next].at) >= time.Minute {
					late++
				}
				if evs[next].arrives.Sub(bucketEnd(evs[next].at)) == 2*time.Minute {
					edge++
				}
			}
			s.InsertJSONEachRow(t, db, "calls", batch)
			store.Add(mem...)
			for _, g := range onServer.Groups() {
				g.Eval(context.Background(), now)
			}
			// serve evaluates once a minute: the value counts a window's
			// first evaluation reads in the background are read by the next.
			src.WaitFills()
			for _, g := range inMemory.Groups() {
				g.Eval(context.Background(), now)
			}
		}
		if late < 100 || edge == 0 {
			t.Fatalf("%d rows landed late, %d of them at the late window's edge: the test needs more", late, edge)
		}
		st := src.IncrementalStats()
		if st.Leaves == 0 || st.QuantileLeaves == 0 {
			t.Errorf("the incremental path did not run: %+v", st)
		}
		t.Logf("%d rows landed late, %d at the late window's edge; incremental path: %+v", late, edge, st)
		sameTransitions(t, "serve", onServerAudit(), inMemoryAudit())
		// Serve, seeing rows as they land, differs from a backtest over
		// them all only where a late row would have changed a past
		// evaluation; the audit must still find the incidents.
		if n := len(inMemoryAudit()); n < len(want)/2 {
			t.Errorf("serve's groups audited %d transitions, the backtest found %d", n, len(want))
		}
	})
}

// steppedManager loads the rules as serve does (a Manager over a querier,
// the coalescer and an audit trail), for a test to evaluate its groups at
// the times it chooses. The function returned reads the audited
// transitions.
func steppedManager(t *testing.T, src engine.LeafSource, rulesFile string, clock func() time.Time) (*engine.Manager, func() []transition) {
	t.Helper()
	var mu sync.Mutex
	var recs []engine.AuditRecord
	querier := engine.NewQuerier(engine.QuerierOptions{Source: src})
	mgr := engine.NewManager(engine.ManagerOptions{
		GroupOptions: engine.GroupOptions{
			Query: querier.QueryWith, Batch: querier.Batch, Coalescer: engine.NewCoalescer(querier), Schema: dsl.DefaultSchema(),
			Audit: engine.AuditorFunc(func(_ context.Context, rs ...engine.AuditRecord) error {
				mu.Lock()
				defer mu.Unlock()
				recs = append(recs, rs...)
				return nil
			}),
		},
		RuleFiles: []string{rulesFile},
		Now:       clock,
	})
	if err := mgr.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return mgr, func() []transition {
		mu.Lock()
		defer mu.Unlock()
		var out []transition
		for _, r := range recs {
			switch r.Kind {
			case engine.AuditPending, engine.AuditFiring, engine.AuditResolved, engine.AuditTier:
				out = append(out, transition{Time: r.Time, Rule: r.Rule, Labels: r.Labels, To: string(r.Kind), Value: r.Value})
			}
		}
		return out
	}
}

// writeRuleTest writes a unit-test file of the rules over the events whose
// expectations are the alerts the backtest found, every 5 minutes and at
// each transition.
func writeRuleTest(t *testing.T, dir, rulesFile string, start time.Time, evs []callEvent, want []transition) string {
	t.Helper()
	type alertKey struct{ rule, labels string }
	var b strings.Builder
	fmt.Fprintf(&b, "rule_files: [%s]\nevaluation_interval: 1m\ntests:\n  - name: three hours of incidents\n    start_timestamp: %d\n    events:\n",
		filepath.Base(rulesFile), start.Unix())
	for _, ev := range evs {
		fmt.Fprintf(&b, "      - {created_at: %s, tenant_id: %s, app_code: %s, model: %s, status: %s, latency_ms: %d, input_tokens: %d, output_tokens: %d}\n",
			ev.at.Format(time.RFC3339), ev.tenant, ev.app, ev.model, ev.status, ev.latency, ev.inTokens, ev.outTokens)
	}
	b.WriteString("    alert_rule_test:\n")
	rules := []string{}
	times := map[time.Time]bool{}
	for _, tr := range want {
		if !slices.Contains(rules, tr.Rule) {
			rules = append(rules, tr.Rule)
		}
		times[tr.Time] = true
	}
	last := want[len(want)-1].Time
	for ts := start; !ts.After(last); ts = ts.Add(5 * time.Minute) {
		times[ts] = true
	}
	sorted := make([]time.Time, 0, len(times))
	for ts := range times {
		sorted = append(sorted, ts)
	}
	slices.SortFunc(sorted, time.Time.Compare)
	state := map[alertKey]transition{}
	i := 0
	for _, ts := range sorted {
		for ; i < len(want) && !want[i].Time.After(ts); i++ {
			tr := want[i]
			labels, _ := json.Marshal(tr.Labels)
			k := alertKey{tr.Rule, string(labels)}
			if tr.To == "firing" || tr.To == "pending" {
				state[k] = tr
			} else {
				delete(state, k)
			}
		}
		for _, rule := range rules {
			fmt.Fprintf(&b, "      - eval_time: %s\n        alertname: %s\n        exp_alerts:", dsl.Duration(ts.Sub(start)), rule)
			var exp []string
			for k, tr := range state {
				if k.rule != rule {
					continue
				}
				labels := map[string]string{}
				for n, v := range tr.Labels {
					if n != "alertname" {
						labels[n] = v
					}
				}
				lj, _ := json.Marshal(labels)
				exp = append(exp, fmt.Sprintf("\n          - exp_labels: %s\n            exp_state: %s", lj, tr.To))
			}
			sort.Strings(exp)
			if len(exp) == 0 {
				b.WriteString(" []")
			}
			b.WriteString(strings.Join(exp, "") + "\n")
		}
	}
	f := filepath.Join(dir, "rules_test.yaml")
	writeFile(t, f, b.String())
	return f
}
