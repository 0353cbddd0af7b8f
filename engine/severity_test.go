package engine_test

import (
	"testing"

	"github.com/callwatch/callwatch/engine"
)

func TestSeverities(t *testing.T) {
	t.Run("the severities are listed least severe first and ranked in that order", func(t *testing.T) {
		for i, s := range engine.Severities() {
			if s.Rank() != i || !s.Valid() {
				t.Errorf("%s: rank %d, valid %v; want rank %d, valid", s, s.Rank(), s.Valid(), i)
			}
		}
	})
	t.Run("anything else ranks below info and is not valid", func(t *testing.T) {
		for _, s := range []engine.Severity{"", "WARNING", "fatal"} {
			if s.Rank() >= engine.SeverityInfo.Rank() || s.Valid() {
				t.Errorf("%q: rank %d, valid %v", s, s.Rank(), s.Valid())
			}
		}
	})
	t.Run("the replaced service's priorities map to severities", func(t *testing.T) {
		for prio, want := range map[string]engine.Severity{"low": engine.SeverityInfo, "medium": engine.SeverityWarning,
			"high": engine.SeverityError, "critical": engine.SeverityCritical} {
			if got, ok := engine.SeverityOfPriority(prio); !ok || got != want {
				t.Errorf("priority %s: got %q, %v; want %q", prio, got, ok, want)
			}
		}
		if _, ok := engine.SeverityOfPriority("urgent"); ok {
			t.Error("priority urgent was mapped")
		}
	})
}
