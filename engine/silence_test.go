package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

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

// TestSilencesMatchAndListTheSameFromRunToRun: silences are kept in a map.
// Of several silencing one alert, Match names the one that ends last (the
// lowest ID among those that end together) in the audit trail and on the
// status page, and List orders silences that start together by ID; both
// once followed the map.
func TestSilencesMatchAndListTheSameFromRunToRun(t *testing.T) {
	now := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	ms, err := engine.ParseMatchers(`{tenant_id="acme"}`)
	if err != nil {
		t.Fatal(err)
	}
	alert := labels.FromStrings("alertname", "X", "tenant_id", "acme")
	for run := range 30 {
		s := engine.NewSilences(engine.SilencesOptions{Now: func() time.Time { return now }})
		for i, id := range []string{"ddd", "bbb", "ccc", "aaa", "eee"} {
			ends := now.Add(time.Hour)
			switch id {
			case "eee":
				ends = now.Add(time.Minute)
			case "aaa":
				ends = now.Add(-time.Minute) // over
			}
			if _, err := s.Add(context.Background(), engine.Silence{ID: id, Matchers: ms, StartsAt: now.Add(-time.Duration(i%2) * time.Hour), EndsAt: ends, CreatedBy: "op"}); err != nil {
				t.Fatal(err)
			}
		}
		if sil, ok := s.Match(alert, now); !ok || sil.ID != "bbb" {
			t.Fatalf("run %d: Match = %q, %v; want bbb (ends last with ccc and ddd, lowest ID)", run, sil.ID, ok)
		}
		var ids []string
		for _, sil := range s.List(now) {
			ids = append(ids, sil.ID)
		}
		if got := strings.Join(ids, " "); got != "bbb ccc ddd eee" {
			t.Fatalf("run %d: List = %s; want bbb ccc ddd eee (by start, then ID)", run, got)
		}
	}
}
