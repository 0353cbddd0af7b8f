package notify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/audittest"
	"github.com/callwatch/callwatch/rulefmt"
)

// recorder is a Sender that records batches and fails as scripted.
type recorder struct {
	mu      sync.Mutex
	batches []Batch
	fail    []error // returned by successive calls, then nil
	calls   int
}

func (r *recorder) Send(_ context.Context, b Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if len(r.fail) > 0 {
		err := r.fail[0]
		r.fail = r.fail[1:]
		if err != nil {
			return err
		}
	}
	r.batches = append(r.batches, b)
	return nil
}

func (r *recorder) alerts() (firing, resolved int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range append([]Batch{}, r.batches...) {
		for _, bb := range append([]Batch{b}, b.Digest...) {
			for _, a := range bb.Alerts {
				if a.ResolvedAt.IsZero() {
					firing++
				} else {
					resolved++
				}
			}
		}
	}
	return
}

// auditLog records what the dispatcher writes to the audit trail.
type auditLog struct{ audittest.Log }

func (l *auditLog) statuses() map[string]int {
	m := map[string]int{}
	for _, r := range l.Records() {
		m[r.NotifyStatus]++
	}
	return m
}

var rule = &rulefmt.RuleSpec{Alert: "TenantCost"}

func firingAlert(tenant string, at time.Time) engine.Alert {
	return engine.Alert{State: engine.StateFiring, Labels: labels.FromStrings("alertname", "TenantCost", "tenant_id", tenant), ActiveAt: at, FiredAt: at, Value: 1}
}

func run(_ *testing.T, d *Dispatcher) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx, 5*time.Second); close(done) }()
	return func() { cancel(); <-done }
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDispatcher(t *testing.T) {
	t0 := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

	t.Run("a direct channel hears firing once and resolved once, however often they are due", func(t *testing.T) {
		rec, log := &recorder{}, &auditLog{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "wecom", Sender: rec, Direct: true}}, Default: []string{"wecom"}, Audit: log})
		stop := run(t, d)
		a := firingAlert("acme", t0)
		for i := range 3 { // three resends
			d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(time.Duration(i) * time.Minute), Alerts: []engine.Alert{a}})
		}
		a.State, a.ResolvedAt = engine.StateInactive, t0.Add(5*time.Minute)
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: a.ResolvedAt, Alerts: []engine.Alert{a}})
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: a.ResolvedAt.Add(time.Minute), Alerts: []engine.Alert{a}})
		stop()
		if f, r := rec.alerts(); f != 1 || r != 1 {
			t.Fatalf("sent %d firing and %d resolved, want 1 and 1", f, r)
		}
		if st := log.statuses(); st[engine.NotifyPending] != 2 || st[engine.NotifySent] != 2 {
			t.Fatalf("audit statuses = %v, want 2 pending intents and 2 sent", st)
		}
	})

	t.Run("Alertmanager gets every resend", func(t *testing.T) {
		rec := &recorder{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "am", Sender: rec}}, Default: []string{"am"}})
		stop := run(t, d)
		for i := range 3 {
			d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(time.Duration(i) * time.Minute), Alerts: []engine.Alert{firingAlert("acme", t0)}})
		}
		stop()
		if f, _ := rec.alerts(); f != 3 {
			t.Fatalf("sent %d, want 3", f)
		}
	})

	t.Run("an acknowledged alert is not repeated, and repeat_interval repeats the others", func(t *testing.T) {
		rec := &recorder{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "wecom", Sender: rec, Direct: true, RepeatInterval: time.Hour}}, Default: []string{"wecom"}})
		stop := run(t, d)
		acked, plain := firingAlert("acme", t0), firingAlert("beta", t0)
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0, Alerts: []engine.Alert{acked, plain}})
		acked.AckedBy, acked.AckedAt = "alice", t0.Add(time.Minute)
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(30 * time.Minute), Alerts: []engine.Alert{acked, plain}})
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(61 * time.Minute), Alerts: []engine.Alert{acked, plain}})
		stop()
		if f, _ := rec.alerts(); f != 3 {
			t.Fatalf("sent %d firing, want 3 (both once, then beta repeated after an hour)", f)
		}
	})

	t.Run("a seeded channel does not repeat what it was told before a restart", func(t *testing.T) {
		rec := &recorder{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "wecom", Sender: rec, Direct: true}}, Default: []string{"wecom"}})
		told := firingAlert("acme", t0)
		d.Seed([]engine.SentState{{Channel: "wecom", Fingerprint: engine.FingerprintString(told.Fingerprint()), State: "firing", At: t0}})
		stop := run(t, d)
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(time.Minute), Alerts: []engine.Alert{told, firingAlert("beta", t0)}})
		stop()
		if f, _ := rec.alerts(); f != 1 {
			t.Fatalf("sent %d, want only the alert never announced", f)
		}
	})

	t.Run("retryable failures are retried with backoff, permanent ones are not", func(t *testing.T) {
		rec := &recorder{fail: []error{Retryable(errors.New("HTTP 502")), Retryable(errors.New("timeout"))}}
		perm := &recorder{fail: []error{errors.New("HTTP 400")}}
		log := &auditLog{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "a", Sender: rec}, {Name: "b", Sender: perm}},
			Default: []string{"a", "b"}, Audit: log, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond})
		stop := run(t, d)
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0, Alerts: []engine.Alert{firingAlert("acme", t0)}})
		waitUntil(t, "the third attempt", func() bool { f, _ := rec.alerts(); return f == 1 })
		stop()
		if rec.calls != 3 || perm.calls != 1 {
			t.Fatalf("calls: retryable channel %d (want 3), permanent %d (want 1)", rec.calls, perm.calls)
		}
		if st := log.statuses(); st[engine.NotifyFailed] != 3 || st[engine.NotifySent] != 1 {
			t.Fatalf("audit = %v, want 3 failed attempts and 1 sent", st)
		}
	})

	t.Run("a failing channel does not hold up the others", func(t *testing.T) {
		block := make(chan struct{})
		slow := SenderFunc(func(ctx context.Context, _ Batch) error {
			select {
			case <-block:
			case <-ctx.Done():
			}
			return nil
		})
		fast := &recorder{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "slow", Sender: slow}, {Name: "fast", Sender: fast}}, Default: []string{"slow", "fast"}})
		stop := run(t, d)
		for i := range 5 {
			d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(time.Duration(i) * time.Minute), Alerts: []engine.Alert{firingAlert("acme", t0)}})
		}
		waitUntil(t, "the fast channel", func() bool { f, _ := fast.alerts(); return f == 5 })
		close(block)
		stop()
	})

	t.Run("a full queue drops the oldest and counts it; Notify never blocks", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "x", Sender: &recorder{}}}, Default: []string{"x"}, QueueSize: 2, Registerer: reg})
		// No Run: nothing drains the queue.
		done := make(chan struct{})
		go func() {
			for i := range 5 {
				d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(time.Duration(i) * time.Minute), Alerts: []engine.Alert{firingAlert("acme", t0)}})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatal("Notify blocked on a full queue")
		}
		if got := counterValue(t, reg, "callwatch_notifications_dropped_total"); got != 3 {
			t.Fatalf("dropped = %v, want 3", got)
		}
	})

	t.Run("a rate-limited channel folds its backlog into one digest", func(t *testing.T) {
		rec := &recorder{}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "wecom", Sender: rec, RatePerMinute: 1}}, Default: []string{"wecom"}})
		q := d.channels["wecom"]
		q.limiter.wait(time.Now()) // the minute's only slot is used
		q.limiter.sent[0] = time.Now().Add(-time.Minute + 50*time.Millisecond)
		stop := run(t, d)
		for i := range 4 {
			d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0.Add(time.Duration(i) * time.Minute), Alerts: []engine.Alert{firingAlert("acme", t0)}})
		}
		waitUntil(t, "the digest", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.batches) == 1 })
		stop()
		if n := len(rec.batches[0].Digest); n != 4 {
			t.Fatalf("digest holds %d batches, want 4", n)
		}
	})

	t.Run("a silenced alert is skipped on every channel and audited as skipped", func(t *testing.T) {
		rec, log := &recorder{}, &auditLog{}
		sil := engine.NewSilences(engine.SilencesOptions{})
		ms, _ := engine.ParseMatchers(`{tenant_id="acme"}`)
		if _, err := sil.Add(context.Background(), engine.Silence{Matchers: ms, StartsAt: t0.Add(-time.Hour), EndsAt: t0.Add(time.Hour), CreatedBy: "bob"}); err != nil {
			t.Fatal(err)
		}
		d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "am", Sender: rec}}, Default: []string{"am"}, Audit: log, Silences: sil})
		stop := run(t, d)
		d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0, Alerts: []engine.Alert{firingAlert("acme", t0), firingAlert("beta", t0)}})
		stop()
		if f, _ := rec.alerts(); f != 1 {
			t.Fatalf("sent %d, want only beta", f)
		}
		if st := log.statuses(); st[engine.NotifySkipped] != 1 {
			t.Fatalf("audit = %v, want one skipped", st)
		}
	})
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
