package rulefmt_test

import (
	"testing"

	"github.com/callwatch/callwatch/rulefmt"
)

func TestSeverities(t *testing.T) {
	t.Run("the severities are listed least severe first and ranked in that order", func(t *testing.T) {
		for i, s := range rulefmt.Severities() {
			if s.Rank() != i || !s.Valid() {
				t.Errorf("%s: rank %d, valid %v; want rank %d, valid", s, s.Rank(), s.Valid(), i)
			}
		}
	})
	t.Run("anything else ranks below info and is not valid", func(t *testing.T) {
		for _, s := range []rulefmt.Severity{"", "WARNING", "fatal"} {
			if s.Rank() >= rulefmt.SeverityInfo.Rank() || s.Valid() {
				t.Errorf("%q: rank %d, valid %v", s, s.Rank(), s.Valid())
			}
		}
	})
	t.Run("the replaced service's priorities map to severities", func(t *testing.T) {
		for prio, want := range map[string]rulefmt.Severity{"low": rulefmt.SeverityInfo, "medium": rulefmt.SeverityWarning,
			"high": rulefmt.SeverityError, "critical": rulefmt.SeverityCritical} {
			if got, ok := rulefmt.SeverityOfPriority(prio); !ok || got != want {
				t.Errorf("priority %s: got %q, %v; want %q", prio, got, ok, want)
			}
		}
		if _, ok := rulefmt.SeverityOfPriority("urgent"); ok {
			t.Error("priority urgent was mapped")
		}
	})
}
