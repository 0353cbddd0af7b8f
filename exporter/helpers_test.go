package exporter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/storage/chdb"
)

var server = chtest.NewShared()

func TestMain(m *testing.M) {
	code := server.Run(m)
	// Shut the embedded engine down before the process exits: its threads
	// must not outlive the Go runtime's exit (the race detector's
	// finalization crashes on them).
	if chdbConn.conn != nil {
		chdbConn.conn.Close()
	}
	os.Exit(code)
}

// base is the time the tests' events happen around.
var base = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

// at returns base + d.
func at(d time.Duration) time.Time { return base.Add(d) }

// event is one call, as the tests insert it.
type event struct {
	at                             time.Time
	tenant, app, model, provider   string
	status                         string
	latencyMS, inTokens, outTokens int
	cost                           float64
	errorCode                      string
}

// backend is an events table in one of the ClickHouse engines the SQL
// must run on: a ClickHouse server (Debian's 18.16 here) and embedded chDB
// (26.x).
type backend struct {
	conn clickhouse.Conn
	// table is db.calls, in a database of the test's own.
	table string
	db    string
	exec  func(t *testing.T, sql string, args ...any)
	srv   *chtest.Server // nil for chDB
}

// forEachBackend runs f in a subtest per engine, each with a fresh table.
// The server is skipped when ClickHouse is not installed, chDB when
// libchdb.so is not found.
func forEachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	t.Run("clickhouse server", func(t *testing.T) { f(t, newServerBackend(t, server.Get(t))) })
	t.Run("chdb", func(t *testing.T) { f(t, newChDBBackend(t)) })
}

func newServerBackend(t *testing.T, srv *chtest.Server) *backend {
	t.Helper()
	db := srv.NewDatabase(t)
	b := &backend{srv: srv, db: db, table: db + ".calls", conn: clickhouse.NewNativeConn(srv.Conn(t, db)),
		exec: func(t *testing.T, sql string, args ...any) { t.Helper(); srv.Exec(t, sql, args...) }}
	b.exec(t, clickhouse.EventsDDL(b.table, dsl.DefaultSchema()))
	return b
}

// chdbConn is the process's chDB session: the library serves one data
// directory per process, so the tests share it and each uses a database of
// its own.
var chdbConn struct {
	once sync.Once
	conn *chdb.Conn
	err  error
}

func newChDBBackend(t *testing.T) *backend {
	t.Helper()
	chdbConn.once.Do(func() {
		dir, err := os.MkdirTemp("", "exporter-chdb-")
		if err != nil {
			chdbConn.err = err
			return
		}
		lib := os.Getenv(chdb.LibraryEnv)
		if lib == "" {
			lib = filepath.Join("..", chdb.DefaultLibrary)
		}
		chdbConn.conn, chdbConn.err = chdb.Open(context.Background(), chdb.Options{Path: dir, Library: lib})
	})
	if errors.Is(chdbConn.err, chdb.ErrNoLibrary) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (run `make chdb`)", chdbConn.err)
		}
		t.Skip(chdbConn.err)
	}
	if chdbConn.err != nil {
		t.Fatal(chdbConn.err)
	}
	conn := chdbConn.conn
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	db := "test_" + hex.EncodeToString(rnd[:])
	b := &backend{db: db, table: db + ".calls", conn: conn, exec: func(t *testing.T, sql string, args ...any) {
		t.Helper()
		if err := conn.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("exec %q: %v", sql, err)
		}
	}}
	b.exec(t, "CREATE DATABASE "+db)
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	b.exec(t, clickhouse.EventsDDL(b.table, dsl.DefaultSchema()))
	return b
}

// insert inserts events with INSERT … SELECT and bound values, one
// statement per event, which works on every engine and version.
func (b *backend) insert(t *testing.T, events ...event) {
	t.Helper()
	for _, e := range events {
		status := e.status
		if status == "" {
			status = "success"
		}
		b.exec(t, "INSERT INTO "+b.table+" (created_at, tenant_id, app_code, model, provider, status, error_code, latency_ms, input_tokens, output_tokens, cost) "+
			"SELECT toDateTime(?), ?, ?, ?, ?, ?, ?, toUInt32(?), toUInt32(?), toUInt32(?), toFloat64(?)",
			e.at.Unix(), e.tenant, e.app, e.model, e.provider, status, e.errorCode, e.latencyMS, e.inTokens, e.outTokens, e.cost)
	}
}

// newExporter returns an exporter over conn counting from base, with no
// safety lag, so that tests choose every bound.
func newTestExporter(t *testing.T, conn clickhouse.Conn, table string, cfg config.Exporter, rules Rules) *Exporter {
	t.Helper()
	if cfg.SafetyLag == nil {
		cfg.SafetyLag = new(dsl.Duration(0))
	}
	e, err := New(Options{Config: cfg, Conn: conn, Table: table, Columns: unguarded(dsl.DefaultSchema()), Rules: rules, Start: base,
		Version: "v0.0.0-test", Revision: "abc123"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// unguarded returns the column types of a table without Nullable or
// floating-point columns, whose update query has no NULL or NaN guards:
// the fake connection answers that query's columns. Tests on real tables
// without these types (nil Columns) run the guarded SQL.
func unguarded(schema dsl.Schema) clickhouse.Columns {
	cols := clickhouse.EventsColumns(schema)
	for _, c := range schema.NumericColumns() {
		cols[c] = "UInt32"
	}
	return cols
}

// mustUpdate runs an update at now and fails the test on error.
func mustUpdate(t *testing.T, e *Exporter, now time.Time) {
	t.Helper()
	if err := e.Update(context.Background(), now); err != nil {
		t.Fatalf("Update(%s): %v", now.Format(time.TimeOnly), err)
	}
}

// gather collects the exporter through a pedantic registry.
func gather(t *testing.T, e *Exporter) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// series returns the metrics of family name whose labels include match.
func series(mfs []*dto.MetricFamily, name string, match map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, lp := range m.Label {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range match {
				if have[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// sum adds the values (counter, gauge, or histogram count) of the series
// of name matching match.
func sum(mfs []*dto.MetricFamily, name string, match map[string]string) float64 {
	var s float64
	for _, m := range series(mfs, name, match) {
		switch {
		case m.Counter != nil:
			s += m.Counter.GetValue()
		case m.Gauge != nil:
			s += m.Gauge.GetValue()
		case m.Histogram != nil:
			s += float64(m.Histogram.GetSampleCount())
		}
	}
	return s
}

// labelSets lists the label sets of family name, as "k=v,k=v" strings, sorted.
func labelSets(mfs []*dto.MetricFamily, name string) []string {
	var out []string
	for _, m := range series(mfs, name, nil) {
		var parts []string
		for _, lp := range m.Label {
			parts = append(parts, lp.GetName()+"="+lp.GetValue())
		}
		out = append(out, strings.Join(parts, ","))
	}
	sort.Strings(out)
	return out
}
