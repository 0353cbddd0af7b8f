package engine

import "errors"

// ErrStore is matched (errors.Is) by every failure of the store behind the
// audit trail: ClickHouse down or timing out, a table that could not be
// re-created. The request was fine and the store was not, so the HTTP API
// answers 503 and a retry may succeed.
var ErrStore = errors.New("the audit store is unavailable")

// StoreError wraps a failure of the audit store so that callers can tell it
// from a bad request: it matches ErrStore, and its message is the wrapped
// error's.
type StoreError struct {
	Err error
}

// Error returns the wrapped error's message.
func (e *StoreError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *StoreError) Unwrap() error { return e.Err }

// Is reports whether target is ErrStore.
func (e *StoreError) Is(target error) bool { return target == ErrStore }
