package chstore

import (
	"context"
	"os"
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
)

// server is the ClickHouse server (18.16 from Debian) the tests of this
// package share; storage/chdb's tests run the same contracts embedded.
var server = chtest.NewShared()

func TestMain(m *testing.M) { os.Exit(server.Run(m)) }

// serverDatabase returns a connection to the shared server and a fresh
// database on it.
func serverDatabase(t *testing.T) (*clickhouse.NativeConn, string) {
	t.Helper()
	s := server.Get(t)
	db := s.NewDatabase(t)
	conn, err := clickhouse.Open(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, db
}
