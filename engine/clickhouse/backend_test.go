package clickhouse_test

import (
	"context"
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/storetest"
)

// TestEventsContractOnTheServer runs the events-SQL contract against the
// ClickHouse server the tests start (18.16 from Debian); engine/chdb runs
// it on embedded ClickHouse.
func TestEventsContractOnTheServer(t *testing.T) {
	s := clickhouse.SharedServer.Get(t)
	db := s.NewDatabase(t)
	conn, err := clickhouse.Open(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Run("bad data never silences a rule", func(t *testing.T) { storetest.BadData(t, conn, db) })
	t.Run("a table that does not fit the schema is refused with every problem", func(t *testing.T) { storetest.SchemaCheck(t, conn, db) })
	t.Run("the series limit is enforced inside ClickHouse", func(t *testing.T) { storetest.GroupLimit(t, conn, db) })
}
