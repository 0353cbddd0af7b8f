package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DingTalk posts to a DingTalk (钉钉) custom robot,
// https://oapi.dingtalk.com/robot/send?access_token=…:
//
//	{"msgtype":"markdown",
//	 "markdown":{"title":"[ERROR] TenantCost","text":"**[ERROR] TenantCost**  \n…\n\n@13800000000"},
//	 "at":{"atMobiles":["13800000000"],"atUserIds":["user1"],"isAtAll":false}}
//
// Line breaks are written as markdown hard breaks ("  \n"), which DingTalk
// needs to show single newlines. cfg.MentionMobiles and cfg.Mentions (user
// ids; "@all" sets isAtAll) go to "at", and are also written as @… at the
// end of the text, as DingTalk requires for a mention to show. The text is
// cut to 20000 bytes.
//
// With cfg.Secret (the robot's "加签" secret, SEC…) the URL gets
// &timestamp=<unix ms>&sign=<urlencode(base64(HMAC-SHA256(key=secret,
// message=timestamp+"\n"+secret)))>; DingTalk rejects a timestamp more than
// an hour off.
//
// DingTalk answers HTTP 200 with {"errcode":0,"errmsg":"ok"}; errcode 130101
// (sending too fast: 20 messages a minute) is retried after a minute, -1
// (busy) with backoff, any other code (310000 bad signature or keyword,
// 300001 bad token, …) is permanent.
type DingTalk struct {
	http httpClient
	tmpl *Templates
}

var _ Sender = (*DingTalk)(nil)

const dingTalkLimit = 20000

var dingTalkRetry = map[int]time.Duration{130101: time.Minute, -1: 0}

type dingTalkMessage struct {
	MsgType  string `json:"msgtype"`
	Markdown struct {
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"markdown"`
	At struct {
		AtMobiles []string `json:"atMobiles"`
		AtUserIDs []string `json:"atUserIds"`
		IsAtAll   bool     `json:"isAtAll"`
	} `json:"at"`
}

// Send posts b as one markdown message.
func (d *DingTalk) Send(ctx context.Context, b Batch) error {
	msg, ok, err := d.tmpl.renderAlerts(b)
	if !ok || err != nil {
		return err
	}
	var m dingTalkMessage
	m.MsgType = "markdown"
	m.At.AtMobiles, m.At.AtUserIDs = []string{}, []string{}
	var tags []string
	for _, u := range d.http.cfg.Mentions {
		if u == "@all" {
			m.At.IsAtAll = true
			continue
		}
		m.At.AtUserIDs = append(m.At.AtUserIDs, u)
		tags = append(tags, "@"+u)
	}
	for _, p := range d.http.cfg.MentionMobiles {
		m.At.AtMobiles = append(m.At.AtMobiles, p)
		tags = append(tags, "@"+p)
	}
	m.Markdown.Title = truncateUTF8(msg.Title, 256, "…")
	m.Markdown.Text = withMentions(hardBreaks(msg.Text), dingTalkLimit, "\n\n", tags)
	target, err := d.signedURL()
	if err != nil {
		return err
	}
	a, err := d.http.postJSON(ctx, target, m)
	if err != nil {
		return err
	}
	return d.http.checkErrcode(a, dingTalkRetry)
}

// signedURL adds DingTalk's timestamp and sign parameters when the robot
// has a secret.
func (d *DingTalk) signedURL() (string, error) {
	if d.http.cfg.Secret == "" {
		return d.http.cfg.URL, nil
	}
	u, err := url.Parse(d.http.cfg.URL)
	if err != nil {
		return "", fmt.Errorf("dingtalk: %w", redactErr(err))
	}
	ts := strconv.FormatInt(d.http.now().UnixMilli(), 10)
	q := u.Query()
	q.Set("timestamp", ts)
	q.Set("sign", DingTalkSign(d.http.cfg.Secret, ts))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// DingTalkSign is DingTalk's robot signature before URL encoding:
// base64(HMAC-SHA256(key=secret, message=timestamp+"\n"+secret)), timestamp
// in unix milliseconds.
func DingTalkSign(secret, timestamp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + "\n" + secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// hardBreaks ends every line followed by another non-empty line with two
// spaces, markdown's hard line break, which DingTalk needs to show a single
// newline; empty lines separate paragraphs already.
func hardBreaks(s string) string {
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines)-1; i++ {
		if lines[i] != "" && lines[i+1] != "" {
			lines[i] += "  "
		}
	}
	return strings.Join(lines, "\n")
}
