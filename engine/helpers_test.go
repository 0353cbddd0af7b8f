package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/testrules"
	"github.com/callwatch/callwatch/rulefmt"
)

// t0 is the first evaluation time of most tests: aligned to the minute.
var t0 = time.Date(2025, 11, 24, 10, 0, 0, 0, time.UTC)

// errQuery is the failure a scripted query returns for the token "err".
var errQuery = errors.New("clickhouse: timeout")

// script is a QueryFunc answering from a table: at start+i·every it returns,
// for each label set, the i-th token of its values. A token is a number, "_"
// (no sample), "err" (the whole query fails) or "nodata" (the whole result is
// empty and marked NoData: no event matched any selector).
type script struct {
	start  time.Time
	every  time.Duration
	series map[string][]string // "k=v,k=v" → tokens

	mu    sync.Mutex
	asked []time.Time
}

func newScript(start time.Time, every time.Duration, series map[string]string) *script {
	s := &script{start: start, every: every, series: map[string][]string{}}
	for l, v := range series {
		s.series[l] = strings.Fields(v)
	}
	return s
}

// Query implements engine.QueryFunc.
func (s *script) Query(_ context.Context, _ *dsl.Expr, ts time.Time, _ engine.SeriesSource) (engine.Result, error) {
	s.mu.Lock()
	s.asked = append(s.asked, ts)
	s.mu.Unlock()
	i := int(ts.Sub(s.start) / s.every)
	res := engine.Result{Statements: []string{"SELECT 1 /* step " + strconv.Itoa(i) + " */"}}
	for l, tokens := range s.series {
		tok := "_"
		if i >= 0 && i < len(tokens) {
			tok = tokens[i]
		}
		switch tok {
		case "_":
		case "err":
			return res, errQuery
		case "nodata":
			return engine.Result{NoData: true, Statements: res.Statements}, nil
		default:
			v, err := strconv.ParseFloat(tok, 64)
			if err != nil {
				panic(fmt.Sprintf("script: bad token %q", tok))
			}
			res.Vector = append(res.Vector, engine.Sample{Labels: parseLabels(l), Value: v})
		}
	}
	return res, nil
}

func (s *script) queried() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.asked...)
}

// parseLabels reads "k=v,k=v".
func parseLabels(s string) labels.Labels {
	if s == "" {
		return labels.EmptyLabels()
	}
	b := labels.NewScratchBuilder(4)
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		b.Add(k, v)
	}
	b.Sort()
	return b.Labels()
}

// ruleFile returns a rule file with one group "g" holding rules.
func ruleFile(groupExtra, rules string) string { return testrules.File(groupExtra, rules) }

// mustGroup parses a rule file holding one group and builds the group.
func mustGroup(t *testing.T, file string, opts engine.GroupOptions) *engine.Group {
	t.Helper()
	specs, err := rulefmt.ParseRuleFile("rules.yaml", []byte(file), rulefmt.LoadOptions{})
	if err != nil {
		t.Fatalf("parse rule file:\n%s\n%v", file, err)
	}
	if len(specs) != 1 {
		t.Fatalf("got %d groups, want 1", len(specs))
	}
	return engine.NewGroup(specs[0], opts)
}

// alertingRule returns the group's alerting rule named name.
func alertingRule(t *testing.T, g *engine.Group, name string) *engine.AlertingRule {
	t.Helper()
	for _, r := range g.Rules() {
		if ar, ok := r.(*engine.AlertingRule); ok && ar.Name() == name {
			return ar
		}
	}
	t.Fatalf("group %s has no alerting rule %q", g.Name(), name)
	return nil
}

// notifications records what a group sends.
type notifications struct {
	mu  sync.Mutex
	got []engine.Notification
}

func (n *notifications) Notify(_ context.Context, x engine.Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x)
}

var _ engine.Notifier = (*notifications)(nil)

// take returns and forgets what was sent so far.
func (n *notifications) take() []engine.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.got
	n.got = nil
	return out
}

func (n *notifications) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.got)
}

// sentAlerts flattens notifications into their alerts.
func sentAlerts(ns []engine.Notification) []engine.Alert {
	var out []engine.Alert
	for _, n := range ns {
		out = append(out, n.Alerts...)
	}
	return out
}

// stateToken is one letter for an alert's state in a step table: P pending,
// F firing, R resolved (inactive, still retained).
func stateToken(a engine.Alert) string {
	switch a.State {
	case engine.StatePending:
		return "P"
	case engine.StateFiring:
		return "F"
	}
	return "R"
}

// newMemory returns a store holding events and a querier over it.
func newMemory(events ...memory.Event) (*memory.Store, *engine.Querier) {
	st := memory.New(dsl.Schema{})
	st.Add(events...)
	return st, engine.NewQuerier(engine.QuerierOptions{Source: st})
}

// event is one call event of the default schema.
func event(at time.Time, tenant, status string, latencyMS float64) memory.Event {
	// Label order of dsl.DefaultSchema: tenant_id, app_code, model, provider, status, error_code.
	return memory.Event{
		Time:   at,
		Labels: []string{tenant, "chat", "gpt-4o", "openai", status, ""},
		Nums:   map[string]float64{"latency_ms": latencyMS, "input_tokens": 10, "output_tokens": 5, "cost": 0.01},
	}
}

// everyMinute returns one event per minute at from, from+1m, ... before to.
func everyMinute(from, to time.Time, tenant, status string) []memory.Event {
	var out []memory.Event
	for at := from; at.Before(to); at = at.Add(time.Minute) {
		out = append(out, event(at, tenant, status, 100))
	}
	return out
}

// fmtF formats a float as Prometheus' API does: shortest, no exponent.
func fmtF(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
