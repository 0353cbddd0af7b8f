package chstore_test

import (
	"testing"

	"github.com/callwatch/callwatch/internal/storetest"
	"github.com/callwatch/callwatch/storage/chstore"
)

// TestTablesRecreatedOnTheServer runs the re-creation contract against the
// ClickHouse server the tests start (18.16 from Debian).
func TestTablesRecreatedOnTheServer(t *testing.T) {
	conn, db := chstore.ServerDatabase(t)
	storetest.TablesRecreated(t, conn, db)
}
