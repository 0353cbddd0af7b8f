package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callwatch/callwatch/rulefmt"
)

// AuditKind is what an audit record is about.
type AuditKind string

// The audit record kinds: alert transitions, notification attempts and
// operator actions.
const (
	AuditPending       AuditKind = "pending"
	AuditFiring        AuditKind = "firing"
	AuditResolved      AuditKind = "resolved"
	AuditTier          AuditKind = "tier_change"
	AuditHeld          AuditKind = "held"
	AuditNotification  AuditKind = "notification"
	AuditAcknowledged  AuditKind = "acknowledged"
	AuditManualResolve AuditKind = "manual_resolve"
	AuditSilence       AuditKind = "silence"
	AuditUnsilence     AuditKind = "unsilence"
)

// Notification statuses, the replaced service's values.
const (
	NotifyPending = "pending"
	NotifySent    = "sent"
	NotifyFailed  = "failed"
	NotifySkipped = "skipped"
)

// AuditRecord is one row of the audit trail. It carries every field of the
// replaced service's alert record.
type AuditRecord struct {
	Time        time.Time         `json:"time"`
	Kind        AuditKind         `json:"kind"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	Group       string            `json:"group,omitempty"`
	Rule        string            `json:"rule,omitempty"`
	AlertType   string            `json:"alert_type,omitempty"`
	Severity    string            `json:"severity,omitempty"`
	Title       string            `json:"title,omitempty"`
	Message     string            `json:"message,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	TenantID    string            `json:"tenant_id,omitempty"`
	AppCode     string            `json:"app_code,omitempty"`
	Value       float64           `json:"metric_value"`
	Threshold   string            `json:"threshold_value,omitempty"`
	ActiveAt    time.Time         `json:"active_at,omitzero"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	// Channel, NotifyStatus, NotifyState (the alert state the notification
	// was about: firing or resolved), Result (error or answer), Attempt and
	// LatencyMs describe a notification attempt.
	Channel      string `json:"channel,omitempty"`
	NotifyStatus string `json:"notification_status,omitempty"`
	NotifyState  string `json:"notification_state,omitempty"`
	Result       string `json:"notification_result,omitempty"`
	Attempt      int    `json:"attempt,omitempty"`
	LatencyMs    int64  `json:"latency_ms,omitempty"`
	// By and Comment are who acknowledged, resolved or silenced, and why.
	By      string `json:"by,omitempty"`
	Comment string `json:"comment,omitempty"`
	// Reason explains a suppression or a state kept (cooldown, no data, ...).
	Reason    string `json:"reason,omitempty"`
	SilenceID string `json:"silence_id,omitempty"`
	// Replica names the callwatch instance that wrote the row.
	Replica string `json:"replica,omitempty"`
	// Evidence is what explained the alert when it started firing (the
	// firing record of a rule with evidence:).
	Evidence *Evidence `json:"evidence,omitempty"`
}

// Auditor appends records to the audit trail.
type Auditor interface {
	Record(ctx context.Context, recs ...AuditRecord) error
}

// AuditorFunc adapts a function to Auditor.
type AuditorFunc func(ctx context.Context, recs ...AuditRecord) error

// Record calls f.
func (f AuditorFunc) Record(ctx context.Context, recs ...AuditRecord) error { return f(ctx, recs...) }

var _ Auditor = AuditorFunc(nil)

// FingerprintString formats an alert fingerprint as the API and the audit
// trail show it.
func FingerprintString(fp uint64) string { return fmt.Sprintf("%016x", fp) }

// ParseFingerprint reads a fingerprint written by FingerprintString.
func ParseFingerprint(s string) (uint64, error) {
	fp, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("fingerprint %q: want 16 hex digits", s)
	}
	return fp, nil
}

// NewAuditRecord describes alert a of rule at ts.
func NewAuditRecord(kind AuditKind, ts time.Time, group string, rule *rulefmt.RuleSpec, a Alert) AuditRecord {
	l := a.Labels.Map()
	ann := a.Annotations.Map()
	sev := l["severity"]
	if sev == "" {
		sev = string(rule.Severity)
	}
	title := ann["title"]
	if title == "" {
		title = fmt.Sprintf("[%s] %s", strings.ToUpper(orDefault(sev, string(rulefmt.SeverityWarning))), rule.Name())
	}
	msg := ann["message"]
	if msg == "" {
		msg = ann["summary"]
	}
	if msg == "" {
		msg = ann["description"]
	}
	rec := AuditRecord{
		Time: ts, Kind: kind, Fingerprint: FingerprintString(a.Fingerprint()), Group: group, Rule: rule.Name(),
		AlertType: l["alert_type"], Severity: sev, Title: title, Message: msg, Labels: l, Annotations: ann,
		TenantID: l["tenant_id"], AppCode: l["app_code"], Value: a.Value, Threshold: ann["threshold"],
		ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt, Reason: orDefault(a.Reason, a.Suppressed),
	}
	if kind == AuditFiring {
		rec.Evidence = a.Evidence
	}
	return rec
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// AuditQuery selects audit records.
type AuditQuery struct {
	// From and To bound the time (inclusive); zero means unbounded.
	From, To time.Time
	Rule     string
	// Kinds selects record kinds; empty means all.
	Kinds       []AuditKind
	Fingerprint string
	// Labels must all equal the alert's labels of those names.
	Labels map[string]string
	// Limit caps the records returned, newest first (default 1000).
	Limit int
}

// AuditReader reads the audit trail back.
type AuditReader interface {
	History(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
}

// SentState is what a channel was last told about an alert.
type SentState struct {
	Channel, Fingerprint string
	// State is "firing" or "resolved"; Severity the alert's severity then.
	State    string
	Severity string
	At       time.Time
}
