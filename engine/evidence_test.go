package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
)

// evidenceFunc adapts a function to engine.EvidenceSource, counting calls.
type evidenceFunc struct {
	mu    sync.Mutex
	calls int
	f     func(ctx context.Context, q engine.EvidenceQuery) (engine.Evidence, error)
}

func (e *evidenceFunc) Evidence(ctx context.Context, q engine.EvidenceQuery) (engine.Evidence, error) {
	e.mu.Lock()
	e.calls++
	e.mu.Unlock()
	return e.f(ctx, q)
}

func (e *evidenceFunc) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls
}

// firing returns the records of alerts that started firing.
func (a *auditLog) firing() []engine.AuditRecord {
	var out []engine.AuditRecord
	for _, r := range a.Records() {
		if r.Kind == engine.AuditFiring {
			out = append(out, r)
		}
	}
	return out
}

// errorBurst is a rule with evidence over errors per tenant.
const errorBurst = `- alert: ErrorBurst
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 2
  for: 1m
  evidence:
    top: [error_code]
    limit: 2
`

// withCode is an error event of tenant with error_code code.
func withCode(at time.Time, tenant, code string) memory.Event {
	ev := event(at, tenant, "error", 100)
	ev.Labels[5] = code
	return ev
}

func TestEvidenceIsGatheredWhenAnAlertStartsFiring(t *testing.T) {
	var events []memory.Event
	for i, code := range []string{"rate_limited", "rate_limited", "rate_limited", "timeout", "auth"} {
		events = append(events, withCode(t0.Add(-time.Duration(i+1)*time.Second), "acme", code))
	}
	events = append(events, withCode(t0.Add(-time.Second), "globex", "timeout"), event(t0.Add(-time.Second), "acme", "ok", 5))
	store, q := newMemory(events...)
	src := &evidenceFunc{f: store.Evidence}
	n, audit := &notifications{}, &auditLog{}
	g := mustGroup(t, ruleFile("", errorBurst), engine.GroupOptions{Query: q.QueryWith, Notifier: n, Audit: audit, Evidence: src})

	g.Eval(context.Background(), t0)
	if src.count() != 0 || n.count() != 0 {
		t.Fatalf("a pending alert gathered evidence (%d queries) or was sent (%d)", src.count(), n.count())
	}
	g.Eval(context.Background(), t0.Add(time.Minute))
	sent := sentAlerts(n.take())
	if len(sent) != 1 || sent[0].Evidence == nil {
		t.Fatalf("sent %+v, want the firing alert with its evidence", sent)
	}
	ev := sent[0].Evidence
	top := ev.Top[0]
	if ev.Error != "" || ev.Total != 5 || ev.Group["tenant_id"] != "acme" || ev.Leaf != `count_over_time(events{status="error"}[5m])` ||
		len(top.Values) != 2 || top.Values[0].Value != "rate_limited" || top.Values[0].Count != 3 || top.Values[0].Share != 0.6 ||
		top.Values[1].Value != "auth" || top.Other != 1 {
		t.Errorf("evidence %+v, want acme's 5 errors: rate_limited 3 (60%%), auth 1, 1 other", *ev)
	}
	if from, to := ev.From, ev.To; !to.Equal(t0.Add(time.Minute)) || to.Sub(from) != 5*time.Minute {
		t.Errorf("window (%s, %s], want the rule's 5m up to the evaluation", from, to)
	}
	if fr := audit.firing(); len(fr) != 1 || fr[0].Evidence != ev {
		t.Errorf("the firing audit record has evidence %v, want the notification's", fr)
	}
	// A resend carries the same evidence, without asking again.
	g.Eval(context.Background(), t0.Add(3*time.Minute))
	if resent := sentAlerts(n.take()); len(resent) != 1 || resent[0].Evidence != ev || src.count() != 1 {
		t.Errorf("resent %+v after %d evidence queries; want the first evidence, gathered once", resent, src.count())
	}
}

func TestEvidenceNeverHoldsANotificationBack(t *testing.T) {
	events := []memory.Event{withCode(t0.Add(-time.Second), "acme", "x"), withCode(t0.Add(-time.Second), "acme", "x"), withCode(t0.Add(-time.Second), "acme", "x")}
	for _, tc := range []struct {
		name      string
		f         func(ctx context.Context, q engine.EvidenceQuery) (engine.Evidence, error)
		wantError string
	}{
		{"a slow query is given up after the timeout", func(ctx context.Context, _ engine.EvidenceQuery) (engine.Evidence, error) {
			<-ctx.Done()
			return engine.Evidence{}, fmt.Errorf("read: %w", ctx.Err())
		}, "not gathered: the query took longer than 50ms"},
		{"a failed query says so, without the backend's words", func(context.Context, engine.EvidenceQuery) (engine.Evidence, error) {
			return engine.Evidence{}, errors.New("dial clickhouse://default:hunter2@db:9000: refused")
		}, "not gathered: the query failed (see callwatch's log)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, q := newMemory(events...)
			n := &notifications{}
			g := mustGroup(t, ruleFile("", strings.Replace(errorBurst, "  for: 1m\n", "", 1)),
				engine.GroupOptions{Query: q.QueryWith, Notifier: n, Evidence: &evidenceFunc{f: tc.f}, EvidenceTimeout: 50 * time.Millisecond})
			start := time.Now()
			g.Eval(context.Background(), t0)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the evaluation took %s", took)
			}
			sent := sentAlerts(n.take())
			if len(sent) != 1 || sent[0].Evidence == nil || sent[0].Evidence.Error != tc.wantError {
				t.Fatalf("sent %+v, want the alert with evidence error %q", sent, tc.wantError)
			}
		})
	}
}

func TestEvidenceIsBoundedPerEvaluation(t *testing.T) {
	var events []memory.Event
	for i := range 12 {
		for range 3 {
			events = append(events, withCode(t0.Add(-time.Second), fmt.Sprintf("t%02d", i), "x"))
		}
	}
	store, q := newMemory(events...)
	src := &evidenceFunc{f: store.Evidence}
	n := &notifications{}
	g := mustGroup(t, ruleFile("", strings.Replace(errorBurst, "  for: 1m\n", "", 1)), engine.GroupOptions{Query: q.QueryWith, Notifier: n, Evidence: src})
	g.Eval(context.Background(), t0)
	sent := sentAlerts(n.take())
	gathered, skipped := 0, 0
	for _, a := range sent {
		switch {
		case a.Evidence == nil:
			t.Errorf("%s has no evidence at all", a.Labels)
		case a.Evidence.Error == "":
			gathered++
		case strings.Contains(a.Evidence.Error, "more than 10 alerts"):
			skipped++
		}
	}
	if len(sent) != 12 || gathered != 10 || skipped != 2 || src.count() != 10 {
		t.Errorf("%d alerts sent, %d with evidence, %d without, %d queries; want 12, 10, 2, 10", len(sent), gathered, skipped, src.count())
	}
}
