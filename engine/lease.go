package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// LeaseStore records replica heartbeats and lists the live replicas, by
// one shared clock (the store's).
type LeaseStore interface {
	// Beat records that replica is alive.
	Beat(ctx context.Context, replica string) error
	// Alive returns the replicas whose last beat is at most ttl old.
	Alive(ctx context.Context, ttl time.Duration) ([]string, error)
}

// ElectorOptions configure an Elector.
type ElectorOptions struct {
	Store LeaseStore
	// Replica is this instance's name; it must differ between replicas.
	Replica string
	// Interval is the time between heartbeats (default 5s); TTL how long a
	// replica without a heartbeat still counts as alive (default 3 ×
	// Interval).
	Interval, TTL time.Duration
	// OnElected runs when this replica becomes the sender, before Leader
	// reports it: the place to reload what the previous sender told the
	// channels.
	OnElected func(ctx context.Context)
	// OnChange, when set, is told every change of Leader (for a metric).
	OnChange func(leader bool)
	Logger   *slog.Logger
}

// Elector elects the one replica that sends to direct channels (WeCom,
// webhook, …), which would otherwise receive every message once per
// replica: the live replica with the smallest name. Every replica
// heartbeats into the shared store and reads the live set at each
// interval, so all replicas reach the same answer from the same view; when
// the sender stops, the next one takes over within TTL and, through
// OnElected, re-reads from the audit trail what was already sent, so what
// the old sender had not confirmed is sent (at least once).
//
// When the store cannot be read for longer than TTL, a replica assumes it
// is the sender: during a database outage a duplicate message is better
// than none (the DatasourceDown alert must get out).
type Elector struct {
	opts ElectorOptions

	mu       sync.Mutex
	leader   bool
	lastSeen time.Time // last successful read of the live set
	alive    []string  // the live set of that read, sorted
	stale    bool      // the store has not been read for longer than TTL
}

// NewElector returns an Elector; call Start.
func NewElector(opts ElectorOptions) *Elector {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.TTL <= 0 {
		opts.TTL = 3 * opts.Interval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Elector{opts: opts}
}

// SetOnElected sets OnElected; call it before Start.
func (e *Elector) SetOnElected(f func(ctx context.Context)) { e.opts.OnElected = f }

// Leader reports whether this replica sends to direct channels.
func (e *Elector) Leader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leader
}

// Owner returns the live replica that evaluates the rule group named
// group: rendezvous hashing over the live set, so every replica reaches the
// same answer from the same view, and when a replica dies or joins only the
// groups it owned (or takes) move. Empty before the first successful read
// of the live set.
func (e *Elector) Owner(group string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return owner(e.alive, group)
}

// Owns reports whether this replica evaluates the rule group: it is the
// group's Owner, or the lease store has not been readable for longer than
// TTL (then every replica evaluates every group: during a database outage
// a duplicate is better than a group nobody evaluates).
func (e *Elector) Owns(group string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.alive) == 0 || e.stale {
		return true
	}
	return owner(e.alive, group) == e.opts.Replica
}

// owner is the replica of alive with the highest hash of (replica, group):
// SHA-256, so names that differ in one character still spread evenly.
func owner(alive []string, group string) string {
	best, bestHash := "", uint64(0)
	for _, r := range alive {
		sum := sha256.Sum256([]byte(r + "\x00" + group))
		if x := binary.BigEndian.Uint64(sum[:8]); best == "" || x > bestHash {
			best, bestHash = r, x
		}
	}
	return best
}

// Start runs the first round synchronously, so the replica knows its role
// before it evaluates, then heartbeats every Interval until ctx ends.
func (e *Elector) Start(ctx context.Context) {
	e.Round(ctx, time.Now())
	go func() {
		t := time.NewTicker(e.opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				e.Round(ctx, now)
			}
		}
	}()
}

// Round heartbeats, reads the live replicas and updates the role; now is
// the local time, used only to time a store outage.
func (e *Elector) Round(ctx context.Context, now time.Time) {
	rctx, cancel := context.WithTimeout(ctx, e.opts.Interval)
	err := e.opts.Store.Beat(rctx, e.opts.Replica)
	var alive []string
	if err == nil {
		alive, err = e.opts.Store.Alive(rctx, e.opts.TTL)
	}
	cancel()
	e.mu.Lock()
	was := e.leader
	leader := was
	switch {
	case err == nil:
		e.lastSeen = now
		// Our own beat may not be visible yet to a lagging read: count it.
		if !slices.Contains(alive, e.opts.Replica) {
			alive = append(alive, e.opts.Replica)
		}
		slices.Sort(alive)
		e.alive = alive
		leader = slices.Min(alive) == e.opts.Replica
	case e.lastSeen.IsZero() || now.Sub(e.lastSeen) > e.opts.TTL:
		leader = true
	}
	e.stale = err != nil && (e.lastSeen.IsZero() || now.Sub(e.lastSeen) > e.opts.TTL)
	e.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		e.opts.Logger.Warn("sender election: the lease store failed", "err", err, "sender", leader)
	}
	if leader == was {
		return
	}
	if leader && e.opts.OnElected != nil {
		e.opts.OnElected(ctx)
	}
	e.mu.Lock()
	e.leader = leader
	e.mu.Unlock()
	e.opts.Logger.Info("sender election", "replica", e.opts.Replica, "sender", leader)
	if e.opts.OnChange != nil {
		e.opts.OnChange(leader)
	}
}
