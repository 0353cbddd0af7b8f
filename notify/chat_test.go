package notify

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/callwatch/callwatch/internal/golden"
)

// fakeDingTalk behaves like a DingTalk custom robot: access token, the
// "加签" signature recomputed from its own secret (timestamp within an hour),
// errors as HTTP 200 with errcode, limit messages a minute.
func fakeDingTalk(t *testing.T, secret string, limit int) *service {
	var sent atomic.Int32
	return newService(t, func(w http.ResponseWriter, r request) {
		fail := func(code int, msg string) {
			writeJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": msg})
		}
		if r.Query.Get("access_token") != "dt-token" {
			fail(300001, "token is not exist")
			return
		}
		if secret != "" {
			ms, err := strconv.ParseInt(r.Query.Get("timestamp"), 10, 64)
			if err != nil || sendTime.Sub(time.UnixMilli(ms)).Abs() > time.Hour {
				fail(310000, "invalid timestamp")
				return
			}
			// Query() has already URL-decoded sign.
			if !hmac.Equal([]byte(r.Query.Get("sign")), []byte(DingTalkSign(secret, r.Query.Get("timestamp")))) {
				fail(310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]")
				return
			}
		}
		var m dingTalkMessage
		if err := json.Unmarshal(r.Body, &m); err != nil || m.MsgType != "markdown" || m.Markdown.Text == "" || m.Markdown.Title == "" {
			fail(40035, "缺少参数 json")
			return
		}
		if int(sent.Add(1)) > limit {
			fail(130101, "send too fast, exceed 20 times per minute")
			return
		}
		fail(0, "ok")
	})
}

func TestDingTalkSignsAndSendsMarkdown(t *testing.T) {
	dt := fakeDingTalk(t, "SECabc123", 20)
	s := newSender(t, ChannelConfig{Name: "dt", Type: "dingtalk", URL: dt.URL + "/robot/send?access_token=dt-token", Secret: "SECabc123",
		Mentions: []string{"user1"}, MentionMobiles: []string{"13800000000"}}, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	r := dt.requests()[0]
	if r.Query.Get("timestamp") != strconv.FormatInt(sendTime.UnixMilli(), 10) {
		t.Errorf("timestamp %q", r.Query.Get("timestamp"))
	}
	goldenBodies(t, "dingtalk_firing_zh.json", []request{r})
	var m dingTalkMessage
	decodeJSON(t, r.Body, &m)
	if m.Markdown.Title != "[HIGH] TenantCost" || strings.Join(m.At.AtMobiles, ",") != "13800000000" ||
		strings.Join(m.At.AtUserIDs, ",") != "user1" || m.At.IsAtAll {
		t.Errorf("message %+v", m)
	}
	contains(t, "text", m.Markdown.Text, "@user1 @13800000000", "当前值: ¥123.456  \n")

	wrong := newSender(t, ChannelConfig{Name: "dt", Type: "dingtalk", URL: dt.URL + "/robot/send?access_token=dt-token", Secret: "SECwrong"}, Options{})
	err := send(t, wrong, firingBatch())
	if classify(err) != "permanent" || !strings.Contains(err.Error(), "310000") {
		t.Errorf("wrong secret: %v, want permanent errcode 310000", err)
	}
}

func TestDingTalkAtAll(t *testing.T) {
	dt := fakeDingTalk(t, "", 20)
	s := newSender(t, ChannelConfig{Name: "dt", Type: "dingtalk", URL: dt.URL + "/robot/send?access_token=dt-token", Mentions: []string{"@all"}}, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	var m dingTalkMessage
	decodeJSON(t, dt.requests()[0].Body, &m)
	if !m.At.IsAtAll || m.At.AtUserIDs == nil || m.At.AtMobiles == nil {
		t.Errorf("at = %+v", m.At)
	}
}

func TestDingTalkClassifiesErrcodes(t *testing.T) {
	dt := fakeDingTalk(t, "", 1)
	checkLimitedThenRefused(t, ChannelConfig{Name: "dt", Type: "dingtalk", URL: dt.URL + "/robot/send?access_token=dt-token"},
		"130101 send too fast", "retry after 1m0s", dt.URL+"/robot/send?access_token=nope", "300001 bad token")
}

// checkLimitedThenRefused sends twice with cfg to a fake that takes one
// message: the first must pass and the second classify as wantLimited
// (limited names the case in failures); then it sends once to badURL,
// which must fail for good (bad names that case).
func checkLimitedThenRefused(t *testing.T, cfg ChannelConfig, limited, wantLimited, badURL, bad string) {
	t.Helper()
	s := newSender(t, cfg, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	if got := classify(send(t, s, firingBatch())); got != wantLimited {
		t.Errorf("%s: %s, want %s", limited, got, wantLimited)
	}
	cfg.URL = badURL
	if got := classify(send(t, newSender(t, cfg, Options{}), firingBatch())); got != "permanent" {
		t.Errorf("%s: %s, want permanent", bad, got)
	}
}

// fakeFeishu behaves like a Feishu custom bot: it recomputes the signature
// from its secret, answers {"code":0,"msg":"success"} or an error code (the
// frequency limit with HTTP 400, as Feishu does), or the older StatusCode
// answer when old is set.
func fakeFeishu(t *testing.T, secret string, limit int, old bool) *service {
	var sent atomic.Int32
	return newService(t, func(w http.ResponseWriter, r request) {
		if r.Path != "/open-apis/bot/v2/hook/fs-hook" {
			writeJSON(w, http.StatusNotFound, map[string]any{"code": 19001, "msg": "param invalid: incoming webhook access token invalid"})
			return
		}
		var m feishuMessage
		if err := json.Unmarshal(r.Body, &m); err != nil || m.MsgType != "interactive" || len(m.Card.Elements) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"code": 19002, "msg": "params error, msg_type need"})
			return
		}
		if secret != "" {
			sec, err := strconv.ParseInt(m.Timestamp, 10, 64)
			if err != nil || sendTime.Sub(time.Unix(sec, 0)).Abs() > time.Hour ||
				!hmac.Equal([]byte(m.Sign), []byte(FeishuSign(secret, m.Timestamp))) {
				writeJSON(w, http.StatusOK, map[string]any{"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"})
				return
			}
		}
		if int(sent.Add(1)) > limit {
			writeJSON(w, http.StatusBadRequest, map[string]any{"code": 11232, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1231]"})
			return
		}
		if old {
			writeJSON(w, http.StatusOK, map[string]any{"Extra": nil, "StatusCode": 0, "StatusMessage": "success"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"code": 0, "data": map[string]any{}, "msg": "success"})
	})
}

func TestFeishuSignsAndSendsACard(t *testing.T) {
	fs := fakeFeishu(t, "fs-secret", 20, false)
	url := fs.URL + "/open-apis/bot/v2/hook/fs-hook"
	s := newSender(t, ChannelConfig{Name: "fs", Type: "feishu", URL: url, Secret: "fs-secret", Mentions: []string{"ou_123", "@all"}}, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	r := fs.requests()[0]
	goldenBodies(t, "feishu_firing_zh.json", []request{r})
	var m feishuMessage
	decodeJSON(t, r.Body, &m)
	if m.Timestamp != strconv.FormatInt(sendTime.Unix(), 10) || m.Card.Header.Template != "red" ||
		m.Card.Header.Title.Content != "[HIGH] TenantCost" {
		t.Errorf("message %+v", m)
	}
	contains(t, "card", m.Card.Elements[0].Content, "<at id=ou_123></at> <at id=all></at>")

	if err := send(t, s, resolvedBatch()); err != nil {
		t.Fatal(err)
	}
	decodeJSON(t, fs.requests()[1].Body, &m)
	if m.Card.Header.Template != "green" {
		t.Errorf("resolved card is %s", m.Card.Header.Template)
	}

	wrong := newSender(t, ChannelConfig{Name: "fs", Type: "feishu", URL: url, Secret: "nope"}, Options{})
	err := send(t, wrong, firingBatch())
	if classify(err) != "permanent" || !strings.Contains(err.Error(), "19021") {
		t.Errorf("wrong secret: %v, want permanent code 19021", err)
	}
}

func TestFeishuClassifiesAnswers(t *testing.T) {
	fs := fakeFeishu(t, "", 1, false)
	checkLimitedThenRefused(t, ChannelConfig{Name: "fs", Type: "feishu", URL: fs.URL + "/open-apis/bot/v2/hook/fs-hook"},
		"11232 with HTTP 400", "retry", fs.URL+"/open-apis/bot/v2/hook/other", "unknown hook")
	old := fakeFeishu(t, "", 1, true)
	if err := send(t, newSender(t, ChannelConfig{Name: "fs", Type: "feishu", URL: old.URL + "/open-apis/bot/v2/hook/fs-hook"}, Options{}), firingBatch()); err != nil {
		t.Errorf("StatusCode 0 answer: %v", err)
	}
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{200, `{"code":9499,"msg":"too many request"}`, "retry"},
		{200, `{"code":19024,"msg":"Key Words Not Found"}`, "permanent"},
		{429, `{"code":99991400,"msg":"request trigger frequency limit"}`, "retry"},
		{502, `<html>bad gateway</html>`, "retry"},
		{200, `<html>portal</html>`, "permanent"},
	} {
		srv := newService(t, func(w http.ResponseWriter, _ request) { w.WriteHeader(tc.status); w.Write([]byte(tc.body)) })
		s := newSender(t, ChannelConfig{Name: "fs", Type: "feishu", URL: srv.URL}, Options{})
		if got := classify(send(t, s, firingBatch())); got != tc.want {
			t.Errorf("%d %s: %s, want %s", tc.status, tc.body, got, tc.want)
		}
	}
}

// fakeSlack behaves like a Slack incoming webhook: 200 "ok", 400
// invalid_payload / no_text, 429 with Retry-After after limit messages.
func fakeSlack(t *testing.T, limit int) *service {
	var sent atomic.Int32
	return newService(t, func(w http.ResponseWriter, r request) {
		var m map[string]any
		if err := json.Unmarshal(r.Body, &m); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte("invalid_payload"))
			return
		}
		if s, _ := m["text"].(string); s == "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte("no_text"))
			return
		}
		if int(sent.Add(1)) > limit {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte("rate_limited"))
			return
		}
		w.Write([]byte("ok"))
	})
}

func TestSlackSendsMrkdwn(t *testing.T) {
	sl := fakeSlack(t, 1)
	s := newSender(t, ChannelConfig{Name: "sl", Type: "slack", URL: sl.URL + "/services/T/B/X", Language: "en",
		Mentions: []string{"U012AB3CD", "@here"}}, Options{})
	b := firingBatch()
	b.Alerts[0].Annotations = b.Alerts[0].Annotations.Copy()
	b.Alerts[0].Annotations = appendLabel(b.Alerts[0].Annotations, "summary", "p95 > 5000 & <rising>")
	if err := send(t, s, b); err != nil {
		t.Fatal(err)
	}
	r := sl.requests()[0]
	goldenBodies(t, "slack_firing_en.json", []request{r})
	var m slackMessage
	decodeJSON(t, r.Body, &m)
	contains(t, "text", m.Text, "*[HIGH] TenantCost*", "p95 &gt; 5000 &amp; &lt;rising&gt;", "<http://callwatch.example:9099/api/v1/alerts|All alerts>", "<@U012AB3CD> <!here>")

	err := send(t, s, firingBatch())
	if got := classify(err); got != "retry after 30s" {
		t.Errorf("429: %s (%v), want retry after 30s", got, err)
	}
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{400, "invalid_payload", "permanent"},
		{403, "action_prohibited", "permanent"},
		{404, "channel_not_found", "permanent"},
		{410, "channel_is_archived", "permanent"},
		{500, "rollup_error", "retry"},
	} {
		srv := newService(t, func(w http.ResponseWriter, _ request) { w.WriteHeader(tc.status); w.Write([]byte(tc.body)) })
		err := send(t, newSender(t, ChannelConfig{Name: "sl", Type: "slack", URL: srv.URL}, Options{}), firingBatch())
		if got := classify(err); got != tc.want || !strings.Contains(err.Error(), tc.body) {
			t.Errorf("%d %s: %s (%v), want %s", tc.status, tc.body, got, err, tc.want)
		}
	}
}

func TestChatChannelsStayWithinTheirLimits(t *testing.T) {
	huge := singleBatch()
	huge.Alerts[0].Annotations = appendLabel(huge.Alerts[0].Annotations, "message", strings.Repeat("超长告警内容", 20000))
	for _, tc := range []struct {
		typ   string
		limit int
		text  func(body []byte) string
	}{
		{"dingtalk", dingTalkLimit, func(b []byte) string { var m dingTalkMessage; json.Unmarshal(b, &m); return m.Markdown.Text }},
		{"feishu", feishuLimit, func(b []byte) string {
			var m feishuMessage
			json.Unmarshal(b, &m)
			return m.Card.Elements[0].Content
		}},
		{"slack", slackLimit, func(b []byte) string { var m slackMessage; json.Unmarshal(b, &m); return m.Text }},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			srv := newService(t, func(w http.ResponseWriter, _ request) { w.Write([]byte(`{"errcode":0,"code":0}`)) })
			s := newSender(t, ChannelConfig{Name: "c", Type: tc.typ, URL: srv.URL}, Options{})
			if err := send(t, s, huge); err != nil {
				t.Fatal(err)
			}
			text := tc.text(srv.requests()[0].Body)
			if len(text) > tc.limit || len(text) < tc.limit-8 || !utf8.ValidString(text) || !strings.HasSuffix(text, truncatedMarker) {
				t.Errorf("text of %d bytes (limit %d), valid UTF-8 %v", len(text), tc.limit, utf8.ValidString(text))
			}
		})
	}
}

func TestLogWritesOneLinePerAlert(t *testing.T) {
	var out bytes.Buffer
	s := newSender(t, ChannelConfig{Name: "console", Type: "log"}, Options{Out: &out})
	if err := send(t, s, digestBatch()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), out.String())
	}
	golden.Compare(t, "testdata/log.txt", out.Bytes())
	contains(t, "line", lines[0], "msg=alert channel=console status=firing rule=TenantCost severity=error", "time=2025-11-24T16:00:00Z", "value=123.456")
	contains(t, "line", lines[3], "status=resolved")

	var logged bytes.Buffer
	s = newSender(t, ChannelConfig{Name: "console", Type: "log"}, Options{Logger: slog.New(slog.NewJSONHandler(&logged, nil))})
	if err := send(t, s, singleBatch()); err != nil {
		t.Fatal(err)
	}
	contains(t, "logger output", logged.String(), `"msg":"alert"`, `"rule":"LatencyAvgHigh"`, `"level":"INFO"`)
}
