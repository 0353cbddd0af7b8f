package chstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/engine"
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

// statementConn records the statements and arguments of its queries and
// fails each.
type statementConn struct{ sent []string }

func (c *statementConn) Query(_ context.Context, sql string, args ...any) (clickhouse.Rows, error) {
	c.sent = append(c.sent, fmt.Sprint(sql, args))
	return nil, errors.New("no server")
}

func (c *statementConn) Exec(context.Context, string, ...any) error { return nil }

// TestHistoryLabelFiltersMakeOneStatement: the label filters of a history
// read (a map) become conditions by label name, so the same read sends the
// same statement every time; they once followed the map.
func TestHistoryLabelFiltersMakeOneStatement(t *testing.T) {
	c := &statementConn{}
	s, err := chstore.NewAuditStore(c, "audit")
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		s.History(context.Background(), engine.AuditQuery{Labels: map[string]string{"tenant_id": "acme", "app_code": "chat", "model": "gpt"}})
	}
	if len(c.sent) != 30 {
		t.Fatalf("%d statements sent, want 30", len(c.sent))
	}
	for _, st := range c.sent {
		if st != c.sent[0] {
			t.Fatalf("the same history read sent\n%s\nand\n%s", c.sent[0], st)
		}
	}
	if !strings.Contains(c.sent[0], "app_code chat model gpt tenant_id acme") {
		t.Errorf("the label conditions' arguments are not by name:\n%s", c.sent[0])
	}
}
