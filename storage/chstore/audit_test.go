package chstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/docpage"
	"github.com/callwatch/callwatch/internal/storetest"
	"github.com/callwatch/callwatch/storage/chstore"
)

// TestStoresOnTheServer runs the contracts of the audit and lease stores
// (every field written and read, tables re-created when dropped) against
// the ClickHouse server the tests start (18.16 from Debian); storage/chdb
// runs them on embedded ClickHouse.
func TestStoresOnTheServer(t *testing.T) {
	storetest.RunStores(t, storetest.Backend{
		Database: func(t *testing.T) (clickhouse.ExecQuerier, string) { return chstore.ServerDatabase(t) },
	})
}

// TestReadmeAuditQueriesRun runs the SQL docs/notifications.md shows for
// common questions against the audit table, so the examples stay valid.
func TestReadmeAuditQueriesRun(t *testing.T) {
	conn, _ := chstore.ServerDatabase(t)
	store, _ := chstore.NewAuditStore(conn, "callwatch_alert_log")
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	block := docpage.CodeBlock(t, "notifications.md", "## The audit table", "sql")
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
