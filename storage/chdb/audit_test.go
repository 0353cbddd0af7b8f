package chdb

import (
	"testing"

	"github.com/callwatch/callwatch/internal/storetest"
)

// TestAuditStoreRunsEmbedded runs the audit store's shared suite on
// embedded ClickHouse; storage/chstore runs it on a 18.16 server.
func TestAuditStoreRunsEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.AuditStore(t, c, db)
}
