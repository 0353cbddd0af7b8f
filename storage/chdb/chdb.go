package chdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// Version is the chDB release callwatch is built and tested against (its
// engine is ClickHouse of the same number); `make chdb` fetches it.
const Version = "26.5.3"

// Package is the npm package that ships libchdb.so.
const Package = "@chdb/lib-linux-x64-gnu@" + Version

// LibraryEnv names the environment variable that points at libchdb.so.
const LibraryEnv = "CALLWATCH_CHDB_LIB"

// DefaultLibrary is where `make chdb` puts the library, relative to the
// checkout.
const DefaultLibrary = ".cache/chdb/libchdb.so"

// ErrNoLibrary is returned (wrapped, with where it was looked for and how
// to get it) by Open when libchdb.so cannot be found.
var ErrNoLibrary = errors.New("chDB's libchdb.so not found")

// ErrClosed is returned by calls on a closed Conn.
var ErrClosed = errors.New("chdb: connection closed")

// ErrBusy is returned, with the context's error, when a call's context ends
// while it waits for the engine, which runs one statement at a time: the
// engine is working, not down.
var ErrBusy = errors.New("chdb: the engine is busy with another statement")

// Options configure Open.
type Options struct {
	// Path is the data directory, created when missing. Tables written
	// there survive restarts. The engine serves one data directory per
	// process: to open another, close every Conn first.
	Path string
	// Library is the path of libchdb.so. The default is $CALLWATCH_CHDB_LIB,
	// else ./.cache/chdb/libchdb.so (where `make chdb` puts it), else
	// libchdb.so next to the executable.
	Library string
}

// Conn is a session of embedded ClickHouse. It implements clickhouse.Conn
// and clickhouse.Execer, so clickhouse.Source and chstore.AuditStore
// run on it unchanged.
//
// The library runs one statement at a time per session: calls are
// serialized. A call whose context ends while it waits for the session
// returns at once; one whose context ends while the statement runs returns
// at once too, and the statement finishes in the background (the library
// cannot interrupt it), holding the session until then.
type Conn struct {
	lib  *library
	conn unsafe.Pointer // chdb_connection*
	path string
	// sem holds the session: a one-slot semaphore, so that waiting for it
	// can be abandoned when a context ends.
	sem    chan struct{}
	closed bool
	// signals are the handlers saved before connecting; restored lists the
	// signals whose handlers the library replaced and Open put back.
	signals  *signalHandlers
	restored []syscall.Signal
}

var (
	_ clickhouse.ExecQuerier = (*Conn)(nil)
	_ clickhouse.SerialConn  = (*Conn)(nil)
)

// Open loads the library and connects a session to the data directory
// opts.Path. The library replaces Go's handlers of fatal signals (SIGSEGV,
// SIGBUS, …) with ClickHouse's crash reporter when it connects, after which
// a nil dereference in Go would hang the process instead of panicking; Open
// saves those handlers before connecting and restores them right after.
func Open(ctx context.Context, opts Options) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.Path == "" {
		return nil, errors.New("chdb: no data directory")
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("chdb: data directory %q: %w", opts.Path, err)
	}
	if err := os.MkdirAll(path, 0o750); err != nil {
		return nil, fmt.Errorf("chdb: create data directory: %w", err)
	}
	libPath, err := FindLibrary(opts.Library)
	if err != nil {
		return nil, err
	}
	lib, err := loadLibrary(libPath)
	if err != nil {
		return nil, fmt.Errorf("chdb: %w", err)
	}
	c := &Conn{lib: lib, path: path, sem: make(chan struct{}, 1)}
	if err := c.connect(); err != nil {
		return nil, err
	}
	// Every bound value is written into the statement, so the statement
	// may be longer than ClickHouse's default limit (256 KiB) where a
	// server would have received the values separately.
	if err := c.Exec(ctx, "SET max_query_size = ?", maxQuerySize); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("chdb: configure the session: %w", err)
	}
	return c, nil
}

// maxQuerySize is the session's max_query_size: 64 MiB.
const maxQuerySize = 64 << 20

// connectMu serializes connecting: signal handlers belong to the process,
// and two connects interleaved would each save the other's library
// handlers as Go's. It is the package's only mutable state, because what it
// guards is the process's.
var connectMu sync.Mutex

// connect calls chdb_connect between saving and restoring the signal
// handlers the library replaces.
func (c *Conn) connect() error {
	argv := newCArgs("clickhouse", "--path="+c.path)
	defer argv.free()
	connectMu.Lock()
	defer connectMu.Unlock()
	saved, err := saveSignalHandlers()
	if err != nil {
		return fmt.Errorf("chdb: %w", err)
	}
	conn := c.lib.connect(int32(argv.len()), argv.ptr())
	restored, rerr := saved.restore()
	c.signals, c.restored = saved, restored
	if rerr != nil {
		// Go's panics would no longer work: refuse the session.
		if conn != nil {
			c.lib.closeConn(conn)
		}
		return fmt.Errorf("chdb: %w", rerr)
	}
	if conn == nil || *(*unsafe.Pointer)(conn) == nil {
		return fmt.Errorf("chdb: connect to %s failed (the engine serves one data directory per process: is another open?)", c.path)
	}
	c.conn = conn
	return nil
}

// RestoredSignals returns the signals whose handlers the library replaced
// while connecting and Open restored.
func (c *Conn) RestoredSignals() []syscall.Signal { return c.restored }

// Serial reports that the session runs one statement at a time
// (clickhouse.SerialConn): a Source then runs an evaluation's reads one
// after another, each with its whole timeout.
func (c *Conn) Serial() bool { return true }

// Path returns the data directory.
func (c *Conn) Path() string { return c.path }

// Library returns the path of the library in use.
func (c *Conn) Library() string { return c.lib.path }

// Query runs a query with ? placeholders bound to args (see Bind) and
// returns its rows. Scan fills *string, *[]byte, *float64, *float32, any
// sized integer, *bool, *time.Time and *any, converting only when the value
// fits exactly.
func (c *Conn) Query(ctx context.Context, sql string, args ...any) (clickhouse.Rows, error) {
	q, err := Bind(sql, args...)
	if err != nil {
		return nil, err
	}
	out, err := c.run(ctx, q, "RowBinaryWithNamesAndTypes")
	if err != nil {
		return nil, err
	}
	return newRows(out)
}

// Exec runs a statement that returns no rows (DDL, INSERT), with ?
// placeholders bound to args.
func (c *Conn) Exec(ctx context.Context, sql string, args ...any) error {
	q, err := Bind(sql, args...)
	if err != nil {
		return err
	}
	_, err = c.run(ctx, q, "RowBinary")
	return err
}

// Close ends the session, after the statement in progress if there is one.
// Closing the last session of the process shuts the engine down.
func (c *Conn) Close() error {
	c.sem <- struct{}{}
	defer func() { <-c.sem }()
	if c.closed {
		return nil
	}
	c.closed = true
	c.lib.closeConn(c.conn)
	c.conn = nil
	return nil
}

// queryResult is the outcome of one library call.
type queryResult struct {
	out []byte
	err error
}

// run executes one statement and returns its output in format.
func (c *Conn) run(ctx context.Context, sql, format string) ([]byte, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
	if c.closed {
		<-c.sem
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		<-c.sem
		return nil, err
	}
	done := make(chan queryResult, 1)
	go func() {
		defer func() { <-c.sem }()
		out, err := c.call(sql, format)
		done <- queryResult{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// call runs chdb_query_n and copies the result out of the library's memory.
// The caller holds the session.
func (c *Conn) call(sql, format string) ([]byte, error) {
	q := []byte(sql)
	if len(q) == 0 {
		return nil, errors.New("chdb: empty query")
	}
	f := []byte(format)
	res := c.lib.queryN(*(*unsafe.Pointer)(c.conn), unsafe.Pointer(&q[0]), uintptr(len(q)), unsafe.Pointer(&f[0]), uintptr(len(f)))
	if res == nil {
		return nil, errors.New("chdb: the library returned no result")
	}
	defer c.lib.destroyResult(res)
	if e := c.lib.resultError(res); e != nil {
		err := &Error{Message: strings.TrimSpace(cString(e))}
		c.drain()
		return nil, err
	}
	n := c.lib.resultLength(res)
	if n == 0 {
		return nil, nil
	}
	buf := c.lib.resultBuffer(res)
	if buf == nil {
		return nil, errors.New("chdb: result without a buffer")
	}
	return append([]byte(nil), unsafe.Slice((*byte)(buf), n)...), nil
}

// drain clears what a statement that failed while it ran left in the
// session's output: chDB 26.5 keeps the part of the result it had written
// before the exception (the header of RowBinaryWithNamesAndTypes, for a
// GROUP BY that outgrew max_rows_to_group_by) and prepends it to the next
// statement's result. A statement whose whole output is known (SELECT 1
// in RowBinary: one byte, 1) takes it; it runs until its output is clean,
// at most a few times. The caller holds the session.
func (c *Conn) drain() {
	q, f := []byte("SELECT toUInt8(1)"), []byte("RowBinary")
	for range 3 {
		res := c.lib.queryN(*(*unsafe.Pointer)(c.conn), unsafe.Pointer(&q[0]), uintptr(len(q)), unsafe.Pointer(&f[0]), uintptr(len(f)))
		if res == nil {
			return
		}
		clean := c.lib.resultError(res) == nil && c.lib.resultLength(res) == 1 && *(*byte)(c.lib.resultBuffer(res)) == 1
		c.lib.destroyResult(res)
		if clean {
			return
		}
	}
}

// Error is an error reported by the engine, such as a syntax error or an
// unknown table. Message is ClickHouse's text ("Code: 60. DB::Exception: …").
type Error struct {
	Message string
}

func (e *Error) Error() string { return "chdb: " + e.Message }

// FindLibrary returns the path of libchdb.so: path when it is not empty,
// else the first that exists of $CALLWATCH_CHDB_LIB, ./.cache/chdb/libchdb.so
// and libchdb.so next to the executable. Its error wraps ErrNoLibrary and
// says how to get the library.
func FindLibrary(path string) (string, error) {
	var tried []string
	if path != "" {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		tried = append(tried, path)
	} else {
		if env := os.Getenv(LibraryEnv); env != "" {
			if _, err := os.Stat(env); err == nil {
				return env, nil
			}
			tried = append(tried, env+" ($"+LibraryEnv+")")
		}
		candidates := []string{DefaultLibrary}
		if exe, err := os.Executable(); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(exe), "libchdb.so"))
		}
		for _, p := range candidates {
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", fmt.Errorf("%w (looked for %s): embedded ClickHouse needs it; run `make chdb` in the callwatch checkout, "+
		"or `npm pack %s`, extract package/libchdb.so from the tarball and set %s to its path",
		ErrNoLibrary, strings.Join(tried, ", "), Package, LibraryEnv)
}
