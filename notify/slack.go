package notify

import "context"

// Slack posts to a Slack incoming webhook, https://hooks.slack.com/services/…:
//
//	{"text":"*[ERROR] TenantCost*\n…\n<@U012AB3CD>"}
//
// The text is Slack mrkdwn (*bold*, <url|text>, with &, < and > escaped in
// alert texts); cfg.Mentions are member ids written as <@id> ("@all" and
// "@channel": <!channel>, "@here": <!here>). cfg.MentionMobiles are ignored.
// The text is cut to 40000 bytes, Slack's limit for text.
//
// Slack answers 200 "ok". Errors come as 4xx with a short code
// (400 invalid_payload, no_text, 403 action_prohibited, 404
// channel_not_found, 410 channel_is_archived) and are permanent; 429 is
// retried after its Retry-After, 5xx and timeouts with backoff.
type Slack struct {
	http httpClient
	tmpl *Templates
}

var _ Sender = (*Slack)(nil)

const slackLimit = 40000

type slackMessage struct {
	Text string `json:"text"`
}

// Send posts b as one message.
func (s *Slack) Send(ctx context.Context, b Batch) error {
	msg, ok, err := s.tmpl.renderAlerts(b)
	if !ok || err != nil {
		return err
	}
	var tags []string
	for _, u := range s.http.cfg.Mentions {
		switch u {
		case "@all", "@channel":
			tags = append(tags, "<!channel>")
		case "@here":
			tags = append(tags, "<!here>")
		default:
			tags = append(tags, "<@"+u+">")
		}
	}
	body := slackMessage{Text: withMentions(msg.Text, slackLimit, "\n", tags)}
	a, err := s.http.postJSON(ctx, s.http.cfg.URL, body)
	if err != nil {
		return err
	}
	return s.http.checkStatus(a)
}
