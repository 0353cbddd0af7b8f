// Package storetest holds the contract tests of callwatch's use of
// ClickHouse, run once per backend from the same code: a ClickHouse 18.16
// server through clickhouse-go (engine/clickhouse) and embedded ClickHouse
// 26.x (storage/chdb). They cover the stores (the audit trail, the HA lease:
// this file) and the events SQL: the hand-written suites of Events, the
// Differential suite over random expressions and the incremental path
// stepped through arriving events (IncrementalStepAfterStep), all compared
// with the memory evaluator. Run runs the events-SQL suites as one suite on
// a Backend, and RunStores those of the stores; each backend's tests call
// them once. Package gen generates their random events and expressions.
package storetest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/managertest"
	"github.com/callwatch/callwatch/internal/proctest"
	"github.com/callwatch/callwatch/storage/chstore"
)

// logBuffer collects a store's log lines.
type logBuffer = proctest.Buffer

// tableStore is what the audit and lease stores share here: a logger for the
// re-creations they log, and the tables they create.
type tableStore interface {
	SetLogger(*slog.Logger)
	Migrate(context.Context) error
}

// openStore opens a store on table of conn with open (chstore.NewAuditStore
// or chstore.NewLeaseStore), its log lines going into the buffer returned.
func openStore[S tableStore](t *testing.T, open func(clickhouse.ExecQuerier, string) (S, error), conn clickhouse.ExecQuerier, table string) (S, *logBuffer) {
	t.Helper()
	s, err := open(conn, table)
	if err != nil {
		t.Fatal(err)
	}
	log := &logBuffer{}
	s.SetLogger(slog.New(slog.NewTextHandler(log, nil)))
	return s, log
}

// migratedStore is openStore with the store's table created.
func migratedStore[S tableStore](t *testing.T, open func(clickhouse.ExecQuerier, string) (S, error), conn clickhouse.ExecQuerier, table string) (S, *logBuffer) {
	t.Helper()
	s, log := openStore(t, open, conn, table)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, log
}

// TablesRecreated checks, in database db of conn, that the audit and lease
// stores re-create their tables when they are dropped while callwatch runs:
// the next write, read or acknowledgement goes through and the
// re-creation is logged; and that other failures are store errors
// (engine.ErrStore), not retried.
func TablesRecreated(t *testing.T, conn clickhouse.ExecQuerier, db string) {
	ctx := context.Background()
	at := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	firing := engine.AuditRecord{Time: at, Kind: engine.AuditFiring, Fingerprint: "00000000000000ff", Group: "g", Rule: "Errors"}
	ack := engine.AuditRecord{Time: at.Add(time.Second), Kind: engine.AuditAcknowledged, Fingerprint: "00000000000000ff", Rule: "Errors", By: "alice"}

	newAudit := func(t *testing.T, table string) (*chstore.AuditStore, *logBuffer) {
		t.Helper()
		return migratedStore(t, chstore.NewAuditStore, conn, table)
	}
	drop := func(t *testing.T, table string) {
		t.Helper()
		if err := conn.Exec(ctx, "DROP TABLE "+table); err != nil {
			t.Fatal(err)
		}
	}

	// droppedAfterARecord returns an audit store on table that recorded
	// firing before its table was dropped.
	droppedAfterARecord := func(t *testing.T, table string) (*chstore.AuditStore, *logBuffer) {
		t.Helper()
		store, log := newAudit(t, table)
		if err := store.Record(ctx, firing); err != nil {
			t.Fatal(err)
		}
		drop(t, table)
		return store, log
	}

	t.Run("a write after the audit table was dropped re-creates it and goes through", func(t *testing.T) {
		table := db + ".audit_write"
		store, log := droppedAfterARecord(t, table)
		if err := store.Record(ctx, ack); err != nil {
			t.Fatalf("write after the drop: %v", err)
		}
		got, err := store.History(ctx, engine.AuditQuery{})
		if err != nil || len(got) != 1 || got[0].Kind != engine.AuditAcknowledged || got[0].By != "alice" {
			t.Fatalf("history after the drop = %+v, %v; want the acknowledgement alone", got, err)
		}
		if !strings.Contains(log.String(), "re-created a table that disappeared") || !strings.Contains(log.String(), table) {
			t.Errorf("the re-creation was not logged:\n%s", log)
		}
	})

	t.Run("a read after the audit table was dropped re-creates it and finds nothing", func(t *testing.T) {
		table := db + ".audit_read"
		store, _ := droppedAfterARecord(t, table)
		if got, err := store.History(ctx, engine.AuditQuery{}); err != nil || len(got) != 0 {
			t.Fatalf("history after the drop = %+v, %v; want none, no error", got, err)
		}
		drop(t, table)
		if got, err := store.LastSent(ctx, at.Add(-time.Hour)); err != nil || len(got) != 0 {
			t.Fatalf("last sent after the drop = %+v, %v; want none, no error", got, err)
		}
	})

	t.Run("an acknowledgement after the audit table was dropped goes through and is audited", func(t *testing.T) {
		table := db + ".audit_ack"
		store, _ := newAudit(t, table)
		m, fp := firingManager(t, store)
		drop(t, table)
		if _, err := m.Acknowledge(ctx, fp, "alice", "looking"); err != nil {
			t.Fatalf("acknowledge after the drop: %v", err)
		}
		got, err := store.History(ctx, engine.AuditQuery{Kinds: []engine.AuditKind{engine.AuditAcknowledged}})
		if err != nil || len(got) != 1 || got[0].By != "alice" || got[0].Comment != "looking" {
			t.Fatalf("acknowledgements = %+v, %v", got, err)
		}
	})

	t.Run("a failure that is not a missing table is a store error and is not retried", func(t *testing.T) {
		store, log := openStore(t, chstore.NewAuditStore, conn, "no_such_database_cw.audit")
		err := store.Record(ctx, ack)
		if !errors.Is(err, engine.ErrStore) {
			t.Fatalf("write into a missing database: %v, want an error matching engine.ErrStore", err)
		}
		if _, err := store.History(ctx, engine.AuditQuery{}); !errors.Is(err, engine.ErrStore) {
			t.Fatalf("read from a missing database: %v, want an error matching engine.ErrStore", err)
		}
		if log.String() != "" {
			t.Errorf("a missing database was taken for a missing table:\n%s", log)
		}
	})

	t.Run("a heartbeat after the lease table was dropped re-creates it and goes through", func(t *testing.T) {
		table := db + ".replicas"
		lease, log := migratedStore(t, chstore.NewLeaseStore, conn, table)
		if err := lease.Beat(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		drop(t, table)
		if err := lease.Beat(ctx, "b"); err != nil {
			t.Fatalf("beat after the drop: %v", err)
		}
		if alive, err := lease.Alive(ctx, time.Minute); err != nil || strings.Join(alive, " ") != "b" {
			t.Fatalf("alive after the drop = %v, %v; want b", alive, err)
		}
		drop(t, table)
		if alive, err := lease.Alive(ctx, time.Minute); err != nil || len(alive) != 0 {
			t.Fatalf("alive after a second drop = %v, %v; want none, no error", alive, err)
		}
		if n := strings.Count(log.String(), "re-created a table that disappeared"); n != 2 {
			t.Errorf("%d re-creations logged, want 2:\n%s", n, log)
		}
	})
}

// firingManager returns a manager whose one rule has a firing alert, and the
// alert's fingerprint; it audits to audit.
func firingManager(t *testing.T, audit engine.Auditor) (*engine.Manager, uint64) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rules.yaml")
	rules := "groups:\n  - name: g\n    rules:\n      - alert: Errors\n        expr: count_over_time(events[5m]) > 0\n"
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	query := func(context.Context, *dsl.Expr, time.Time, engine.SeriesSource) (engine.Result, error) {
		return engine.Result{Vector: []engine.Sample{{Value: 3}}}, nil
	}
	m := managertest.Load(t, file, engine.GroupOptions{Query: query, Audit: audit}, func() time.Time { return now })
	for _, g := range m.Groups() {
		g.Eval(context.Background(), now)
		for _, r := range g.Rules() {
			if ar, ok := r.(*engine.AlertingRule); ok {
				if a := ar.Alerts(); len(a) == 1 && a[0].State == engine.StateFiring {
					return m, a[0].Fingerprint()
				}
			}
		}
	}
	t.Fatal("the rule did not fire")
	return nil, 0
}
