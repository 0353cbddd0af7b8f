package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// Notification is what an alerting rule has to say at one evaluation: the
// alerts due for sending (firing ones, resent every resend delay, and
// resolved ones during their retention).
type Notification struct {
	Group  string
	Rule   *rulefmt.RuleSpec
	Time   time.Time
	Alerts []Alert
}

// Notifier receives notifications. It must not block evaluation: queue and
// return.
type Notifier interface {
	Notify(ctx context.Context, n Notification)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, n Notification)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n Notification) { f(ctx, n) }

var _ Notifier = NotifierFunc(nil)

// GroupOptions are shared by every group of a manager.
type GroupOptions struct {
	Query QueryFunc
	// Batch, when set, computes the leaves of all the group's rules at once
	// (see Querier.Batch): one query per window and grouping for the whole
	// group instead of one per rule.
	Batch func(ctx context.Context, ts time.Time, exprs []*dsl.Expr) QueryFunc
	// Coalescer, when set with Batch, computes the leaves of all the
	// groups due at the same time together (live evaluations; a replay
	// batches per group).
	Coalescer *Coalescer
	Notifier  Notifier
	Schema    dsl.Schema
	// Limits bound the rules' expressions and the queries of their
	// templates (see dsl.Limits).
	Limits dsl.Limits
	// DefaultInterval applies to groups without an interval (default 1m).
	DefaultInterval time.Duration
	// ResendDelay is the minimum time between resends of a firing alert (default 1m).
	ResendDelay    time.Duration
	ExternalLabels map[string]string
	ExternalURL    *url.URL
	Logger         *slog.Logger
	Metrics        *Metrics
	// Audit receives alert transitions (pending, firing, resolved); nil
	// records nothing.
	Audit Auditor
	// Owns, when set, says whether this replica evaluates the named
	// group (the Elector's Owns): replicas then share the groups instead
	// of each evaluating all (share.go). Nil evaluates every group.
	Owns func(group string) bool
	// Evidence gathers the evidence of rules that ask for it (evidence:)
	// when their alerts start firing; nil gathers none.
	Evidence EvidenceSource
	// EvidenceTimeout bounds the evidence of one rule at one evaluation,
	// so a slow query delays its notifications by at most this much
	// (default 5s); they then go out without it, saying so.
	EvidenceTimeout time.Duration
}

func (o *GroupOptions) applyDefaults() {
	if o.DefaultInterval <= 0 {
		o.DefaultInterval = time.Minute
	}
	if o.ResendDelay <= 0 {
		o.ResendDelay = time.Minute
	}
	if o.EvidenceTimeout <= 0 {
		o.EvidenceTimeout = DefaultEvidenceTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Schema.Time == "" {
		o.Schema = dsl.DefaultSchema()
	}
}

// Rule is an alerting or recording rule. A rule evaluates itself: the
// group loops over its rules without asking which kind each is.
type Rule interface {
	Name() string
	Spec() *rulefmt.RuleSpec
	Status() RuleStatus
	History() []EvalRecord
	// eval evaluates the rule at env.ts and returns what it adds to the
	// group's evaluation. The error, if any, is the rule's failure at this
	// timestamp; out is still meaningful (error_state applies).
	eval(ctx context.Context, env evalEnv) (out ruleOutput, err error)
}

// ruleOutput is what one rule's evaluation adds to its group's.
type ruleOutput struct {
	// alerts are an alerting rule's ALERTS and ALERTS_FOR_STATE samples.
	alerts []promql.Sample
	// record names a recording rule's series; recorded is its result,
	// which the rules after it read at the same timestamp.
	record   string
	recorded []Sample
	// transitions are the state changes of an alerting rule's alerts, in
	// label order, for the audit trail and backtests.
	transitions []Transition
	// due are the alerts to send now (live evaluations only).
	due []Alert
}

var (
	_ Rule = (*AlertingRule)(nil)
	_ Rule = (*RecordingRule)(nil)
)

// Group is a rule group: its rules are evaluated in order at each aligned
// timestamp. Eval is deterministic for a timestamp; the loop around it is thin.
type Group struct {
	// auditReplay says the start-up replay audits the transitions the
	// audit trail lacks (set by the manager when it could read the trail).
	auditReplay bool
	spec        *rulefmt.GroupSpec
	rules       []Rule
	interval    time.Duration
	opts        GroupOptions

	// takeOver, set by the manager, runs when this replica starts
	// evaluating a group another one evaluated (share.go).
	takeOver func(ctx context.Context, g *Group, ts time.Time)

	mu       sync.Mutex
	lastEval time.Time
	lastDur  time.Duration
	alerts   []promql.Sample
	// released says another replica evaluates the group.
	released bool
}

// NewGroup builds a group from its spec.
func NewGroup(spec *rulefmt.GroupSpec, opts GroupOptions) *Group {
	opts.applyDefaults()
	g := &Group{spec: spec, interval: spec.Interval, opts: opts}
	if g.interval <= 0 {
		g.interval = opts.DefaultInterval
	}
	for _, r := range spec.Rules {
		if r.Alert != "" {
			g.rules = append(g.rules, NewAlertingRule(r))
		} else {
			g.rules = append(g.rules, NewRecordingRule(r))
		}
	}
	return g
}

// Name returns the group name; File its rule file.
func (g *Group) Name() string { return g.spec.Name }

// File returns the rule file the group comes from.
func (g *Group) File() string { return g.spec.File }

// Spec returns the group as written.
func (g *Group) Spec() *rulefmt.GroupSpec { return g.spec }

// Interval returns the evaluation interval.
func (g *Group) Interval() time.Duration { return g.interval }

// Rules returns the group's rules in order.
func (g *Group) Rules() []Rule { return g.rules }

// LastEval returns the last evaluation's timestamp and duration.
func (g *Group) LastEval() (time.Time, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastEval, g.lastDur
}

// AlertSamples returns the ALERTS and ALERTS_FOR_STATE samples of the last evaluation.
func (g *Group) AlertSamples() []promql.Sample {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]promql.Sample(nil), g.alerts...)
}

// EvalTimestamp returns the evaluation time at or before now, aligned to the interval.
func (g *Group) EvalTimestamp(now time.Time) time.Time { return now.Truncate(g.interval) }

// recorded serves the outputs of the recording rules evaluated so far at
// this timestamp to the rules after them.
type recorded map[string][]Sample

func (r recorded) Series(name string, _ time.Time) []Sample { return r[name] }

// Eval evaluates every rule at ts and sends what is due.
func (g *Group) Eval(ctx context.Context, ts time.Time) { g.eval(ctx, ts, true) }

// eval evaluates every rule at ts, in order, and returns the transitions
// their alerts made: rule by rule, each rule's in label order. A replay
// (notify false) neither audits nor sends.
func (g *Group) eval(ctx context.Context, ts time.Time, notify bool) (trans []Transition) {
	start := time.Now()
	series := recorded{}
	// A rule reading the output of a recording rule that failed at this
	// timestamp fails too, so its error_state applies: an empty input must
	// not resolve its alerts.
	failed := map[string]error{}
	base := g.opts.Query
	var shared QueryFunc
	if g.opts.Coalescer != nil && notify && g.opts.Batch != nil {
		shared = g.opts.Coalescer.batch(ctx, g, ts)
	}
	switch {
	case shared != nil:
		base = shared
	case g.opts.Batch != nil:
		base = g.opts.Batch(ctx, ts.Add(-g.spec.QueryOffset), g.batchable())
	}
	query := func(ctx context.Context, e *dsl.Expr, ts time.Time, s SeriesSource) (Result, error) {
		for _, name := range e.Series {
			if err := failed[name]; err != nil {
				return Result{}, fmt.Errorf("recording rule %q failed: %w", name, err)
			}
		}
		return base(ctx, e, ts, s)
	}
	env := evalEnv{
		ts: ts, queryTS: ts.Add(-g.spec.QueryOffset), query: query, series: series,
		interval: g.interval, resendDelay: g.opts.ResendDelay, notify: notify,
		limit: g.spec.Limit, groupLabels: g.spec.Labels, externalLabels: g.opts.ExternalLabels,
		externalURL: g.opts.ExternalURL, logger: g.opts.Logger, schema: g.opts.Schema, limits: g.opts.Limits,
		evidence: g.opts.Evidence, evidenceTimeout: g.opts.EvidenceTimeout,
	}
	var alertSamples []promql.Sample
	m := g.opts.Metrics
	for _, rule := range g.rules {
		if ctx.Err() != nil {
			return trans
		}
		m.evalStarted(g)
		out, err := rule.eval(ctx, env)
		if err != nil {
			m.evalFailed(g)
			g.opts.Logger.Warn("evaluating rule failed", "group", g.Name(), "rule", rule.Name(), "err", err)
		}
		alertSamples = append(alertSamples, out.alerts...)
		if out.record != "" {
			if err != nil {
				failed[out.record] = err
			} else {
				series[out.record] = append(series[out.record], out.recorded...)
			}
		}
		for i := range out.transitions {
			out.transitions[i].Group, out.transitions[i].Rule = g.Name(), rule.Name()
		}
		trans = append(trans, out.transitions...)
		switch ar, alerting := rule.(*AlertingRule); {
		case notify:
			g.audit(ctx, rule, out.transitions)
		case g.auditReplay && alerting:
			// The start-up replay audits the transitions the audit
			// trail lacks (an alert that fired while callwatch was down).
			g.audit(ctx, rule, ar.unaudited(out.transitions))
		}
		if len(out.due) > 0 && g.opts.Notifier != nil {
			g.opts.Notifier.Notify(ctx, Notification{Group: g.Name(), Rule: rule.Spec(), Time: ts, Alerts: out.due})
		}
	}
	dur := time.Since(start)
	g.mu.Lock()
	g.lastEval, g.lastDur, g.alerts = ts, dur, alertSamples
	g.mu.Unlock()
	m.groupEvaluated(g, ts, dur)
	g.opts.Logger.Debug("rule group evaluated", "group", g.Name(), "time", ts, "notify", notify, "duration", dur)
	return trans
}

// batchable returns the expressions of the group's rules whose leaves can be
// computed together up front.
func (g *Group) batchable() []*dsl.Expr {
	var out []*dsl.Expr
	for _, r := range g.spec.Rules {
		for _, e := range []*dsl.Expr{r.Expr} {
			if q := r.Quality; q != nil && q.Value != nil {
				e = q.Value
				if q.Count != nil {
					out = append(out, q.Count)
				}
			}
			if e != nil {
				out = append(out, e)
			}
		}
	}
	return out
}

// audit writes the transitions of an evaluation to the audit trail.
func (g *Group) audit(ctx context.Context, r Rule, trans []Transition) {
	if g.opts.Audit == nil || len(trans) == 0 {
		return
	}
	recs := make([]AuditRecord, 0, len(trans))
	for _, t := range trans {
		if t.To == "inactive" {
			continue // a pending alert that never fired is not in the audit trail
		}
		kind := t.kind
		if kind == "" {
			kind = AuditKind(t.To)
		}
		rec := NewAuditRecord(kind, t.Time, g.Name(), r.Spec(), t.alert)
		if kind == AuditTier {
			rec.Reason = "severity " + strings.TrimPrefix(t.From, "firing/") + " → " + strings.TrimPrefix(t.To, "firing/")
		}
		recs = append(recs, rec)
	}
	if err := g.opts.Audit.Record(ctx, recs...); err != nil {
		g.opts.Logger.Error("writing alert transitions to the audit trail failed", "group", g.Name(), "rule", r.Name(), "err", err)
	}
}

// copyState takes over alert state from an old version of the group for
// every rule that did not change.
func (g *Group) copyState(old *Group) {
	oldRules := map[string]*AlertingRule{}
	for _, r := range old.rules {
		if ar, ok := r.(*AlertingRule); ok {
			oldRules[ruleKey(ar.spec)] = ar
		}
	}
	for _, r := range g.rules {
		if ar, ok := r.(*AlertingRule); ok {
			if o := oldRules[ruleKey(ar.spec)]; o != nil {
				ar.copyStateFrom(o)
			}
		}
	}
	old.mu.Lock()
	g.lastEval, g.lastDur, g.alerts, g.released = old.lastEval, old.lastDur, old.alerts, old.released
	old.mu.Unlock()
}

// ruleKey identifies a rule across reloads as Prometheus does: by name
// and labels. An edited threshold keeps the rule's alerts (they resolve,
// and are sent resolved, at the next evaluation if the new expression no
// longer returns them); a longer for moves firing alerts back to pending.
func ruleKey(r *rulefmt.RuleSpec) string {
	return r.Name() + "\x00" + string(r.Severity) + "\x00" + labels.FromMap(r.Labels).String()
}

// Sleep waits d, or less if ctx ends first; it reports whether all of d
// passed. It waits on the wall clock: the injected clocks (ManagerOptions.Now,
// notify's DispatcherOptions.Now) give times, not timers.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		return true
	}
}

// run evaluates the group at every aligned timestamp until ctx ends.
func (g *Group) run(ctx context.Context, now func() time.Time) {
	next := g.EvalTimestamp(now()).Add(g.interval)
	for {
		wait := next.Sub(now())
		if wait > 0 && !Sleep(ctx, wait) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !g.owns() {
			g.release()
			next = g.EvalTimestamp(now()).Add(g.interval)
			continue
		}
		if g.Released() && g.takeOver != nil {
			g.takeOver(ctx, g, next)
		}
		g.Eval(ctx, next)
		// Skip the timestamps an evaluation overran, and count them.
		missed := int64(now().Sub(next)/g.interval) - 0
		if missed > 0 {
			g.opts.Metrics.missed(g, missed)
		}
		next = next.Add(g.interval * time.Duration(missed+1))
	}
}

// replay evaluates the group at past timestamps without notifying, to
// restore for and keep_firing_for state after a restart.
func (g *Group) replay(ctx context.Context, from, to time.Time) int {
	n := 0
	for ts := g.EvalTimestamp(from); !ts.After(to) && ctx.Err() == nil; ts = ts.Add(g.interval) {
		g.eval(ctx, ts, false)
		n++
	}
	return n
}
