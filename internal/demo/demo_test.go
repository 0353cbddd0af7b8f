package demo

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// quiet is a script without incidents.
var quiet = &Script{}

func TestGenerateIsDeterministic(t *testing.T) {
	start := time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC)
	from, to := start.Add(-time.Minute), start.Add(2*time.Minute)
	events := New(Options{Seed: 7, Start: start}).Generate(from, to)
	if len(events) == 0 {
		t.Fatal("no events")
	}
	t.Run("the same seed gives the same events", func(t *testing.T) {
		again := New(Options{Seed: 7, Start: start}).Generate(from, to)
		if !reflect.DeepEqual(events, again) {
			t.Fatal("two generators with seed 7 differ")
		}
	})
	t.Run("a range cut into batches gives the same events", func(t *testing.T) {
		g := New(Options{Seed: 7, Start: start})
		var batched []Event
		for ts := from; ts.Before(to); ts = ts.Add(1300 * time.Millisecond) {
			batched = append(batched, g.Generate(ts, minTime(ts.Add(1300*time.Millisecond), to))...)
		}
		if !reflect.DeepEqual(events, batched) {
			t.Fatalf("batched: %d events, whole range: %d", len(batched), len(events))
		}
	})
	t.Run("another seed gives other events", func(t *testing.T) {
		other := New(Options{Seed: 8, Start: start}).Generate(from, to)
		if reflect.DeepEqual(events, other) {
			t.Fatal("seeds 7 and 8 gave the same events")
		}
	})
	t.Run("events are sorted and inside the range", func(t *testing.T) {
		for i, e := range events {
			if e.Time.Before(from) || !e.Time.Before(to) || (i > 0 && e.Time.Before(events[i-1].Time)) {
				t.Fatalf("event %d at %s out of order or range", i, e.Time)
			}
		}
	})
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestEventsLookLikeCalls(t *testing.T) {
	start := time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC) // 10:00 in UTC+8
	// A busy platform with many failures, so that every kind shows.
	events := New(Options{Seed: 1, Start: start, Script: quiet, Rate: 20, ErrorRatio: 0.02}).Generate(start, start.Add(10*time.Minute))
	codes := map[string]int{}
	seen := map[string]map[string]bool{"tenant": {}, "app": {}, "model": {}}
	for _, e := range events {
		seen["tenant"][e.TenantID], seen["app"][e.AppCode], seen["model"][e.Model+"/"+e.Provider] = true, true, true
		switch e.Status {
		case "ok":
			if e.ErrorCode != "" || e.OutputTokens == 0 || e.Cost <= 0 {
				t.Fatalf("successful call %+v", e)
			}
		case "error":
			codes[e.ErrorCode]++
			if e.OutputTokens != 0 {
				t.Fatalf("failed call with an answer: %+v", e)
			}
		default:
			t.Fatalf("status %q", e.Status)
		}
		if e.LatencyMs < 1 || e.LatencyMs > 30000 || e.Cost < 0 {
			t.Fatalf("call %+v", e)
		}
	}
	for what, want := range map[string]int{"tenant": 5, "app": 4, "model": 4} {
		if len(seen[what]) != want {
			t.Errorf("%d distinct %ss, want %d: %v", len(seen[what]), what, want, seen[what])
		}
	}
	for _, c := range []string{"rate_limited", "upstream_5xx", "content_filter"} {
		if codes[c] == 0 {
			t.Errorf("no %s errors: %v", c, codes)
		}
	}
}

func TestRatesAndErrors(t *testing.T) {
	t.Run("the daily rhythm averages to the configured rate", func(t *testing.T) {
		g := New(Options{Rate: 20})
		day := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)
		sum, n := 0.0, 0
		lo, hi := math.Inf(1), 0.0
		for ts := day; ts.Before(day.Add(24 * time.Hour)); ts = ts.Add(time.Minute) {
			r := g.Rate(ts)
			sum, n = sum+r, n+1
			lo, hi = math.Min(lo, r), math.Max(hi, r)
		}
		if mean := sum / float64(n); math.Abs(mean-20) > 0.05 {
			t.Fatalf("mean rate over a day %.3f, want 20", mean)
		}
		if lo > 10 || hi < 25 {
			t.Fatalf("rate ranges over [%.1f, %.1f]: no daily rhythm", lo, hi)
		}
	})
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"calls and errors follow the rate at office hours", time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC)},
		{"calls and errors follow the rate at night", time.Date(2025, 11, 24, 19, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Options{Seed: 3, Start: tc.at, Script: quiet, Rate: 20, ErrorRatio: 0.02})
			events := g.Generate(tc.at, tc.at.Add(time.Hour))
			want := 0.0
			for ts := tc.at; ts.Before(tc.at.Add(time.Hour)); ts = ts.Add(time.Second) {
				want += g.Rate(ts)
			}
			if got := float64(len(events)); math.Abs(got-want)/want > 0.03 {
				t.Fatalf("%.0f events in an hour, want %.0f ± 3%%", got, want)
			}
			errs := 0
			for _, e := range events {
				if e.Status == "error" {
					errs++
				}
			}
			if ratio := float64(errs) / float64(len(events)); ratio < 0.017 || ratio > 0.023 {
				t.Fatalf("error ratio %.4f, want 0.02 ± 0.003", ratio)
			}
		})
	}
}

func TestIncidentsChangeTheirTenantOnly(t *testing.T) {
	start := time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC)
	g := New(Options{Seed: 5, Start: start, Rate: 20})
	window := func(from time.Duration, d time.Duration) map[string]*stats {
		out := map[string]*stats{}
		for _, tn := range Tenants() {
			out[tn] = &stats{}
		}
		for _, e := range g.Generate(start.Add(from), start.Add(from+d)) {
			out[e.TenantID].add(e)
		}
		return out
	}
	before := window(-5*time.Minute, 5*time.Minute)
	t.Run("an error burst fails 60% of globex's calls", func(t *testing.T) {
		during := window(time.Minute, 3*time.Minute)
		if r := during["globex"].errorRatio(); r < 0.55 || r > 0.65 {
			t.Fatalf("globex error ratio %.3f during its burst", r)
		}
		if r := during["acme"].errorRatio(); r > 0.04 {
			t.Fatalf("acme error ratio %.3f during globex's burst", r)
		}
	})
	t.Run("a latency spike slows most of acme's calls", func(t *testing.T) {
		during := window(time.Minute, 3*time.Minute)
		if s := during["acme"].slowShare(5000); s < 0.6 {
			t.Fatalf("%.2f of acme's calls over 5 s during its spike", s)
		}
		if s := during["globex"].slowShare(5000); s > 0.03 {
			t.Fatalf("%.2f of globex's calls over 5 s", s)
		}
	})
	t.Run("a cost surge multiplies umbrella's spend", func(t *testing.T) {
		during := window(9*time.Minute, 3*time.Minute)
		if f := during["umbrella"].cost / (before["umbrella"].cost * 3 / 5); f < 6 {
			t.Fatalf("umbrella's spend grew %.1f times during its surge", f)
		}
	})
	t.Run("a silent tenant sends nothing", func(t *testing.T) {
		during := window(16*time.Minute, 4*time.Minute)
		if n := during["initech"].calls; n != 0 {
			t.Fatalf("initech made %d calls while silent", n)
		}
		if during["hooli"].calls == 0 {
			t.Fatal("hooli went silent too")
		}
		if after := window(22*time.Minute, time.Minute); after["initech"].calls == 0 {
			t.Fatal("initech did not come back")
		}
	})
	t.Run("the script repeats every 30 minutes and not before the start", func(t *testing.T) {
		if got := g.Active(start.Add(31 * time.Minute)); len(got) != 2 {
			t.Fatalf("active 31 minutes in: %v", got)
		}
		if got := g.Active(start.Add(-time.Second)); len(got) != 0 {
			t.Fatalf("active before the start: %v", got)
		}
	})
}

type stats struct {
	calls, errors int
	latencies     []float64
	cost          float64
}

func (s *stats) add(e Event) {
	s.calls++
	if e.Status == "error" {
		s.errors++
	}
	s.latencies = append(s.latencies, float64(e.LatencyMs))
	s.cost += e.Cost
}

func (s *stats) errorRatio() float64 { return float64(s.errors) / float64(s.calls) }

func (s *stats) slowShare(ms float64) float64 {
	n := 0
	for _, l := range s.latencies {
		if l > ms {
			n++
		}
	}
	return float64(n) / float64(len(s.latencies))
}

// recorder is a Sink that keeps what it is given and fails while fail > 0.
type recorder struct {
	mu     sync.Mutex
	events []Event
	writes int
	fail   int
}

var _ Sink = (*recorder)(nil)

func (r *recorder) Write(_ context.Context, events []Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	if r.fail > 0 {
		r.fail--
		return errors.New("sink down")
	}
	r.events = append(r.events, events...)
	return nil
}

// startRun runs g into sink in the background; stop cancels the run and
// returns its error.
func startRun(t *testing.T, g *Generator, sink *recorder, opts RunOptions) (stop func() error) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- g.Run(ctx, sink, opts) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestRun(t *testing.T) {
	t.Run("run writes the backfill and then every second, losing nothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			g, sink := New(Options{Seed: 9}), &recorder{}
			stop := startRun(t, g, sink, RunOptions{Backfill: 2 * time.Minute})
			time.Sleep(30*time.Second + time.Millisecond)
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			want := g.Generate(start.Add(-2*time.Minute), start.Add(30*time.Second))
			if sink.writes != 31 || !reflect.DeepEqual(sink.events, want) {
				t.Fatalf("%d writes of %d events, want 31 writes of %d", sink.writes, len(sink.events), len(want))
			}
		})
	})
	t.Run("a failing sink gets the missed events with the next write", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			g, sink := New(Options{Seed: 9}), &recorder{}
			stop := startRun(t, g, sink, RunOptions{})
			time.Sleep(2*time.Second + time.Millisecond)
			sink.mu.Lock()
			sink.fail = 3
			sink.mu.Unlock()
			time.Sleep(8 * time.Second)
			stop()
			want := g.Generate(start, start.Add(10*time.Second))
			if !slices.EqualFunc(sink.events, want, func(a, b Event) bool { return a == b }) {
				t.Fatalf("got %d events, want %d", len(sink.events), len(want))
			}
		})
	})
	t.Run("a failing backfill is an error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			err := New(Options{}).Run(t.Context(), &recorder{fail: 1}, RunOptions{Backfill: time.Minute})
			if err == nil {
				t.Fatal("no error")
			}
		})
	})
}
