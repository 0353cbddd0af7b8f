package notify

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// The secrets of the channels below: distinctive, so a leak of any of them,
// in any encoding, is found by secretLeaks.
const (
	weComBotKey   = "wecomKEY-0a1b2c3d4e5f"
	dingTalkToken = "dingTOKEN0a1b2c3d4e5f6a7b"
	dingTalkSec   = "SECding0a1b2c3d4e5f6a7b8c"
	feishuHook    = "fe15b0c4-hook-4a4b-9c9d-0e0f1a2b3c4d"
	feishuSec     = "feishuSIGN0a1b2c3d"
	slackTeam     = "T0SLACKTEAM"
	slackBot      = "B0SLACKBOT1"
	slackToken    = "XslackTOKEN0a1b2c3d4e5f6g"
	hookBearer    = "hookBEARER/0a1b+2c3d=4e"
	hookQuery     = "hookQUERY 0a1b&2c3d/4e"
	hookSecret    = "hookHMAC0a1b2c3d"
	amPassword    = "amPASS0a1b2c3d"
)

// leakForms are the ways a secret can show in a text: as it is,
// percent-encoded for a query or a path, and, for Alertmanager's basic
// auth, base64-encoded with its user.
func leakForms(s string) []string {
	forms := []string{s, url.QueryEscape(s), url.PathEscape(s), strings.ToLower(url.QueryEscape(s))}
	if s == amPassword {
		forms = append(forms, base64.StdEncoding.EncodeToString([]byte("am:"+s)))
	}
	return forms
}

// secretLeaks lists the secrets (in any of their forms) text contains, and
// the prefixes of 8 characters or more a cut left behind.
func secretLeaks(text string, secrets ...string) []string {
	var leaks []string
	for _, s := range secrets {
		for _, f := range leakForms(s) {
			if strings.Contains(text, f) {
				leaks = append(leaks, f)
			}
		}
		if p := s[:8]; strings.Contains(text, p) {
			leaks = append(leaks, "prefix "+p)
		}
	}
	return leaks
}

var allSecrets = []string{weComBotKey, dingTalkToken, dingTalkSec, feishuHook, feishuSec, slackTeam, slackBot, slackToken,
	hookBearer, hookQuery, hookSecret, amPassword}

// echo answers every request with status and a body repeating what it
// received: the request line, the headers and the body, the way error pages
// of proxies and debugging endpoints do.
func echo(status int) func(w http.ResponseWriter, r request) {
	return func(w http.ResponseWriter, r request) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s?%s\n", r.Method, r.Path, r.RawQuery)
		for k, vs := range r.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ","))
		}
		b.Write(r.Body)
		w.WriteHeader(status)
		w.Write([]byte(b.String()))
	}
}

// refusedURL is a URL on a port nothing listens on.
func refusedURL(t *testing.T) string { return "http://" + proctest.FreeAddr(t) }

func TestSenderErrorsHideTheChannelsSecrets(t *testing.T) {
	hang := func(t *testing.T) string {
		release := make(chan struct{})
		srv := newService(t, func(http.ResponseWriter, request) { <-release })
		t.Cleanup(func() { close(release) })
		return srv.URL
	}
	serve := func(t *testing.T, h func(http.ResponseWriter, request)) string { return newService(t, h).URL }
	weComPath := "/cgi-bin/webhook/send?key=" + weComBotKey
	dingPath := "/robot/send?access_token=" + dingTalkToken
	feishuPath := "/open-apis/bot/v2/hook/" + feishuHook
	slackPath := "/services/" + slackTeam + "/" + slackBot + "/" + slackToken
	hookHeaders := map[string]string{"Authorization": "Bearer " + hookBearer}
	hookPath := "/hook?token=" + url.QueryEscape(hookQuery)
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) ChannelConfig
	}{
		{"a WeCom bot whose connection is refused", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "wecom", URL: refusedURL(t) + weComPath}
		}},
		{"a WeCom bot answering an errcode that repeats the key", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "wecom", URL: serve(t, func(w http.ResponseWriter, r request) {
				writeJSON(w, http.StatusOK, map[string]any{"errcode": 93000, "errmsg": "invalid webhook url " + r.Path + "?" + r.RawQuery})
			}) + weComPath}
		}},
		{"a WeCom bot answering 500 with the request", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "wecom", URL: serve(t, echo(500)) + weComPath}
		}},
		{"a WeCom bot that times out", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "wecom", URL: hang(t) + weComPath, Timeout: 50 * time.Millisecond}
		}},
		{"a DingTalk robot answering an errcode that repeats the signed URL", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "dingtalk", Secret: dingTalkSec, URL: serve(t, func(w http.ResponseWriter, r request) {
				writeJSON(w, http.StatusOK, map[string]any{"errcode": 310000, "errmsg": "sign not match for " + r.RawQuery + " secret " + dingTalkSec})
			}) + dingPath}
		}},
		{"a DingTalk robot that times out", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "dingtalk", Secret: dingTalkSec, URL: hang(t) + dingPath, Timeout: 50 * time.Millisecond}
		}},
		{"a Feishu bot whose hook is refused", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "feishu", Secret: feishuSec, URL: refusedURL(t) + feishuPath}
		}},
		{"a Feishu bot answering a code that repeats the hook, percent-encoded", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "feishu", Secret: feishuSec, URL: serve(t, func(w http.ResponseWriter, r request) {
				var enc strings.Builder
				for _, c := range []byte(r.Path) {
					fmt.Fprintf(&enc, "%%%02x", c) // every byte, lower-case hex
				}
				writeJSON(w, http.StatusBadRequest, map[string]any{"code": 19001, "msg": "token invalid: " + enc.String()})
			}) + feishuPath}
		}},
		{"a Feishu bot answering 500 with the signed body", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "feishu", Secret: feishuSec, URL: serve(t, echo(500)) + feishuPath}
		}},
		{"a Slack webhook whose connection is refused", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "slack", URL: refusedURL(t) + slackPath}
		}},
		{"a Slack webhook answering 404 with the path, JSON-escaped", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "slack", URL: serve(t, func(w http.ResponseWriter, r request) {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprintf(w, `{"error":"no_service","path":"%s"}`, strings.ReplaceAll(r.Path, "/", `\/`))
			}) + slackPath}
		}},
		{"a Slack webhook whose answer cuts the token in the middle", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "slack", URL: serve(t, func(w http.ResponseWriter, r request) {
				w.WriteHeader(http.StatusGone)
				fmt.Fprintf(w, "%s %s", strings.Repeat("x", 184-len(r.Path)+len(slackToken)), r.Path) // the token starts at 185
			}) + slackPath}
		}},
		{"a webhook answering 500 with its headers", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "webhook", Headers: hookHeaders, Secret: hookSecret, URL: serve(t, echo(500)) + hookPath}
		}},
		{"a GET webhook that times out", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "webhook", Method: "GET", Headers: hookHeaders, Secret: hookSecret, URL: hang(t) + hookPath,
				Timeout: 50 * time.Millisecond}
		}},
		{"a GET webhook answering 400 with the request", func(t *testing.T) ChannelConfig {
			return ChannelConfig{Type: "webhook", Method: "GET", Payload: "legacy", Headers: hookHeaders, URL: serve(t, echo(400)) + hookPath}
		}},
		{"Alertmanagers behind basic auth, one refused, one answering 500 with the request", func(t *testing.T) ChannelConfig {
			withAuth := func(s string) string { return strings.Replace(s, "http://", "http://am:"+amPassword+"@", 1) }
			return ChannelConfig{Type: "alertmanager", URLs: []string{withAuth(refusedURL(t)), withAuth(serve(t, echo(500)))}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(t)
			cfg.Name = cfg.Type
			s := newSender(t, cfg, Options{})
			err := send(t, s, firingBatch())
			if err == nil {
				t.Fatal("the send succeeded; the test needs a failure")
			}
			if leaks := secretLeaks(err.Error(), allSecrets...); len(leaks) > 0 {
				t.Errorf("the error shows %q:\n%v", leaks, err)
			}
			t.Logf("%s: %v", classify(err), err)
		})
	}
}

func TestSenderErrorsKeepTheirClass(t *testing.T) {
	srv := newService(t, func(w http.ResponseWriter, r request) {
		w.Header().Set("Retry-After", "7")
		echo(http.StatusTooManyRequests)(w, r)
	})
	s := newSender(t, ChannelConfig{Name: "s", Type: "slack", URL: srv.URL + "/services/" + slackTeam + "/" + slackBot + "/" + slackToken}, Options{})
	err := send(t, s, firingBatch())
	if got := classify(err); got != "retry after 7s" {
		t.Errorf("429 with Retry-After: %s (%v), want retry after 7s", got, err)
	}
	if leaks := secretLeaks(err.Error(), slackToken); len(leaks) > 0 {
		t.Errorf("the error shows %q: %v", leaks, err)
	}
}

func TestRedactorFindsTheSecretsOfAWebhookURL(t *testing.T) {
	r := newRedactor(ChannelConfig{Type: "webhook", URL: "https://fn.example/api/hook?code=azureKEY123&id=9f8e7d6c5b4a39281706&format=json&token=" + hookSecret})
	got := r.text("echo: code azureKEY123, id 9f8e7d6c5b4a39281706, token " + hookSecret + ", format json")
	if want := "echo: code <secret>, id <secret>, token <secret>, format json"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestValidateHidesTheURLsSecrets(t *testing.T) {
	cfg := ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{"ftp://am:" + amPassword + "@am.example/" + slackToken + "?key=" + weComBotKey}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("an ftp URL was accepted")
	}
	if leaks := secretLeaks(err.Error(), amPassword, slackToken, weComBotKey); len(leaks) > 0 {
		t.Errorf("%v shows %q", err, leaks)
	}
}

func pctAll(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func unicodeEscaped(s string) string {
	var b strings.Builder
	for _, c := range s {
		fmt.Fprintf(&b, `\u%04x`, c)
	}
	return b.String()
}
func TestRedactorHidesEveryFormOfASecret(t *testing.T) {
	r := newRedactor(ChannelConfig{Type: "webhook", URL: "https://user:" + amPassword + "@hooks.example/p/" + slackToken + "?sig=" + url.QueryEscape(hookQuery),
		Headers: map[string]string{"Authorization": "Bearer " + hookBearer}, Secret: hookSecret})
	for _, tc := range []struct{ name, text string }{
		{"the secret as it is", "failed: " + hookSecret},
		{"a bearer token without its scheme", "token " + hookBearer + " rejected"},
		{"the whole header value", "Authorization: Bearer " + hookBearer},
		{"a query-escaped secret", "GET /x?q=" + url.QueryEscape(hookQuery)},
		{"a path-escaped secret", "GET /x/" + url.PathEscape(hookBearer)},
		{"every byte percent-encoded, lower case", "url=" + strings.ToLower(pctAll(hookSecret))},
		{"every byte percent-encoded, upper case", "url=" + pctAll(slackToken)},
		{"JSON unicode escapes", `{"path":"` + unicodeEscaped(slackToken) + `"}`},
		{"JSON-escaped slashes", `{"auth":"` + strings.ReplaceAll(hookBearer, "/", `\/`) + `"}`},
		{"HTML entities", "<p>" + strings.ReplaceAll(hookBearer, "+", "&#43;") + "</p>"},
		{"the password of the URL", "dial https://user:" + amPassword + "@hooks.example/"},
		{"basic auth made from the URL", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+amPassword))},
		{"a token in the URL's path", "Post \"https://hooks.example/p/" + slackToken + "\": EOF"},
		{"a secret next to other text", "abc" + hookSecret + "def"},
		{"half a secret percent-encoded", "GET /x/" + slackToken[:10] + pctAll(slackToken[10:]) + " 404"},
		{"a secret whose slash alone is encoded", "Authorization: Bearer%20" + strings.ReplaceAll(hookBearer, "/", "%2f")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.text(tc.text)
			if leaks := secretLeaks(got, hookSecret, hookBearer, hookQuery, amPassword, slackToken); len(leaks) > 0 {
				t.Errorf("%q shows %q", got, leaks)
			}
			if !strings.Contains(got, redactedMarker) {
				t.Errorf("%q has no %s marker", got, redactedMarker)
			}
		})
	}
}

func TestRedactorHidesSecretParametersItWasNotTold(t *testing.T) {
	r := newRedactor(ChannelConfig{Type: "dingtalk", URL: "https://oapi.example/robot/send?access_token=" + dingTalkToken})
	for _, text := range []string{
		"POST https://oapi.example/robot/send?access_token=other-token-123&timestamp=1&sign=c2lnbmF0dXJl%3D",
		`{"sign":"c2lnbmF0dXJl","access_token":"other-token-123"}`,
		"https://db.example/?password=other-token-123",
	} {
		got := r.text(text)
		if strings.Contains(got, "other-token-123") || strings.Contains(got, "c2lnbmF0dXJl") {
			t.Errorf("%q: shows a credential: %q", text, got)
		}
	}
	if got := r.text("a plain error: connection refused"); got != "a plain error: connection refused" {
		t.Errorf("a text without secrets changed: %q", got)
	}
}
