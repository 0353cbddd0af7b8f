package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// fakeWeCom behaves like a WeCom group bot webhook: it checks the key, the
// message type and the content limits, answers errors with HTTP 200 and a
// non-zero errcode, and allows limit messages a minute (WeCom: 20).
type fakeWeCom struct {
	*service
	key   string
	limit int

	mu   sync.Mutex
	sent int
}

const weComKey = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"

func newFakeWeCom(t *testing.T) *fakeWeCom {
	f := &fakeWeCom{key: weComKey, limit: 20}
	f.service = newService(t, f.answer)
	return f
}

func (f *fakeWeCom) url() string { return f.URL + "/cgi-bin/webhook/send?key=" + f.key }

func (f *fakeWeCom) answer(w http.ResponseWriter, r request) {
	fail := func(code int, msg string) {
		writeJSON(w, http.StatusOK, map[string]any{"errcode": code, "errmsg": msg})
	}
	if r.Method != http.MethodPost || r.Path != "/cgi-bin/webhook/send" {
		http.NotFound(w, nil)
		return
	}
	if r.Query.Get("key") != f.key {
		fail(93000, "invalid webhook url, hint: [1764000000_1_abc], from ip: 127.0.0.1")
		return
	}
	var msg struct {
		MsgType  string `json:"msgtype"`
		Markdown *struct {
			Content string `json:"content"`
		} `json:"markdown"`
		Text *struct {
			Content             string   `json:"content"`
			MentionedList       []string `json:"mentioned_list"`
			MentionedMobileList []string `json:"mentioned_mobile_list"`
		} `json:"text"`
	}
	if err := json.Unmarshal(r.Body, &msg); err != nil {
		fail(40001, "invalid json")
		return
	}
	switch {
	case msg.MsgType == "markdown" && msg.Markdown != nil:
		c := msg.Markdown.Content
		if c == "" || !utf8.ValidString(c) || len(c) > 4096 {
			fail(40058, fmt.Sprintf("markdown.content exceed max length 4096. invalid Request Parameter (%d bytes)", len(c)))
			return
		}
	case msg.MsgType == "text" && msg.Text != nil:
		if len(msg.Text.Content) > 2048 {
			fail(40058, "text.content exceed max length 2048")
			return
		}
	default:
		fail(40008, "invalid message type")
		return
	}
	f.mu.Lock()
	f.sent++
	over := f.sent > f.limit
	f.mu.Unlock()
	if over {
		fail(45009, "api freq out of limit")
		return
	}
	fail(0, "ok")
}

func TestWeComSendsTheMarkdownMessageOfTheGoldenFile(t *testing.T) {
	for _, tc := range []struct {
		name, lang string
		batch      Batch
	}{
		{"wecom_firing_zh.json", "zh", firingBatch()},
		{"wecom_firing_en.json", "en", firingBatch()},
		{"wecom_resolved_zh.json", "zh", resolvedBatch()},
		{"wecom_resolved_en.json", "en", resolvedBatch()},
		{"wecom_generated_zh.json", "zh", singleBatch()},
		{"wecom_generated_en.json", "en", singleBatch()},
		{"wecom_digest_zh.json", "zh", digestBatch()},
		{"wecom_digest_en.json", "en", digestBatch()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeWeCom(t)
			s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url(), Language: tc.lang}, Options{})
			if err := send(t, s, tc.batch); err != nil {
				t.Fatal(err)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			if ct := reqs[0].Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			goldenBodies(t, tc.name, reqs)
		})
	}
}

func TestWeComKeepsTheBaselineWording(t *testing.T) {
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url()}, Options{})
	if err := send(t, s, singleBatch()); err != nil {
		t.Fatal(err)
	}
	var msg weComMarkdown
	decodeJSON(t, f.requests()[0].Body, &msg)
	contains(t, "content", msg.Markdown.Content,
		"**[WARNING] LatencyAvgHigh**", "规则 'LatencyAvgHigh' 触发告警\n当前值: 3456.789\n应用: chat", "时间: 2025-11-24T16:00:00Z")
}

func TestWeComClassifiesAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"errcode 0 is success", 200, `{"errcode":0,"errmsg":"ok"}`, "ok"},
		{"45009 api freq out of limit is retried after a minute", 200, `{"errcode":45009,"errmsg":"api freq out of limit"}`, "retry after 1m0s"},
		{"-1 system busy is retried", 200, `{"errcode":-1,"errmsg":"system busy"}`, "retry"},
		{"93000 invalid webhook url is permanent", 200, `{"errcode":93000,"errmsg":"invalid webhook url"}`, "permanent"},
		{"40008 invalid message type is permanent", 200, `{"errcode":40008,"errmsg":"invalid message type"}`, "permanent"},
		{"40058 bad content is permanent", 200, `{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}`, "permanent"},
		{"a 200 that is not WeCom's JSON is permanent", 200, `<html>proxy</html>`, "permanent"},
		{"HTTP 502 is retried", 502, `bad gateway`, "retry"},
		{"HTTP 503 with Retry-After is retried after it", 503, `busy`, "retry after 2s"},
		{"HTTP 404 is permanent", 404, `not found`, "permanent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newService(t, func(w http.ResponseWriter, _ request) {
				if tc.status == 503 {
					w.Header().Set("Retry-After", "2")
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: srv.URL + "/cgi-bin/webhook/send?key=k"}, Options{})
			err := send(t, s, firingBatch())
			if got := classify(err); got != tc.want {
				t.Errorf("got %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestWeComWithAWrongKeyFailsPermanently(t *testing.T) {
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.URL + "/cgi-bin/webhook/send?key=wrong"}, Options{})
	err := send(t, s, firingBatch())
	if classify(err) != "permanent" || !strings.Contains(err.Error(), "errcode 93000") {
		t.Errorf("got %v, want a permanent errcode 93000", err)
	}
}

func TestWeComRateLimitIsRetryableAfterAMinute(t *testing.T) {
	f := newFakeWeCom(t)
	f.limit = 2
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url()}, Options{})
	for i := range 2 {
		if err := send(t, s, firingBatch()); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	err := send(t, s, firingBatch())
	if got := classify(err); got != "retry after 1m0s" {
		t.Errorf("third message: %s (%v), want retry after 1m0s", got, err)
	}
}

func TestWeComCutsTheContentTo4096BytesOnACharacterBoundary(t *testing.T) {
	for _, mentions := range [][]string{nil, {"zhangsan", "lisi"}} {
		t.Run(fmt.Sprintf("mentions %v", mentions), func(t *testing.T) {
			// Offsets 0..3 before the long text move the cut across every
			// byte of the 3-byte characters.
			for pad := range 4 {
				f := newFakeWeCom(t)
				s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url(), Mentions: mentions}, Options{})
				b := singleBatch()
				b.Alerts[0].Annotations = labels.FromStrings("message", strings.Repeat("x", pad)+strings.Repeat("告警内容", 800))
				if err := send(t, s, b); err != nil {
					t.Fatalf("pad %d: %v", pad, err)
				}
				var msg weComMarkdown
				decodeJSON(t, f.requests()[0].Body, &msg)
				c := msg.Markdown.Content
				if len(c) > 4096 || !utf8.ValidString(c) {
					t.Fatalf("pad %d: content is %d bytes, valid UTF-8 %v", pad, len(c), utf8.ValidString(c))
				}
				if len(c) < 4096-3 {
					t.Errorf("pad %d: content is %d bytes; the cut wastes room", pad, len(c))
				}
				if !strings.Contains(c, truncatedMarker) {
					t.Errorf("pad %d: no truncation marker", pad)
				}
				for _, m := range mentions {
					if !strings.HasSuffix(strings.TrimSpace(c), "<@lisi>") || !strings.Contains(c, "<@"+m+">") {
						t.Errorf("pad %d: mention %s lost in the cut: ...%s", pad, m, c[len(c)-60:])
					}
				}
			}
		})
	}
}

func TestWeComMentionsUsersInlineAndMobilesInAFollowUpText(t *testing.T) {
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url(),
		Mentions: []string{"zhangsan", "@all"}, MentionMobiles: []string{"13800000000"}}, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want the markdown and the mention text", len(reqs))
	}
	var md weComMarkdown
	decodeJSON(t, reqs[0].Body, &md)
	contains(t, "markdown", md.Markdown.Content, "<@zhangsan>")
	if strings.Contains(md.Markdown.Content, "<@@all>") {
		t.Errorf("@all written inline: %s", md.Markdown.Content)
	}
	var txt weComText
	decodeJSON(t, reqs[1].Body, &txt)
	if txt.MsgType != "text" || txt.Text.Content != "[HIGH] TenantCost" ||
		strings.Join(txt.Text.MentionedList, ",") != "@all" || strings.Join(txt.Text.MentionedMobileList, ",") != "13800000000" {
		t.Errorf("follow-up = %s", reqs[1].Body)
	}
}

func TestWeComWithoutMobilesSendsOneMessage(t *testing.T) {
	f := newFakeWeCom(t)
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: f.url(), Mentions: []string{"zhangsan"}}, Options{})
	if err := send(t, s, firingBatch()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestWeComTimeoutIsRetryableAndErrorsHideTheKey(t *testing.T) {
	release := make(chan struct{})
	srv := newService(t, func(_ http.ResponseWriter, _ request) { <-release })
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: srv.URL + "/cgi-bin/webhook/send?key=secret-key",
		Timeout: 50 * time.Millisecond}, Options{})
	err := send(t, s, firingBatch())
	if classify(err) != "retry" {
		t.Errorf("timeout: %s (%v), want retry", classify(err), err)
	}
	if err != nil && strings.Contains(err.Error(), "secret-key") {
		t.Errorf("the error shows the bot key: %v", err)
	}

	close(release)
	srv.Close() // now the connection is refused
	err = send(t, s, firingBatch())
	if classify(err) != "retry" || strings.Contains(err.Error(), "secret-key") {
		t.Errorf("refused: %s (%v), want retry without the key", classify(err), err)
	}
}

func TestWeComReturnsTheCallersCancellation(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := newService(t, func(_ http.ResponseWriter, _ request) { arrived <- struct{}{}; <-release })
	defer close(release)
	s := newSender(t, ChannelConfig{Name: "ops", Type: "wecom", URL: srv.URL + "/?key=k"}, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Send(ctx, firingBatch()) }()
	<-arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || IsRetryable(err) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
