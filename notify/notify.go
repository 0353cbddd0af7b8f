package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

// Batch is what one channel is asked to deliver: the alerts of one rule
// that are due at one evaluation (firing ones and, during their retention,
// resolved ones — an alert is resolved when !ResolvedAt.IsZero()).
type Batch struct {
	Group string
	Rule  *rulefmt.RuleSpec
	Time  time.Time
	// Alerts are copies; the sender must not modify them.
	Alerts []engine.Alert
	// ExternalURL is callwatch's own URL, for links; may be nil.
	ExternalURL *url.URL
	// Digest, when non-empty, asks the channel to send one summary of these
	// batches instead (a rate-limited channel folds its backlog this way).
	Digest []Batch
}

// Sender delivers batches to one configured channel.
type Sender interface {
	// Send delivers b. A *RetryableError means the attempt may succeed later
	// (timeouts, 5xx, rate limits); any other error is permanent.
	Send(ctx context.Context, b Batch) error
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(ctx context.Context, b Batch) error

// Send calls f.
func (f SenderFunc) Send(ctx context.Context, b Batch) error { return f(ctx, b) }

var _ Sender = SenderFunc(nil)

// RetryableError is a failed attempt worth retrying, after After when the
// channel said so (0: use the backoff).
type RetryableError struct {
	Err   error
	After time.Duration
}

func (e *RetryableError) Error() string { return e.Err.Error() }

func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable wraps err as retryable.
func Retryable(err error) error { return &RetryableError{Err: err} }

// IsRetryable reports whether err is worth retrying.
func IsRetryable(err error) bool {
	var re *RetryableError
	return errors.As(err, &re)
}

// ChannelConfig is one entry of the config's notifiers: list. name, type,
// url and urls are the minimal contract; the rest is per type.
type ChannelConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// URL is the endpoint of wecom, webhook, dingtalk, feishu and slack.
	URL string `yaml:"url"`
	// URLs are the Alertmanagers of type alertmanager.
	URLs []string `yaml:"urls"`
	// Method is POST (default) or GET for webhook.
	Method string `yaml:"method"`
	// Headers are added to every HTTP request of the channel (webhook and
	// alertmanager mostly; also a proxy's headers for the bots).
	Headers map[string]string `yaml:"headers"`
	// Secret signs requests: HMAC-SHA256 signature header for webhook, the
	// signing secret of dingtalk and feishu bots.
	Secret string `yaml:"secret"`
	// Payload selects the webhook body: "v1" (callwatch's versioned payload,
	// default) or "legacy" (the replaced service's fields).
	Payload string `yaml:"payload"`
	// Mentions are user ids (wecom mentioned_list, dingtalk at, slack <@id>);
	// MentionMobiles are phone numbers (wecom, dingtalk).
	Mentions       []string `yaml:"mentions"`
	MentionMobiles []string `yaml:"mention_mobiles"`
	// Language of the default texts: zh (default) or en.
	Language string `yaml:"language"`
	// Template and ResolvedTemplate override the message text (Go
	// templates over a Batch); empty means the built-in defaults.
	Template         string `yaml:"template"`
	ResolvedTemplate string `yaml:"resolved_template"`
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration `yaml:"-"`
	// RatePerMinute caps messages per minute (wecom default 20); the excess
	// is folded into one digest.
	RatePerMinute int `yaml:"rate_per_minute"`
}

// Types lists the channel types.
var Types = []string{"wecom", "webhook", "alertmanager", "dingtalk", "feishu", "slack", "log"}

// Validate checks a channel's configuration without I/O.
func (c *ChannelConfig) Validate() error {
	if c.Name == "" {
		return errors.New("a notifier needs a name")
	}
	switch c.Type {
	case "wecom", "webhook", "dingtalk", "feishu", "slack":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("notifier %q: url must be an http(s) URL", c.Name)
		}
	case "alertmanager":
		if len(c.URLs) == 0 {
			return fmt.Errorf("notifier %q: list the Alertmanagers in urls, e.g. [\"http://127.0.0.1:9093\"]", c.Name)
		}
		for _, s := range c.URLs {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("notifier %q: %q is not an http(s) URL", c.Name, newRedactor(*c).text(redactURL(s)))
			}
		}
	case "log":
	case "":
		return fmt.Errorf("notifier %q: type is missing; write one of wecom, webhook, alertmanager, dingtalk, feishu, slack, log", c.Name)
	default:
		return fmt.Errorf("notifier %q: unknown type %q; write one of wecom, webhook, alertmanager, dingtalk, feishu, slack, log", c.Name, c.Type)
	}
	switch c.Method {
	case "", "POST", "GET":
	default:
		return fmt.Errorf("notifier %q: method must be POST or GET", c.Name)
	}
	switch c.Payload {
	case "", "v1", "legacy":
	default:
		return fmt.Errorf("notifier %q: payload must be v1 or legacy", c.Name)
	}
	switch c.Language {
	case "", "zh", "en":
	default:
		return fmt.Errorf("notifier %q: language must be zh or en", c.Name)
	}
	return nil
}

// redactURL hides query strings and passwords, where bot keys live.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable url>"
	}
	if u.RawQuery != "" {
		u.RawQuery = "<redacted>"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
