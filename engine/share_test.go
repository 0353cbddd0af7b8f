package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// TestSharedGroupMovesWithItsEpisode: two replicas share one group through
// Owns. Only the owner evaluates it; when the owner changes, the new one
// takes the group over with the alert's episode from the audit trail: the
// same activeAt and firedAt, no second firing row, and the old owner shows
// nothing.
func TestSharedGroupMovesWithItsEpisode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now().UTC() // 2000-01-01 00:00:00 UTC
		_, q := newMemory(everyMinute(start.Add(-30*time.Second), start.Add(2*time.Hour), "acme", "error")...)
		audit := &auditLog{}
		var mu sync.Mutex
		owner := "a"
		evaluated := map[string]int{}
		f := filepath.Join(t.TempDir(), "rules.yaml")
		writeFile(t, f, ruleFile("interval: 1m", `
- alert: Errors
  expr: sum by (tenant_id) (count_over_time(events{status="error"}[1m])) > 0
  for: 2m`))
		replica := func(name string) (*engine.Manager, *notifications) {
			n := &notifications{}
			query := func(ctx context.Context, e *dsl.Expr, ts time.Time, s engine.SeriesSource) (engine.Result, error) {
				mu.Lock()
				evaluated[name]++
				mu.Unlock()
				return q.QueryWith(ctx, e, ts, s)
			}
			m := engine.NewManager(engine.ManagerOptions{
				GroupOptions: engine.GroupOptions{Query: query, Notifier: n, Audit: audit, Owns: func(string) bool {
					mu.Lock()
					defer mu.Unlock()
					return owner == name
				}},
				AuditReader: audit,
				RuleFiles:   []string{f},
			})
			if err := m.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			return m, n
		}
		a, sentA := replica("a")
		b, sentB := replica("b")
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, m := range []*engine.Manager{a, b} {
			wg.Go(func() {
				m.Run(ctx)
			})
		}
		alerts := func(m *engine.Manager) string {
			var out string
			for _, al := range groupRule(t, m, "Errors").Alerts() {
				out += fmt.Sprintf("%s since %s fired %s;", al.State, al.ActiveAt.Format("15:04"), al.FiredAt.Format("15:04"))
			}
			return out
		}

		time.Sleep(5*time.Minute + 30*time.Second)
		synctest.Wait()
		mu.Lock()
		if evaluated["b"] != 0 || evaluated["a"] == 0 {
			t.Errorf("queries before the move: a %d, b %d; want only a", evaluated["a"], evaluated["b"])
		}
		owner = "b" // a dies, or b joins and the hash picks it
		mu.Unlock()
		if got, want := alerts(a), "firing since 00:00 fired 00:02;"; got != want {
			t.Fatalf("a's alerts before the move %q, want %q", got, want)
		}

		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if got := alerts(a); got != "" {
			t.Errorf("a's alerts after the move %q, want none (b evaluates the group)", got)
		}
		if got, want := alerts(b), "firing since 00:00 fired 00:02;"; got != want {
			t.Errorf("b's alerts after taking over %q, want %q (the episode goes on)", got, want)
		}
		if got, want := audit.rows(), "pending@00:00 firing@00:02"; got != want {
			t.Errorf("audit rows %q, want %q: the move is not a new episode", got, want)
		}
		if sentA.count() == 0 || sentB.count() == 0 {
			t.Errorf("notifications: a %d, b %d; want each to send while it owns the group", sentA.count(), sentB.count())
		}
		for _, g := range a.Groups() {
			if !g.Released() {
				t.Errorf("group %s: a does not show it released", g.Name())
			}
		}
		cancel()
		wg.Wait()
	})
}
