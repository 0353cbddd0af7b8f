package chdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// The tests that need libchdb.so share one session (the engine serves one
// data directory per process), in a temporary directory, and isolate
// themselves in databases of their own. Tests that need a process of their
// own (signals, restarts) re-execute the test binary (see child).

// shared is the session of this test process, opened on first use.
var shared struct {
	once sync.Once
	dir  string
	conn *Conn
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.conn != nil {
		_ = shared.conn.Close()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// testLibrary returns the library the tests use: $CALLWATCH_CHDB_LIB when
// set, else .cache/chdb/libchdb.so at the root of the checkout. Without it
// a test is skipped, or fails under CI=true, where `make test` fetches it
// first.
func testLibrary(t testing.TB) string {
	t.Helper()
	p := os.Getenv(LibraryEnv)
	if p == "" {
		if root, err := proctest.ModuleRoot(); err == nil {
			p = filepath.Join(root, DefaultLibrary)
		}
	}
	if _, err := os.Stat(p); err == nil && p != "" {
		return p
	}
	msg := "libchdb.so not found (" + p + "): run make chdb (or set " + LibraryEnv + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// session returns the shared session.
func session(t testing.TB) *Conn {
	t.Helper()
	lib := testLibrary(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "callwatch-chdb-")
		if shared.err != nil {
			return
		}
		shared.conn, shared.err = Open(context.Background(), Options{Path: shared.dir, Library: lib})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.conn
}

// newDatabase creates a database of a fresh name in the shared session,
// dropped when the test ends.
func newDatabase(t testing.TB) (*Conn, string) {
	t.Helper()
	c := session(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	db := "test_" + hex.EncodeToString(b[:])
	mustExec(t, c, "CREATE DATABASE "+db)
	t.Cleanup(func() { _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return c, db
}

func mustExec(t testing.TB, c *Conn, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// queryRows runs a query and scans every row with scan.
func queryRows(t testing.TB, c *Conn, sql string, args []any, scan func(r *Rows) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.(*Rows)); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// queryOne runs a query that returns one row and scans it into dest.
func queryOne(t testing.TB, c *Conn, sql string, args []any, dest ...any) {
	t.Helper()
	n := 0
	queryRows(t, c, sql, args, func(r *Rows) error {
		n++
		return r.Scan(dest...)
	})
	if n != 1 {
		t.Fatalf("%s: %d rows, want 1", sql, n)
	}
}

// childEnv tells a re-executed test binary which role to play; the role's
// data directory and library are in childDirEnv and LibraryEnv.
const (
	childEnv    = "CALLWATCH_CHDB_TEST_CHILD"
	childDirEnv = "CALLWATCH_CHDB_TEST_DIR"
)

// childRole returns the role this process plays, or "" in the parent.
func childRole() string { return os.Getenv(childEnv) }

// childOpen opens the child's session and prints "connected".
func childOpen() *Conn {
	c, err := Open(context.Background(), Options{Path: os.Getenv(childDirEnv), Library: os.Getenv(LibraryEnv)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	fmt.Println("connected")
	return c
}
