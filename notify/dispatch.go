package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/rulefmt"
)

// Channel is a configured, named Sender with its delivery settings.
type Channel struct {
	Name   string
	Sender Sender
	// Direct channels (everything but Alertmanager) get callwatch's noise
	// controls: acknowledged alerts are not repeated. Alertmanager keeps
	// receiving Prometheus' resends, which it needs to keep alerts alive.
	Direct bool
	// Local channels (log) write on this machine: every replica writes
	// them, whichever is the elected sender.
	Local bool
	// RatePerMinute caps messages per minute; 0 means no cap. The excess is
	// folded into one digest when the next slot opens.
	RatePerMinute int
	// RepeatInterval re-sends a firing alert to a direct channel at this
	// interval (0: never; the alert is announced once and its resolve once).
	RepeatInterval time.Duration
}

// Silencer finds the silence holding back an alert.
type Silencer interface {
	Match(lset labels.Labels, ts time.Time) (engine.Silence, bool)
}

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	Channels []*Channel
	// Default are the channels of rules without notify:.
	Default []string
	// Audit receives a row per notification intent and per attempt; nil
	// records nothing.
	Audit engine.Auditor
	// QueueSize bounds each channel's queue (default 1000); when full, the
	// oldest item is dropped and counted.
	QueueSize int
	// MaxAttempts bounds the attempts per batch (default 5).
	MaxAttempts int
	// Backoff is the first retry delay (default 1s), doubled per attempt up
	// to MaxBackoff (default 1m), with jitter.
	Backoff, MaxBackoff time.Duration
	ExternalURL         *url.URL
	Registerer          prometheus.Registerer
	Logger              *slog.Logger
	// Replica names this instance in audit rows.
	Replica string
	// Silences hold back matching alerts on every channel; may be nil.
	Silences Silencer
	// Sender, when set, says whether this replica is the elected sender
	// (engine.Elector.Leader): when it is not, direct channels (but local
	// ones) are left to the replica that is, and Alertmanager, which
	// deduplicates, still gets every replica's alerts.
	Sender func() bool
	// Now is the clock of rate limits, attempt latencies and the times of
	// attempt rows in the audit trail (default time.Now).
	Now func() time.Time
}

// Dispatcher routes notifications to channels. Notify never blocks: each
// channel has a bounded queue and one worker that sends in order, with
// timeouts, retries and rate limits.
type Dispatcher struct {
	opts     DispatcherOptions
	channels map[string]*queue
	metrics  *dispatchMetrics
	wg       sync.WaitGroup

	// told remembers, per direct channel and alert fingerprint, the state
	// the channel was last told about (queued or sent), so each state is
	// announced once — across restarts too, seeded from the audit trail.
	mu   sync.Mutex
	told map[toldKey]engine.SentState
}

type toldKey struct{ channel, fingerprint string }

var _ engine.Notifier = (*Dispatcher)(nil)

type item struct {
	batch Batch
	ch    *Channel
}

type queue struct {
	ch      *Channel
	items   chan item
	mu      sync.Mutex // serialises drop-oldest against the worker
	limiter *limiter
}

type dispatchMetrics struct {
	sent, failed, dropped, skipped *prometheus.CounterVec
	queueLen                       *prometheus.GaugeVec
	latency                        *prometheus.HistogramVec
}

// NewDispatcher returns a dispatcher; call Run to start its workers.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &dispatchMetrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callwatch", Name: "notifications_sent_total",
			Help: "Notifications delivered, per channel."}, []string{"channel"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callwatch", Name: "notifications_failed_total",
			Help: "Notifications given up after their last attempt, per channel."}, []string{"channel"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callwatch", Name: "notifications_dropped_total",
			Help: "Notifications dropped because a channel's queue was full, per channel."}, []string{"channel"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "callwatch", Name: "notifications_skipped_total",
			Help: "Alerts held back from a channel (silenced, acknowledged, suppressed), per channel."}, []string{"channel"}),
		queueLen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "callwatch", Name: "notification_queue_length",
			Help: "Notifications waiting in a channel's queue."}, []string{"channel"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "callwatch", Name: "notification_latency_seconds",
			Help: "Duration of notification attempts, per channel.", Buckets: prometheus.DefBuckets}, []string{"channel"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.sent, m.failed, m.dropped, m.skipped, m.queueLen, m.latency)
	}
	d := &Dispatcher{opts: opts, channels: map[string]*queue{}, metrics: m, told: map[toldKey]engine.SentState{}}
	for _, c := range opts.Channels {
		d.channels[c.Name] = &queue{ch: c, items: make(chan item, opts.QueueSize), limiter: newLimiter(c.RatePerMinute)}
		for _, v := range []*prometheus.CounterVec{m.sent, m.failed, m.dropped, m.skipped} {
			v.WithLabelValues(c.Name)
		}
		m.queueLen.WithLabelValues(c.Name)
	}
	return d
}

// Seed tells the dispatcher what each channel was last told about each
// alert (read from the audit trail at start), so a restart neither repeats
// an announcement nor loses one that was due and not confirmed.
func (d *Dispatcher) Seed(states []engine.SentState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range states {
		k := toldKey{st.Channel, st.Fingerprint}
		if prev, ok := d.told[k]; !ok || st.At.After(prev.At) {
			d.told[k] = st
		}
	}
}

// hold decides whether alert a goes to channel ch at ts. It returns a
// reason to audit a skip, or quiet=true for a resend the channel does not
// need (not worth an audit row). Sending is remembered.
func (d *Dispatcher) hold(ch *Channel, rule *rulefmt.RuleSpec, a engine.Alert, ts time.Time) (reason string, quiet bool) {
	if ch.Direct && !ch.Local && d.opts.Sender != nil && !d.opts.Sender() {
		return "", true // another replica sends; it audits what it sends
	}
	if d.opts.Silences != nil {
		if sil, ok := d.opts.Silences.Match(a.Labels, ts); ok {
			return "silenced by " + sil.ID, false
		}
	}
	if !ch.Direct {
		return "", false
	}
	state := "firing"
	if !a.ResolvedAt.IsZero() {
		state = "resolved"
	}
	k := toldKey{ch.Name, engine.FingerprintString(a.Fingerprint())}
	sev := a.Labels.Get("severity")
	repeat := ch.RepeatInterval
	if ri := rule.RepeatInterval(); ri > 0 {
		repeat = ri
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	last, told := d.told[k]
	switch {
	case state == "resolved" && (!told || last.State != "firing"):
		return "", true // never announced firing: nothing to resolve
	case state == "firing" && told && last.State == "firing" && last.Severity == sev:
		// Announced at this tier: repeat only at the repeat interval,
		// never while acknowledged. A tier change goes out at once.
		if !a.AckedAt.IsZero() {
			return "", true
		}
		if repeat <= 0 || ts.Sub(last.At) < repeat {
			return "", true
		}
	}
	d.told[k] = engine.SentState{Channel: ch.Name, Fingerprint: k.fingerprint, State: state, Severity: sev, At: ts}
	return "", false
}

// forget drops what a channel was told about alerts whose delivery failed
// for good, so the next resend tries again.
func (d *Dispatcher) forget(ch *Channel, b Batch) {
	if !ch.Direct {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, bb := range append([]Batch{b}, b.Digest...) {
		for _, a := range bb.Alerts {
			delete(d.told, toldKey{ch.Name, engine.FingerprintString(a.Fingerprint())})
		}
	}
}

// Notify routes n to the rule's channels (or the default ones) and queues
// it. It never blocks.
func (d *Dispatcher) Notify(ctx context.Context, n engine.Notification) {
	// Route each alert: its tier's channels, else the rule's, else the default.
	byChannel := map[string][]engine.Alert{}
	var order []string
	for _, a := range n.Alerts {
		names := n.Rule.NotifyFor(a.Labels)
		if len(names) == 0 {
			names = d.opts.Default
		}
		for _, name := range names {
			if _, seen := byChannel[name]; !seen {
				order = append(order, name)
			}
			byChannel[name] = append(byChannel[name], a)
		}
	}
	for _, name := range order {
		q := d.channels[name]
		if q == nil {
			d.opts.Logger.Warn("notification for an unknown channel dropped", "channel", name, "rule", n.Rule.Name())
			continue
		}
		var alerts []engine.Alert
		var skipped []engine.AuditRecord
		for _, a := range byChannel[name] {
			reason, quiet := d.hold(q.ch, n.Rule, a, n.Time)
			if quiet {
				continue
			}
			if reason != "" {
				d.metrics.skipped.WithLabelValues(name).Inc()
				rec := d.record(n.Time, n.Group, n.Rule, a, name)
				rec.NotifyStatus, rec.Reason = engine.NotifySkipped, reason
				skipped = append(skipped, rec)
				continue
			}
			alerts = append(alerts, a)
		}
		d.audit(ctx, skipped...)
		if len(alerts) == 0 {
			continue
		}
		d.enqueue(q, item{ch: q.ch, batch: Batch{Group: n.Group, Rule: n.Rule, Time: n.Time, Alerts: alerts, ExternalURL: d.opts.ExternalURL}})
	}
}

func (d *Dispatcher) enqueue(q *queue, it item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		select {
		case q.items <- it:
			d.metrics.queueLen.WithLabelValues(q.ch.Name).Set(float64(len(q.items)))
			return
		default:
		}
		select {
		case old := <-q.items:
			d.metrics.dropped.WithLabelValues(q.ch.Name).Add(float64(len(old.batch.Alerts)))
			d.opts.Logger.Warn("notification queue full, dropped the oldest", "channel", q.ch.Name, "rule", old.batch.Rule.Name())
		default:
		}
	}
}

// Run starts one worker per channel; it returns when ctx ends and the
// workers have drained their queues or drain (a deadline) passes.
func (d *Dispatcher) Run(ctx context.Context, drain time.Duration) {
	workCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, q := range d.channels {
		d.wg.Go(func() {
			d.work(workCtx, ctx, q)
		})
	}
	<-ctx.Done()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
		d.opts.Logger.Warn("notification queues not drained before the shutdown deadline")
		cancel()
		<-done
	}
}

// work sends a channel's items in order until stop ends and the queue is
// empty, or ctx is cancelled.
func (d *Dispatcher) work(ctx, stop context.Context, q *queue) {
	for {
		var it item
		select {
		case it = <-q.items:
		case <-ctx.Done():
			return
		case <-stop.Done():
			select {
			case it = <-q.items:
			default:
				return
			}
		}
		d.metrics.queueLen.WithLabelValues(q.ch.Name).Set(float64(len(q.items)))
		if wait := q.limiter.wait(d.opts.Now()); wait > 0 {
			// Rate-limited: fold what arrives meanwhile into one digest.
			backlog := []Batch{it.batch}
			timer := time.NewTimer(wait)
		collect:
			for {
				select {
				case more := <-q.items:
					backlog = append(backlog, more.batch)
				case <-timer.C:
					break collect
				case <-ctx.Done():
					timer.Stop()
					return
				}
			}
			if len(backlog) > 1 {
				it.batch = Batch{Group: it.batch.Group, Rule: it.batch.Rule, Time: it.batch.Time, ExternalURL: d.opts.ExternalURL, Digest: backlog}
			}
			q.limiter.wait(d.opts.Now())
		}
		d.deliver(ctx, q.ch, it.batch)
	}
}

// deliver sends one batch with retries, auditing the intent and each attempt.
func (d *Dispatcher) deliver(ctx context.Context, ch *Channel, b Batch) {
	batches := b.Digest
	if len(batches) == 0 {
		batches = []Batch{b}
	}
	var intents []engine.AuditRecord
	for _, bb := range batches {
		for _, a := range bb.Alerts {
			rec := d.record(bb.Time, bb.Group, bb.Rule, a, ch.Name)
			rec.NotifyStatus = engine.NotifyPending
			intents = append(intents, rec)
		}
	}
	d.audit(ctx, intents...)
	for attempt := 1; ; attempt++ {
		start := d.opts.Now()
		err := ch.Sender.Send(ctx, b)
		end := d.opts.Now()
		dur := end.Sub(start)
		d.metrics.latency.WithLabelValues(ch.Name).Observe(dur.Seconds())
		status := engine.NotifySent
		if err != nil {
			status = engine.NotifyFailed
		}
		recs := make([]engine.AuditRecord, len(intents))
		for i, rec := range intents {
			rec.Time, rec.NotifyStatus, rec.Attempt, rec.LatencyMs = end, status, attempt, dur.Milliseconds()
			if err != nil {
				rec.Result = err.Error()
			}
			recs[i] = rec
		}
		d.audit(ctx, recs...)
		if err == nil {
			d.metrics.sent.WithLabelValues(ch.Name).Add(float64(len(intents)))
			return
		}
		if !IsRetryable(err) || attempt >= d.opts.MaxAttempts || ctx.Err() != nil {
			d.forget(ch, b)
			d.metrics.failed.WithLabelValues(ch.Name).Add(float64(len(intents)))
			d.opts.Logger.Error("notification failed", "channel", ch.Name, "rule", b.Rule.Name(), "attempts", attempt, "err", err)
			return
		}
		wait := d.backoff(attempt, err)
		d.opts.Logger.Warn("notification attempt failed, retrying", "channel", ch.Name, "attempt", attempt, "retry_in", wait, "err", err)
		if !engine.Sleep(ctx, wait) {
			return
		}
	}
}

// backoff is exponential with jitter in [d/2, d], or what the channel asked.
//
// It is written here rather than taken from github.com/cenkalti/backoff:
// that package's Retry loop has no injectable clock, restarts its intervals
// after a Retry-After and gives up after 15 minutes by default, where
// deliver audits every attempt and counts them; and its ExponentialBackOff
// jitters around the interval, which gives [d/2, d] only with an initial
// interval of 0.75·Backoff and a randomization factor of 1/3.
func (d *Dispatcher) backoff(attempt int, err error) time.Duration {
	var re *RetryableError
	if errors.As(err, &re) && re.After > 0 {
		return re.After
	}
	b := d.opts.Backoff << (attempt - 1)
	if b > d.opts.MaxBackoff || b <= 0 {
		b = d.opts.MaxBackoff
	}
	return b/2 + time.Duration(rand.Int64N(int64(b/2)+1))
}

func (d *Dispatcher) record(ts time.Time, group string, rule *rulefmt.RuleSpec, a engine.Alert, channel string) engine.AuditRecord {
	rec := engine.NewAuditRecord(engine.AuditNotification, ts, group, rule, a)
	rec.Channel, rec.Replica = channel, d.opts.Replica
	rec.NotifyState = "firing"
	if !a.ResolvedAt.IsZero() {
		rec.NotifyState = "resolved"
	}
	return rec
}

func (d *Dispatcher) audit(ctx context.Context, recs ...engine.AuditRecord) {
	if d.opts.Audit == nil || len(recs) == 0 {
		return
	}
	if err := d.opts.Audit.Record(context.WithoutCancel(ctx), recs...); err != nil {
		d.opts.Logger.Error("writing the audit trail failed", "err", err)
	}
}

// limiter allows n events per minute (a sliding window of send times).
//
// It is not golang.org/x/time/rate: a token bucket cannot say "at most n in
// any minute". With a burst of n refilled at n per minute it lets up to
// 2n−1 through within one minute (WeCom refuses a bot's 21st message of a
// minute, errcode 45009); with a burst of 1 it would fold every burst into
// a digest from its second message, where today the first n go out as
// they are.
type limiter struct {
	n    int
	sent []time.Time
}

func newLimiter(n int) *limiter { return &limiter{n: n} }

// wait returns 0 and records a send when one is allowed at now, else how
// long until the next slot.
func (l *limiter) wait(now time.Time) time.Duration {
	if l.n <= 0 {
		return 0
	}
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(l.sent) && !l.sent[i].After(cut) {
		i++
	}
	l.sent = l.sent[i:]
	if len(l.sent) < l.n {
		l.sent = append(l.sent, now)
		return 0
	}
	return l.sent[0].Add(time.Minute).Sub(now)
}
