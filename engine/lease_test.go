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
