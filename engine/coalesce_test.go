package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// countingSource wraps a leaf source and records the leaves of each call;
// leaves whose text contains fail make the call fail.
type countingSource struct {
	inner engine.LeafSource
	fail  string
	mu    sync.Mutex
	calls [][]string
}

func (c *countingSource) EvalLeaves(ctx context.Context, ts time.Time, leaves []*dsl.Leaf) (engine.LeafResult, error) {
	var keys []string
	for _, l := range leaves {
		keys = append(keys, l.Key())
	}
	c.mu.Lock()
	c.calls = append(c.calls, keys)
	c.mu.Unlock()
	for _, k := range keys {
		if c.fail != "" && strings.Contains(k, c.fail) {
			return engine.LeafResult{}, context.DeadlineExceeded
		}
	}
	return c.inner.EvalLeaves(ctx, ts, leaves)
}

func (c *countingSource) take() [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

// TestCoalescerComputesGroupsDueTogetherOnce: two 1m groups and a 5m group
// evaluated at the same minute compute their leaves in one call when all
// three are due, the 5m group's leaves only at its own times, and a group
// whose shared batch fails (a leaf of another group fails) falls back to
// its own batch.
func TestCoalescerComputesGroupsDueTogetherOnce(t *testing.T) {
	start := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	store, _ := newMemory(everyMinute(start.Add(-time.Hour), start, "t1", "ok")...)
	src := &countingSource{inner: store}
	q := engine.NewQuerier(engine.QuerierOptions{Source: src})
	c := engine.NewCoalescer(q)
	opts := engine.GroupOptions{Query: q.QueryWith, Batch: q.Batch, Coalescer: c}
	group := func(name, interval, expr string) *engine.Group {
		file := strings.Replace(ruleFile("interval: "+interval, "- alert: A\n  expr: "+expr), "name: g", "name: "+name, 1)
		return mustGroup(t, file, opts)
	}
	a := group("a", "1m", "count_over_time(events[5m]) > 0")
	b := group("b", "1m", "count_over_time(events[1h]) > 0")
	slow := group("slow", "5m", "max_over_time(latency_ms[10m]) > 0")
	c.SetGroups([]*engine.Group{a, b, slow})

	ctx := context.Background()
	for _, g := range []*engine.Group{a, b, slow} {
		g.Eval(ctx, start)
	}
	calls := src.take()
	if len(calls) != 1 || len(calls[0]) != 3 {
		t.Fatalf("at a time all three are due: want one call with the 3 leaves, got %v", calls)
	}
	for _, g := range []*engine.Group{a, b} {
		g.Eval(ctx, start.Add(time.Minute))
	}
	if calls := src.take(); len(calls) != 1 || len(calls[0]) != 2 {
		t.Fatalf("a minute later only the 1m groups are due: want one call with their 2 leaves, got %v", calls)
	}
	for _, g := range []*engine.Group{a, b, slow} {
		for _, r := range g.Rules() {
			if st := r.Status(); st.Health != engine.HealthGood {
				t.Errorf("group %s: rule %s: %s %v", g.Name(), r.Name(), st.Health, st.LastError)
			}
		}
	}

	// A leaf of b fails: the shared batch fails, a and b each compute their
	// own, and a stays healthy.
	src.fail = "|3600000000000|" // the 1h window, in the leaf key
	at := start.Add(2 * time.Minute)
	a.Eval(ctx, at)
	b.Eval(ctx, at)
	calls = src.take()
	if len(calls) != 3 {
		t.Fatalf("a failed shared batch: want the shared call and one per group, got %v", calls)
	}
	if st := a.Rules()[0].Status(); st.Health != engine.HealthGood {
		t.Errorf("group a after b's leaf failed: %s %v", st.Health, st.LastError)
	}
	if st := b.Rules()[0].Status(); st.Health != engine.HealthBad {
		t.Errorf("group b with a failing leaf: health %s, want %s", st.Health, engine.HealthBad)
	}
}

// TestCoalescerDropsTheOldestBatchFirst: a coalescer keeps the batches of
// the last few query times. A new time drops the oldest, so a slow group
// still on the time before finds its batch; a random older one once went,
// and with it, at times, that group's batch: another read of the source.
func TestCoalescerDropsTheOldestBatchFirst(t *testing.T) {
	start := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	for run := range 200 {
		store, _ := newMemory(everyMinute(start.Add(-time.Hour), start.Add(10*time.Minute), "t1", "ok")...)
		src := &countingSource{inner: store}
		q := engine.NewQuerier(engine.QuerierOptions{Source: src})
		c := engine.NewCoalescer(q)
		opts := engine.GroupOptions{Query: q.QueryWith, Batch: q.Batch, Coalescer: c}
		group := func(name, expr string) *engine.Group {
			return mustGroup(t, strings.Replace(ruleFile("interval: 1m", "- alert: A\n  expr: "+expr), "name: g", "name: "+name, 1), opts)
		}
		fast, slow := group("fast", "count_over_time(events[5m]) > 0"), group("slow", "count_over_time(events[1h]) > 0")
		c.SetGroups([]*engine.Group{fast, slow})
		for i := range 5 { // one more time than the coalescer keeps
			fast.Eval(context.Background(), start.Add(time.Duration(i)*time.Minute))
		}
		src.take()
		slow.Eval(context.Background(), start.Add(3*time.Minute))
		if calls := src.take(); len(calls) != 0 {
			t.Fatalf("run %d: the slow group read the source again (%v): its batch of the time before was dropped", run, calls)
		}
	}
}
