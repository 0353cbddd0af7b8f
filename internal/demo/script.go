package demo

import (
	"fmt"
	"time"
)

// Kind is what goes wrong in an incident.
type Kind string

// The incident kinds.
const (
	// ErrorBurst makes 60% of the tenant's calls fail (upstream_5xx,
	// rate_limited), and its clients retry, so it makes eight times its
	// calls: ErrorBurst counts more than 10 failures in 5 minutes within
	// two minutes even at night, and TenantErrorRatio and
	// TenantErrorRatioNewTenantGrace go pending and fire.
	ErrorBurst Kind = "error_burst"
	// LatencySpike makes 70% of the tenant's calls take several seconds,
	// and its clients retry, so it makes four
	// times its calls: its p95 passes 5 s (TenantP95Latency) within two
	// minutes even at night, TenantP95LatencyTiers goes to critical, and
	// chat's p99 passes 8 s (ChatP99Latency).
	LatencySpike Kind = "latency_spike"
	// CostSurge is a runaway job: an agent loop sending a context of about
	// 110k tokens to claude-sonnet once a second, about ¥2.4 and 110k tokens
	// a second, so the tenant's daily spend and tokens pass TenantCost's
	// and TenantTokenUsage's thresholds within a couple of minutes.
	CostSurge Kind = "cost_surge"
	// Silence stops the tenant's traffic altogether, for rules written with
	// absent_over_time.
	Silence Kind = "silence"
)

// Incident is one scripted problem of one tenant.
type Incident struct {
	Kind   Kind
	Tenant string
	// At is when the incident starts, counted from the start of the
	// generator (or of each round of a looping script).
	At time.Duration
	// For is how long it lasts.
	For time.Duration
}

// String describes the incident for logs.
func (i Incident) String() string {
	return fmt.Sprintf("%s of %s from +%s for %s", i.Kind, i.Tenant, i.At, i.For)
}

// Script is a list of incidents, optionally repeated.
type Script struct {
	Incidents []Incident
	// Every repeats the script with this period; 0 plays it once.
	Every time.Duration
}

// DefaultScript is the demo's loop of 30 minutes. The error burst and the
// latency spike start 20 s in and change their tenant's 5-minute windows
// enough within another 25 s, so with rules.d's one-minute groups the
// per-tenant alerts go pending within two minutes of the start, fire two
// minutes later (their for: 2m) and resolve a few minutes after the
// incident ends, when its calls have left the windows.
func DefaultScript() Script {
	return Script{
		Every: 30 * time.Minute,
		Incidents: []Incident{
			{Kind: ErrorBurst, Tenant: "globex", At: 20 * time.Second, For: 4 * time.Minute},
			{Kind: LatencySpike, Tenant: "acme", At: 20 * time.Second, For: 4 * time.Minute},
			{Kind: CostSurge, Tenant: "umbrella", At: 8 * time.Minute, For: 5 * time.Minute},
			{Kind: Silence, Tenant: "initech", At: 15 * time.Minute, For: 6 * time.Minute},
		},
	}
}

// activeAt returns the incidents in effect at t for a generator started
// at start. Nothing happens before start (the backfill is quiet).
func (s Script) activeAt(start, t time.Time) []Incident {
	off := t.Sub(start)
	if off < 0 || len(s.Incidents) == 0 {
		return nil
	}
	if s.Every > 0 {
		off %= s.Every
	}
	var out []Incident
	for _, i := range s.Incidents {
		if off >= i.At && off < i.At+i.For {
			out = append(out, i)
		}
	}
	return out
}

// Active returns the incidents in effect at t.
func (g *Generator) Active(t time.Time) []Incident { return g.script.activeAt(g.opts.Start, t) }

// effect is how the incidents in effect change one tenant's calls.
type effect struct {
	volume     float64 // factor on the tenant's call rate
	errorRatio float64 // share of failed calls; 0 keeps the usual ratio
	slow       float64 // share of calls hit by a latency spike
	runaway    float64 // a runaway job's calls per second
}

func effects(active []Incident, tenant string) effect {
	e := effect{volume: 1}
	for _, i := range active {
		if i.Tenant != tenant {
			continue
		}
		switch i.Kind {
		case ErrorBurst:
			e.errorRatio = 0.6
			e.volume *= 8
		case LatencySpike:
			e.slow = 0.7
			e.volume *= 4
		case CostSurge:
			e.runaway = 1
		case Silence:
			e.volume, e.runaway = 0, 0
		}
	}
	return e
}
