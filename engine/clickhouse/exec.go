package clickhouse

import (
	"context"
	"errors"
	"regexp"
	"strconv"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
)

// Execer runs statements that return no rows.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) error
}

// ExecQuerier runs statements and queries: what the audit store needs.
type ExecQuerier interface {
	Conn
	Execer
}

var _ ExecQuerier = (*NativeConn)(nil)

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

// QuoteIdent quotes a column or database name for ClickHouse SQL, the one
// way every statement callwatch sends quotes them (the audit and lease
// stores of storage/chstore included).
func QuoteIdent(name string) string { return quoteIdent(name) }

// QuoteTable quotes a table name, with its database when it has one
// ("db.table"), for ClickHouse SQL.
func QuoteTable(table string) string { return quoteTable(table) }
