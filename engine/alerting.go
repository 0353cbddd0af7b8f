package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/template"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/rulefmt"
)

// resolvedRetention is how long a resolved alert is kept, and re-sent, so a
// lost resolve notification is repeated (Prometheus' value).
const resolvedRetention = 15 * time.Minute

// AlertState is the state of one alert.
type AlertState int

// The alert states, ordered.
const (
	StateInactive AlertState = iota
	StatePending
	StateFiring
)

func (s AlertState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	}
	return "inactive"
}

// ReasonLabel marks the alert an alerting rule raises for no data or a
// failed query when its no_data_state or error_state is "alerting".
const ReasonLabel = "callwatch_reason"

// Alert is one instance of an alerting rule: one label set.
type Alert struct {
	State       AlertState
	Labels      labels.Labels
	Annotations labels.Labels
	// Value is the expression's value at the last evaluation.
	Value float64
	// sample are the labels of the query result the alert came from,
	// before the rule's labels were added.
	sample labels.Labels

	ActiveAt, FiredAt, ResolvedAt time.Time
	LastSentAt, ValidUntil        time.Time
	KeepFiringSince               time.Time

	// Suppressed says why notifications of this alert are held back
	// (cooldown, max_alerts_per_day); empty when they are not.
	Suppressed string

	// AckedBy, AckedAt and AckComment record an acknowledgement: direct
	// channels stop repeating the alert until it changes state.
	AckedBy    string
	AckedAt    time.Time
	AckComment string

	// Reason says why the alert's state is being kept rather than judged
	// (below min_events, no data), for rules with noise controls.
	Reason string

	// Evidence is what explains the alert, gathered when it started
	// firing (a rule's evidence:); nil for a rule without it.
	Evidence *Evidence
}

// Fingerprint identifies the alert by its labels (without the severity,
// which a rule with tiers changes as the alert moves between them).
func (a *Alert) Fingerprint() uint64 { h, _ := a.Labels.HashWithoutLabels(nil, "severity"); return h }

func (a *Alert) needsSending(ts time.Time, resendDelay time.Duration) bool {
	if a.State == StatePending || a.Suppressed != "" {
		return false
	}
	if a.ResolvedAt.After(a.LastSentAt) {
		return true
	}
	return a.LastSentAt.Add(resendDelay).Before(ts)
}

// RuleHealth is the outcome of a rule's last evaluation.
type RuleHealth string

// Rule health values, as Prometheus names them.
const (
	HealthUnknown RuleHealth = "unknown"
	HealthGood    RuleHealth = "ok"
	HealthBad     RuleHealth = "err"
)

// RuleStatus is the outcome of a rule's last evaluation, as Prometheus'
// rules report it: health, the evaluation's error, when it ran and how long
// it took.
type RuleStatus struct {
	// Health is HealthUnknown until the rule is first evaluated.
	Health RuleHealth
	// LastError is the last evaluation's failure, nil when it succeeded.
	LastError error
	// LastEval is when the last evaluation ran (zero before the first).
	LastEval time.Time
	// EvalDuration is how long the last evaluation took.
	EvalDuration time.Duration
}

// EvalRecord is one evaluation of a rule, kept for the debug API.
type EvalRecord struct {
	Time     time.Time     `json:"time"`
	Duration time.Duration `json:"duration"`
	Samples  int           `json:"samples"`
	NoData   bool          `json:"noData,omitempty"`
	// Held counts the groups of a rule with noise controls that were not
	// judged, by reason (below min_events, grace, no data).
	Held       map[string]int `json:"held,omitempty"`
	Err        string         `json:"error,omitempty"`
	Statements []string       `json:"statements,omitempty"`
	// Paths say how each leaf was computed: full or incremental, and why.
	Paths []LeafPath `json:"paths,omitempty"`
}

// ruleState is what alerting and recording rules share: health and the
// ring of last evaluations.
type ruleState struct {
	mu         sync.Mutex
	health     RuleHealth
	lastErr    error
	lastEval   time.Time
	evalDur    time.Duration
	history    []EvalRecord
	historyLen int
}

func (s *ruleState) record(rec EvalRecord, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastEval, s.evalDur, s.lastErr = rec.Time, rec.Duration, err
	s.health = HealthGood
	if err != nil {
		s.health = HealthBad
		rec.Err = err.Error()
	}
	if s.historyLen <= 0 {
		s.historyLen = 20
	}
	s.history = append(s.history, rec)
	if len(s.history) > s.historyLen {
		s.history = s.history[len(s.history)-s.historyLen:]
	}
}

// Status returns the outcome of the rule's last evaluation.
func (s *ruleState) Status() RuleStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	if h == "" {
		h = HealthUnknown
	}
	return RuleStatus{Health: h, LastError: s.lastErr, LastEval: s.lastEval, EvalDuration: s.evalDur}
}

// History returns the last evaluations, oldest first.
func (s *ruleState) History() []EvalRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]EvalRecord(nil), s.history...)
}

// QueryFunc evaluates an expression at ts, reading earlier recording rules'
// outputs from series. *Querier.QueryWith is one.
type QueryFunc func(ctx context.Context, e *dsl.Expr, ts time.Time, series SeriesSource) (Result, error)

// evalEnv is what a group passes to its rules for one evaluation.
type evalEnv struct {
	ts, queryTS    time.Time
	interval       time.Duration
	resendDelay    time.Duration
	notify         bool // a live evaluation, not a replay
	query          QueryFunc
	series         SeriesSource
	limit          int
	groupLabels    map[string]string
	externalLabels map[string]string
	externalURL    *url.URL
	logger         *slog.Logger
	schema         dsl.Schema
	limits         dsl.Limits
	// evidence gathers rules' evidence, within evidenceTimeout per rule
	// and evaluation; nil gathers none.
	evidence        EvidenceSource
	evidenceTimeout time.Duration
}

// AlertingRule turns the result of its expression into alerts, with
// Prometheus' semantics (pending → firing after for, keep_firing_for,
// resolved alerts kept 15 minutes) and callwatch's controls.
type AlertingRule struct {
	ruleState
	spec *rulefmt.RuleSpec
	// labelKeys and annotationKeys are the names of spec's labels and
	// annotations, sorted: their templates are expanded in that order (as
	// Prometheus does), so the queries they make come in the same order at
	// every evaluation.
	labelKeys, annotationKeys []string

	mu     sync.Mutex
	active map[uint64]*Alert
	// firings are the times alerts of this rule started firing, for
	// cooldown and max_alerts_per_day.
	firings []time.Time
	// transitions are the state changes of the last evaluation, for the
	// audit trail.
	transitions []Transition
	// groups are the groups a rule with noise controls has seen.
	groups map[uint64]*groupState
	// episodes are the alerts' last transitions in the audit trail, read
	// at start and settled at the first healthy live evaluation;
	// auditedUpTo the time of each alert's last row there, before which a
	// replayed transition is not audited again (episodes.go).
	episodes    map[uint64]episode
	auditedUpTo map[uint64]time.Time
}

// NewAlertingRule returns an alerting rule for spec.
func NewAlertingRule(spec *rulefmt.RuleSpec) *AlertingRule {
	return &AlertingRule{spec: spec, active: map[uint64]*Alert{},
		labelKeys: slices.Sorted(maps.Keys(spec.Labels)), annotationKeys: slices.Sorted(maps.Keys(spec.Annotations))}
}

// Spec returns the rule as written.
func (r *AlertingRule) Spec() *rulefmt.RuleSpec { return r.spec }

// Name returns the alert name.
func (r *AlertingRule) Name() string { return r.spec.Alert }

// Alerts returns copies of the rule's alerts (pending, firing, and resolved
// ones still retained), sorted by labels.
func (r *AlertingRule) Alerts() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Alert, 0, len(r.active))
	for _, a := range r.active {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels, out[j].Labels) < 0 })
	return out
}

// State returns the highest state of the rule's active alerts.
func (r *AlertingRule) State() AlertState {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := StateInactive
	for _, a := range r.active {
		if a.State > s {
			s = a.State
		}
	}
	return s
}

// eval evaluates the rule at env.ts: it updates the rule's alerts and
// returns their ALERTS and ALERTS_FOR_STATE samples, the transitions they
// made, in label order, and, on a live evaluation, the alerts due for
// sending.
func (r *AlertingRule) eval(ctx context.Context, env evalEnv) (ruleOutput, error) {
	samples, err := r.evalAlerts(ctx, env)
	out := ruleOutput{alerts: samples, transitions: r.takeTransitions()}
	slices.SortStableFunc(out.transitions, func(a, b Transition) int { return labels.Compare(a.Labels, b.Labels) })
	r.gatherEvidence(ctx, env, out.transitions)
	// A replay sends nothing, so it must not mark alerts as sent either:
	// what is due goes out at the first live evaluation.
	if env.notify {
		out.due = r.due(env.ts, env.resendDelay, env.interval)
	}
	return out, err
}

// evalAlerts queries the rule's expression at env.ts and updates its alerts.
// It returns the ALERTS and ALERTS_FOR_STATE samples.
func (r *AlertingRule) evalAlerts(ctx context.Context, env evalEnv) ([]promql.Sample, error) {
	start := time.Now()
	q := r.spec.Quality
	judged := q != nil && q.Value != nil
	expr := r.spec.Expr
	if judged {
		expr = q.Value
	}
	res, err := env.query(ctx, expr, env.queryTS, env.series)
	var held map[string]int
	if err == nil && judged {
		var counts []Sample
		if q.Count != nil {
			cres, cerr := env.query(ctx, q.Count, env.queryTS, env.series)
			res.Statements = append(res.Statements, cres.Statements...)
			err = cerr
			counts = cres.Vector
		}
		if err == nil {
			res.Vector, held = r.judge(env.ts, res.Vector, counts)
			res.NoData = false // judged per group
		}
	}
	rec := EvalRecord{Time: env.ts, Statements: res.Statements, Paths: res.Paths, NoData: err == nil && res.NoData, Held: held}
	defer func() {
		rec.Duration = time.Since(start)
		r.record(rec, err)
	}()
	vec := res.Vector
	switch {
	case err != nil:
		if r.spec.Debug {
			env.logger.Info("rule evaluation failed", "rule", r.Name(), "err", err)
		}
		switch r.spec.ErrorState {
		case rulefmt.KeepLast:
			return r.alertSamples(env.queryTS), err
		case rulefmt.OK:
			vec = nil
		case rulefmt.Alerting:
			vec = r.keptWith("error")
		}
	case res.NoData:
		switch r.spec.NoDataState {
		case rulefmt.KeepLast:
			return r.alertSamples(env.queryTS), nil
		case rulefmt.Alerting:
			vec = r.keptWith("no_data")
		}
	}
	rec.Samples = len(vec)
	if r.spec.Debug {
		env.logger.Info("rule evaluated", "rule", r.Name(), "time", env.ts, "samples", len(vec), "no_data", res.NoData)
	}
	if aerr := r.apply(ctx, env, vec); aerr != nil {
		err = aerr
		return nil, err
	}
	if env.notify && err == nil && len(held) == 0 {
		// The first healthy live evaluation after a start: the episodes
		// no alert continued ended while callwatch was down.
		r.mu.Lock()
		if r.episodes != nil {
			r.settleEpisodes(env.ts)
		}
		r.mu.Unlock()
	}
	return r.alertSamples(env.queryTS), err
}

// keptWith returns samples that keep every active alert as it is and add
// one alert marked with reason.
func (r *AlertingRule) keptWith(reason string) []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Sample
	for _, a := range r.active {
		if a.State != StateInactive && a.sample.Get(ReasonLabel) == "" {
			out = append(out, Sample{Labels: a.sample, Value: a.Value})
		}
	}
	// By labels, as a query's vector: their templates expand in that order.
	slices.SortFunc(out, func(a, b Sample) int { return labels.Compare(a.Labels, b.Labels) })
	return append(out, Sample{Labels: labels.FromStrings(ReasonLabel, reason), Value: math.NaN()})
}

// apply runs Prometheus' alert state machine on the query result.
func (r *AlertingRule) apply(ctx context.Context, env evalEnv, vec []Sample) error {
	ts := env.ts
	fresh := make(map[uint64]*Alert, len(vec))
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, s := range vec {
		expand := func(text string) string { return r.expand(ctx, env, alertData{labels: s.Labels, value: s.Value}, text) }
		lb.Reset(s.Labels)
		lb.Del(model.MetricNameLabel)
		for k, v := range env.groupLabels {
			lb.Set(k, v)
		}
		if r.spec.Severity != "" {
			lb.Set("severity", string(r.spec.Severity))
		}
		for _, k := range r.labelKeys {
			lb.Set(k, expand(r.spec.Labels[k]))
		}
		lb.Set(labels.AlertName, r.Name())
		sb := labels.NewScratchBuilder(len(r.spec.Annotations))
		for _, k := range r.annotationKeys {
			sb.Add(k, expand(r.spec.Annotations[k]))
		}
		sb.Sort()
		lset := lb.Labels()
		h := r.identity(lset)
		if _, dup := fresh[h]; dup {
			return fmt.Errorf("vector contains metrics with the same labelset after applying alert labels: %s", lset)
		}
		fresh[h] = &Alert{Labels: lset, Annotations: sb.Labels(), ActiveAt: ts, State: StatePending, Value: s.Value, sample: s.Labels}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	for h, a := range fresh {
		if old, ok := r.active[h]; ok && old.State != StateInactive {
			if from, to := old.Labels.Get("severity"), a.Labels.Get("severity"); from != to {
				// A tier change is a transition of the same alert.
				old.Labels = a.Labels
				old.LastSentAt = time.Time{} // sent at once
				if old.State == StateFiring {
					r.transitions = append(r.transitions, Transition{Time: ts, Labels: a.Labels, From: "firing/" + from, To: "firing/" + to, Value: a.Value, alert: *old, kind: AuditTier})
				}
			}
			old.Value, old.Annotations, old.sample = a.Value, a.Annotations, a.sample
			continue
		}
		r.active[h] = a
		if r.continueEpisode(h, a, ts) {
			continue // the audit trail's episode goes on: not a new alert
		}
		if r.spec.For > 0 {
			r.transitions = append(r.transitions, Transition{Time: ts, Labels: a.Labels, From: "inactive", To: "pending", Value: a.Value, alert: *a})
		}
	}
	numActive := 0
	var fired []*Alert
	for h, a := range r.active {
		if _, ok := fresh[h]; !ok {
			keepFiring := false
			if a.State == StateFiring && r.spec.KeepFiringFor > 0 {
				if a.KeepFiringSince.IsZero() {
					a.KeepFiringSince = ts
				}
				keepFiring = ts.Sub(a.KeepFiringSince) < r.spec.KeepFiringFor
			}
			if a.State == StatePending || (!a.ResolvedAt.IsZero() && ts.Sub(a.ResolvedAt) > resolvedRetention) {
				delete(r.active, h)
			}
			if a.State != StateInactive && !keepFiring {
				switch a.State {
				case StateFiring:
					r.transitions = append(r.transitions, Transition{Time: ts, Labels: a.Labels, From: "firing", To: "resolved", Value: a.Value, alert: *a})
				case StatePending:
					r.transitions = append(r.transitions, Transition{Time: ts, Labels: a.Labels, From: "pending", To: "inactive", Value: a.Value, alert: *a})
				}
				a.State = StateInactive
				a.ResolvedAt = ts
			}
			if !keepFiring {
				continue
			}
		} else {
			a.KeepFiringSince = time.Time{}
		}
		numActive++
		if a.State == StatePending && ts.Sub(a.ActiveAt) >= r.spec.For {
			a.State = StateFiring
			a.FiredAt = ts
			fired = append(fired, a)
		}
		// A reload that lengthened for moves a firing alert back to pending.
		if a.State == StateFiring && ts.Sub(a.ActiveAt) < r.spec.For {
			a.State = StatePending
			a.FiredAt, a.LastSentAt, a.KeepFiringSince = time.Time{}, time.Time{}, time.Time{}
		}
	}
	if env.limit > 0 && numActive > env.limit {
		r.active = map[uint64]*Alert{}
		return fmt.Errorf("exceeded limit of %d with %d alerts", env.limit, numActive)
	}
	// Admit new firings in label order: which of several alerts that start
	// firing together cooldown or max_alerts_per_day holds back must not
	// depend on map order.
	sort.Slice(fired, func(i, j int) bool { return labels.Compare(fired[i].Labels, fired[j].Labels) < 0 })
	for _, a := range fired {
		a.Suppressed = r.admitFiring(ts)
		from := "pending"
		if r.spec.For == 0 {
			from = "inactive"
		}
		r.transitions = append(r.transitions, Transition{Time: ts, Labels: a.Labels, From: from, To: "firing", Value: a.Value, alert: *a})
	}
	return nil
}

// identity is the key of an alert, its Fingerprint: its labels without the
// severity, so a rule moving an alert between tiers keeps one alert.
func (r *AlertingRule) identity(lset labels.Labels) uint64 {
	h, _ := lset.HashWithoutLabels(nil, "severity")
	return h
}

// takeTransitions returns the state changes of the last evaluation.
func (r *AlertingRule) takeTransitions() []Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.transitions
	r.transitions = nil
	return out
}

// Alert returns a copy of the alert with fingerprint fp.
func (r *AlertingRule) Alert(fp uint64) (Alert, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.active[fp]
	if !ok {
		return Alert{}, false
	}
	return *a, true
}

// ErrAlertNotFound is returned for a fingerprint no rule has.
var ErrAlertNotFound = errors.New("no active alert has this fingerprint")

// ErrNotFiring is returned when acknowledging or resolving an alert that
// is not firing.
var ErrNotFiring = errors.New("the alert is not firing")

// acknowledge marks a firing alert acknowledged.
func (r *AlertingRule) acknowledge(fp uint64, by, comment string, ts time.Time) (Alert, error) {
	return r.changeFiring(fp, func(a *Alert) { acknowledged(a, by, comment, ts) })
}

// acknowledged marks a acknowledged by by at ts.
func acknowledged(a *Alert, by, comment string, ts time.Time) {
	a.AckedBy, a.AckedAt, a.AckComment = by, ts, comment
}

// resolveManually resolves a firing alert now; it is sent resolved, and
// fires again (after for) if its condition still holds.
func (r *AlertingRule) resolveManually(fp uint64, ts time.Time) (Alert, error) {
	return r.changeFiring(fp, func(a *Alert) { resolvedByHand(a, ts) })
}

// resolvedByHand marks a resolved at ts.
func resolvedByHand(a *Alert, ts time.Time) {
	a.State, a.ResolvedAt, a.KeepFiringSince = StateInactive, ts, time.Time{}
}

// changeFiring applies change to the firing alert fp and returns the
// result: ErrAlertNotFound when the rule has no such alert, ErrNotFiring
// (with the alert unchanged) when it is not firing.
func (r *AlertingRule) changeFiring(fp uint64, change func(*Alert)) (Alert, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.active[fp]
	if !ok {
		return Alert{}, ErrAlertNotFound
	}
	if a.State != StateFiring {
		return *a, ErrNotFiring
	}
	change(a)
	return *a, nil
}

// setFirings replaces the firing times cooldown and max_alerts_per_day
// count (restored from the audit trail).
func (r *AlertingRule) setFirings(ts []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.firings = append([]time.Time(nil), ts...)
}

// admitFiring applies cooldown and max_alerts_per_day to an alert that
// starts firing at ts: it returns why its notifications are held back, or
// "" and counts the firing.
func (r *AlertingRule) admitFiring(ts time.Time) string {
	if n := len(r.firings); n > 0 && r.spec.Cooldown > 0 && ts.Sub(r.firings[n-1]) < r.spec.Cooldown {
		return fmt.Sprintf("cooldown: an alert of this rule fired at %s, less than %s ago", r.firings[n-1].UTC().Format(time.RFC3339), model.Duration(r.spec.Cooldown))
	}
	day := ts.UTC().Truncate(24 * time.Hour)
	today := 0
	for _, f := range r.firings {
		if !f.Before(day) {
			today++
		}
	}
	if r.spec.MaxAlertsPerDay > 0 && today >= r.spec.MaxAlertsPerDay {
		return fmt.Sprintf("max_alerts_per_day: %d alerts already fired today (UTC)", today)
	}
	r.firings = append(r.firings, ts)
	// Keep what cooldown and the daily count can still need.
	keep := r.firings[:0]
	for _, f := range r.firings {
		if !f.Before(day) || ts.Sub(f) < r.spec.Cooldown {
			keep = append(keep, f)
		}
	}
	r.firings = keep
	return ""
}

func (r *AlertingRule) expand(ctx context.Context, env evalEnv, d alertData, text string) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	if out, ok := simpleTemplate(text, d.labels, env.externalLabels, d.value); ok {
		return out
	}
	data := template.AlertTemplateData(d.labels.Map(), env.externalLabels, urlString(env.externalURL), promql.Sample{F: d.value})
	qf := func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
		// A template's query is bounded like the rule's own expression.
		e, err := dsl.Parse(q, dsl.Options{Schema: env.schema, Limits: env.limits})
		if err != nil {
			return nil, err
		}
		res, err := env.query(ctx, e, ts, env.series)
		if err != nil {
			return nil, err
		}
		out := make(promql.Vector, 0, len(res.Vector))
		for _, s := range res.Vector {
			out = append(out, promql.Sample{Metric: s.Labels, F: s.Value, T: ts.UnixMilli()})
		}
		return out, nil
	}
	tmpl := template.NewTemplateExpander(ctx, rulefmt.TemplateDefs+text, "__alert_"+r.Name(), data,
		model.TimeFromUnixNano(env.ts.UnixNano()), qf, env.externalURL, nil)
	out, err := tmpl.Expand()
	if err != nil {
		env.logger.Warn("expanding alert template failed", "rule", r.Name(), "err", err)
		return fmt.Sprintf("<error expanding template: %s>", err)
	}
	return out
}

// alertData is what an alert's templates read: the sample's labels and
// value (Prometheus' AlertTemplateData, built only for a template that needs
// text/template).
type alertData struct {
	labels labels.Labels
	value  float64
}

// simpleTemplate expands text when it holds nothing but literal text and
// {{ $value }}, {{ $labels.NAME }} or {{ $externalLabels.NAME }} actions
// (the usual summary), as Prometheus' expander would: the value printed by
// fmt, "" for a label the alert lacks (missingkey=zero). Anything else
// (functions, pipelines, trim markers, comments) returns ok false, for
// Prometheus' expander. Parsing a template and building its function map for every
// alert at every evaluation was most of an evaluation's cost once the
// leaves were read (TestSimpleTemplateMatchesPrometheus).
func simpleTemplate(text string, lset labels.Labels, external map[string]string, value float64) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(text, "{{")
		if i < 0 {
			b.WriteString(text)
			return b.String(), true
		}
		b.WriteString(text[:i])
		text = text[i+2:]
		j := strings.Index(text, "}}")
		if j < 0 {
			return "", false
		}
		action := strings.Trim(text[:j], " ")
		text = text[j+2:]
		switch {
		case action == "$value":
			fmt.Fprint(&b, value)
		case strings.HasPrefix(action, "$labels.") && templateIdent(action[len("$labels."):]):
			b.WriteString(lset.Get(action[len("$labels."):]))
		case strings.HasPrefix(action, "$externalLabels.") && templateIdent(action[len("$externalLabels."):]):
			b.WriteString(external[action[len("$externalLabels."):]])
		default:
			return "", false
		}
	}
}

// templateIdent reports whether name is a field name text/template reads
// as a map key: a letter or underscore, then letters, digits and
// underscores.
func templateIdent(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && (i == 0 || !('0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

// alertSamples returns ALERTS and ALERTS_FOR_STATE for the active alerts.
func (r *AlertingRule) alertSamples(ts time.Time) []promql.Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []promql.Sample
	for _, a := range r.active {
		if a.State == StateInactive {
			continue
		}
		lb := labels.NewBuilder(a.Labels)
		lb.Set(model.MetricNameLabel, "ALERTS")
		lb.Set("alertstate", a.State.String())
		out = append(out, promql.Sample{Metric: lb.Labels(), T: ts.UnixMilli(), F: 1})
		lb = labels.NewBuilder(a.Labels)
		lb.Set(model.MetricNameLabel, "ALERTS_FOR_STATE")
		out = append(out, promql.Sample{Metric: lb.Labels(), T: ts.UnixMilli(), F: float64(a.ActiveAt.Unix())})
	}
	return out
}

// due returns copies of the alerts that need sending at ts and marks them
// sent: firing alerts every resendDelay, resolved ones until retention ends.
func (r *AlertingRule) due(ts time.Time, resendDelay, interval time.Duration) []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Alert
	for _, a := range r.active {
		if a.needsSending(ts, resendDelay) {
			a.LastSentAt = ts
			a.ValidUntil = ts.Add(4 * max(interval, resendDelay))
			out = append(out, *a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels, out[j].Labels) < 0 })
	return out
}

// resolveRemoved resolves at ts every pending and firing alert of a rule a
// reload removed. It returns copies of them all (for the audit trail) and of
// those to send resolved, marked sent: the firing ones whose firing was
// notified or due (not a pending alert, which was never announced, nor one
// held back by cooldown or max_alerts_per_day).
func (r *AlertingRule) resolveRemoved(ts time.Time, resendDelay, interval time.Duration) (resolved, due []Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.active {
		if a.State == StateInactive {
			continue
		}
		wasFiring := a.State == StateFiring
		a.State, a.ResolvedAt, a.KeepFiringSince = StateInactive, ts, time.Time{}
		if wasFiring && a.needsSending(ts, resendDelay) {
			a.LastSentAt = ts
			a.ValidUntil = ts.Add(4 * max(interval, resendDelay))
			due = append(due, *a)
		}
		resolved = append(resolved, *a)
	}
	byLabels := func(x, y Alert) int { return labels.Compare(x.Labels, y.Labels) }
	slices.SortFunc(resolved, byLabels)
	slices.SortFunc(due, byLabels)
	return resolved, due
}

// copyStateFrom takes over the alerts of an equivalent rule (on reload).
func (r *AlertingRule) copyStateFrom(old *AlertingRule) {
	old.mu.Lock()
	defer old.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for h, a := range old.active {
		c := *a
		r.active[h] = &c
	}
	r.firings = append([]time.Time(nil), old.firings...)
	old.ruleState.mu.Lock()
	r.ruleState.history = append([]EvalRecord(nil), old.ruleState.history...)
	r.ruleState.health, r.ruleState.lastErr, r.ruleState.lastEval, r.ruleState.evalDur = old.health, old.lastErr, old.lastEval, old.evalDur
	old.ruleState.mu.Unlock()
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}
