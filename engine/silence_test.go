package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
)

func TestSilencesRecordByTheInjectedClock(t *testing.T) {
	t0 := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	clock := t0
	audit := &auditLog{}
	s := engine.NewSilences(engine.SilencesOptions{Audit: audit, Now: func() time.Time { return clock }})
	ms, err := engine.ParseMatchers(`{tenant_id="acme"}`)
	if err != nil {
		t.Fatal(err)
	}
	sil, err := s.Add(context.Background(), engine.Silence{Matchers: ms, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	clock = t0.Add(10 * time.Minute)
	if err := s.Expire(context.Background(), sil.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if r := audit.Records(); len(r) != 2 || !r[0].Time.Equal(t0) || !r[1].Time.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("audit rows %+v; want the silence at %v and its expiry ten minutes later", r, t0)
	}
}
