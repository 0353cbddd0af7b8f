package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
)

// CodeUnknownTable is ClickHouse's error code UNKNOWN_TABLE: the statement
// names a table that does not exist.
const CodeUnknownTable = 60

// codeInMessage finds the code in ClickHouse's message text
// ("Code: 60. DB::Exception: …"), the form embedded ClickHouse reports.
var codeInMessage = regexp.MustCompile(`^(?:\w+: )?Code: (\d+)\.`)

// ErrorCode returns the ClickHouse error code err carries, or 0: the code of
// a server's exception (clickhouse-go), or the code at the start of the
// message of any error in the chain (embedded ClickHouse's
// "Code: 60. DB::Exception: …").
func ErrorCode(err error) int32 {
	if err == nil {
		return 0
	}
	var ex *chgo.Exception
	if errors.As(err, &ex) {
		return ex.Code
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if m := codeInMessage.FindStringSubmatch(e.Error()); m != nil {
			code, _ := strconv.ParseInt(m[1], 10, 32)
			return int32(code)
		}
	}
	return 0
}

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

// do runs op; when it fails because the table is missing, it re-creates the
// table and runs op once more.
func (r *recreator) do(ctx context.Context, op func(context.Context) error) error {
	err := op(ctx)
	if err == nil || ErrorCode(err) != CodeUnknownTable {
		return err
	}
	if merr := r.recreate(ctx); merr != nil {
		return fmt.Errorf("%w; re-creating the table failed: %v", err, merr)
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
