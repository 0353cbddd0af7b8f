package chstore

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

func TestAuditStoreWritesAndReadsEveryField(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	conn, err := clickhouse.Open(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	store, err := NewAuditStore(conn, db+".callwatch_alert_log")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
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
		TenantID: "it's \"quoted\"", Value: 112.5, Threshold: "¥100.00", ActiveAt: at.Add(-time.Minute).Truncate(time.Second), FiredAt: at.Truncate(time.Second),
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
	if got[0].By != "alice" || got[0].Comment != ack.Comment {
		t.Errorf("ack = %+v", got[0])
	}
	g := got[1]
	if g.Channel != "ops-wecom" || g.NotifyStatus != "sent" || g.Attempt != 2 || g.LatencyMs != 35 || g.Value != 112.5 ||
		g.Labels["tenant_id"] != `it's "quoted"` || g.Message != firing.Message || !g.FiredAt.Equal(firing.FiredAt) || !g.Time.Equal(sent.Time) {
		t.Errorf("notification = %+v", g)
	}
	t.Run("filters by label, kind and time", func(t *testing.T) {
		got, err := store.History(ctx, engine.AuditQuery{Labels: map[string]string{"tenant_id": `it's "quoted"`}, Kinds: []engine.AuditKind{engine.AuditNotification}, From: at, To: at.Add(time.Hour)})
		if err != nil || len(got) != 1 || got[0].Channel != "ops-wecom" {
			t.Fatalf("got %+v, %v", got, err)
		}
		got, _ = store.History(ctx, engine.AuditQuery{Labels: map[string]string{"tenant_id": "other"}})
		if len(got) != 0 {
			t.Fatalf("label filter matched %d", len(got))
		}
	})
}

// TestReadmeAuditQueriesRun runs the SQL docs/notifications.md shows for
// common questions against the audit table, so the examples stay valid.
func TestReadmeAuditQueriesRun(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	conn, err := clickhouse.Open(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	store, _ := NewAuditStore(conn, "callwatch_alert_log")
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../docs/notifications.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "-- What fired today")
	if start < 0 {
		t.Fatal("docs/notifications.md has no audit SQL examples")
	}
	block := text[start:]
	block = block[:strings.Index(block, "```")]
	n := 0
	for _, stmt := range strings.Split(block, ";") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		sql := strings.TrimSpace(strings.Join(lines, "\n"))
		if sql == "" {
			continue
		}
		n++
		rows, err := conn.Query(context.Background(), sql)
		if err != nil {
			t.Errorf("README query fails on 18.16: %v\n%s", err, sql)
			continue
		}
		rows.Close()
	}
	if n < 4 {
		t.Fatalf("ran %d README queries, want at least 4", n)
	}
}
