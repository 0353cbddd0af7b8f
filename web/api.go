package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// Rules gives the running rule groups.
type Rules interface {
	Groups() []*engine.Group
}

// SharedRules is Rules whose groups may be evaluated by other replicas
// (ha.share_groups): the alerts of those groups come from shared state.
// *engine.Manager is one.
type SharedRules interface {
	Rules
	SharedAlerts(ctx context.Context) (map[*engine.AlertingRule][]engine.Alert, error)
}

// QueryFunc evaluates an expression at ts.
type QueryFunc func(ctx context.Context, e *dsl.Expr, ts time.Time) (engine.Result, error)

// Options configure the handler.
type Options struct {
	Rules Rules
	// Owner, when set, names the replica that evaluates a group
	// (ha.share_groups), shown as the group's evaluatedBy.
	Owner func(group string) string
	Query QueryFunc
	// QueryRange evaluates /api/v1/query_range; nil disables it.
	QueryRange RangeQueryFunc
	Schema     dsl.Schema
	// Limits bound the expressions of the query API, as they bound rules.
	Limits dsl.Limits
	// QueryTimeout bounds one query request, the wait for a free slot
	// included (default 30s); a request's own timeout= may shorten it.
	QueryTimeout time.Duration
	// MaxConcurrentQueries bounds the queries and audit history reads
	// (API and status page) running at once (default 4); more wait for a
	// slot until their deadline.
	MaxConcurrentQueries int
	// Reload reloads the rule files; nil disables POST /-/reload.
	Reload func(ctx context.Context) error
	// ForceReload reloads even rule files that would remove every rule or
	// empty a rule file, which Reload refuses: POST /-/reload?force=true.
	// nil refuses force.
	ForceReload func(ctx context.Context) error
	// Ready reports whether start-up (rule loading and state restore) is done.
	Ready func() bool
	// Gatherer serves /metrics; nil leaves it out.
	Gatherer prometheus.Gatherer
	// Registerer takes the handler's own metrics (requests refused for a
	// limit); nil keeps them unregistered.
	Registerer prometheus.Registerer
	// CORSOrigin is the pattern of the origins whose scripts may read the
	// query API (--web.cors.origin, see CORSOrigin); nil sets no CORS
	// headers.
	CORSOrigin *regexp.Regexp
	// BuildInfo is served on /api/v1/status/buildinfo (default
	// DefaultBuildInfo()).
	BuildInfo BuildInfo
	Logger    *slog.Logger
	// Now is the clock for /api/v1/query without a time (default time.Now).
	Now func() time.Time
	// Actions acknowledge and resolve alerts; nil disables them.
	Actions Actions
	// Silences are managed through /api/v1/silences; nil disables them.
	Silences *engine.Silences
	// History serves /api/v1/alerts/history; nil disables it.
	History engine.AuditReader
	// AdminToken, when set, is required by the endpoints that change
	// state (reload, ack, resolve, silences) as "Authorization: Bearer
	// <token>" or in AdminTokenHeader, and by the status page's sign-in.
	// It is trimmed; a blank token is no token.
	AdminToken string
	// TrustedOrigins are URLs (--web.external-url) whose pages may change
	// state besides callwatch's own: a proxy in front of callwatch may give
	// it another Host than the browser's. Only their scheme, host and port
	// count.
	TrustedOrigins []string
}

// Handler returns the HTTP handler.
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	opts.AdminToken = strings.TrimSpace(opts.AdminToken)
	g := newGuard(opts)
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 30 * time.Second
	}
	if opts.MaxConcurrentQueries <= 0 {
		opts.MaxConcurrentQueries = 4
	}
	if opts.BuildInfo == (BuildInfo{}) {
		opts.BuildInfo = DefaultBuildInfo()
	}
	a := &api{opts: opts, guard: g, slots: make(slots, opts.MaxConcurrentQueries), limits: newLimitCounter(opts.Registerer)}
	mux := http.NewServeMux()
	// Prometheus' query API: GET and form-encoded POST alike.
	for path, f := range map[string]func(*http.Request) (any, *apiError){
		"query": a.query, "query_range": a.queryRange, "labels": a.labelNames, "series": a.series,
	} {
		mux.HandleFunc("GET /api/v1/"+path, a.promHandler(f))
		mux.HandleFunc("POST /api/v1/"+path, a.promHandler(f))
	}
	mux.HandleFunc("GET /api/v1/label/{name}/values", a.promHandler(a.labelValues))
	mux.HandleFunc("GET /api/v1/metadata", a.promHandler(a.metadata))
	mux.HandleFunc("GET /api/v1/status/buildinfo", a.promHandler(a.buildInfo))
	mux.HandleFunc("OPTIONS /api/v1/", a.options)
	mux.HandleFunc("/api/v1/", a.notFound)
	mux.HandleFunc("GET /api/v1/rules", a.cors(a.rules))
	mux.HandleFunc("GET /api/v1/alerts", a.cors(a.alerts))
	mux.HandleFunc("GET /api/v1/slos", a.cors(a.slos))
	mux.HandleFunc("GET /api/v1/rules/evaluations", a.evaluations)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("callwatch is Healthy.\n"))
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if opts.Ready != nil && !opts.Ready() {
			http.Error(w, "callwatch is not ready: restoring rule state.", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("callwatch is Ready.\n"))
	})
	mux.HandleFunc("POST /-/reload", a.admin(a.reload))
	mux.HandleFunc("PUT /-/reload", a.admin(a.reload))
	mux.HandleFunc("POST /api/v1/alerts/{fingerprint}/{action}", a.admin(a.alertAction))
	mux.HandleFunc("GET /api/v1/alerts/history", a.history)
	mux.HandleFunc("GET /api/v1/silences", a.silences)
	mux.HandleFunc("POST /api/v1/silences", a.admin(a.silences))
	mux.HandleFunc("DELETE /api/v1/silences/{id}", a.admin(a.deleteSilence))
	page := pageHandler(opts, g, a.slots)
	mux.Handle("GET /{$}", page)
	mux.Handle("/ui/", page)
	if opts.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError}))
	}
	// Every route, and any added later, gets the cross-origin checks:
	// they pass GET, HEAD and OPTIONS.
	return g.protect(mux)
}

type api struct {
	opts  Options
	guard *guard
	// slots holds a token per query running: ad-hoc queries and audit
	// history reads (the API's and the status page's).
	slots slots
	// limits counts the requests refused for a limit.
	limits limitCounter
}

// cors sets the CORS headers of the query API on h's answers.
func (a *api) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setCORS(w, a.opts.CORSOrigin, r)
		h(w, r)
	}
}

// slots bound the reads of ClickHouse that anyone may ask for: ad-hoc
// queries and the audit history, whose reads of a big audit table take
// seconds. A flood of them waits for a slot, bounded by its deadline,
// instead of taking the connections and the CPU the rules need.
type slots chan struct{}

// take waits for a slot until ctx is done; release gives it back.
func (s slots) take(ctx context.Context) (release func(), err error) {
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type response struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func ok(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, response{Status: "success", Data: data})
}

func fail(w http.ResponseWriter, code int, typ string, err error) {
	writeJSON(w, code, response{Status: "error", ErrorType: typ, Error: err.Error()})
}

func (a *api) reload(w http.ResponseWriter, r *http.Request) {
	if a.opts.Reload == nil {
		http.Error(w, "reload is not enabled", http.StatusNotFound)
		return
	}
	reload := a.opts.Reload
	if v := r.URL.Query().Get("force"); v != "" {
		force, err := strconv.ParseBool(v)
		switch {
		case err != nil:
			http.Error(w, "force must be true or false", http.StatusBadRequest)
			return
		case force && a.opts.ForceReload == nil:
			http.Error(w, "forced reload is not enabled", http.StatusNotFound)
			return
		case force:
			reload = a.opts.ForceReload
		}
	}
	if err := reload(r.Context()); err != nil {
		http.Error(w, "failed to reload rules, the previous rules keep running:\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Write([]byte("rules reloaded\n"))
}

// alertJSON is an alert in Prometheus' /api/v1/alerts shape.
type alertJSON struct {
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	State           string            `json:"state"`
	ActiveAt        *time.Time        `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time        `json:"keepFiringSince,omitempty"`
	Value           string            `json:"value"`
	Fingerprint     string            `json:"fingerprint"`
	Suppressed      string            `json:"suppressed,omitempty"`
	AckedBy         string            `json:"ackedBy,omitempty"`
	AckedAt         *time.Time        `json:"ackedAt,omitempty"`
	AckComment      string            `json:"ackComment,omitempty"`
	// Reason says why the alert's state is kept rather than judged (below
	// min_events, no data).
	Reason string `json:"reason,omitempty"`
	// Evidence is what explained the alert when it started firing (a
	// rule's evidence:).
	Evidence *engine.Evidence `json:"evidence,omitempty"`
}

func toAlertJSON(a engine.Alert) alertJSON {
	out := alertJSON{
		Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), State: a.State.String(),
		Value: strconv.FormatFloat(a.Value, 'e', -1, 64), Fingerprint: engine.FingerprintString(a.Fingerprint()),
		Suppressed: a.Suppressed, AckedBy: a.AckedBy, AckComment: a.AckComment, Reason: a.Reason, Evidence: a.Evidence,
	}
	if !a.AckedAt.IsZero() {
		t := a.AckedAt.UTC()
		out.AckedAt = &t
	}
	if !a.ActiveAt.IsZero() {
		t := a.ActiveAt.UTC()
		out.ActiveAt = &t
	}
	if !a.KeepFiringSince.IsZero() {
		t := a.KeepFiringSince.UTC()
		out.KeepFiringSince = &t
	}
	return out
}

func (a *api) alerts(w http.ResponseWriter, r *http.Request) {
	out := []alertJSON{}
	alertsFor := alertsOf(r.Context(), a.opts)
	for _, g := range a.opts.Rules.Groups() {
		for _, r := range g.Rules() {
			if ar, isAlert := r.(*engine.AlertingRule); isAlert {
				for _, al := range alertsFor(g, ar) {
					if al.State != engine.StateInactive {
						out = append(out, toAlertJSON(al))
					}
				}
			}
		}
	}
	ok(w, map[string]any{"alerts": out})
}

type ruleJSON struct {
	State string `json:"state,omitempty"`
	Name  string `json:"name"`
	Query string `json:"query"`
	// Duration, KeepFiringFor and Alerts are those of an alerting rule,
	// always there for one (0 and []), never for a recording rule, as in
	// Prometheus.
	Duration       *float64          `json:"duration,omitempty"`
	KeepFiringFor  *float64          `json:"keepFiringFor,omitempty"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	Alerts         *[]alertJSON      `json:"alerts,omitempty"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError,omitempty"`
	Type           string            `json:"type"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	EvaluationTime float64           `json:"evaluationTime"`
	// callwatch extensions.
	Severity string   `json:"severity,omitempty"`
	Notify   []string `json:"notify,omitempty"`
	SQL      []string `json:"sql,omitempty"`
}

type groupJSON struct {
	Name           string     `json:"name"`
	File           string     `json:"file"`
	Rules          []ruleJSON `json:"rules"`
	Interval       float64    `json:"interval"`
	Limit          int        `json:"limit"`
	LastEvaluation time.Time  `json:"lastEvaluation"`
	EvaluationTime float64    `json:"evaluationTime"`
	// EvaluatedBy names the replica that evaluates the group
	// (ha.share_groups).
	EvaluatedBy string `json:"evaluatedBy,omitempty"`
}

// alertsOf returns a function giving a rule's alerts: its own, or, for a
// group another replica evaluates (ha.share_groups), the shared state's,
// read once per request (when it cannot be read, none, and the error is
// logged). The API and the status page show the same alerts through it.
func alertsOf(ctx context.Context, opts Options) func(g *engine.Group, r *engine.AlertingRule) []engine.Alert {
	var shared map[*engine.AlertingRule][]engine.Alert
	read := false
	return func(g *engine.Group, r *engine.AlertingRule) []engine.Alert {
		sr, ok := opts.Rules.(SharedRules)
		if !ok || !g.Released() {
			return r.Alerts()
		}
		if !read {
			read = true
			var err error
			if shared, err = sr.SharedAlerts(ctx); err != nil {
				opts.Logger.Warn("reading the alerts other replicas evaluate failed", "err", err)
			}
		}
		return shared[r]
	}
}

func (a *api) rules(w http.ResponseWriter, r *http.Request) {
	typ := strings.ToLower(r.FormValue("type"))
	if typ != "" && typ != "alert" && typ != "record" {
		fail(w, http.StatusBadRequest, "bad_data", errors.New(`type must be "alert" or "record"`))
		return
	}
	groups := []groupJSON{}
	alertsFor := alertsOf(r.Context(), a.opts)
	for _, g := range a.opts.Rules.Groups() {
		last, dur := g.LastEval()
		gj := groupJSON{Name: g.Name(), File: g.File(), Rules: []ruleJSON{}, Interval: g.Interval().Seconds(),
			Limit: g.Spec().Limit, LastEvaluation: last.UTC(), EvaluationTime: dur.Seconds()}
		if a.opts.Owner != nil {
			gj.EvaluatedBy = a.opts.Owner(g.Name())
		}
		for _, rule := range g.Rules() {
			spec := rule.Spec()
			st := rule.Status()
			health, lastErr, lastEval, evalDur := st.Health, st.LastError, st.LastEval, st.EvalDuration
			rj := ruleJSON{Name: rule.Name(), Query: spec.ExprText, Labels: spec.Labels, Health: string(health),
				LastEvaluation: lastEval.UTC(), EvaluationTime: evalDur.Seconds(), Severity: string(spec.Severity), Notify: spec.Notify}
			if rj.Labels == nil {
				rj.Labels = map[string]string{}
			}
			if lastErr != nil {
				rj.LastError = lastErr.Error()
			}
			if h := rule.History(); len(h) > 0 {
				rj.SQL = h[len(h)-1].Statements
			}
			switch rr := rule.(type) {
			case *engine.AlertingRule:
				if typ == "record" {
					continue
				}
				rj.Type, rj.State = "alerting", rr.State().String()
				dur, keep := spec.For.Seconds(), spec.KeepFiringFor.Seconds()
				rj.Duration, rj.KeepFiringFor = &dur, &keep
				rj.Annotations = spec.Annotations
				if rj.Annotations == nil {
					rj.Annotations = map[string]string{}
				}
				alerts := []alertJSON{}
				for _, al := range alertsFor(g, rr) {
					if al.State != engine.StateInactive {
						alerts = append(alerts, toAlertJSON(al))
					}
				}
				rj.Alerts = &alerts
			case *engine.RecordingRule:
				if typ == "alert" {
					continue
				}
				rj.Type = "recording"
			}
			gj.Rules = append(gj.Rules, rj)
		}
		groups = append(groups, gj)
	}
	ok(w, map[string]any{"groups": groups})
}

// evaluations serves a rule's last evaluations: time, duration, result
// size, error and the SQL that ran.
func (a *api) evaluations(w http.ResponseWriter, r *http.Request) {
	group, name := r.FormValue("group"), r.FormValue("rule")
	if name == "" {
		fail(w, http.StatusBadRequest, "bad_data", errors.New(`missing parameter "rule" (and optionally "group")`))
		return
	}
	type evalJSON struct {
		Group       string              `json:"group"`
		Rule        string              `json:"rule"`
		Evaluations []engine.EvalRecord `json:"evaluations"`
	}
	out := []evalJSON{}
	for _, g := range a.opts.Rules.Groups() {
		if group != "" && g.Name() != group {
			continue
		}
		for _, rule := range g.Rules() {
			if rule.Name() == name {
				h := rule.History()
				if h == nil {
					h = []engine.EvalRecord{}
				}
				out = append(out, evalJSON{Group: g.Name(), Rule: name, Evaluations: h})
			}
		}
	}
	if len(out) == 0 {
		fail(w, http.StatusNotFound, "not_found", errors.New("no rule "+strconv.Quote(name)))
		return
	}
	ok(w, out)
}
