package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Feishu posts to a Feishu / Lark (飞书) custom bot,
// https://open.feishu.cn/open-apis/bot/v2/hook/…, as an interactive card
// whose header is the title (red when firing, green when resolved, orange
// for a digest) and whose body is one markdown element:
//
//	{"msg_type":"interactive",
//	 "card":{"header":{"title":{"tag":"plain_text","content":"[ERROR] TenantCost"},"template":"red"},
//	         "elements":[{"tag":"markdown","content":"…\n<at id=ou_xxx></at>"}]},
//	 "timestamp":"1764000000","sign":"…"}
//
// cfg.Mentions are open ids / user ids written as <at id=…></at> ("@all":
// <at id=all></at>); Feishu bots cannot mention by phone number, so
// cfg.MentionMobiles are ignored. The text is cut to 18000 bytes (the bot
// accepts request bodies up to 20 KB).
//
// With cfg.Secret (签名校验) the body gets "timestamp" (unix seconds, as a
// string) and "sign" = base64(HMAC-SHA256(key=timestamp+"\n"+secret,
// message=empty)); Feishu rejects a timestamp more than an hour off.
//
// Feishu answers {"code":0,"msg":"success"} (older deployments:
// {"StatusCode":0,"StatusMessage":"success"}), with HTTP 200 or, for some
// errors, 400; code 9499 and 11232 (frequency limited: 100 a minute, 5 a
// second) are retryable, other codes (19021 bad signature, 19024 keyword
// missing, …) permanent. HTTP 429, 5xx and timeouts are retryable.
type Feishu struct {
	http httpClient
	tmpl *Templates
}

var _ Sender = (*Feishu)(nil)

const feishuLimit = 18000

// feishuRetry are the codes meaning "frequency limited".
var feishuRetry = map[int]bool{9499: true, 11232: true}

type feishuMessage struct {
	MsgType   string     `json:"msg_type"`
	Card      feishuCard `json:"card"`
	Timestamp string     `json:"timestamp,omitempty"`
	Sign      string     `json:"sign,omitempty"`
}

type feishuCard struct {
	Header struct {
		Title struct {
			Tag     string `json:"tag"`
			Content string `json:"content"`
		} `json:"title"`
		Template string `json:"template"`
	} `json:"header"`
	Elements []feishuElement `json:"elements"`
}

type feishuElement struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

type feishuAnswer struct {
	Code          *int   `json:"code"`
	Msg           string `json:"msg"`
	StatusCode    *int   `json:"StatusCode"`
	StatusMessage string `json:"StatusMessage"`
}

// Send posts b as one card.
func (f *Feishu) Send(ctx context.Context, b Batch) error {
	msg, ok, err := f.tmpl.renderAlerts(b)
	if !ok || err != nil {
		return err
	}
	m := feishuMessage{MsgType: "interactive"}
	m.Card.Header.Title.Tag = "plain_text"
	m.Card.Header.Title.Content = truncateUTF8(msg.Title, 256, "…")
	m.Card.Header.Template = feishuColor(b)
	var tags []string
	for _, u := range f.http.cfg.Mentions {
		tags = append(tags, "<at id="+strings.TrimPrefix(u, "@")+"></at>")
	}
	m.Card.Elements = []feishuElement{{Tag: "markdown", Content: withMentions(msg.Text, feishuLimit, "\n", tags)}}
	if f.http.cfg.Secret != "" {
		m.Timestamp = strconv.FormatInt(f.http.now().Unix(), 10)
		m.Sign = FeishuSign(f.http.cfg.Secret, m.Timestamp)
	}
	a, err := f.http.postJSON(ctx, f.http.cfg.URL, m)
	if err != nil {
		return err
	}
	return f.check(a)
}

// check classifies Feishu's answer: the code when there is one (Feishu
// reports some errors with HTTP 400 and a code), else the HTTP status.
func (f *Feishu) check(a *answer) error {
	var ans feishuAnswer
	if err := json.Unmarshal(a.body, &ans); err != nil || (ans.Code == nil && ans.StatusCode == nil) {
		if err := f.http.checkStatus(a); err != nil {
			return err
		}
		return fmt.Errorf("feishu: unexpected answer: %s", f.http.snippet(a.body))
	}
	code, text := 0, ans.Msg
	if ans.Code != nil {
		code = *ans.Code
	} else {
		code, text = *ans.StatusCode, ans.StatusMessage
	}
	if code == 0 {
		return f.http.checkStatus(a)
	}
	err := fmt.Errorf("feishu: code %d: %s", code, text)
	if feishuRetry[code] || a.status == http.StatusTooManyRequests || a.status >= 500 {
		return &RetryableError{Err: err, After: retryAfter(a.header, f.http.now())}
	}
	return err
}

func feishuColor(b Batch) string {
	if len(b.Digest) > 0 {
		return "orange"
	}
	for _, a := range b.Alerts {
		if !isResolved(a) {
			return "red"
		}
	}
	return "green"
}

// FeishuSign is Feishu's bot signature: base64(HMAC-SHA256 with key
// timestamp+"\n"+secret over an empty message), timestamp in unix seconds.
func FeishuSign(secret, timestamp string) string {
	m := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
