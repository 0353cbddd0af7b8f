package main

// The query trace of the steady evaluations (-trace-queries): each query's
// time from sent to its last row, its rows, and its statement's head, to
// see where a steady evaluation waits.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// tracer wraps a connection; while on, it writes a line per query to w.
type tracer struct {
	conn clickhouse.Conn
	mu   sync.Mutex
	w    io.Writer
	on   bool
	tag  string
	// full writes whole statements and their arguments.
	full bool
}

func (t *tracer) set(on bool, tag string) {
	t.mu.Lock()
	t.on, t.tag = on, tag
	t.mu.Unlock()
}

func (t *tracer) Query(ctx context.Context, sql string, args ...any) (clickhouse.Rows, error) {
	t.mu.Lock()
	on, tag := t.on && t.w != nil, t.tag
	t.mu.Unlock()
	if !on {
		return t.conn.Query(ctx, sql, args...)
	}
	start := time.Now()
	rows, err := t.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return &tracedRows{Rows: rows, t: t, tag: tag, sql: sql, args: args, start: start, sent: time.Since(start)}, nil
}

type tracedRows struct {
	clickhouse.Rows
	t     *tracer
	tag   string
	sql   string
	args  []any
	start time.Time
	sent  time.Duration
	n     int
}

func (r *tracedRows) Next() bool {
	ok := r.Rows.Next()
	if ok {
		r.n++
	}
	return ok
}

func (r *tracedRows) Close() error {
	err := r.Rows.Close()
	head := strings.Join(strings.Fields(r.sql), " ")
	if len(head) > 160 && !r.t.full {
		head = head[:160] + "…"
	}
	if r.t.full {
		head += fmt.Sprintf("\t%#v", r.args)
	}
	r.t.mu.Lock()
	fmt.Fprintf(r.t.w, "%s\t%.1f ms (first %.1f)\t%d rows\t%s\n", r.tag, float64(time.Since(r.start).Microseconds())/1000, float64(r.sent.Microseconds())/1000, r.n, head)
	r.t.mu.Unlock()
	return err
}
