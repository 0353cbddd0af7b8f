package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/storage/chstore"
)

// AuditStore runs the audit store on a backend: its DDL, migration
// (twice, and onto an older table missing columns), inserts of every field
// (quotes and SQL in values), every filter of History, and LastSent.
func AuditStore(t *testing.T, c clickhouse.ExecQuerier, db string) {
	ctx := context.Background()
	store, err := chstore.NewAuditStore(c, db+".callwatch_alert_log")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // migrating twice is harmless
		if err := store.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2025, 11, 24, 16, 0, 0, 123, time.UTC)
	firing := engine.AuditRecord{
		Time: at, Kind: engine.AuditFiring, Fingerprint: "00000000000000ff", Group: "g", Rule: "TenantCost",
		AlertType: "cost_threshold", Severity: "error", Title: "[HIGH] TenantCost", Message: "规则 'TenantCost' 触发告警\n当前值: ¥112.50",
		Labels: map[string]string{"tenant_id": "it's \"quoted\"", "alertname": "TenantCost"}, Annotations: map[string]string{"summary": "x"},
		TenantID: "it's \"quoted\"", Value: 0.15951100000000001 + 112, Threshold: "¥100.00", ActiveAt: at.Add(-time.Minute).Truncate(time.Second), FiredAt: at.Truncate(time.Second),
	}
	sent := firing
	sent.Time, sent.Kind, sent.Channel, sent.NotifyStatus, sent.NotifyState, sent.Attempt, sent.LatencyMs, sent.Result =
		at.Add(time.Second), engine.AuditNotification, "ops-wecom", engine.NotifySent, "firing", 2, 35, "ok"
	ack := engine.AuditRecord{Time: at.Add(2 * time.Second), Kind: engine.AuditAcknowledged, Fingerprint: firing.Fingerprint, Rule: "TenantCost", By: "alice", Comment: "on it'; DROP TABLE x; --"}
	if err := store.Record(ctx, firing, sent, ack); err != nil {
		t.Fatal(err)
	}
	got, err := store.History(ctx, engine.AuditQuery{Rule: "TenantCost"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Kind != engine.AuditAcknowledged || got[2].Kind != engine.AuditFiring {
		t.Fatalf("history = %+v", got)
	}
	if got[0].By != "alice" || got[0].Comment != ack.Comment || !got[0].Time.Equal(ack.Time) {
		t.Errorf("ack = %+v", got[0])
	}
	g := got[1]
	if g.Channel != "ops-wecom" || g.NotifyStatus != "sent" || g.Attempt != 2 || g.LatencyMs != 35 || g.Value != firing.Value ||
		g.Labels["tenant_id"] != `it's "quoted"` || g.Message != firing.Message || !g.FiredAt.Equal(firing.FiredAt) ||
		!g.ActiveAt.Equal(firing.ActiveAt) || !g.Time.Equal(sent.Time) || g.Annotations["summary"] != "x" {
		t.Errorf("notification = %+v", g)
	}
	t.Run("filters by label, kind, fingerprint and time", func(t *testing.T) {
		got, err := store.History(ctx, engine.AuditQuery{Labels: map[string]string{"tenant_id": `it's "quoted"`},
			Kinds: []engine.AuditKind{engine.AuditNotification}, From: at, To: at.Add(time.Hour), Fingerprint: firing.Fingerprint})
		if err != nil || len(got) != 1 || got[0].Channel != "ops-wecom" {
			t.Fatalf("got %+v, %v", got, err)
		}
		got, err = store.History(ctx, engine.AuditQuery{Labels: map[string]string{"tenant_id": "other"}})
		if err != nil || len(got) != 0 {
			t.Fatalf("label filter matched %d, %v", len(got), err)
		}
		got, err = store.History(ctx, engine.AuditQuery{Limit: 1})
		if err != nil || len(got) != 1 || got[0].Kind != engine.AuditAcknowledged {
			t.Fatalf("limit 1: %+v, %v", got, err)
		}
	})
	t.Run("last sent is the latest successful notification per channel and alert", func(t *testing.T) {
		resolved := sent
		resolved.Time, resolved.NotifyState = at.Add(time.Minute), "resolved"
		failed := sent
		failed.Time, failed.NotifyStatus, failed.NotifyState = at.Add(2*time.Minute), engine.NotifyFailed, "firing"
		if err := store.Record(ctx, resolved, failed); err != nil {
			t.Fatal(err)
		}
		got, err := store.LastSent(ctx, at.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Channel != "ops-wecom" || got[0].State != "resolved" || !got[0].At.Equal(resolved.Time) || got[0].Severity != "error" {
			t.Fatalf("last sent = %+v", got)
		}
	})
	evidence := engine.Evidence{
		Leaf: `count_over_time(events{status="error"}[5m])`, From: at.Add(-5 * time.Minute).Truncate(time.Second), To: at.Truncate(time.Second),
		Group: map[string]string{"tenant_id": "acme"}, Total: 8,
		Top: []engine.EvidenceLabel{{Label: "error_code", Values: []engine.EvidenceValue{
			{Value: "it's'); DROP TABLE x; --", Count: 5, Share: 5.0 / 8}, {Value: "\"quoted\"\n<@all>", Count: 2, Share: 0.25}}, Other: 1}},
		Examples: []string{"req-1", "req-2"}, ExamplesBy: "latest",
	}
	withEvidence := firing
	withEvidence.Time, withEvidence.Fingerprint, withEvidence.Evidence = at.Add(3*time.Second), "00000000000000ee", &evidence
	t.Run("a firing's evidence is kept", func(t *testing.T) {
		if err := store.Record(ctx, withEvidence); err != nil {
			t.Fatal(err)
		}
		got, err := store.History(ctx, engine.AuditQuery{Fingerprint: withEvidence.Fingerprint})
		if err != nil || len(got) != 1 || got[0].Evidence == nil {
			t.Fatalf("got %+v, %v", got, err)
		}
		if !reflect.DeepEqual(*got[0].Evidence, evidence) {
			t.Fatalf("evidence read back as %+v, want %+v", *got[0].Evidence, evidence)
		}
	})
	t.Run("migrate adds the columns an older table lacks", func(t *testing.T) {
		old := db + ".old_log"
		mustExec(t, c, "CREATE TABLE "+old+" (`time` DateTime, `nanos` Int64, `kind` String) ENGINE = MergeTree ORDER BY (`time`, `nanos`)")
		s, err := chstore.NewAuditStore(c, old)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, ack, withEvidence); err != nil {
			t.Fatal(err)
		}
		got, err := s.History(ctx, engine.AuditQuery{})
		if err != nil || len(got) != 2 || got[0].Evidence == nil || got[0].Evidence.Total != evidence.Total || got[1].Comment != ack.Comment || got[1].Evidence != nil {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
}
