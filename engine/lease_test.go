package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeLease is a LeaseStore in memory with a settable clock and failure.
type fakeLease struct {
	mu    sync.Mutex
	now   time.Time
	beats map[string]time.Time
	err   error
}

var _ LeaseStore = (*fakeLease)(nil)

func (f *fakeLease) Beat(_ context.Context, r string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.beats[r] = f.now
	return nil
}

func (f *fakeLease) Alive(_ context.Context, ttl time.Duration) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []string
	for r, at := range f.beats {
		if f.now.Sub(at) <= ttl {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out, nil
}

func TestElector(t *testing.T) {
	t0 := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	store := &fakeLease{now: t0, beats: map[string]time.Time{}}
	elected := map[string]int{}
	mk := func(name string) *Elector {
		return NewElector(ElectorOptions{Store: store, Replica: name, Interval: time.Second, TTL: 3 * time.Second,
			OnElected: func(context.Context) { elected[name]++ }})
	}
	a, b := mk("a"), mk("b")
	ctx := context.Background()
	round := func(at time.Time, es ...*Elector) {
		store.now = at
		for _, e := range es {
			e.Round(ctx, at)
		}
	}
	round(t0, a, b)
	t.Run("the live replica with the smallest name sends", func(t *testing.T) {
		if !a.Leader() || b.Leader() {
			t.Fatalf("a %v, b %v; want a only", a.Leader(), b.Leader())
		}
	})
	t.Run("when the sender stops, the next takes over after the TTL and is told", func(t *testing.T) {
		for k := 1; k <= 3; k++ {
			round(t0.Add(time.Duration(k)*time.Second), b)
			if b.Leader() {
				t.Fatalf("b took over %ds after a's last beat, within the TTL", k)
			}
		}
		round(t0.Add(4*time.Second), b)
		if !b.Leader() || elected["b"] != 1 {
			t.Fatalf("b leader %v, elected %d times; want true, 1", b.Leader(), elected["b"])
		}
	})
	t.Run("a returning sender takes its role back and the other steps down", func(t *testing.T) {
		round(t0.Add(5*time.Second), a, b)
		if !a.Leader() || b.Leader() {
			t.Fatalf("a %v, b %v; want a only", a.Leader(), b.Leader())
		}
	})
	t.Run("a store outage longer than the TTL makes every replica send", func(t *testing.T) {
		store.err = errors.New("connection refused")
		round(t0.Add(7*time.Second), a, b)
		if b.Leader() {
			t.Fatal("b sends 2s into the outage, within the TTL")
		}
		round(t0.Add(9*time.Second), a, b)
		if !a.Leader() || !b.Leader() {
			t.Fatalf("after the TTL: a %v, b %v; want both (a duplicate beats a lost alert)", a.Leader(), b.Leader())
		}
		store.err = nil
		round(t0.Add(10*time.Second), a, b)
		if !a.Leader() || b.Leader() {
			t.Fatalf("after the outage: a %v, b %v; want a only", a.Leader(), b.Leader())
		}
	})
}

func TestElectorSharesGroups(t *testing.T) {
	t0 := time.Date(2025, 11, 24, 12, 0, 0, 0, time.UTC)
	store := &fakeLease{now: t0, beats: map[string]time.Time{}}
	mk := func(name string) *Elector {
		return NewElector(ElectorOptions{Store: store, Replica: name, Interval: time.Second, TTL: 3 * time.Second})
	}
	es := []*Elector{mk("callwatch-a"), mk("callwatch-b"), mk("callwatch-c")}
	ctx := context.Background()
	for _, e := range es {
		e.Round(ctx, t0)
	}
	for _, e := range es { // every replica sees the others
		e.Round(ctx, t0)
	}
	groups := make([]string, 60)
	for i := range groups {
		groups[i] = "tenant-group-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	owners := map[string]string{}
	count := map[string]int{}
	for _, g := range groups {
		n := 0
		for _, e := range es {
			if e.Owns(g) {
				n++
				owners[g] = e.opts.Replica
			}
		}
		if n != 1 {
			t.Fatalf("group %s is owned by %d replicas, want exactly 1", g, n)
		}
		if o := es[0].Owner(g); o != owners[g] || es[1].Owner(g) != o {
			t.Fatalf("replicas disagree on %s's owner: %s vs %s", g, es[0].Owner(g), owners[g])
		}
		count[owners[g]]++
	}
	for _, e := range es {
		if c := count[e.opts.Replica]; c < 10 {
			t.Errorf("%s owns %d of 60 groups, want a fair share (the hash spreads): %v", e.opts.Replica, c, count)
		}
	}
	// c dies: after the TTL only its groups move.
	late := t0.Add(5 * time.Second)
	store.now = late
	for range 2 { // both beat, then both read
		es[0].Round(ctx, late)
		es[1].Round(ctx, late)
	}
	for _, g := range groups {
		now := es[0].Owner(g)
		if owners[g] != "callwatch-c" && now != owners[g] {
			t.Errorf("group %s moved from %s to %s although %s is alive", g, owners[g], now, owners[g])
		}
		if now == "callwatch-c" {
			t.Errorf("group %s still owned by the dead replica", g)
		}
	}
	// The store unreadable for longer than the TTL: every replica
	// evaluates every group (a duplicate is better than none).
	store.err = errors.New("clickhouse down")
	store.now = late.Add(10 * time.Second)
	es[0].Round(ctx, late.Add(10*time.Second))
	for _, g := range groups {
		if !es[0].Owns(g) {
			t.Fatalf("with the lease store down, a does not evaluate %s", g)
		}
	}
}

// TestOwnerSpreadsNearNames: replica and group names a character apart
// (a, b; t1 … t6) still spread: a weak hash gave every group to b.
func TestOwnerSpreadsNearNames(t *testing.T) {
	count := map[string]int{}
	for i := 1; i <= 12; i++ {
		count[owner([]string{"a", "b"}, "t"+string(rune('0'+i%10))+string(rune('a'+i/10)))]++
	}
	if count["a"] < 3 || count["b"] < 3 {
		t.Errorf("owners of 12 near group names: %v, want both replicas to have a share", count)
	}
}
