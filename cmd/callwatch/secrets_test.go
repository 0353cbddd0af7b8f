package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// The secrets of TestNoSecretIsShownAfterEveryKindOfChannelFailure:
// distinctive, so a leak in any encoding is found.
const (
	secWeComKey    = "wecomKEY-e2e-7f6e5d4c3b2a"
	secHookBearer  = "hookBEARER/e2e+7f6e=5d4c"
	secHookSign    = "hookHMAC-e2e-7f6e5d4c"
	secGetBearer   = "getBEARER-e2e-7f6e5d4c3b"
	secGetToken    = "getTOKEN e2e&7f6e/5d4c"
	secSlackToken  = "XslackTOKENe2e7f6e5d4c3b2a"
	secFeishuHook  = "fe15b0c4-e2e0-4a4b-9c9d-7f6e5d4c3b2a"
	secFeishuSign  = "feishuSIGNe2e7f6e5d4c"
	secDingToken   = "dingTOKENe2e7f6e5d4c3b2a1"
	secDingSign    = "SECdinge2e7f6e5d4c3b2a1f0"
	secAMPassword  = "amPASSe2e7f6e5d4c"
	secProxyPasswd = "proxyPASSe2e7f6e5d4c"
)

var e2eSecrets = []string{secWeComKey, secHookBearer, secHookSign, secGetBearer, secGetToken, secSlackToken, secFeishuHook,
	secFeishuSign, secDingToken, secDingSign, secAMPassword, secProxyPasswd}

// leaksIn lists the secrets text shows: as they are, percent-encoded, as
// basic auth, or as a prefix of 8 characters that a cut left behind. The
// text is also read HTML-unescaped, JSON-unescaped and URL-unescaped, the
// ways a page, an API answer or a log line could carry it.
func leaksIn(text string, secrets []string) []string {
	views := []string{text, html.UnescapeString(text)}
	if u, err := url.PathUnescape(text); err == nil {
		views = append(views, u)
	}
	var decoded any
	if json.Unmarshal([]byte(text), &decoded) == nil {
		b, _ := json.Marshal(decoded)
		views = append(views, strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b)))
	}
	var leaks []string
	for _, s := range secrets {
		forms := []string{s, url.QueryEscape(s), url.PathEscape(s), s[:8],
			base64.StdEncoding.EncodeToString([]byte("am:" + s)), base64.StdEncoding.EncodeToString([]byte("proxy:" + s))}
		for _, f := range forms {
			for _, v := range views {
				if strings.Contains(v, f) {
					leaks = append(leaks, f)
					break
				}
			}
		}
	}
	return leaks
}

// echoFailure answers status with a body that repeats the request: the
// request line, the headers and the body.
func echoFailure(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", r.Method, r.URL.RequestURI())
		for k, vs := range r.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ","))
		}
		b.Write(body)
		w.WriteHeader(status)
		io.WriteString(w, b.String())
	}
}

func failingService(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestNoSecretIsShownAfterEveryKindOfChannelFailure configures one channel
// of every kind with distinctive secrets in URLs, headers and signing keys,
// points them at services that fail in different ways (refused, 500 echoing
// the request, timeouts, error codes repeating the URL) and reads
// everything callwatch shows: its logs and start banner, the audit table,
// /api/v1/alerts/history and the status page. No secret may be in any of
// them, in any encoding.
func TestNoSecretIsShownAfterEveryKindOfChannelFailure(t *testing.T) {
	s := server.Get(t)
	db := errorEvents(t, s, 4)

	refused := "http://" + proctest.FreeAddr(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hanging := failingService(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	wecom := failingService(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"errcode":93000,"errmsg":"invalid webhook url %s"}`, r.URL.RequestURI())
	})
	feishu := failingService(t, func(w http.ResponseWriter, r *http.Request) {
		var enc strings.Builder
		for _, c := range []byte(r.URL.Path) {
			fmt.Fprintf(&enc, "%%%02x", c)
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"code":19001,"msg":"param invalid: incoming webhook access token invalid: %s"}`, enc.String())
	})
	dingtalk := failingService(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"errcode":310000,"errmsg":"sign not match, %s"}`, r.URL.RawQuery)
	})
	amAuth := func(u string) string { return strings.Replace(u, "http://", "http://am:"+secAMPassword+"@", 1) }

	dir := t.TempDir()
	dsn := s.DSN(db) + "?http_proxy=" + url.QueryEscape("http://proxy:"+secProxyPasswd+"@127.0.0.1:3128")
	cfgFile := writeConfig(t, dir, fmt.Sprintf(`clickhouse:
  dsn: %q
notification:
  max_attempts: 2
notifiers:
  - {name: wecom, type: wecom, url: %q, timeout: 2s}
  - {name: hook-post, type: webhook, url: %q, headers: {Authorization: %q}, secret: %q, timeout: 2s}
  - {name: hook-get, type: webhook, method: GET, url: %q, headers: {Authorization: %q}, timeout: 500ms}
  - {name: slack, type: slack, url: %q, timeout: 2s}
  - {name: feishu, type: feishu, url: %q, secret: %q, timeout: 2s}
  - {name: dingtalk, type: dingtalk, url: %q, secret: %q, timeout: 2s}
  - {name: am, type: alertmanager, urls: [%q, %q], timeout: 2s}
  - {name: console, type: log}
rule_files: [rules.yaml]
`, dsn,
		wecom+"/cgi-bin/webhook/send?key="+secWeComKey,
		failingService(t, echoFailure(500))+"/hook", "Bearer "+secHookBearer, secHookSign,
		hanging+"/hook?token="+url.QueryEscape(secGetToken), "Bearer "+secGetBearer,
		refused+"/services/T0E2ETEAM1/B0E2EBOT12/"+secSlackToken,
		feishu+"/open-apis/bot/v2/hook/"+secFeishuHook, secFeishuSign,
		dingtalk+"/robot/send?access_token="+secDingToken, secDingSign,
		amAuth(refused), amAuth(failingService(t, echoFailure(500)))))
	channels := []string{"wecom", "hook-post", "hook-get", "slack", "feishu", "dingtalk", "am"}
	writeErrorsRule(t, dir, "10m", "notify: [wecom, hook-post, hook-get, slack, feishu, dingtalk, am, console]")

	base, stdout, stderr := serveInProcess(t, serveRun{config: cfgFile, startTimeout: 20 * time.Second, stopTimeout: 15 * time.Second})

	// Every channel fails (retryable failures twice: max_attempts 2) and says so in the
	// audit table; the console channel delivers.
	conn := s.Conn(t, db)
	results := func() map[string][]string {
		rows, err := conn.Query(context.Background(),
			"SELECT channel, notification_status, notification_result FROM callwatch_alert_log WHERE kind = 'notification'")
		if err != nil {
			return nil
		}
		defer rows.Close()
		out := map[string][]string{}
		for rows.Next() {
			var ch, status, result string
			if err := rows.Scan(&ch, &status, &result); err != nil {
				t.Fatal(err)
			}
			out[ch+"/"+status] = append(out[ch+"/"+status], result)
		}
		return out
	}
	var got map[string][]string
	waitFor(t, "a failed attempt of every channel in the audit table", 30*time.Second, func() bool {
		got = results()
		for _, ch := range channels {
			if len(got[ch+"/failed"]) < 1 {
				return false
			}
		}
		return len(got["console/sent"]) > 0
	})
	waitFor(t, "the final failures in the log", 10*time.Second, func() bool {
		return strings.Count(stderr.String(), `msg="notification failed"`) >= len(channels)
	})

	read := func(path string) string {
		resp, body := httpGet(t, base+path)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return body
	}
	var audit strings.Builder
	for k, rs := range got {
		fmt.Fprintf(&audit, "%s: %s\n", k, strings.Join(rs, "\n"))
	}
	history := read("/api/v1/alerts/history?limit=1000")
	page := read("/")
	for _, ch := range channels {
		if !strings.Contains(history, `"channel":"`+ch+`"`) || !strings.Contains(page, ch) {
			t.Errorf("channel %s is missing from the history or the page; the test would prove nothing", ch)
		}
	}
	for _, out := range []struct{ what, text string }{
		{"the log (stderr)", stderr.String()},
		{"the start banner and the console channel (stdout)", stdout.String()},
		{"the audit table's notification_result", audit.String()},
		{"/api/v1/alerts/history", history},
		{"the status page", page},
	} {
		if leaks := leaksIn(out.text, e2eSecrets); len(leaks) > 0 {
			t.Errorf("%s shows %q", out.what, leaks)
		}
	}
	t.Logf("audit results:\n%s", audit.String())
}
