// Package audittest keeps an audit trail in memory for tests: Log is an
// engine.Auditor that records what it is handed, safe for the goroutines of
// a manager or a dispatcher and the test reading it.
package audittest

import (
	"context"
	"slices"
	"sync"

	"github.com/callwatch/callwatch/engine"
)

// Log records audit records in memory. The zero value is ready to use.
type Log struct {
	mu   sync.Mutex
	recs []engine.AuditRecord
}

var _ engine.Auditor = (*Log)(nil)

// Record appends recs; it never fails.
func (l *Log) Record(_ context.Context, recs ...engine.AuditRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, recs...)
	return nil
}

// Records returns a copy of the records so far, in the order recorded.
func (l *Log) Records() []engine.AuditRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}
