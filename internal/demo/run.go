package demo

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Sink receives generated events, in time order.
type Sink interface {
	Write(ctx context.Context, events []Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, events []Event) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, events []Event) error { return f(ctx, events) }

var _ Sink = SinkFunc(nil)

// RunOptions configure Run.
type RunOptions struct {
	// Every is the time between two writes (default 1s).
	Every time.Duration
	// Backfill writes the events of this long before now first, so the
	// rules' windows are not empty when the demo starts.
	Backfill time.Duration
	// MaxLag bounds what a failing sink accumulates: when writes have
	// failed for longer, the oldest events are dropped (default 5m).
	MaxLag time.Duration
	// Logger reports failed writes and incidents starting and ending.
	Logger *slog.Logger
}

// Run writes the backfill, then the events of each interval as it ends,
// until ctx is done. A failed write is logged and retried with the next
// interval's events; a failed backfill is returned, since it means the sink
// does not work at all. Run returns nil when ctx ends.
func (g *Generator) Run(ctx context.Context, sink Sink, opts RunOptions) error {
	if opts.Every <= 0 {
		opts.Every = time.Second
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	from := time.Now()
	if opts.Backfill > 0 {
		to := from
		from = to.Add(-opts.Backfill)
		events := g.Generate(from, to)
		if err := sink.Write(ctx, events); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("write %s of backfill: %w", opts.Backfill, err)
		}
		opts.Logger.Info("demo backfill written", "events", len(events), "from", from.UTC(), "to", to.UTC())
		from = to
	}
	var active []Incident
	failing := false
	tick := time.NewTicker(opts.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		to := time.Now()
		active = g.logIncidents(opts.Logger, active, to)
		if lag := to.Sub(from); lag > opts.MaxLag {
			opts.Logger.Warn("demo events dropped: the sink has failed for too long", "dropped", lag-opts.MaxLag)
			from = to.Add(-opts.MaxLag)
		}
		if err := sink.Write(ctx, g.Generate(from, to)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Once per outage, not every second.
			if !failing {
				opts.Logger.Warn("writing demo events failed; retrying with the next batch", "err", err)
			}
			failing = true
			continue
		}
		if failing {
			opts.Logger.Info("writing demo events works again", "since", from.UTC())
		}
		failing = false
		from = to
	}
}

// logIncidents logs the incidents that started or ended since the last
// call and returns those in effect at t.
func (g *Generator) logIncidents(logger *slog.Logger, before []Incident, t time.Time) []Incident {
	now := g.Active(t)
	for _, i := range now {
		if !slices.Contains(before, i) {
			logger.Info("demo incident started", "kind", i.Kind, "tenant", i.Tenant, "duration", i.For)
		}
	}
	for _, i := range before {
		if !slices.Contains(now, i) {
			logger.Info("demo incident ended", "kind", i.Kind, "tenant", i.Tenant)
		}
	}
	return now
}
