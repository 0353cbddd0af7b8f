package clickhouse_test

import (
	"context"
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/storetest"
)

// TestTablesRecreatedOnTheServer runs the re-creation contract against the
// ClickHouse server the tests start (18.16 from Debian).
func TestTablesRecreatedOnTheServer(t *testing.T) {
	s := clickhouse.SharedServer.Get(t)
	db := s.NewDatabase(t)
	conn, err := clickhouse.Open(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	storetest.TablesRecreated(t, conn, db)
}
