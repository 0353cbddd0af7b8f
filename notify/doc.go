// Package notify delivers fired and resolved alerts to channels: WeCom group
// bots, webhooks (with the replaced service's payload as an option),
// Alertmanager, DingTalk, Feishu, Slack and the log. Delivery is not
// evaluation, so it lives beside engine rather than inside it: engine
// declares the Notifier it calls, and this package implements it.
//
// It owns
//
//   - the Dispatcher (engine.Notifier): it routes each notification to the
//     rule's channels (or a threshold tier's), and queues it per channel
//     without ever blocking evaluation; each channel has one loop with a
//     bounded queue that drops the oldest and counts what it dropped,
//     batching, retries with backoff, a rate limit, dedupe and repeat
//     intervals, and it records every attempt in the audit trail;
//   - one Sender per channel kind, which formats and posts one Batch with a
//     per-request timeout;
//   - the message texts: the default templates in Chinese and English
//     (templates/*.tmpl) and the escaping each chat format needs;
//   - redaction of channel secrets when configuration is printed or served.
package notify
