package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/engine"
)

// Webhook sends alerts to an HTTP endpoint, as a versioned JSON payload or
// the replaced service's payload, by POST (default) or GET.
//
// # Payload v1 (payload: v1, the default)
//
// One POST per batch, Content-Type application/json:
//
//	{
//	  "version": "1",
//	  "status": "firing",                    // "firing" if any alert fires, else "resolved"
//	  "group": "baseline-costs",             // rule group; "" in a digest
//	  "rule": "TenantCost",                  // alert name; "" in a digest
//	  "digest": true,                        // only in a digest (alerts of several rules)
//	  "alerts": [{
//	    "fingerprint": "8f1e2d3c4b5a6978",   // 16 hex digits, stable for the label set
//	    "status": "firing",                  // or "resolved"
//	    "labels": {"alertname": "TenantCost", "severity": "error", "tenant_id": "acme", …},
//	    "annotations": {"summary": "…", "message": "…", …},
//	    "value": 123.45,                     // null when NaN or infinite
//	    "startsAt": "2025-11-24T15:58:00Z",  // became active (pending)
//	    "endsAt": "2025-11-24T16:20:00Z",    // resolved at; absent while firing
//	    "firedAt": "2025-11-24T16:00:00Z",   // started firing
//	    "generatorURL": "http://callwatch:9099/#rule-g/TenantErrors", // the rule on the status page
//	    "evidence": {…}                      // a rule's evidence: (docs/notifications.md), when it has one
//	  }],
//	  "sentAt": "2025-11-24T16:00:01Z"
//	}
//
// Times are RFC 3339 in UTC. Fields may be added within version 1; a change
// that breaks receivers gets a new version.
//
// With method GET, each alert is one request whose query parameters are the
// alert's fields flattened: version, status, group, rule, fingerprint,
// value, startsAt, endsAt, firedAt, generatorURL, sentAt, labels.<name> and
// annotations.<name>, and evidence (as text) when the alert has some,
// added to the URL's own parameters.
//
// # Payload legacy
//
// The replaced service's payload, so receivers built for it keep working:
// one request per firing alert (it sent nothing on resolution, so resolved
// alerts are not sent), as JSON for POST or as query parameters for GET:
//
//	{
//	  "alert_id": "8f1e2d3c4b5a6978",        // the fingerprint (the old service sent its row id)
//	  "title": "[HIGH] TenantCost",          // `title` annotation, else "[SEVERITY] rule"
//	  "message": "规则 'TenantCost' 触发告警\n当前值: ¥123.45\n阈值: ¥100.00\n租户: acme",
//	  "severity": "error",
//	  "alert_type": "cost_threshold",        // the alert_type label
//	  "metric_value": "123.45",
//	  "threshold_value": "¥100.00",          // `threshold` annotation, "" without one
//	  "created_at": "2025-11-24T16:00:00+00:00", // fired at, ISO 8601 in the sender's Location
//	  "evidence": "Evidence: …"              // a rule's evidence: as text; absent without
//	}
//
// # Signature
//
// With a secret, every request carries
//
//	X-Callwatch-Timestamp: <unix seconds>
//	X-Callwatch-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where body is the request body as sent, or for GET the URL's query string
// as sent (everything after "?"). Receivers should recompute it with a
// constant-time comparison and reject old timestamps (replays).
//
// Answers: 2xx is success; 408, 429 (after Retry-After), 5xx and timeouts
// are retryable; other statuses are permanent.
type Webhook struct {
	http httpClient
	tmpl *Templates
	opts Options
}

var _ Sender = (*Webhook)(nil)

// The signature headers of webhook requests.
const (
	SignatureHeader = "X-Callwatch-Signature"
	TimestampHeader = "X-Callwatch-Timestamp"
)

// PayloadV1 is the webhook payload of version 1.
type PayloadV1 struct {
	Version string           `json:"version"`
	Status  string           `json:"status"`
	Group   string           `json:"group"`
	Rule    string           `json:"rule"`
	Digest  bool             `json:"digest,omitempty"`
	Alerts  []PayloadV1Alert `json:"alerts"`
	SentAt  time.Time        `json:"sentAt"`
}

// PayloadV1Alert is one alert of a PayloadV1.
type PayloadV1Alert struct {
	Fingerprint  string            `json:"fingerprint"`
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Value        *float64          `json:"value"`
	StartsAt     *time.Time        `json:"startsAt,omitempty"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	FiredAt      *time.Time        `json:"firedAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	// Evidence is what explained the alert when it started firing (a
	// rule's evidence:), absent without.
	Evidence *engine.Evidence `json:"evidence,omitempty"`
}

// LegacyPayload is the replaced service's webhook payload.
type LegacyPayload struct {
	AlertID        string `json:"alert_id"`
	Title          string `json:"title"`
	Message        string `json:"message"`
	Severity       string `json:"severity"`
	AlertType      string `json:"alert_type"`
	MetricValue    string `json:"metric_value"`
	ThresholdValue string `json:"threshold_value"`
	CreatedAt      string `json:"created_at"`
	// Evidence is the alert's evidence as text (a rule's evidence:),
	// absent without: a field the replaced service did not send.
	Evidence string `json:"evidence,omitempty"`
}

// legacyTimeFormat is ISO 8601 with a numeric offset and no fraction, which
// every Python fromisoformat parses (older ones reject "Z").
const legacyTimeFormat = "2006-01-02T15:04:05-07:00"

// Send delivers b.
func (w *Webhook) Send(ctx context.Context, b Batch) error {
	if isEmpty(b) {
		return nil
	}
	ext := externalURL(b, w.opts.ExternalURL)
	legacy := w.http.cfg.Payload == "legacy"
	if !legacy && w.http.cfg.Method != http.MethodGet {
		return w.post(ctx, w.payloadV1(b, ext))
	}
	var errs []error
	for _, bb := range batchesOf(b) {
		for _, a := range bb.Alerts {
			var err error
			switch {
			case legacy && isResolved(a):
				continue
			case legacy && w.http.cfg.Method == http.MethodGet:
				err = w.get(ctx, legacyValues(w.legacyPayload(bb, a)))
			case legacy:
				err = w.post(ctx, w.legacyPayload(bb, a))
			default:
				err = w.get(ctx, w.v1Values(bb, a, ext))
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return joinErrors(errs)
}

// batchesOf is b, or the batches of its digest.
func batchesOf(b Batch) []Batch {
	if len(b.Digest) > 0 {
		return flattenDigest(b)
	}
	return []Batch{b}
}

func (w *Webhook) post(ctx context.Context, v any) error {
	body, err := encodeJSON(v)
	if err != nil {
		return err
	}
	a, err := w.http.do(ctx, http.MethodPost, w.http.cfg.URL, body, w.sign(body))
	if err != nil {
		return err
	}
	return w.http.checkStatus(a)
}

func (w *Webhook) get(ctx context.Context, params url.Values) error {
	u, err := url.Parse(w.http.cfg.URL)
	if err != nil {
		return fmt.Errorf("webhook: %w", redactErr(err))
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = append(q[k], vs...)
	}
	u.RawQuery = q.Encode()
	a, err := w.http.do(ctx, http.MethodGet, u.String(), nil, w.sign([]byte(u.RawQuery)))
	if err != nil {
		return err
	}
	return w.http.checkStatus(a)
}

// sign returns the signature headers for payload, none without a secret.
func (w *Webhook) sign(payload []byte) http.Header {
	if w.http.cfg.Secret == "" {
		return nil
	}
	ts := strconv.FormatInt(w.http.now().Unix(), 10)
	return http.Header{
		TimestampHeader: {ts},
		SignatureHeader: {"sha256=" + WebhookSignature(w.http.cfg.Secret, ts, payload)},
	}
}

// WebhookSignature is the hex HMAC-SHA256 of timestamp + "." + payload with
// secret as the key, the X-Callwatch-Signature of webhook requests (after
// "sha256="). Receivers written in Go can use it to verify requests.
func WebhookSignature(secret, timestamp string, payload []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(payload)
	return hex.EncodeToString(m.Sum(nil))
}

func (w *Webhook) payloadV1(b Batch, ext *url.URL) PayloadV1 {
	p := PayloadV1{Version: "1", Status: "resolved", Group: b.Group, Rule: ruleName(b.Rule, b.Alerts),
		Alerts: []PayloadV1Alert{}, SentAt: w.http.now().UTC()}
	if len(b.Digest) > 0 {
		p.Group, p.Rule, p.Digest = "", "", true
	}
	for _, bb := range batchesOf(b) {
		for _, a := range bb.Alerts {
			pa := alertV1(a, generatorURL(externalURL(bb, ext), bb.Group, bb.Rule))
			if pa.Status == "firing" {
				p.Status = "firing"
			}
			p.Alerts = append(p.Alerts, pa)
		}
	}
	return p
}

func alertV1(a engine.Alert, genURL string) PayloadV1Alert {
	pa := PayloadV1Alert{
		Fingerprint:  fingerprint(a),
		Status:       "firing",
		Labels:       a.Labels.Map(),
		Annotations:  a.Annotations.Map(),
		StartsAt:     utcPtr(a.ActiveAt),
		FiredAt:      utcPtr(a.FiredAt),
		GeneratorURL: genURL,
		Evidence:     a.Evidence,
	}
	if !math.IsNaN(a.Value) && !math.IsInf(a.Value, 0) {
		v := a.Value
		pa.Value = &v
	}
	if isResolved(a) {
		pa.Status = "resolved"
		pa.EndsAt = utcPtr(a.ResolvedAt)
	}
	return pa
}

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// v1Values flattens one alert of payload v1 into query parameters.
func (w *Webhook) v1Values(b Batch, a engine.Alert, ext *url.URL) url.Values {
	pa := alertV1(a, generatorURL(externalURL(b, ext), b.Group, b.Rule))
	v := url.Values{}
	v.Set("version", "1")
	v.Set("status", pa.Status)
	v.Set("group", b.Group)
	v.Set("rule", ruleName(b.Rule, b.Alerts))
	v.Set("fingerprint", pa.Fingerprint)
	v.Set("value", strconv.FormatFloat(a.Value, 'g', -1, 64))
	for name, t := range map[string]*time.Time{"startsAt": pa.StartsAt, "endsAt": pa.EndsAt, "firedAt": pa.FiredAt} {
		if t != nil {
			v.Set(name, t.Format(time.RFC3339Nano))
		}
	}
	if pa.GeneratorURL != "" {
		v.Set("generatorURL", pa.GeneratorURL)
	}
	v.Set("sentAt", w.http.now().UTC().Format(time.RFC3339Nano))
	a.Labels.Range(func(l labels.Label) { v.Set("labels."+l.Name, l.Value) })
	a.Annotations.Range(func(l labels.Label) { v.Set("annotations."+l.Name, l.Value) })
	if ev := w.tmpl.EvidenceText(a); ev != "" {
		v.Set("evidence", ev)
	}
	return v
}

// legacyPayload is the replaced service's payload for one firing alert; its
// message is AlertData.Text, in the channel's language.
func (w *Webhook) legacyPayload(b Batch, a engine.Alert) LegacyPayload {
	ad := w.tmpl.alertData(a, b.Rule)
	at := a.FiredAt
	if at.IsZero() {
		at = a.ActiveAt
	}
	return LegacyPayload{
		AlertID:        ad.Fingerprint,
		Title:          ad.Title,
		Message:        ad.Text,
		Severity:       severityOf(a, b.Rule),
		AlertType:      a.Labels.Get("alert_type"),
		MetricValue:    ad.Value,
		ThresholdValue: ad.Threshold,
		CreatedAt:      at.In(w.tmpl.opts.Location).Format(legacyTimeFormat),
		Evidence:       w.tmpl.EvidenceText(a),
	}
}

func legacyValues(p LegacyPayload) url.Values {
	v := url.Values{
		"alert_id":        {p.AlertID},
		"title":           {p.Title},
		"message":         {p.Message},
		"severity":        {p.Severity},
		"alert_type":      {p.AlertType},
		"metric_value":    {p.MetricValue},
		"threshold_value": {p.ThresholdValue},
		"created_at":      {p.CreatedAt},
	}
	if p.Evidence != "" {
		v["evidence"] = []string{p.Evidence}
	}
	return v
}
