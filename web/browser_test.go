package web

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
)

// chromium finds Debian's headless Chromium (apt-get install chromium).
// Without it the test is skipped, or fails when CI is "true".
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium is not installed: `make test` installs it (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// dumpDOM loads url in a fresh headless Chromium, lets the page run for
// budget of virtual time (timers, navigations and form posts included)
// and returns the DOM it ends with.
func dumpDOM(t *testing.T, bin, url string, budget time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	t.Logf("chromium rendered %s in %s", url, time.Since(began).Round(time.Millisecond))
	return stdout.String()
}

// framePage is a test page that loads the status page in an iframe (id
// f) of the same origin, height pixels high, and runs script, which writes
// what it finds into the page's <pre id="out">.
func framePage(title string, height int, script string) string {
	return fmt.Sprintf("<!doctype html>\n<title>%s</title>\n<iframe id=\"f\" src=\"/\" style=\"width:1400px;height:%dpx\"></iframe>\n<pre id=\"out\"></pre>\n<script>\n%s</script>",
		title, height, script)
}

// htmlPage serves page as HTML.
func htmlPage(page string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}
}

// clickTest drives the status page the way an operator does, in an
// iframe of the same origin: it signs in with a name and the admin token,
// then types a comment and clicks the acknowledge button of one alert.
// Each step runs when the frame has loaded the page the previous step's
// form post redirected to. The last step copies the page's text out of the
// frame, so --dump-dom shows it.
var clickTest = framePage("click test", 1000, `var f = document.getElementById("f"), out = document.getElementById("out"), step = 0;
function log(s) { out.textContent += s + "\n"; }
f.addEventListener("load", function () {
  var d = f.contentDocument;
  step++;
  try {
    if (step === 1) {
      d.querySelector("form.login input[name=user]").value = "chromium";
      d.querySelector("form.login input[name=token]").value = "%s";
      d.querySelector("form.login button").click();
      log("step 1: signing in");
    } else if (step === 2) {
      var b = d.querySelector('tr.alert.firing[data-fingerprint="%s"] button.ack');
      if (!b) { log("step 2: no acknowledge button\n" + d.body.innerText); return; }
      b.form.querySelector("input[name=comment]").value = "seen in chromium";
      b.click();
      log("step 2: clicked acknowledge");
    } else if (step === 3) {
      log("step 3: page after the click\n" + d.body.innerText);
    }
  } catch (e) {
    log("error in step " + step + ": " + e);
  }
});
`)

// reloadTest counts how often the status page loads in an iframe.
const reloadTest = `<!doctype html>
<title>reload test</title>
<iframe id="f" src="/"></iframe>
<p id="loads">0</p>
<script>
var n = 0;
document.getElementById("f").addEventListener("load", function () { document.getElementById("loads").textContent = String(++n); });
</script>`

func TestBrowser(t *testing.T) {
	bin := chromium(t)
	const token = "s3cret"
	f := newPageFixture(t, token)
	fp := f.fingerprint(t, "TenantErrors", "acme")
	f.mux.HandleFunc("GET /test/click", htmlPage(fmt.Sprintf(clickTest, token, fp)))
	f.mux.HandleFunc("GET /test/reload", htmlPage(reloadTest))

	t.Run("the page renders in Chromium", func(t *testing.T) {
		dom := dumpDOM(t, bin, f.srv.URL+"/", time.Second)
		for _, want := range []string{`<b class="alertname">TenantErrors</b>`, "acme has 5 errors", `data-fingerprint="` + fp + `"`, `name="token"`} {
			if !strings.Contains(dom, want) {
				t.Fatalf("the rendered DOM lacks %q:\n%s", want, dom)
			}
		}
	})

	t.Run("the page's script passes its content security policy and reloads the page every 10s", func(t *testing.T) {
		dom := dumpDOM(t, bin, f.srv.URL+"/test/reload", 25*time.Second)
		if !strings.Contains(dom, `<p id="loads">3</p>`) {
			t.Fatalf("want 3 loads in 25 s of virtual time:\n%s", dom)
		}
	})

	t.Run("clicking acknowledge in Chromium acknowledges the alert", func(t *testing.T) {
		dom := dumpDOM(t, bin, f.srv.URL+"/test/click", 8*time.Second)
		_, report, _ := strings.Cut(dom, `<pre id="out">`)
		report, _, _ = strings.Cut(report, "</pre>")
		a := f.alert(t, "TenantErrors", "acme")
		if a.AckedBy != "chromium" || a.AckComment != "seen in chromium" {
			t.Fatalf("alert acknowledged by %q (%q); the browser reported:\n%s", a.AckedBy, a.AckComment, report)
		}
		for _, want := range []string{"step 2: clicked acknowledge", "Acknowledged TenantErrors", "acknowledged by chromium", "seen in chromium"} {
			if !strings.Contains(report, want) {
				t.Fatalf("the page after the click lacks %q:\n%s", want, report)
			}
		}
		recs, _ := f.audit.History(context.Background(), engine.AuditQuery{})
		if recs[0].Kind != engine.AuditAcknowledged || recs[0].By != "chromium" {
			t.Fatalf("last audit record %+v", recs[0])
		}
	})
}

// crossSiteAttack is a page on another origin that makes the browser of
// the operator who opens it write to callwatch: a form post creating a
// silence of every alert until 2054, no-cors fetches reloading the rules,
// acknowledging an alert and posting JSON as text/plain, and the status
// page's own sign-in and silence forms. TARGET is callwatch's URL, FP a
// firing alert's fingerprint.
const crossSiteAttack = `<!doctype html>
<title>cross-site attack</title>
<iframe name="sink1"></iframe><iframe name="sink2"></iframe><iframe name="sink3"></iframe>
<form id="api" method="POST" target="sink1" action="TARGET/api/v1/silences">
<input name="matchers" value='{alertname=~".+"}'><input name="endsAt" value="2054-01-01T00:00:00Z"><input name="createdBy" value="mallory">
</form>
<form id="login" method="POST" target="sink2" action="TARGET/ui/login"><input name="user" value="mallory"></form>
<form id="ui" method="POST" target="sink3" action="TARGET/ui/silences">
<input name="matchers" value='{alertname=~".+"}'><input name="duration" value="100w">
</form>
<p id="out"></p>
<script>
var T = "TARGET", out = document.getElementById("out");
function note(s) { out.textContent += s + ";"; }
document.getElementById("api").submit();
document.getElementById("login").submit();
setTimeout(function () { document.getElementById("ui").submit(); }, 300);
fetch(T + "/-/reload", {method: "POST", mode: "no-cors"}).then(function () { note("reload sent"); }, function (e) { note("reload failed " + e); });
fetch(T + "/api/v1/alerts/FP/ack", {method: "POST", mode: "no-cors", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "by=mallory"})
  .then(function () { note("ack sent"); }, function (e) { note("ack failed " + e); });
fetch(T + "/api/v1/silences", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
  body: JSON.stringify({matchers: '{alertname=~".+"}', endsAt: "2054-01-01T00:00:00Z", createdBy: "mallory"})})
  .then(function () { note("json sent"); }, function (e) { note("json failed " + e); });
</script>`

// sameOriginReload is callwatch's own origin using the JSON API from a
// browser: it must keep working.
const sameOriginReload = `<!doctype html>
<title>same-origin reload</title>
<p id="out"></p>
<script>
fetch("/-/reload", {method: "POST"}).then(function (r) { document.getElementById("out").textContent = "reload " + r.status; },
  function (e) { document.getElementById("out").textContent = "reload failed " + e; });
</script>`

func TestBrowserCrossSiteWrites(t *testing.T) {
	bin := chromium(t)
	f := newPageFixture(t, "") // no admin token: the default
	fp := f.fingerprint(t, "TenantErrors", "acme")
	// target is callwatch, noting which writes reach it and with which
	// headers, so that a refusal is the server's and not the browser's.
	var mu sync.Mutex
	var arrived []string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			mu.Lock()
			arrived = append(arrived, fmt.Sprintf("%s %s (Origin %q, Sec-Fetch-Site %q)", r.Method, r.URL.Path, r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")))
			mu.Unlock()
		}
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(target.Close)
	page := strings.NewReplacer("TARGET", target.URL, "FP", fp).Replace(crossSiteAttack)
	attacker := httptest.NewServer(htmlPage(page))
	t.Cleanup(attacker.Close)
	_, port, _ := net.SplitHostPort(attacker.Listener.Addr().String())

	for _, origin := range []struct{ name, url string }{
		{"another port of the same host", attacker.URL + "/"},
		{"another site (localhost instead of 127.0.0.1)", "http://localhost:" + port + "/"},
	} {
		t.Run("a page on "+origin.name+" cannot silence, reload, acknowledge or sign in", func(t *testing.T) {
			mu.Lock()
			arrived = nil
			mu.Unlock()
			dom := dumpDOM(t, bin, origin.url, 3*time.Second)
			mu.Lock()
			got := strings.Join(arrived, "\n")
			mu.Unlock()
			t.Logf("writes that reached callwatch:\n%s", got)
			for _, want := range []string{"POST /api/v1/silences", "POST /-/reload", "POST /api/v1/alerts/" + fp + "/ack", "POST /ui/login"} {
				if !strings.Contains(got, want) {
					t.Fatalf("the attack's %s did not reach callwatch, so the test proves nothing; the page says:\n%s", want, dom)
				}
			}
			if s := f.sil.List(f.clock()); len(s) != 0 {
				t.Fatalf("the page on %s created silences: %+v", origin.name, s)
			}
			if n := f.reloads.Load(); n != 0 {
				t.Fatalf("the page on %s reloaded the rules %d times", origin.name, n)
			}
			if a := f.alert(t, "TenantErrors", "acme"); a.AckedBy != "" {
				t.Fatalf("the page on %s acknowledged the alert as %q", origin.name, a.AckedBy)
			}
			recs, _ := f.audit.History(context.Background(), engine.AuditQuery{})
			for _, r := range recs {
				if r.By == "mallory" {
					t.Fatalf("audit record by the attacker: %+v", r)
				}
			}
		})
	}

	t.Run("callwatch's own origin still uses the JSON API from the browser", func(t *testing.T) {
		f.mux.HandleFunc("GET /test/same-origin-reload", htmlPage(sameOriginReload))
		dom := dumpDOM(t, bin, target.URL+"/test/same-origin-reload", 3*time.Second)
		if !strings.Contains(dom, `<p id="out">reload 200</p>`) || f.reloads.Load() != 1 {
			t.Fatalf("same-origin reload: %d reloads:\n%s", f.reloads.Load(), dom)
		}
	})
}

// TestBrowserShowsSLOBars renders the SLO and budget tables in Chromium:
// the remaining budget and the spend are native <meter> bars, which need
// neither script nor styles the page's policy would block.
func TestBrowserShowsSLOBars(t *testing.T) {
	bin := chromium(t)
	groups, at := sloPageGroups(t)
	srv := httptest.NewServer(PageHandler(Options{Rules: groups, Now: func() time.Time { return at }}))
	defer srv.Close()
	dom := dumpDOM(t, bin, srv.URL+"/", time.Second)
	for _, want := range []string{`<section id="slos">`, `value="80" title="80% of the error budget remains"`, `value="25" title="25% of the limit spent"`,
		`<span class="badge critical">critical</span>`} {
		if !strings.Contains(dom, want) {
			t.Fatalf("the rendered DOM lacks %q:\n%s", want, dom)
		}
	}
}

// foldedHistoryTest opens the first folded list of notifications of the
// status page's audit history, in an iframe of the same origin, and copies
// out the text of its row and of the page's header as Chromium shows them.
var foldedHistoryTest = framePage("folded history", 1000, `var f = document.getElementById("f"), out = document.getElementById("out");
f.addEventListener("load", function () {
  var d = f.contentDocument, det = d.querySelector("#history details.notifications");
  if (!det) { out.textContent = "no folded notifications\n" + d.body.innerText; return; }
  det.open = true;
  out.textContent = "ROW\n" + det.closest("tr").innerText + "\nHEADER\n" + d.querySelector("header").innerText;
});
`)

// TestBrowserStatusPageAtAGlance renders in Chromium what an operator reads
// first: a firing's notifications folded under it, opened to each attempt,
// and, without an admin token, a name box that is not a sign-in.
func TestBrowserStatusPageAtAGlance(t *testing.T) {
	bin := chromium(t)
	f := newPageFixture(t, "")
	at := f.clock()
	labels := map[string]string{"alertname": "Burst", "tenant_id": "initech"}
	note := func(d time.Duration, ch, status string, attempt int) engine.AuditRecord {
		rec := engine.AuditRecord{Time: at.Add(d), Kind: engine.AuditNotification, Fingerprint: "00000000000000aa", Rule: "Burst",
			Channel: ch, NotifyStatus: status, NotifyState: "firing", Attempt: attempt, Labels: labels}
		if status == engine.NotifyFailed {
			rec.Result = "HTTP 502"
		}
		return rec
	}
	if err := f.audit.Record(context.Background(),
		engine.AuditRecord{Time: at, Kind: engine.AuditFiring, Fingerprint: "00000000000000aa", Rule: "Burst", Labels: labels, Value: 42},
		note(0, "ops-wecom", engine.NotifyPending, 0), note(0, "ops-wecom", engine.NotifyFailed, 1), note(time.Second, "ops-wecom", engine.NotifySent, 2),
		note(0, "alertmanager", engine.NotifySent, 1), note(75*time.Second, "alertmanager", engine.NotifySent, 1),
	); err != nil {
		t.Fatal(err)
	}
	f.advance(2 * time.Minute)
	f.mux.HandleFunc("GET /test/history", htmlPage(foldedHistoryTest))
	dom := dumpDOM(t, bin, f.srv.URL+"/test/history", 3*time.Second)
	_, report, _ := strings.Cut(dom, `<pre id="out">`)
	report, _, _ = strings.Cut(report, "</pre>")
	row, header, _ := strings.Cut(report, "HEADER")
	for _, want := range []string{"5 notifications: ops-wecom sent, failed; alertmanager sent ×2 (1 resend)", "ops-wecom: failed (firing) HTTP 502",
		"ops-wecom: sent (firing), attempt 2", "Burst", "value 42"} {
		if !strings.Contains(row, want) {
			t.Errorf("the opened row lacks %q:\n%s", want, report)
		}
	}
	if !strings.Contains(header, "name for the audit trail (no password: no admin token is set)") || !strings.Contains(header, "Use this name") ||
		strings.Contains(header, "Sign in") {
		t.Errorf("the name box reads as a sign-in:\n%s", header)
	}
}
