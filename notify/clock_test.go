package notify

import (
	"context"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
)

func TestDispatcherTakesTheInjectedClock(t *testing.T) {
	t0 := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	clock := t0.Add(90 * time.Second)
	rec, log := &recorder{}, &auditLog{}
	d := NewDispatcher(DispatcherOptions{Channels: []*Channel{{Name: "hook", Sender: rec, RatePerMinute: 20}}, Default: []string{"hook"},
		Audit: log, Now: func() time.Time { return clock }})
	stop := run(t, d)
	d.Notify(context.Background(), engine.Notification{Rule: rule, Time: t0, Alerts: []engine.Alert{firingAlert("acme", t0)}})
	waitUntil(t, "the attempt", func() bool { return log.statuses()[engine.NotifySent] == 1 })
	stop()
	for _, r := range log.Records() {
		want := t0 // the intent is dated by its evaluation
		if r.NotifyStatus == engine.NotifySent {
			want = clock // the attempt, by the dispatcher's clock
		}
		if !r.Time.Equal(want) || r.LatencyMs != 0 {
			t.Errorf("%s row at %v, latency %dms; want %v, 0ms", r.NotifyStatus, r.Time, r.LatencyMs, want)
		}
	}
	if sent := d.channels["hook"].limiter.sent; len(sent) != 1 || !sent[0].Equal(clock) {
		t.Errorf("the rate limit counted sends at %v, want one at %v", sent, clock)
	}
}
