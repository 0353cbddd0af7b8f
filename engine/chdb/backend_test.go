package chdb

import (
	"testing"

	"github.com/callwatch/callwatch/internal/storetest"
)

// TestEventsContractEmbedded runs the events-SQL contract on embedded
// ClickHouse.
func TestEventsContractEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	t.Run("bad data never silences a rule", func(t *testing.T) { storetest.BadData(t, c, db) })
	t.Run("a table that does not fit the schema is refused with every problem", func(t *testing.T) { storetest.SchemaCheck(t, c, db) })
	t.Run("the series limit is enforced inside ClickHouse", func(t *testing.T) { storetest.GroupLimit(t, c, db) })
}
