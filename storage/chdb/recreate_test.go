package chdb

import (
	"testing"

	"github.com/callwatch/callwatch/internal/storetest"
)

// TestTablesRecreatedEmbedded runs the re-creation contract on embedded
// ClickHouse.
func TestTablesRecreatedEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.TablesRecreated(t, c, db)
}
