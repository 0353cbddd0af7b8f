package chstore_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/internal/storetest"
	"github.com/callwatch/callwatch/storage/chstore"
)

// TestAuditStoreWritesAndReadsEveryField runs the audit store's shared
// suite on a 18.16 server; storage/chdb runs it on embedded ClickHouse.
func TestAuditStoreWritesAndReadsEveryField(t *testing.T) {
	conn, db := chstore.ServerDatabase(t)
	storetest.AuditStore(t, conn, db)
}

// TestReadmeAuditQueriesRun runs the SQL docs/notifications.md shows for
// common questions against the audit table, so the examples stay valid.
func TestReadmeAuditQueriesRun(t *testing.T) {
	conn, _ := chstore.ServerDatabase(t)
	store, _ := chstore.NewAuditStore(conn, "callwatch_alert_log")
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
