package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/notify"
	"github.com/callwatch/callwatch/rulefmt"
)

//go:embed templates
var templateFS embed.FS

// The status page's cookies. The name of the operator is not a secret: it
// is who acknowledgements and silences are recorded as. The session proves
// that the admin token was given (a MAC keyed by the token, never the token
// itself); the flash carries the outcome of a form to the page it
// redirects to.
const (
	userCookie    = "callwatch_user"
	sessionCookie = "callwatch_session"
	flashCookie   = "callwatch_flash"
	// sessionTTL is how long a sign-in with the admin token lasts.
	sessionTTL = 12 * time.Hour
	// refreshSeconds is how often the page reloads itself.
	refreshSeconds = 10
	// historyLimit is how many transitions (and acknowledgements,
	// silences, …) the audit history shows.
	historyLimit = 50
	// notificationLimit caps the notification records the page reads to
	// fold under those transitions.
	notificationLimit = 1000
)

// PageHandler returns the status page, served at GET /, and the form
// handlers behind its buttons, under POST /ui/. Mount both:
//
//	mux.Handle("GET /{$}", page)
//	mux.Handle("/ui/", page)
//
// The page is rendered on the server (html/template, which escapes every
// value) and needs no assets or front-end build: its CSS and a few lines
// of script are inline. With Options.QueryRange, each rule shows its
// expression over the last hours as an SVG chart (see chart.go). The forms post to /ui/ handlers that call
// Options.Actions and Options.Silences, as the JSON API does, and redirect
// back to the page with a message (post/redirect/get). They record the
// operator's name, given once in the page's sign-in form. When
// Options.AdminToken is set, signing in needs the token, and until then the
// page is read-only; the token itself is never stored in the browser.
// Form posts are refused as the API's writes are: cross-origin ones
// always, and without an admin token those a browser addresses to a name
// other than an IP address, localhost or a trusted origin's host.
func PageHandler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.AdminToken = strings.TrimSpace(opts.AdminToken)
	if opts.MaxConcurrentQueries <= 0 {
		opts.MaxConcurrentQueries = 4
	}
	if opts.Schema.Time == "" {
		opts.Schema = dsl.DefaultSchema()
	}
	return pageHandler(opts, newGuard(opts), make(slots, opts.MaxConcurrentQueries))
}

// pageHandler is PageHandler with the guard and the query slots of
// Handler, for options already completed.
func pageHandler(opts Options, g *guard, s slots) http.Handler {
	script, err := templateFS.ReadFile("templates/refresh.js")
	if err != nil {
		panic(err) // embedded at build time
	}
	sum := sha256.Sum256(script)
	p := &page{
		opts:   opts,
		guard:  g,
		slots:  s,
		tmpl:   template.Must(template.New("page.html").Funcs(pageFuncs).ParseFS(templateFS, "templates/page.html")),
		script: template.JS(script),
		charts: &chartCache{},
		parser: parser.NewParser(parser.Options{Functions: dsl.ParserFunctions()}),
		csp: "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.render)
	mux.HandleFunc("POST /ui/login", p.login)
	mux.HandleFunc("POST /ui/logout", p.logout)
	mux.HandleFunc("POST /ui/alerts/{fingerprint}/{action}", p.act(p.alertAction))
	mux.HandleFunc("POST /ui/silences", p.act(p.addSilence))
	mux.HandleFunc("POST /ui/silences/{id}/expire", p.act(p.expireSilence))
	return g.protect(mux)
}

type page struct {
	opts  Options
	guard *guard
	// slots are the query API's: the history read takes one.
	slots  slots
	tmpl   *template.Template
	script template.JS
	csp    string
	charts *chartCache
	// parser reads rules' expressions for their charts, with callwatch's
	// functions (p95, …).
	parser parser.Parser
}

// pageData is everything the template shows.
type pageData struct {
	Now                       time.Time
	Refresh                   int
	Flash                     string
	FlashIsError              bool
	User                      string
	NeedToken                 bool // the admin token is required to sign in
	SignedIn                  bool // may use the buttons
	Actions, Silencing        bool // the features are enabled
	Metrics                   bool
	Firing, Pending, Resolved []alertView
	Groups                    []groupView
	RuleCount, RuleErrors     int
	Silences                  []silenceView
	HasHistory                bool
	History                   []historyRow
	OtherNotifications        int // resends of alerts whose last transition is older than History
	HistoryError              string
	Script                    template.JS
	// ChartRange is the range of the rules' charts, one of ChartRanges;
	// empty when charts are off (no range queries).
	ChartRange  string
	ChartRanges []string
	// SLOs and Budgets are the objectives and spend budgets of the rule
	// files, per group.
	SLOs    []sloView
	Budgets []budgetView
	// units are the units of the alerting rules' values, by group and
	// rule name (NUL between), for the audit history.
	units map[string]string
}

type alertView struct {
	Name, Severity, State, Fingerprint string
	Labels                             []labelPair
	Title, Summary, Message            string
	Value                              string
	ActiveAt, FiredAt, ResolvedAt      time.Time
	AckedBy, AckComment                string
	AckedAt                            time.Time
	Suppressed                         string
	SilencedUntil                      time.Time
	SilencedBy                         string
	// Matchers select exactly this alert, for its silence button.
	Matchers string
	// EvaluatedBy names the replica that evaluates the alert's group when
	// it is another one (ha.share_groups): an action made here reaches it
	// through the audit trail.
	EvaluatedBy string
}

type labelPair struct{ Name, Value string }

type groupView struct {
	Name, File         string
	Interval, EvalTime time.Duration
	LastEval           time.Time
	Rules              []ruleView
}

type ruleView struct {
	Name, Type, State, Health, Expr, LastError string
	LastEval                                   time.Time
	EvalTime, OwnTime                          time.Duration // its share of the group's time (shareGroupTime), its own
	Samples                                    int
	SQL                                        []string
	Chart                                      *chartView
}

type silenceView struct {
	engine.Silence
	MatchersText string
	Active       bool
}

func (p *page) render(w http.ResponseWriter, r *http.Request) {
	now := p.opts.Now()
	d := pageData{
		Now: now, Refresh: refreshSeconds, Script: p.script,
		NeedToken: p.opts.AdminToken != "", Actions: p.opts.Actions != nil, Silencing: p.opts.Silences != nil,
		Metrics: p.opts.Gatherer != nil, HasHistory: p.opts.History != nil, units: map[string]string{},
	}
	d.User, d.SignedIn = p.operator(r)
	if c, err := r.Cookie(flashCookie); err == nil {
		if msg, err := url.QueryUnescape(c.Value); err == nil {
			d.FlashIsError = strings.HasPrefix(msg, "!")
			d.Flash = strings.TrimPrefix(msg, "!")
			// Give the operator time to read the outcome of the form.
			d.Refresh = 3 * refreshSeconds
		}
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: "/", MaxAge: -1})
	}
	// The shared alerts, the charts and the history read share one
	// deadline, so a page view waits at most 5 s for ClickHouse or for
	// query slots.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	p.collectRules(ctx, &d, now)
	d.SLOs, d.Budgets = sloViews(p.opts.Rules.Groups())
	p.collectCharts(ctx, &d, r, now)
	if p.opts.Silences != nil {
		for _, s := range p.opts.Silences.List(now) {
			d.Silences = append(d.Silences, silenceView{Silence: s, MatchersText: s.MatchersString(), Active: s.Active(now)})
		}
	}
	if p.opts.History != nil {
		// The page's history read takes a query slot, as the API's does:
		// reloading the page in a loop cannot crowd out the rules.
		if release, err := p.slots.take(ctx); err != nil {
			d.HistoryError = "the history is not shown: every query slot (limits.max_concurrent_queries) stayed busy"
		} else {
			d.History, d.OtherNotifications, err = readHistory(ctx, p.opts.History)
			release()
			if err != nil {
				d.HistoryError = err.Error()
			}
			for i, h := range d.History {
				d.History[i].Unit = d.units[h.Group+"\x00"+h.Rule]
			}
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if err := p.tmpl.Execute(w, d); err != nil {
		p.opts.Logger.Error("rendering the status page failed", "err", err)
	}
}

// collectRules fills the alerts and rules of d from the running groups.
func (p *page) collectRules(ctx context.Context, d *pageData, now time.Time) {
	alerts := alertsOf(ctx, p.opts)
	for _, g := range p.opts.Rules.Groups() {
		last, dur := g.LastEval()
		gv := groupView{Name: g.Name(), File: g.File(), Interval: g.Interval(), LastEval: last, EvalTime: dur}
		var leaves []int
		for _, rule := range g.Rules() {
			// The leaves queried together (a subquery's are the rule's own).
			batched := 0
			if e := rule.Spec().Expr; e != nil {
				for _, l := range e.Leaves {
					if l.Sub == nil {
						batched++
					}
				}
			}
			leaves = append(leaves, batched)
			st := rule.Status()
			health, lastErr, lastEval, evalDur := st.Health, st.LastError, st.LastEval, st.EvalDuration
			rv := ruleView{Name: rule.Name(), Type: "recording", Health: string(health), Expr: rule.Spec().ExprText,
				LastEval: lastEval, EvalTime: evalDur, OwnTime: evalDur}
			if lastErr != nil {
				rv.LastError = lastErr.Error()
				d.RuleErrors++
			}
			if h := rule.History(); len(h) > 0 {
				rv.SQL, rv.Samples = h[len(h)-1].Statements, h[len(h)-1].Samples
			}
			if ar, ok := rule.(*engine.AlertingRule); ok {
				rv.Type, rv.State = "alerting", ar.State().String()
				unit := ""
				if e := rule.Spec().Expr; e != nil {
					unit = e.Unit
					d.units[g.Name()+"\x00"+rule.Name()] = unit
				}
				remote := ""
				if g.Released() {
					remote = "another replica"
					if p.opts.Owner != nil {
						remote = p.opts.Owner(g.Name())
					}
				}
				for _, a := range alerts(g, ar) {
					v := p.alertView(a, unit, now)
					v.EvaluatedBy = remote
					switch {
					case a.State == engine.StateFiring:
						d.Firing = append(d.Firing, v)
					case a.State == engine.StatePending:
						d.Pending = append(d.Pending, v)
					case !a.ResolvedAt.IsZero():
						d.Resolved = append(d.Resolved, v)
					}
				}
			}
			gv.Rules = append(gv.Rules, rv)
			d.RuleCount++
		}
		shareGroupTime(gv, leaves)
		d.Groups = append(d.Groups, gv)
	}
	// The most severe first, then the newest.
	bySeverity := func(as []alertView, at func(alertView) time.Time) {
		sort.SliceStable(as, func(i, j int) bool {
			if si, sj := rulefmt.Severity(as[i].Severity).Rank(), rulefmt.Severity(as[j].Severity).Rank(); si != sj {
				return si > sj
			}
			return at(as[i]).After(at(as[j]))
		})
	}
	bySeverity(d.Firing, func(a alertView) time.Time { return a.FiredAt })
	bySeverity(d.Pending, func(a alertView) time.Time { return a.ActiveAt })
	sort.SliceStable(d.Resolved, func(i, j int) bool { return d.Resolved[i].ResolvedAt.After(d.Resolved[j].ResolvedAt) })
}

func (p *page) alertView(a engine.Alert, unit string, now time.Time) alertView {
	ann := a.Annotations.Map()
	v := alertView{
		Name: a.Labels.Get(labels.AlertName), Severity: a.Labels.Get("severity"), State: a.State.String(),
		Fingerprint: engine.FingerprintString(a.Fingerprint()),
		Title:       ann["title"], Summary: ann["summary"], Message: ann["message"],
		Value:    valueText(a.Value, unit),
		ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt,
		AckedBy: a.AckedBy, AckedAt: a.AckedAt, AckComment: a.AckComment, Suppressed: a.Suppressed,
	}
	if v.Summary == "" {
		v.Summary = ann["description"]
	}
	ms := make([]string, 0, a.Labels.Len())
	a.Labels.Range(func(l labels.Label) {
		ms = append(ms, (&labels.Matcher{Type: labels.MatchEqual, Name: l.Name, Value: l.Value}).String())
		if l.Name != labels.AlertName && l.Name != "severity" {
			v.Labels = append(v.Labels, labelPair{l.Name, l.Value})
		}
	})
	v.Matchers = "{" + strings.Join(ms, ", ") + "}"
	if p.opts.Silences != nil {
		if s, ok := p.opts.Silences.Match(a.Labels, now); ok {
			v.SilencedUntil, v.SilencedBy = s.EndsAt, s.CreatedBy
		}
	}
	return v
}

// operator returns who the browser says it is, and whether it may act:
// it has given its name and, when an admin token is configured, holds a
// valid session.
func (p *page) operator(r *http.Request) (string, bool) {
	c, err := r.Cookie(userCookie)
	if err != nil {
		return "", false
	}
	user, err := url.QueryUnescape(c.Value)
	if err != nil || validUser(user) != nil {
		return "", false
	}
	if p.opts.AdminToken == "" {
		return user, true
	}
	s, err := r.Cookie(sessionCookie)
	if err != nil {
		return user, false
	}
	exp, mac, ok := strings.Cut(s.Value, ".")
	if !ok {
		return user, false
	}
	expUnix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !p.opts.Now().Before(time.Unix(expUnix, 0)) {
		return user, false
	}
	return user, hmac.Equal([]byte(mac), []byte(p.sessionMAC(user, exp)))
}

// sessionMAC authenticates a session of user until exp with the admin
// token: the cookie proves the token was given without containing it.
func (p *page) sessionMAC(user, exp string) string {
	m := hmac.New(sha256.New, []byte(p.opts.AdminToken))
	m.Write([]byte("callwatch ui session\x00" + exp + "\x00" + user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func validUser(user string) error {
	switch {
	case user == "":
		return errors.New("enter your name: acknowledgements and silences record who did them")
	case len(user) > 64:
		return errors.New("the name is longer than 64 bytes")
	case strings.IndexFunc(user, unicode.IsControl) >= 0:
		return errors.New("the name contains control characters")
	}
	return nil
}

func (p *page) login(w http.ResponseWriter, r *http.Request) {
	if err := parseForm(w, r); err != nil {
		p.done(w, r, "", err)
		return
	}
	user := strings.TrimSpace(r.PostForm.Get("user"))
	if err := validUser(user); err != nil {
		p.done(w, r, "", err)
		return
	}
	secure := r.TLS != nil
	if p.opts.AdminToken != "" {
		if !p.guard.matches(r.PostForm.Get("token")) {
			p.opts.Logger.Warn("status page sign-in with a wrong admin token", "user", user, "remote", r.RemoteAddr)
			p.done(w, r, "", errors.New("wrong admin token: the page stays read-only"))
			return
		}
		// The expiry inside the cookie is checked on the server's clock;
		// MaxAge, relative, makes the browser drop it about then too.
		expText := strconv.FormatInt(p.opts.Now().Add(sessionTTL).Unix(), 10)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: expText + "." + p.sessionMAC(user, expText), Path: "/",
			MaxAge: int(sessionTTL / time.Second), HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	}
	http.SetCookie(w, &http.Cookie{Name: userCookie, Value: url.QueryEscape(user), Path: "/", MaxAge: 30 * 24 * 3600,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
	if p.opts.AdminToken == "" {
		p.done(w, r, "Acknowledgements and silences are recorded as "+user+".", nil)
		return
	}
	p.done(w, r, "Signed in as "+user+".", nil)
}

func (p *page) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: userCookie, Path: "/", MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1})
	if p.opts.AdminToken == "" {
		p.done(w, r, "Name forgotten: give one to act.", nil)
		return
	}
	p.done(w, r, "Signed out.", nil)
}

// act wraps a form handler that changes state: it needs a signed-in
// operator, whose name it passes on.
func (p *page) act(h func(r *http.Request, user string) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, ok := p.operator(r)
		if !ok {
			msg := "give your name first (top right): acknowledgements and silences record who did them"
			if p.opts.AdminToken != "" {
				msg = "sign in with your name and the admin token first (top right)"
			}
			p.done(w, r, "", errors.New(msg))
			return
		}
		if err := parseForm(w, r); err != nil {
			p.done(w, r, "", err)
			return
		}
		msg, err := h(r, user)
		p.done(w, r, msg, err)
	}
}

func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("bad form: %w", err)
	}
	return nil
}

// done redirects back to the page, which shows msg, or err when not nil.
func (p *page) done(w http.ResponseWriter, r *http.Request, msg string, err error) {
	if err != nil {
		msg = "!" + err.Error()
	}
	// A cookie holds about 4 kB; the message is a sentence.
	if len(msg) > 600 {
		msg = strings.ToValidUTF8(msg[:600], "") + "…"
	}
	if msg != "" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: "/", MaxAge: 60,
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *page) alertAction(r *http.Request, user string) (string, error) {
	if p.opts.Actions == nil {
		return "", errors.New("alert actions are not enabled")
	}
	fp, err := engine.ParseFingerprint(r.PathValue("fingerprint"))
	if err != nil {
		return "", err
	}
	comment := strings.TrimSpace(r.PostForm.Get("comment"))
	var a engine.Alert
	var verb string
	switch r.PathValue("action") {
	case "ack":
		verb = "Acknowledged"
		a, err = p.opts.Actions.Acknowledge(r.Context(), fp, user, comment)
	case "resolve":
		verb = "Resolved"
		a, err = p.opts.Actions.Resolve(r.Context(), fp, user, comment)
	default:
		return "", errors.New("the alert actions are ack and resolve")
	}
	switch {
	case errors.Is(err, engine.ErrAlertNotFound):
		return "", errors.New("that alert is gone: it resolved, or its rule was reloaded")
	case errors.Is(err, engine.ErrNotFiring):
		return "", fmt.Errorf("%s is not firing: only firing alerts can be acknowledged or resolved", a.Labels.Get(labels.AlertName))
	case err != nil:
		return "", err
	}
	return fmt.Sprintf("%s %s %s.", verb, a.Labels.Get(labels.AlertName), labelsText(a.Labels)), nil
}

// labelsText writes an alert's labels other than alertname and severity.
func labelsText(ls labels.Labels) string {
	var parts []string
	ls.Range(func(l labels.Label) {
		if l.Name != labels.AlertName && l.Name != "severity" {
			parts = append(parts, l.Name+"="+strconv.Quote(l.Value))
		}
	})
	return "{" + strings.Join(parts, ", ") + "}"
}

func (p *page) addSilence(r *http.Request, user string) (string, error) {
	if p.opts.Silences == nil {
		return "", errors.New("silences are not enabled")
	}
	ms, err := engine.ParseMatchers(r.PostForm.Get("matchers"))
	if err != nil {
		return "", err
	}
	d, err := model.ParseDuration(strings.TrimSpace(r.PostForm.Get("duration")))
	if err != nil || d <= 0 {
		return "", errors.New("duration: write e.g. 2h or 1d")
	}
	now := p.opts.Now()
	s, err := p.opts.Silences.Add(r.Context(), engine.Silence{Matchers: ms, StartsAt: now, EndsAt: now.Add(time.Duration(d)),
		CreatedBy: user, Comment: strings.TrimSpace(r.PostForm.Get("comment"))})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Silenced %s for %s.", s.MatchersString(), d), nil
}

func (p *page) expireSilence(r *http.Request, user string) (string, error) {
	if p.opts.Silences == nil {
		return "", errors.New("silences are not enabled")
	}
	if err := p.opts.Silences.Expire(r.Context(), r.PathValue("id"), user); err != nil {
		return "", err
	}
	return "Silence expired.", nil
}

// pageFuncs are the template's helpers; times are shown in UTC.
var pageFuncs = template.FuncMap{
	"abs": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t)
		if d < 0 {
			return "in " + roughDuration(-d)
		}
		return roughDuration(d) + " ago"
	},
	"until": func(now, t time.Time) string { return roughDuration(t.Sub(now)) },
	"dur":   roughDuration,
	// valueIn writes a value with its unit (6.533M tokens, 3456.789 ms, ¥120.5).
	"valueIn": valueText,
	// anchor is the id of a rule's row, which alerts' generatorURL opens.
	"anchor": engine.RuleAnchor,
	"ms": func(d time.Duration) string {
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + " ms"
	},
	"chartTitle": chartTitle,
	"alertsOf": func(as []alertView, p pageData, state string) alertList {
		return alertList{Alerts: as, Page: p, State: state}
	},
}

// alertList is what the "alerts" template shows: one state's alerts.
type alertList struct {
	Alerts []alertView
	Page   pageData
	State  string
}

// roughDuration writes a duration to the second in its largest unit and
// the next one: 3d 4h, 2h 5m, 4m 10s, 12s.
func roughDuration(d time.Duration) string {
	d = d.Round(time.Second)
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units {
		if d < u.d && i < len(units)-1 {
			continue
		}
		out := strconv.FormatInt(int64(d/u.d), 10) + u.name
		if i+1 < len(units) {
			if rest := (d % u.d) / units[i+1].d; rest > 0 {
				out += " " + strconv.FormatInt(int64(rest), 10) + units[i+1].name
			}
		}
		return out
	}
	return "0s"
}

// valueText writes a value as the notifications do (notify.FormatValue)
// with its unit: after it (6.533M tokens, 3456.789 ms), or before it when
// the unit is a currency sign (¥120.5).
func valueText(v float64, unit string) string {
	text := notify.FormatValue(v)
	switch r, n := utf8.DecodeRuneInString(unit); {
	case unit == "" || math.IsNaN(v) || math.IsInf(v, 0):
		return text
	case n == len(unit) && unicode.Is(unicode.Sc, r):
		if strings.HasPrefix(text, "-") {
			return "-" + unit + text[1:]
		}
		return unit + text
	}
	return text + " " + unit
}
