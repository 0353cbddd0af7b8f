package notify

import (
	"context"
	"strings"
	"time"
)

// WeCom posts to a WeCom (企业微信) group bot webhook,
// https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…:
//
//	{"msgtype":"markdown","markdown":{"content":"**[ERROR] TenantCost**\n\n规则 …"}}
//
// The content is cut to 4096 bytes, WeCom's limit for markdown, on a UTF-8
// character boundary, ending with "…(truncated)".
//
// Mentions: WeCom markdown can mention single members by user id with
// <@userid> but neither @all nor phone numbers, which only the text message
// type's mentioned_list / mentioned_mobile_list support. So cfg.Mentions are
// written as <@userid> at the end of the markdown (kept when the text is
// cut), and when cfg.MentionMobiles are set or cfg.Mentions holds "@all", a
// short text message follows:
//
//	{"msgtype":"text","text":{"content":"[ERROR] TenantCost","mentioned_list":["@all"],"mentioned_mobile_list":["13800000000"]}}
//
// WeCom answers HTTP 200 with {"errcode":0,"errmsg":"ok"}; a non-zero
// errcode is a failure: 45009 (API frequency limit: 20 messages a minute per
// bot) is retried after a minute, -1 (system busy) with backoff; any other
// code (93000 invalid webhook URL, 40008 invalid message type, 40058 bad
// content, …) is permanent. HTTP 5xx and timeouts are retryable, other 4xx
// permanent.
type WeCom struct {
	http httpClient
	tmpl *Templates
}

var _ Sender = (*WeCom)(nil)

// weComLimit is the byte limit of a WeCom markdown content; weComTextLimit
// that of a text message.
const (
	weComLimit     = 4096
	weComTextLimit = 2048
)

// weComRetry are the errcodes worth retrying, with their delay.
var weComRetry = map[int]time.Duration{45009: time.Minute, -1: 0}

type weComMarkdown struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Content string `json:"content"`
	} `json:"markdown"`
}

type weComText struct {
	MsgType string `json:"msgtype"`
	Text    struct {
		Content             string   `json:"content"`
		MentionedList       []string `json:"mentioned_list,omitempty"`
		MentionedMobileList []string `json:"mentioned_mobile_list,omitempty"`
	} `json:"text"`
}

// Send posts b as one markdown message (and the mention message, if any).
func (w *WeCom) Send(ctx context.Context, b Batch) error {
	msg, ok, err := w.tmpl.renderAlerts(b)
	if !ok || err != nil {
		return err
	}
	var users, textMentions []string
	for _, m := range w.http.cfg.Mentions {
		if m == "@all" {
			textMentions = append(textMentions, m)
			continue
		}
		users = append(users, "<@"+m+">")
	}
	var body weComMarkdown
	body.MsgType = "markdown"
	body.Markdown.Content = weComContent(msg.Text, strings.Join(users, " "))
	a, err := w.http.postJSON(ctx, w.http.cfg.URL, body)
	if err != nil {
		return err
	}
	if err := w.http.checkErrcode(a, weComRetry); err != nil {
		return err
	}
	if len(textMentions) == 0 && len(w.http.cfg.MentionMobiles) == 0 {
		return nil
	}
	var text weComText
	text.MsgType = "text"
	text.Text.Content = truncateUTF8(msg.Title, weComTextLimit, truncatedMarker)
	text.Text.MentionedList = textMentions
	text.Text.MentionedMobileList = w.http.cfg.MentionMobiles
	if a, err = w.http.postJSON(ctx, w.http.cfg.URL, text); err != nil {
		return err
	}
	return w.http.checkErrcode(a, weComRetry)
}

// weComContent is text cut so that it and the mentions line fit in 4096
// bytes; the mentions survive the cut.
func weComContent(text, mentions string) string {
	if mentions == "" {
		return truncateUTF8(text, weComLimit, truncatedMarker)
	}
	tail := "\n\n" + mentions
	if len(tail) >= weComLimit/2 {
		return truncateUTF8(text+tail, weComLimit, truncatedMarker)
	}
	return truncateUTF8(text, weComLimit-len(tail), truncatedMarker) + tail
}
