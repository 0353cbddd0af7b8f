package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Options are what every sender shares; New fills the defaults.
type Options struct {
	// Client sends the requests; default: one whose Timeout is the channel's
	// Timeout (10s when unset).
	Client *http.Client
	// Logger receives the log channel's lines when Out is nil.
	Logger *slog.Logger
	// Out receives the log channel's lines; when both Out and Logger are nil
	// the lines go to standard error, so a log channel is never silent.
	Out io.Writer
	// ExternalURL is callwatch's own URL, for links in messages and the
	// generatorURL of alerts; a Batch's own ExternalURL takes precedence.
	ExternalURL *url.URL
	// Location is the time zone of the times written in message texts
	// (default UTC). Machine payloads (webhook v1, Alertmanager) are always UTC.
	Location *time.Location
	// Now is the clock for signatures and sentAt (default time.Now).
	Now func() time.Time
}

// defaultTimeout bounds one attempt when the channel sets no timeout.
const defaultTimeout = 10 * time.Second

// userAgent identifies callwatch to the services it posts to.
const userAgent = "callwatch"

// maxAnswer caps how much of an answer is read: the services answer a few
// hundred bytes, and an error page is only quoted in part.
const maxAnswer = 64 << 10

// New returns the sender for cfg.Type, after validating cfg and parsing its
// templates (a bad template is reported here, with the channel's name, not at
// the first alert).
func New(cfg ChannelConfig, opts Options) (Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	format := FormatMarkdown
	switch cfg.Type {
	case "slack":
		format = FormatSlack
	case "dingtalk":
		format = FormatDingTalk
	case "feishu":
		format = FormatFeishu
	case "log", "webhook", "alertmanager":
		format = FormatText
	}
	tmpl, err := NewTemplates(cfg, TemplateOptions{Format: format, Location: opts.Location, ExternalURL: opts.ExternalURL})
	if err != nil {
		return nil, err
	}
	r := newRedactor(cfg)
	h := httpClient{cfg: cfg, client: opts.Client, now: opts.Now, redact: r}
	var s Sender
	switch cfg.Type {
	case "wecom":
		s = &WeCom{http: h, tmpl: tmpl}
	case "webhook":
		s = &Webhook{http: h, tmpl: tmpl, opts: opts}
	case "alertmanager":
		if s, err = newAlertmanager(h, tmpl, opts); err != nil {
			return nil, r.err(err)
		}
	case "dingtalk":
		s = &DingTalk{http: h, tmpl: tmpl}
	case "feishu":
		s = &Feishu{http: h, tmpl: tmpl}
	case "slack":
		s = &Slack{http: h, tmpl: tmpl}
	case "log":
		return newLog(cfg, tmpl, opts), nil
	default:
		// Validate accepted a type this switch does not know.
		return nil, fmt.Errorf("notifier %q: type %q has no sender", cfg.Name, cfg.Type)
	}
	// Every error of the sender passes through the channel's redactor, so
	// no secret reaches the logs, the audit trail, the API or the page.
	return &redacting{sender: s, r: r}, nil
}

// httpClient is the HTTP plumbing the senders share: per-attempt timeout,
// headers, bounded answers, redacted errors and the common classification of
// failures.
type httpClient struct {
	cfg    ChannelConfig
	client *http.Client
	now    func() time.Time
	// redact hides the channel's secrets; answers are redacted before they
	// are quoted, so that a cut cannot leave part of a secret.
	redact *redactor
}

// answer is a service's HTTP answer, read in full (up to maxAnswer).
type answer struct {
	status int
	header http.Header
	body   []byte
}

// postJSON encodes v and POSTs it to target.
func (h *httpClient) postJSON(ctx context.Context, target string, v any) (*answer, error) {
	body, err := encodeJSON(v)
	if err != nil {
		return nil, err
	}
	return h.do(ctx, http.MethodPost, target, body, nil)
}

// do sends one request within the channel's timeout. A transport failure
// (refused, reset, timed out) is retryable; the caller's cancellation is
// returned as it is, since it is no failure of the channel.
func (h *httpClient) do(parent context.Context, method, target string, body []byte, header http.Header) (*answer, error) {
	ctx, cancel := context.WithTimeout(parent, h.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: build request for %s: %w", h.cfg.Type, redactURL(target), redactErr(err))
	}
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		if perr := parent.Err(); errors.Is(perr, context.Canceled) {
			// The caller gave up (shutdown); not the channel's fault.
			return nil, perr
		}
		return nil, Retryable(fmt.Errorf("%s: %w", h.cfg.Type, redactErr(err)))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, Retryable(fmt.Errorf("%s: read answer of %s: %w", h.cfg.Type, redactURL(target), redactErr(err)))
	}
	return &answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// checkStatus classifies an HTTP status the way every channel does: 2xx is
// success; 408, 429 and 5xx are retryable (429 after its Retry-After); any
// other status is permanent.
func (h *httpClient) checkStatus(a *answer) error {
	if a.status/100 == 2 {
		return nil
	}
	err := fmt.Errorf("%s: HTTP %d: %s", h.cfg.Type, a.status, h.snippet(a.body))
	if a.status == http.StatusTooManyRequests || a.status == http.StatusRequestTimeout || a.status >= 500 {
		return &RetryableError{Err: err, After: retryAfter(a.header, h.now())}
	}
	return err
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// snippet quotes the start of an answer in an error message, with the
// channel's secrets hidden before the cut.
func (h *httpClient) snippet(b []byte) string {
	s := string(b)
	if h.redact != nil {
		s = h.redact.text(s)
	}
	s = strings.TrimSpace(strings.ToValidUTF8(s, "?"))
	if s == "" {
		return "(empty answer)"
	}
	if len(s) > 200 {
		s = truncateUTF8(s, 200, "…")
	}
	return s
}

// redactErr hides the query string (where bot keys and access tokens live)
// of the URL a *url.Error names.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		c := *ue
		c.URL = redactURL(ue.URL)
		return &c
	}
	return err
}

// encodeJSON encodes v compactly, without HTML escaping: the services show
// the text as it is, and "<" or "&" escaped as \u003c only obscures bodies.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// errcodeAnswer is the {"errcode":0,"errmsg":"ok"} answer of WeCom and
// DingTalk bots, which report failures with HTTP 200.
type errcodeAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// checkErrcode classifies a WeCom or DingTalk answer: an HTTP failure as
// checkStatus does, then the errcode; codes in retry are retryable after
// the given delay (0: the dispatcher's backoff).
func (h *httpClient) checkErrcode(a *answer, retry map[int]time.Duration) error {
	if err := h.checkStatus(a); err != nil {
		return err
	}
	var ans errcodeAnswer
	if err := json.Unmarshal(a.body, &ans); err != nil || ans.ErrCode == nil {
		return fmt.Errorf("%s: unexpected answer: %s", h.cfg.Type, h.snippet(a.body))
	}
	if *ans.ErrCode == 0 {
		return nil
	}
	err := fmt.Errorf("%s: errcode %d: %s", h.cfg.Type, *ans.ErrCode, ans.ErrMsg)
	if after, ok := retry[*ans.ErrCode]; ok {
		return &RetryableError{Err: err, After: after}
	}
	return err
}

// joinErrors combines the failures of several requests of one Send: the
// result is retryable when any part is, so nothing retryable is given up
// (parts that succeeded are sent again; receivers see at-least-once).
func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	var after time.Duration
	retry := false
	for _, e := range errs {
		var re *RetryableError
		if errors.As(e, &re) {
			retry = true
			after = max(after, re.After)
		}
	}
	if retry {
		return &RetryableError{Err: err, After: after}
	}
	return err
}

// externalURL picks the batch's URL, else the sender's.
func externalURL(b Batch, fallback *url.URL) *url.URL {
	if b.ExternalURL != nil {
		return b.ExternalURL
	}
	return fallback
}

// renderAlerts renders b for a chat channel, which sends nothing for a
// batch without alerts: ok is false then, and nothing is rendered.
func (t *Templates) renderAlerts(b Batch) (msg Message, ok bool, err error) {
	if isEmpty(b) {
		return Message{}, false, nil
	}
	msg, err = t.Render(b)
	return msg, true, err
}

// isEmpty reports whether b has nothing to deliver; senders send nothing
// then.
func isEmpty(b Batch) bool {
	for _, bb := range batchesOf(b) {
		if len(bb.Alerts) > 0 {
			return false
		}
	}
	return true
}
