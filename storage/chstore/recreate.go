package chstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// recreator re-creates a table callwatch owns when a statement fails
// because the table is gone (dropped by hand, or lost with the server's data
// while callwatch runs), and runs the statement once more, instead of
// failing every write until callwatch restarts.
type recreator struct {
	table   string
	migrate func(context.Context) error
	logger  *slog.Logger

	mu sync.Mutex // one re-creation at a time
}

// read is do for an operation that returns a value.
func read[T any](ctx context.Context, r *recreator, op func(context.Context) (T, error)) (T, error) {
	var out T
	err := r.do(ctx, func(ctx context.Context) (err error) {
		out, err = op(ctx)
		return err
	})
	return out, err
}

// do runs op; when it fails because the table is missing, it re-creates the
// table and runs op once more.
func (r *recreator) do(ctx context.Context, op func(context.Context) error) error {
	err := op(ctx)
	if err == nil || clickhouse.ErrorCode(err) != clickhouse.CodeUnknownTable {
		return err
	}
	if merr := r.recreate(ctx); merr != nil {
		return fmt.Errorf("%w; re-creating the table failed: %v", err, merr) //nolint:errorlint // callers match err (its ClickHouse code); merr is context
	}
	return op(ctx)
}

func (r *recreator) recreate(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	logger := r.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := r.migrate(ctx); err != nil {
		logger.Error("re-creating a table that disappeared failed", "table", r.table, "err", err)
		return err
	}
	logger.Warn("re-created a table that disappeared while callwatch was running; rows written before are lost with it", "table", r.table)
	return nil
}
