package notify

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

// injection is the label value of issue 12: a mention of everyone, a
// disguised link and bold text.
const injection = "<@all> [click](http://evil.example) **URGENT**"

// injectionBatch has one alert whose scope label, title, message and
// summary carry the injection, plus the other mention syntaxes of the chat
// services.
func injectionBatch() Batch {
	rule := &rulefmt.RuleSpec{Alert: "TenantCost", ExprText: "sum by (tenant_id) (sum_over_time(cost[1d])) > 100", Severity: "error"}
	a := engine.Alert{
		State:  engine.StateFiring,
		Labels: labels.FromStrings("alertname", "TenantCost", "severity", "error", "tenant_id", injection),
		Annotations: labels.FromStrings(
			"title", "[HIGH] "+injection,
			"message", injection+"\n<!channel> <!here> <@U012AB3CD> <at id=all></at> @all @13800000000\n# heading\n> quote\n__bold__ *it* ~~gone~~ `code` ![img](http://evil.example/x.png) <font color=\"warning\">red</font>",
			"summary", injection+" <!channel>",
		),
		Value:    123,
		ActiveAt: evalTime, FiredAt: evalTime,
	}
	return Batch{Group: "costs", Rule: rule, Time: evalTime, Alerts: []engine.Alert{a}}
}

func TestChatMessagesShowLabelValuesLiterally(t *testing.T) {
	// Every markup the injection could turn into, per channel: mentions,
	// links, bold and the services' own tags.
	markdownForbidden := []string{"<@all>", "<@U012AB3CD>", "<at id=all>", "](http://evil.example)", "**URGENT**", "__bold__",
		"<font", "# heading", "\n> quote", "~~gone~~", "`code`", "*it*"}
	for _, tc := range []struct {
		typ, lang string
		// text is the markup of the message.
		text      func(body []byte) string
		forbidden []string
		// kept is the template's own markup, which escaping must not touch.
		kept []string
	}{
		{"wecom", "zh", func(b []byte) string { var m weComMarkdown; json.Unmarshal(b, &m); return m.Markdown.Content },
			markdownForbidden, []string{"**", "[全部告警](http://callwatch.example:9099/api/v1/alerts)"}},
		{"dingtalk", "zh", func(b []byte) string { var m dingTalkMessage; json.Unmarshal(b, &m); return m.Markdown.Text },
			append([]string{"@all", "@13800000000"}, markdownForbidden...), []string{"**", "[全部告警](http://callwatch.example:9099/api/v1/alerts)"}},
		{"feishu", "zh", func(b []byte) string {
			var m feishuMessage
			json.Unmarshal(b, &m)
			return m.Card.Elements[0].Content
		}, markdownForbidden, []string{"**", "[全部告警](http://callwatch.example:9099/api/v1/alerts)"}},
		{"slack", "zh", func(b []byte) string { var m slackMessage; json.Unmarshal(b, &m); return m.Text },
			[]string{"<@all>", "<!channel>", "<!here>", "<@U012AB3CD>", "<at id=all>", "<font", "<http://evil.example", "*URGENT*", "**", "`code`",
				"~gone~", "_bold_", "*it*"},
			[]string{"*", "<http://callwatch.example:9099/api/v1/alerts|全部告警>"}},
	} {
		t.Run("a "+tc.typ+" message", func(t *testing.T) {
			srv := newService(t, func(w http.ResponseWriter, _ request) { w.Write([]byte(`{"errcode":0,"code":0}`)) })
			s := newSender(t, ChannelConfig{Name: tc.typ, Type: tc.typ, URL: srv.URL + "/hook", Language: tc.lang}, Options{})
			if err := send(t, s, injectionBatch()); err != nil {
				t.Fatal(err)
			}
			reqs := srv.requests()
			text := tc.text(reqs[0].Body)
			for _, f := range tc.forbidden {
				if strings.Contains(text, f) {
					t.Errorf("the message contains %q:\n%s", f, text)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(text, k) {
					t.Errorf("the template's markup %q is gone:\n%s", k, text)
				}
			}
			if !strings.HasPrefix(text, map[bool]string{true: "*", false: "**"}[tc.typ == "slack"]) {
				t.Errorf("the title is not bold:\n%s", text)
			}
			goldenBodies(t, "injection_"+tc.typ+".json", reqs[:1])
		})
	}
}

func TestEscapers(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Format
		in   string
		want string
	}{
		{"the issue's value in WeCom", FormatMarkdown, injection, "&#60;@all> [click&#93;(http://evil.example) &#42;&#42;URGENT&#42;&#42;"},
		{"the issue's value in DingTalk", FormatDingTalk, injection, "&#60;&#64;all> [click&#93;(http://evil.example) &#42;&#42;URGENT&#42;&#42;"},
		{"the issue's value in Feishu", FormatFeishu, injection, "&#60;@all> [click&#93;(http://evil.example) &#42;&#42;URGENT&#42;&#42;"},
		{"the issue's value in Slack", FormatSlack, injection, "&lt;@all&gt; [click](http://evil.example) ∗∗URGENT∗∗"},
		{"the issue's value in plain text", FormatText, injection, injection},
		{"snake_case stays readable", FormatMarkdown, "tenant_id=acme_corp", "tenant_id=acme_corp"},
		{"snake_case stays readable in Slack", FormatSlack, "tenant_id=acme_corp", "tenant_id=acme_corp"},
		{"underscores around a word are escaped", FormatMarkdown, "_it_ __b__", "&#95;it&#95; &#95;&#95;b&#95;&#95;"},
		{"a bracket without a link stays", FormatMarkdown, "[HIGH] [已恢复] a[1]b", "[HIGH] [已恢复] a[1]b"},
		{"a bracket before a link, a reference or a definition is escaped", FormatFeishu, "[a](u) [b][c] [d]: u [e] (u) [f]",
			"[a&#93;(u) [b&#93;[c] [d&#93;: u [e&#93; (u) [f&#93;"},
		{"a heading or a quote only at the start of a line", FormatMarkdown, "# h\n  > q\na # b > c", "&#35; h\n  &#62; q\na # b > c"},
		{"a line of = or - is no heading underline", FormatMarkdown, "title\n===\nx\n- - -\n-5 and a-b", "title\n&#61;==\nx\n&#45; - -\n-5 and a-b"},
		{"an ampersand cannot make a reference of its own", FormatMarkdown, "&#60; &lt;", "&#38;#60; &#38;lt;"},
		{"a backslash cannot escape an escape", FormatMarkdown, `\&#42;`, `&#92;&#38;#42;`},
		{"code, strikethrough and tables are escaped", FormatMarkdown, "`x` ~~y~~ a|b", "&#96;x&#96; &#126;&#126;y&#126;&#126; a&#124;b"},
		{"a DingTalk mention is escaped, an e-mail address is not", FormatDingTalk, "@all @13800000000 ops@example.com",
			"&#64;all &#64;13800000000 ops@example.com"},
		{"Slack's mentions, links and special mentions are escaped", FormatSlack, "<@U1> <!here> <http://x|y> a & b",
			"&lt;@U1&gt; &lt;!here&gt; &lt;http://x|y&gt; a &amp; b"},
		{"Slack's emphasis gets look-alikes", FormatSlack, "*b* _i_ ~s~ `c`", "∗b∗ ˍiˍ ∼s∼ ˋcˋ"},
		{"Chinese text is untouched", FormatMarkdown, "规则 'TenantCost' 触发告警\n当前值: ¥123.45", "规则 'TenantCost' 触发告警\n当前值: ¥123.45"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := escaper(tc.f)(tc.in); got != tc.want {
				t.Errorf("escaped %q\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestEveryValueTemplatesGetIsEscaped fills every string a template can
// read with the injection and checks that, after escaping, only the links
// callwatch makes still hold it: a field added to the data without being
// escaped fails here.
func TestEveryValueTemplatesGetIsEscaped(t *testing.T) {
	unescaped := map[string]bool{"AlertsURL": true, "GeneratorURL": true}
	for _, data := range []any{
		func() any {
			var d MessageData
			fill(reflect.ValueOf(&d).Elem())
			return escapeMessage(d, escaper(FormatMarkdown))
		}(),
		func() any {
			var d DigestData
			fill(reflect.ValueOf(&d).Elem())
			return escapeDigest(d, escaper(FormatMarkdown))
		}(),
	} {
		walk(reflect.ValueOf(data), reflect.TypeOf(data).Name(), func(path, field, s string) {
			if unescaped[field] {
				if s != injection {
					t.Errorf("%s is a link and was changed: %q", path, s)
				}
				return
			}
			if strings.Contains(s, "<@all>") {
				t.Errorf("%s is not escaped: %q", path, s)
			}
		})
	}
}

// fill sets every string (and map value and slice element) under v to the
// injection.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(injection)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i))
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf(injection))
		v.Set(m)
	}
}

// walk calls f with every string under v, its path and the name of the
// field holding it.
func walk(v reflect.Value, path string, f func(path, field, s string)) {
	switch v.Kind() {
	case reflect.String:
		f(path, path[strings.LastIndex(path, ".")+1:], v.String())
	case reflect.Struct:
		for i := range v.NumField() {
			walk(v.Field(i), path+"."+v.Type().Field(i).Name, f)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walk(v.Index(i), path, f)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walk(v.MapIndex(k), path, f)
		}
	}
}

// TestEscapersBlockStarts covers the places a heading or a quote can start
// besides the first column: after a carriage return alone (markdown reads
// \r as a line ending, as marked and CommonMark do) and after list or quote
// markers (CommonMark's "- # h" is a heading inside a list item).
func TestEscapersBlockStarts(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"a carriage return starts a line", "ok\r# URGENT\r> quote\r===\r---\rx", "ok\r&#35; URGENT\r&#62; quote\r&#61;==\r&#45;--\rx"},
		{"a heading after a list marker", "- # URGENT\n+ # b\n1. # c\n12) # d", "- &#35; URGENT\n+ &#35; b\n1. &#35; c\n12) &#35; d"},
		{"a quote after a list marker", "- > q\n  1. > r", "- &#62; q\n  1. &#62; r"},
		{"a heading inside a quote", "> # h", "&#62; &#35; h"},
		{"no marker without a blank after it", "-# a\n1.# b\nv1. # c\na - # d", "-# a\n1.# b\nv1. # c\na - # d"},
	} {
		for name, f := range map[string]Format{"WeCom": FormatMarkdown, "DingTalk": FormatDingTalk, "Feishu": FormatFeishu} {
			t.Run(tc.name+" in "+name, func(t *testing.T) {
				if got := escaper(f)(tc.in); got != tc.want {
					t.Errorf("escaped %q\n got %q\nwant %q", tc.in, got, tc.want)
				}
			})
		}
	}
}
