package web

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/memory"
	"github.com/callwatch/callwatch/internal/managertest"
)

// memAudit is an in-memory audit trail.
type memAudit struct {
	mu   sync.Mutex
	recs []engine.AuditRecord
}

var (
	_ engine.Auditor     = (*memAudit)(nil)
	_ engine.AuditReader = (*memAudit)(nil)
)

func (m *memAudit) Record(_ context.Context, recs ...engine.AuditRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, recs...)
	return nil
}

func (m *memAudit) History(_ context.Context, q engine.AuditQuery) ([]engine.AuditRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.DeleteFunc(append([]engine.AuditRecord(nil), m.recs...), func(r engine.AuditRecord) bool {
		return (len(q.Kinds) > 0 && !slices.Contains(q.Kinds, r.Kind)) || (!q.From.IsZero() && r.Time.Before(q.From))
	})
	slices.Reverse(out) // the newest first, also among records of one time
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

const pageRules = `groups:
- name: demo
  interval: 1m
  rules:
  - record: tenant:errors:5m
    expr: sum by (tenant_id) (count_over_time(events{status="error"}[5m]))
  - alert: TenantErrors
    expr: tenant:errors:5m > 3
    severity: error
    annotations:
      summary: "{{ $labels.tenant_id }} has {{ $value }} errors"
      message: "规则 'TenantErrors' 触发告警\n租户: {{ $labels.tenant_id }}"
  - alert: SlowTenant
    expr: max by (tenant_id) (max_over_time(latency_ms[5m])) > 5000
    for: 10m
    annotations:
      summary: "{{ $labels.tenant_id }} is slow"
  - alert: GlobexCalls
    expr: count_over_time(events{tenant_id="globex"}[1m]) > 0
`

// hostile is a tenant whose name is markup: the page must show it as text.
const hostile = `"><script>alert(1)</script>`

// pageFixture is a rule manager with firing, pending and resolved alerts,
// served with the API and the page mounted as the lead mounts them.
type pageFixture struct {
	srv   *httptest.Server
	mux   *http.ServeMux
	mgr   *engine.Manager
	audit *memAudit
	sil   *engine.Silences
	// reloads counts the calls of Options.Reload (POST /-/reload).
	reloads atomic.Int64

	mu  sync.Mutex // the clock, moved by tests while the server reads it
	now time.Time
}

func (f *pageFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *pageFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// loadRules writes the rule file text rules into a temporary directory and
// loads it into a manager whose groups query q, audit their transitions to
// audit and read the time from now; nothing is restored from the audit
// trail.
func loadRules(t *testing.T, q *engine.Querier, audit engine.Auditor, rules string, now func() time.Time) *engine.Manager {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return managertest.Load(t, file, engine.GroupOptions{Query: q.QueryWith, Audit: audit}, now)
}

// newPageFixture serves the fixture with token as the admin token;
// configure, when given, changes the options first.
func newPageFixture(t *testing.T, token string, configure ...func(*Options)) *pageFixture {
	t.Helper()
	base := time.Unix(1764000000, 0).UTC()
	store := memory.New(dsl.Schema{})
	for i := range 5 {
		ts := base.Add(time.Duration(i) * time.Second)
		store.Add(memory.Event{Time: ts, Labels: []string{"acme", "chat", "gpt-4o", "openai", "error", "timeout"}, Nums: map[string]float64{"latency_ms": 6000}})
		store.Add(memory.Event{Time: ts, Labels: []string{hostile, "chat", "gpt-4o", "openai", "error", "timeout"}, Nums: map[string]float64{"latency_ms": 100}})
	}
	store.Add(memory.Event{Time: base, Labels: []string{"globex", "chat", "gpt-4o", "openai", "ok", ""}, Nums: map[string]float64{"latency_ms": 100}})
	f := &pageFixture{audit: &memAudit{}, now: base.Add(90 * time.Second)}
	f.sil = engine.NewSilences(engine.SilencesOptions{Audit: f.audit})
	f.mgr = loadRules(t, engine.NewQuerier(engine.QuerierOptions{Source: store}), f.audit, pageRules, f.clock)
	ctx := context.Background()
	// At +30s everything fires or is pending; at +90s globex's call has
	// left its one-minute window, so GlobexCalls has resolved.
	for _, g := range f.mgr.Groups() {
		g.Eval(ctx, base.Add(30*time.Second))
		g.Eval(ctx, base.Add(90*time.Second))
	}
	opts := Options{Rules: f.mgr, Actions: f.mgr, Silences: f.sil, History: f.audit, AdminToken: token, Now: f.clock,
		Reload: func(context.Context) error { f.reloads.Add(1); return nil }}
	for _, c := range configure {
		c(&opts)
	}
	f.mux = http.NewServeMux()
	f.mux.Handle("/", Handler(opts))
	page := PageHandler(opts)
	f.mux.Handle("GET /{$}", page)
	f.mux.Handle("/ui/", page)
	f.srv = httptest.NewServer(f.mux)
	t.Cleanup(f.srv.Close)
	return f
}

// alert returns the alert of rule for tenant.
func (f *pageFixture) alert(t *testing.T, rule, tenant string) engine.Alert {
	t.Helper()
	for _, g := range f.mgr.Groups() {
		for _, r := range g.Rules() {
			if ar, ok := r.(*engine.AlertingRule); ok && ar.Name() == rule {
				for _, a := range ar.Alerts() {
					if a.Labels.Get("tenant_id") == tenant {
						return a
					}
				}
			}
		}
	}
	t.Fatalf("no %s alert for %s", rule, tenant)
	return engine.Alert{}
}

func (f *pageFixture) fingerprint(t *testing.T, rule, tenant string) string {
	a := f.alert(t, rule, tenant)
	return engine.FingerprintString(a.Fingerprint())
}

// browser is an HTTP client with cookies that follows redirects, like a
// browser submitting the page's forms.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// do sends req with c and returns the response and its body, read and
// closed; it fails the test when req cannot be sent.
func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// newRequest is http.NewRequest, failing the test when it fails; a form
// body is sent as a browser's form post.
func newRequest(t testing.TB, method, u string, form url.Values) *http.Request {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

func fetch(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	return do(t, c, newRequest(t, http.MethodGet, u, nil))
}

func submit(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	return do(t, c, newRequest(t, http.MethodPost, u, form))
}

// section returns the part of the page between id="name" and the next
// <section.
func section(body, name string) string {
	_, rest, ok := strings.Cut(body, `<section id="`+name+`"`)
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "<section")
	return s
}

func TestPageRendersTheState(t *testing.T) {
	f := newPageFixture(t, "")
	resp, body := fetch(t, browser(t), f.srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, tc := range []struct {
		name, section string
		want          []string
	}{
		{"the firing alert shows its value, labels, annotations and since when", "firing", []string{
			`class="alertname">TenantErrors</b>`, `<span class="badge error">error</span>`, `<span class="label">tenant_id="acme"</span>`,
			"acme has 5 errors", "规则 &#39;TenantErrors&#39; 触发告警", "<code>5</code>",
			`active <time datetime="2025-11-24T16:00:30Z" title="2025-11-24 16:00:30 UTC">1m ago</time>`, "not acknowledged",
		}},
		{"the pending alert is listed apart", "pending", []string{`class="alertname">SlowTenant</b>`, "acme is slow", "<code>6000 ms</code>"}},
		{"the resolved alert is listed apart", "resolved", []string{`class="alertname">GlobexCalls</b>`, "resolved <time"}},
		{"rules show health, last evaluation, expression and SQL", "rules", []string{
			"tenant:errors:5m", `<span class="badge ok">ok</span>`, "1 series", "max by (tenant_id) (max_over_time(latency_ms[5m])) &gt; 5000",
			`href="/api/v1/rules/evaluations?group=demo&amp;rule=TenantErrors"`,
		}},
		{"the audit history lists the transitions", "history", []string{`<span class="badge firing">firing</span>`, `<span class="badge resolved">resolved</span>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := section(body, tc.section)
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("section %s lacks %q:\n%s", tc.section, w, s)
				}
			}
		})
	}
	t.Run("the header links to the API", func(t *testing.T) {
		for _, l := range []string{"/api/v1/rules", "/api/v1/alerts", "/api/v1/alerts/history", "/api/v1/silences"} {
			if !strings.Contains(body, `<a href="`+l+`">`) {
				t.Errorf("no link to %s", l)
			}
		}
		if strings.Contains(body, `href="/metrics"`) {
			t.Error("a link to /metrics, which this server does not serve")
		}
	})
	t.Run("label values and annotations are escaped", func(t *testing.T) {
		if strings.Contains(body, "<script>alert(1)") {
			t.Fatal("the hostile tenant's name is markup on the page")
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatal("the hostile tenant's alert is not shown")
		}
	})
	t.Run("the page refreshes itself and allows only its own script", func(t *testing.T) {
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(body, `<body data-refresh="10">`) || !strings.Contains(body, `<noscript><meta http-equiv="refresh" content="10"></noscript>`) ||
			!strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "frame-ancestors 'self'") || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("refresh or headers missing; CSP %q", csp)
		}
	})
	t.Run("without a name there are no buttons but a name form", func(t *testing.T) {
		if strings.Contains(body, `class="ack"`) || !strings.Contains(body, `action="/ui/login"`) || strings.Contains(body, `name="token"`) {
			t.Fatal("buttons shown, or no name form, or a token asked for")
		}
	})
	// Without an admin token there is nothing to sign in to: the form
	// asks for a name to record, and does not look like a sign-in (no
	// "Sign in" button, no username autocomplete a password manager
	// would fill).
	t.Run("without an admin token the name box is not a sign-in", func(t *testing.T) {
		header := body[strings.Index(body, "<header>"):strings.Index(body, "</header>")]
		for _, bad := range []string{"Sign in", "sign in", `autocomplete="username"`, `type="password"`} {
			if strings.Contains(header, bad) {
				t.Errorf("the name box writes %q:\n%s", bad, header)
			}
		}
		if !strings.Contains(header, "name for the audit trail (no password: no admin token is set)") || !strings.Contains(header, "Use this name") {
			t.Errorf("the name box does not say what the name is for:\n%s", header)
		}
	})
}

func TestPageForms(t *testing.T) {
	f := newPageFixture(t, "")
	c := browser(t)
	acme := f.fingerprint(t, "TenantErrors", "acme")

	t.Run("an action before signing in is refused", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/alerts/"+acme+"/ack", nil)
		if !strings.Contains(body, `<p class="flash bad" role="status">give your name first`) || f.alert(t, "TenantErrors", "acme").AckedBy != "" {
			t.Fatal("acknowledged without a name")
		}
	})
	t.Run("giving a name redirects back to the page with buttons", func(t *testing.T) {
		noFollow := *c
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, _ := submit(t, &noFollow, f.srv.URL+"/ui/login", url.Values{"user": {"alice"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
			t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		_, body := fetch(t, c, f.srv.URL+"/")
		if !strings.Contains(body, "acting as <b>alice</b>") || !strings.Contains(body, `/ui/alerts/`+acme+`/ack`) {
			t.Fatal("no buttons after signing in")
		}
		if !strings.Contains(body, "Acknowledgements and silences are recorded as alice.") || !strings.Contains(body, `data-refresh="30"`) {
			t.Fatal("no message after the post, or the page refreshes before it can be read")
		}
	})
	t.Run("acknowledge records who, and the page says so", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/alerts/"+acme+"/ack", url.Values{"comment": {"on it"}})
		a := f.alert(t, "TenantErrors", "acme")
		if a.AckedBy != "alice" || a.AckComment != "on it" {
			t.Fatalf("alert acked by %q (%q)", a.AckedBy, a.AckComment)
		}
		if !strings.Contains(body, `Acknowledged TenantErrors {tenant_id=&#34;acme&#34;}.`) || !strings.Contains(section(body, "firing"), "acknowledged by <b>alice</b>") {
			t.Fatalf("page after ack:\n%s", section(body, "firing"))
		}
		if recs, _ := f.audit.History(context.Background(), engine.AuditQuery{}); recs[0].Kind != engine.AuditAcknowledged || recs[0].By != "alice" {
			t.Fatalf("last audit record %+v", recs[0])
		}
	})
	t.Run("acknowledging what is not firing says why", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/alerts/"+f.fingerprint(t, "SlowTenant", "acme")+"/ack", nil)
		if !strings.Contains(body, "SlowTenant is not firing") {
			t.Fatal("no error message")
		}
		_, body = submit(t, c, f.srv.URL+"/ui/alerts/00000000000000ff/ack", nil)
		if !strings.Contains(body, "that alert is gone") {
			t.Fatal("no error message for an unknown alert")
		}
	})
	t.Run("silence from an alert, then expire it", func(t *testing.T) {
		a := f.alert(t, "SlowTenant", "acme")
		matchers := `{alertname="SlowTenant", tenant_id="acme"}`
		_, body := submit(t, c, f.srv.URL+"/ui/silences", url.Values{"matchers": {matchers}, "duration": {"4h"}})
		list := f.sil.List(f.clock())
		if len(list) != 1 || list[0].CreatedBy != "alice" || list[0].EndsAt.Sub(list[0].StartsAt) != 4*time.Hour {
			t.Fatalf("silences %+v", list)
		}
		if _, silenced := f.sil.Match(a.Labels, f.clock()); !silenced || !strings.Contains(section(body, "pending"), "silenced by alice until 2025-11-24 20:01:30 UTC") {
			t.Fatalf("page after silencing:\n%s", section(body, "pending"))
		}
		_, body = submit(t, c, f.srv.URL+"/ui/silences/"+list[0].ID+"/expire", nil)
		if len(f.sil.List(f.clock())) != 0 || !strings.Contains(body, "Silence expired.") {
			t.Fatal("silence not expired")
		}
		_, body = submit(t, c, f.srv.URL+"/ui/silences", url.Values{"matchers": {matchers}, "duration": {"soon"}})
		if !strings.Contains(body, "duration: write e.g. 2h or 1d") {
			t.Fatal("no error for a bad duration")
		}
	})
	t.Run("an alert's silence button selects exactly that alert, markup in its labels included", func(t *testing.T) {
		a := f.alert(t, "TenantErrors", hostile)
		_, body := fetch(t, c, f.srv.URL+"/")
		row := body[strings.Index(body, `data-fingerprint="`+engine.FingerprintString(a.Fingerprint())+`"`):]
		_, attr, _ := strings.Cut(row, `<input type="hidden" name="matchers" value="`)
		attr, _, _ = strings.Cut(attr, `"`)
		_, body = submit(t, c, f.srv.URL+"/ui/silences", url.Values{"matchers": {html.UnescapeString(attr)}, "duration": {"1h"}})
		list := f.sil.List(f.clock())
		if len(list) != 1 || !list[0].Matches(a.Labels) || list[0].Matches(f.alert(t, "TenantErrors", "acme").Labels) {
			t.Fatalf("silence %v from the form value %q:\n%s", list, attr, body)
		}
		f.sil.Expire(context.Background(), list[0].ID, "test")
	})
	t.Run("resolve moves the alert to recently resolved", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/alerts/"+acme+"/resolve", nil)
		if a := f.alert(t, "TenantErrors", "acme"); a.State != engine.StateInactive {
			t.Fatalf("alert state %s", a.State)
		}
		if !strings.Contains(section(body, "resolved"), `data-fingerprint="`+acme+`"`) {
			t.Fatal("the resolved alert is not under recently resolved")
		}
	})
	t.Run("a form posted from another site is refused", func(t *testing.T) {
		req, _ := http.NewRequest("POST", f.srv.URL+"/ui/alerts/"+f.fingerprint(t, "TenantErrors", hostile)+"/ack", nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || f.alert(t, "TenantErrors", hostile).AckedBy != "" {
			t.Fatalf("cross-site post: %d", resp.StatusCode)
		}
	})
	t.Run("changing the name hides the buttons", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/logout", nil)
		if strings.Contains(body, `class="ack"`) || !strings.Contains(body, `action="/ui/login"`) || !strings.Contains(body, "Name forgotten") {
			t.Fatal("still signed in")
		}
	})
}

func TestPageWithAdminToken(t *testing.T) {
	f := newPageFixture(t, "s3cret")
	acme := f.fingerprint(t, "TenantErrors", "acme")
	c := browser(t)

	t.Run("the page is read-only and asks for the token", func(t *testing.T) {
		_, body := fetch(t, c, f.srv.URL+"/")
		if strings.Contains(body, `class="ack"`) || !strings.Contains(body, `name="token" type="password"`) || !strings.Contains(body, "read-only") {
			t.Fatal("buttons without the token, or no token field")
		}
	})
	t.Run("a wrong token signs nobody in", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/login", url.Values{"user": {"mallory"}, "token": {"guess"}})
		if !strings.Contains(body, "wrong admin token") || strings.Contains(body, "signed in as") {
			t.Fatal("signed in with a wrong token")
		}
		_, body = submit(t, c, f.srv.URL+"/ui/alerts/"+acme+"/ack", nil)
		if !strings.Contains(body, "sign in with your name and the admin token first") || f.alert(t, "TenantErrors", "acme").AckedBy != "" {
			t.Fatal("acknowledged without the token")
		}
	})
	t.Run("a name cookie alone is not a session", func(t *testing.T) {
		u, _ := url.Parse(f.srv.URL)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: userCookie, Value: "mallory", Path: "/"}, {Name: sessionCookie, Value: "99999999999.forged", Path: "/"}})
		submit(t, c, f.srv.URL+"/ui/alerts/"+acme+"/ack", nil)
		if f.alert(t, "TenantErrors", "acme").AckedBy != "" {
			t.Fatal("acknowledged with a forged session")
		}
	})
	t.Run("the right token signs in, without storing the token", func(t *testing.T) {
		_, body := submit(t, c, f.srv.URL+"/ui/login", url.Values{"user": {"bob"}, "token": {"s3cret"}})
		if !strings.Contains(body, "signed in as <b>bob</b>") {
			t.Fatal("not signed in")
		}
		u, _ := url.Parse(f.srv.URL)
		for _, ck := range c.Jar.Cookies(u) {
			if strings.Contains(ck.Value, "s3cret") {
				t.Fatalf("cookie %s holds the token", ck.Name)
			}
		}
		submit(t, c, f.srv.URL+"/ui/alerts/"+acme+"/ack", nil)
		if by := f.alert(t, "TenantErrors", "acme").AckedBy; by != "bob" {
			t.Fatalf("acked by %q", by)
		}
	})
	t.Run("a session cookie does not carry over to another name", func(t *testing.T) {
		u, _ := url.Parse(f.srv.URL)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: userCookie, Value: "mallory", Path: "/"}})
		_, body := fetch(t, c, f.srv.URL+"/")
		if strings.Contains(body, "signed in as") {
			t.Fatal("the session of bob signs in mallory")
		}
	})
	t.Run("a session expires after 12 hours", func(t *testing.T) {
		submit(t, c, f.srv.URL+"/ui/login", url.Values{"user": {"bob"}, "token": {"s3cret"}})
		f.advance(13 * time.Hour)
		_, body := fetch(t, c, f.srv.URL+"/")
		if strings.Contains(body, "signed in as") {
			t.Fatal("still signed in after 13 hours")
		}
	})
	t.Run("the JSON API still wants the bearer token", func(t *testing.T) {
		resp, _ := submit(t, c, f.srv.URL+"/api/v1/alerts/"+acme+"/resolve", url.Values{"by": {"mallory"}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("API resolve with page cookies: %d", resp.StatusCode)
		}
	})
}

func TestRoughDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 400 * time.Millisecond: "0s", 12 * time.Second: "12s", 70 * time.Second: "1m 10s", time.Hour + 5*time.Second: "1h",
		26 * time.Hour: "1d 2h", 2 * time.Hour: "2h",
	} {
		if got := roughDuration(d); got != want {
			t.Errorf("roughDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
