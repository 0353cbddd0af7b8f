package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// NativeConn is a Conn over clickhouse-go's native protocol, the protocol
// that works from ClickHouse 18.16 to current releases. clickhouse-go binds
// ? arguments client-side, writing each value into the query as an escaped
// literal (18.16 has no server-side query parameters).
type NativeConn struct {
	conn driver.Conn
}

var _ Conn = (*NativeConn)(nil)

// Open connects to the server named by dsn
// (clickhouse://user:password@host:9000/database?dial_timeout=5s) and
// checks that it answers.
func Open(ctx context.Context, dsn string) (*NativeConn, error) {
	return OpenPool(ctx, dsn, 0)
}

// OpenPool is Open with at most maxConns connections (0: clickhouse-go's
// default, 10): a pool of its own for work that must not take the
// connections of another, such as ad-hoc queries beside the rules.
func OpenPool(ctx context.Context, dsn string, maxConns int) (*NativeConn, error) {
	opts, err := chgo.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse clickhouse dsn: %w", err)
	}
	if maxConns > 0 {
		opts.MaxOpenConns, opts.MaxIdleConns = maxConns, min(opts.MaxIdleConns, maxConns)
	}
	if opts.Protocol != chgo.Native {
		return nil, fmt.Errorf("clickhouse dsn: only the native protocol (clickhouse://) is supported")
	}
	conn, err := chgo.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", opts.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("ping clickhouse %v: %w", opts.Addr, err)
	}
	return &NativeConn{conn: conn}, nil
}

// NewNativeConn wraps an open clickhouse-go connection; closing the
// NativeConn closes it.
func NewNativeConn(conn driver.Conn) *NativeConn { return &NativeConn{conn: conn} }

// Query runs a query. Its query_id starts with "callwatch-", so callwatch's
// queries can be found in system.query_log and system.processes.
func (c *NativeConn) Query(ctx context.Context, sql string, args ...any) (Rows, error) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	ctx = chgo.Context(ctx, chgo.WithQueryID("callwatch-"+hex.EncodeToString(id[:])))
	rows, err := c.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// Close closes the connection pool.
func (c *NativeConn) Close() error { return c.conn.Close() }

// Exec runs a statement that returns no rows (DDL, INSERT … SELECT).
func (c *NativeConn) Exec(ctx context.Context, sql string, args ...any) error {
	var id [12]byte
	_, _ = rand.Read(id[:])
	ctx = chgo.Context(ctx, chgo.WithQueryID("callwatch-"+hex.EncodeToString(id[:])))
	return c.conn.Exec(ctx, sql, args...)
}
