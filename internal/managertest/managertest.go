// Package managertest loads engine managers for tests the way most of them
// want one: over given rule files, reading the time from the test's clock,
// restoring nothing from before it started.
package managertest

import (
	"context"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
)

// Load returns a manager over the rule files ruleFiles (a path or a
// pattern) whose groups evaluate with opts and read the time from now,
// with no state restored (RestoreWindow -1), once its first Load went
// through; a failed Load fails t.
func Load(t testing.TB, ruleFiles string, opts engine.GroupOptions, now func() time.Time) *engine.Manager {
	t.Helper()
	m := engine.NewManager(engine.ManagerOptions{
		GroupOptions:  opts,
		RuleFiles:     []string{ruleFiles},
		RestoreWindow: -1,
		Now:           now,
	})
	if err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}
