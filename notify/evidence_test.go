package notify

import (
	"bytes"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/internal/golden"
	"github.com/callwatch/callwatch/rulefmt"
)

// hostileValue is a label value that would mention everyone, link and
// shout if a channel's markup read it.
const hostileValue = "<@all> [click](http://evil.example) **URGENT**"

// burstEvidence is the evidence of an error burst of tenant acme.
func burstEvidence() *engine.Evidence {
	return &engine.Evidence{
		Leaf: `count_over_time(events{status="error"}[5m])`, From: evalTime.Add(-5 * time.Minute), To: evalTime,
		Group: map[string]string{"tenant_id": "acme"}, Total: 812,
		Top: []engine.EvidenceLabel{
			{Label: "error_code", Values: []engine.EvidenceValue{
				{Value: "rate_limited", Count: 503, Share: 503.0 / 812}, {Value: "timeout", Count: 201, Share: 201.0 / 812},
				{Value: hostileValue, Count: 50, Share: 50.0 / 812}}, Other: 58},
			{Label: "model", Values: []engine.EvidenceValue{{Value: "gpt-4o", Count: 700, Share: 700.0 / 812}, {Value: "claude-3", Count: 112, Share: 112.0 / 812}}},
		},
		Examples: []string{"req-7f3a", "req-7f39", "req-7f2c"}, ExamplesBy: "latest",
	}
}

// evidenceBatch has one firing alert of an error-burst rule with evidence.
func evidenceBatch(ev *engine.Evidence) Batch {
	rule := &rulefmt.RuleSpec{Alert: "ErrorBurst", ExprText: `sum by (tenant_id) (count_over_time(events{status="error"}[5m])) > 100`,
		Severity: "error", Evidence: &rulefmt.Evidence{Top: []string{"error_code", "model"}, Limit: 5, Examples: 3}}
	a := engine.Alert{
		State:    engine.StateFiring,
		Labels:   labels.FromStrings("alertname", "ErrorBurst", "severity", "error", "tenant_id", "acme"),
		Value:    812,
		ActiveAt: evalTime.Add(-time.Minute), FiredAt: evalTime, ValidUntil: evalTime.Add(4 * time.Minute),
		Evidence: ev,
	}
	return Batch{Group: "errors", Rule: rule, Time: evalTime, Alerts: []engine.Alert{a}}
}

// chatText returns the message text of a chat channel's request body.
func chatText(t *testing.T, typ string, body []byte) string {
	t.Helper()
	switch typ {
	case "wecom":
		var m weComMessage
		decodeJSON(t, body, &m)
		return m.Markdown.Content
	case "dingtalk":
		var m dingTalkMessage
		decodeJSON(t, body, &m)
		return m.Markdown.Text
	case "feishu":
		var m feishuMessage
		decodeJSON(t, body, &m)
		return m.Card.Elements[0].Content
	case "slack":
		var m slackMessage
		decodeJSON(t, body, &m)
		return m.Text
	}
	t.Fatalf("no chat channel %s", typ)
	return ""
}

func TestEvidenceInEveryChatChannel(t *testing.T) {
	for _, tc := range []struct {
		typ, lang string
		srv       func(t *testing.T) (*service, string)
		// mention is how the hostile value's "<@all>" must read.
		mention string
		head    string
	}{
		{"wecom", "en", func(t *testing.T) (*service, string) { f := newFakeWeCom(t); return f.service, f.url() }, "&#60;@all>", "Evidence: 812 events of"},
		{"wecom", "zh", func(t *testing.T) (*service, string) { f := newFakeWeCom(t); return f.service, f.url() }, "&#60;@all>", "佐证: 最近 5m 内"},
		{"dingtalk", "zh", func(t *testing.T) (*service, string) {
			s := fakeDingTalk(t, "", 20)
			return s, s.URL + "/robot/send?access_token=dt-token"
		}, "&#60;&#64;all>", "共 812 次调用"},
		{"feishu", "en", func(t *testing.T) (*service, string) {
			s := fakeFeishu(t, "", 20, false)
			return s, s.URL + "/open-apis/bot/v2/hook/fs-hook"
		}, "&#60;@all>", "Evidence: 812 events of"},
		{"slack", "en", func(t *testing.T) (*service, string) { s := fakeSlack(t, 20); return s, s.URL }, "&lt;@all&gt;", "Evidence: 812 events of"},
	} {
		t.Run(tc.typ+" "+tc.lang, func(t *testing.T) {
			srv, u := tc.srv(t)
			s := newSender(t, ChannelConfig{Name: "c", Type: tc.typ, URL: u, Language: tc.lang}, Options{})
			if err := send(t, s, evidenceBatch(burstEvidence())); err != nil {
				t.Fatal(err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			text := chatText(t, tc.typ, reqs[0].Body)
			contains(t, tc.typ+" text", text, tc.head, "rate_limited 503 (62%)", "timeout 201 (25%)", "gpt-4o 700 (86%)", "req-7f3a, req-7f39, req-7f2c", tc.mention)
			if strings.Contains(text, "<@all>") || (tc.typ != "slack" && strings.Contains(text, "[click](")) {
				t.Errorf("the hostile value reads as markup:\n%s", text)
			}
			if tc.typ == "wecom" {
				golden.Compare(t, filepath.Join("testdata", "wecom_evidence_"+tc.lang+".json"), reqs[0].Body)
			}
		})
	}
}

func TestEvidenceInWebhooksAlertmanagerAndTheLog(t *testing.T) {
	ev := burstEvidence()
	t.Run("webhook v1 carries it as JSON", func(t *testing.T) {
		srv := webhookReceiver(t, "")
		if err := send(t, newSender(t, ChannelConfig{Name: "w", Type: "webhook", URL: srv.URL}, Options{}), evidenceBatch(ev)); err != nil {
			t.Fatal(err)
		}
		body := srv.requests()[0].Body
		var p struct {
			Alerts []struct {
				Evidence *engine.Evidence `json:"evidence"`
			} `json:"alerts"`
		}
		decodeJSON(t, body, &p)
		if len(p.Alerts) != 1 || p.Alerts[0].Evidence == nil || !reflect.DeepEqual(*p.Alerts[0].Evidence, *ev) {
			t.Fatalf("the payload's evidence is %+v, want %+v", p.Alerts, *ev)
		}
		goldenBodies(t, "webhook_v1_evidence.json", srv.requests())
	})
	text := func(t *testing.T, what, s string) {
		t.Helper()
		contains(t, what, s, "Evidence: 812 events of count_over_time(events{status=\"error\"}[5m]) with tenant_id=\"acme\" in the last 5m",
			"- error_code: rate_limited 503 (62%), timeout 201 (25%), "+hostileValue+" 50 (6%), other 58", "- example calls (latest): req-7f3a, req-7f39, req-7f2c")
	}
	t.Run("webhook GET and legacy carry it as text", func(t *testing.T) {
		srv := webhookReceiver(t, "")
		for _, cfg := range []ChannelConfig{
			{Name: "get", Type: "webhook", URL: srv.URL, Method: "GET", Language: "en"},
			{Name: "legacy", Type: "webhook", URL: srv.URL, Payload: "legacy", Language: "en"},
			{Name: "legacy-get", Type: "webhook", URL: srv.URL, Payload: "legacy", Method: "GET", Language: "en"},
		} {
			if err := send(t, newSender(t, cfg, Options{}), evidenceBatch(ev)); err != nil {
				t.Fatal(err)
			}
		}
		reqs := srv.requests()
		text(t, "GET evidence parameter", reqs[0].Query.Get("evidence"))
		var legacy LegacyPayload
		decodeJSON(t, reqs[1].Body, &legacy)
		text(t, "legacy evidence field", legacy.Evidence)
		text(t, "legacy GET evidence parameter", reqs[2].Query.Get("evidence"))
	})
	t.Run("alertmanager carries it as an annotation", func(t *testing.T) {
		am := fakeAM(t, 0)
		if err := send(t, newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{am.URL}, Language: "en"}, Options{}), evidenceBatch(ev)); err != nil {
			t.Fatal(err)
		}
		var alerts []amAlert
		decodeJSON(t, am.requests()[0].Body, &alerts)
		text(t, "evidence annotation", alerts[0].Annotations[EvidenceAnnotation])
	})
	t.Run("the log writes it", func(t *testing.T) {
		var out bytes.Buffer
		if err := send(t, newSender(t, ChannelConfig{Name: "console", Type: "log", Language: "en"}, Options{Out: &out}), evidenceBatch(ev)); err != nil {
			t.Fatal(err)
		}
		contains(t, "log line", out.String(), `evidence="Evidence: 812 events of`, "req-7f3a, req-7f39, req-7f2c")
	})
	t.Run("an alert without evidence adds nothing", func(t *testing.T) {
		am := fakeAM(t, 0)
		if err := send(t, newSender(t, ChannelConfig{Name: "am", Type: "alertmanager", URLs: []string{am.URL}}, Options{}), evidenceBatch(nil)); err != nil {
			t.Fatal(err)
		}
		var alerts []amAlert
		decodeJSON(t, am.requests()[0].Body, &alerts)
		if _, ok := alerts[0].Annotations[EvidenceAnnotation]; ok {
			t.Errorf("annotations %v have evidence", alerts[0].Annotations)
		}
	})
}

func TestEvidenceMissingSaysWhy(t *testing.T) {
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "c", Type: "wecom", URL: f.url(), Language: "en"}, Options{})
	if err := send(t, s, evidenceBatch(&engine.Evidence{Error: "not gathered: the query took longer than 5s"})); err != nil {
		t.Fatal(err)
	}
	contains(t, "text", chatText(t, "wecom", f.requests()[0].Body), "Evidence: not gathered: the query took longer than 5s")
}

func TestEvidenceIsCutToFitTheMessage(t *testing.T) {
	// As much as the engine keeps: 5 labels of 20 values of 256 bytes that
	// escape to 5 times their size, and 10 request ids of 128 bytes.
	ev := &engine.Evidence{Leaf: "count_over_time(events[5m])", From: evalTime.Add(-5 * time.Minute), To: evalTime, Total: 100}
	for l := range 5 {
		el := engine.EvidenceLabel{Label: fmt.Sprintf("label%d", l)}
		for v := range 20 {
			el.Values = append(el.Values, engine.EvidenceValue{Value: fmt.Sprintf("%02d", v) + strings.Repeat("<", 254), Count: 1, Share: 0.01})
		}
		ev.Top = append(ev.Top, el)
	}
	for i := range 10 {
		ev.Examples = append(ev.Examples, fmt.Sprintf("%02d", i)+strings.Repeat("x", 126))
	}
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "c", Type: "wecom", URL: f.url(), Language: "en"}, Options{})
	if err := send(t, s, evidenceBatch(ev)); err != nil {
		t.Fatal(err)
	}
	text := chatText(t, "wecom", f.requests()[0].Body)
	if len(text) > weComLimit || !utf8.ValidString(text) || strings.HasSuffix(text, truncatedMarker) {
		t.Errorf("a message of %d bytes (limit %d), cut by the channel %v", len(text), weComLimit, strings.HasSuffix(text, truncatedMarker))
	}
	// The evidence gave way, not the links after it; an escaped "<" is 5
	// bytes of the budget.
	contains(t, "text", text, "- … (cut to fit the message)", "[Rule](http://callwatch.example:9099/#rule-errors/ErrorBurst)")
	if strings.Count(text, "&#60;") > evidenceBudget/5 {
		t.Errorf("more escaped evidence than the budget allows:\n%s", text)
	}
}

// weComMessage is the markdown message WeCom receives.
type weComMessage struct {
	Markdown struct {
		Content string `json:"content"`
	} `json:"markdown"`
}
