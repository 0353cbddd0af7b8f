package notify

import (
	"context"
	"log/slog"
	"os"
)

// Log writes one line per alert, for a console channel, tests and
// debugging. With Options.Out the lines are logfmt written there:
//
//	msg=alert channel=console status=firing rule=TenantCost severity=error fingerprint=8f1e2d3c4b5a6978 time=2025-11-24T16:00:00Z value=123.45 labels="{alertname=\"TenantCost\", …}" title="[HIGH] TenantCost" text="…"
//
// otherwise they go to Options.Logger at level Info (to standard error when
// neither is set). A digest writes the lines of all its alerts. Writing
// never fails.
type Log struct {
	name   string
	tmpl   *Templates
	logger *slog.Logger
}

var _ Sender = (*Log)(nil)

func newLog(cfg ChannelConfig, tmpl *Templates, opts Options) *Log {
	l := &Log{name: cfg.Name, tmpl: tmpl, logger: opts.Logger}
	out := opts.Out
	if out == nil && l.logger == nil {
		out = os.Stderr
	}
	if out != nil {
		l.logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{ReplaceAttr: dropTimeAndLevel}))
	}
	return l
}

// dropTimeAndLevel removes the handler's own time (the only time-valued
// attribute: the alert's time is a string) and level: the line carries the
// alert's time, and an alert is no log level.
func dropTimeAndLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && ((a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime) || a.Key == slog.LevelKey) {
		return slog.Attr{}
	}
	return a
}

// Send writes b's alerts.
func (l *Log) Send(ctx context.Context, b Batch) error {
	for _, bb := range batchesOf(b) {
		for _, a := range bb.Alerts {
			ad := l.tmpl.alertData(a, bb.Rule)
			attrs := []slog.Attr{
				slog.String("channel", l.name),
				slog.String("status", ad.Status),
				slog.String("rule", ad.Rule),
				slog.String("severity", severityOf(a, bb.Rule)),
				slog.String("fingerprint", ad.Fingerprint),
				slog.String("time", ad.Time),
				slog.String("value", ad.Value),
				slog.String("labels", a.Labels.String()),
				slog.String("title", ad.Title),
				slog.String("text", ad.Text),
			}
			if ev := l.tmpl.EvidenceText(a); ev != "" {
				attrs = append(attrs, slog.String("evidence", ev))
			}
			l.logger.LogAttrs(ctx, slog.LevelInfo, "alert", attrs...)
		}
	}
	return nil
}
