package web

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
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

// clickTest drives the status page the way an operator does, in an
// iframe of the same origin: it signs in with a name and the admin token,
// then types a comment and clicks the acknowledge button of one alert.
// Each step runs when the frame has loaded the page the previous step's
// form post redirected to. The last step copies the page's text out of the
// frame, so --dump-dom shows it.
const clickTest = `<!doctype html>
<title>click test</title>
<iframe id="f" src="/" style="width:1400px;height:1000px"></iframe>
<pre id="out"></pre>
<script>
var f = document.getElementById("f"), out = document.getElementById("out"), step = 0;
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
</script>`

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
	f.mux.HandleFunc("GET /test/click", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, clickTest, token, fp)
	})
	f.mux.HandleFunc("GET /test/reload", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, reloadTest)
	})

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
