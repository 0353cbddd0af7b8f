package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/engine"
)

// Alertmanager posts alerts to every listed Alertmanager's API v2, as
// Prometheus' notifier does (rules.SendAlerts and notifier.alertsToOpenAPIAlerts
// of prometheus v0.316): POST <url>/api/v2/alerts with a JSON list of
//
//	[{
//	  "labels": {"alertname": "TenantCost", "severity": "error", "tenant_id": "acme", …},
//	  "annotations": {"summary": "…", …},
//	  "startsAt": "2025-11-24T16:00:00.000Z",   // FiredAt, as Prometheus sends
//	  "endsAt": "2025-11-24T16:04:00.000Z",     // ResolvedAt when resolved, else ValidUntil
//	  "generatorURL": "http://callwatch:9099/api/v1/query?query=…"
//	}]
//
// Labels are the alert's labels exactly, nothing instance-specific is added,
// so the alerts of an HA pair of callwatch instances deduplicate in
// Alertmanager. endsAt = ValidUntil (4 × max(interval, resend delay) after
// the send) makes Alertmanager resolve an alert by itself when callwatch
// stops re-sending it; a resolved alert is re-sent with its ResolvedAt for 15
// minutes, as Prometheus does.
//
// A digest is sent as one list with the alerts of all its batches. Send
// succeeds when every Alertmanager answered 2xx; otherwise the error names
// the failed ones and is retryable unless every failure is permanent (a 4xx
// other than 408/429). Re-sending to an Alertmanager that accepted is
// harmless: it deduplicates by labels.
type Alertmanager struct {
	http    httpClient
	targets []string
	ext     *url.URL
	// tmpl writes the evidence annotation.
	tmpl *Templates
}

var _ Sender = (*Alertmanager)(nil)

// amAlert is the PostableAlert of Alertmanager's API v2.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt,omitempty"`
	EndsAt       string            `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// amTimeFormat is go-openapi strfmt.DateTime's format (RFC 3339 with
// milliseconds), which Prometheus' notifier sends.
const amTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// EvidenceAnnotation is the annotation that carries an alert's evidence
// (a rule's evidence:) as text to Alertmanager.
const EvidenceAnnotation = "evidence"

// AlertmanagerPostPath is the API v2 path alerts are posted to, under each
// URL's own path (a route prefix).
const AlertmanagerPostPath = "/api/v2/alerts"

func newAlertmanager(h httpClient, tmpl *Templates, opts Options) (*Alertmanager, error) {
	am := &Alertmanager{http: h, ext: opts.ExternalURL, tmpl: tmpl}
	for _, s := range h.cfg.URLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("notifier %q: %q is not a URL", h.cfg.Name, redactURL(s))
		}
		u.Path = path.Join("/", u.Path, AlertmanagerPostPath)
		u.RawPath = ""
		am.targets = append(am.targets, u.String())
	}
	return am, nil
}

// Send posts b's alerts to every Alertmanager concurrently.
func (am *Alertmanager) Send(ctx context.Context, b Batch) error {
	alerts := []amAlert{}
	for _, bb := range batchesOf(b) {
		gen := generatorURL(externalURL(bb, am.ext), bb.Group, bb.Rule)
		for _, a := range bb.Alerts {
			aa := toAMAlert(a, gen)
			if ev := am.tmpl.EvidenceText(a); ev != "" {
				aa.Annotations[EvidenceAnnotation] = ev
			}
			alerts = append(alerts, aa)
		}
	}
	if len(alerts) == 0 {
		return nil
	}
	body, err := encodeJSON(alerts)
	if err != nil {
		return err
	}
	errs := make([]error, len(am.targets))
	var wg sync.WaitGroup
	for i, target := range am.targets {
		wg.Go(func() {
			a, err := am.http.do(ctx, "POST", target, body, nil)
			if err == nil {
				err = am.http.checkStatus(a)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", redactURL(target), err)
			}
		})
	}
	wg.Wait()
	var failed []error
	var names []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, err)
			names = append(names, redactURL(am.targets[i]))
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	joined := joinErrors(failed)
	err = fmt.Errorf("alertmanager: %d of %d Alertmanagers failed (%s): %w",
		len(failed), len(am.targets), strings.Join(names, ", "), joined)
	if IsRetryable(joined) {
		return &RetryableError{Err: err, After: retryAfterOf(joined)}
	}
	return err
}

func retryAfterOf(err error) time.Duration {
	if re := (*RetryableError)(nil); errors.As(err, &re) {
		return re.After
	}
	return 0
}

// toAMAlert maps an alert as Prometheus' rules.SendAlerts does.
func toAMAlert(a engine.Alert, gen string) amAlert {
	out := amAlert{Labels: a.Labels.Map(), Annotations: a.Annotations.Map(), GeneratorURL: gen}
	start := a.FiredAt
	if start.IsZero() {
		start = a.ActiveAt
	}
	end := a.ValidUntil
	if isResolved(a) {
		end = a.ResolvedAt
	}
	if !start.IsZero() {
		out.StartsAt = start.UTC().Format(amTimeFormat)
	}
	if !end.IsZero() {
		out.EndsAt = end.UTC().Format(amTimeFormat)
	}
	return out
}
