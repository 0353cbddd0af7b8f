package storetest

import (
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// Backend is a ClickHouse the contracts run on (Run, RunStores): how a
// suite gets a database on it, which seeds the randomized suites explore,
// and which of the optional parts it takes.
type Backend struct {
	// Database returns a connection to the backend and a fresh database
	// on it, dropped when t ends. Each suite calls it in its own subtest,
	// so a -run pattern that selects one suite sets up only that one.
	Database func(t *testing.T) (clickhouse.ExecQuerier, string)
	// Seeds returns the seeds of Differential and RangeMatchesInstants,
	// and StepSeeds those of IncrementalStepAfterStep: a choice among
	// Seeds(t, flag), the fixed one and the clock's.
	Seeds, StepSeeds func(t *testing.T) []uint64
	// Groupings counts the groupings an incremental Source keeps partial
	// aggregates for (clickhouse.IncrementalGroupings, exported to the
	// tests of engine/clickhouse alone); nil where it cannot be had, and
	// IncrementalStepAfterStep does not bound the buckets read.
	Groupings func(*clickhouse.Source) int
	// IncrementalConcurrent runs IncrementalConcurrent too, the suite
	// make test runs under the race detector.
	IncrementalConcurrent bool
}

// suite is a contract that runs in a database of its own.
type suite struct {
	name string
	run  func(t *testing.T, conn clickhouse.ExecQuerier, db string)
}

// Run runs every events-SQL contract on b, each in a subtest named for its
// suite: Events, Differential, IncrementalStepAfterStep,
// RangeMatchesInstants, SubqueriesMatchInstants, IncrementalConcurrent
// (where b takes it), SLOsMatchMemory and CalendarMonthsMatchMemory.
func Run(t *testing.T, b Backend) {
	suites := []suite{
		{"Events", Events},
		{"Differential", func(t *testing.T, conn clickhouse.ExecQuerier, db string) {
			Differential(t, conn, db, b.Seeds(t))
		}},
		{"IncrementalStepAfterStep", func(t *testing.T, conn clickhouse.ExecQuerier, db string) {
			IncrementalStepAfterStep(t, conn, db, b.StepSeeds(t), b.Groupings)
		}},
		{"RangeMatchesInstants", func(t *testing.T, conn clickhouse.ExecQuerier, db string) {
			RangeMatchesInstants(t, conn, db, b.Seeds(t))
		}},
		{"SubqueriesMatchInstants", SubqueriesMatchInstants},
	}
	if b.IncrementalConcurrent {
		suites = append(suites, suite{"IncrementalConcurrent", IncrementalConcurrent})
	}
	suites = append(suites, suite{"SLOsMatchMemory", SLOsMatchMemory}, suite{"CalendarMonthsMatchMemory", CalendarMonthsMatchMemory})
	runSuites(t, b, suites)
}

// RunStores runs the contracts of the audit and lease stores on b, each in
// a subtest named for its suite: AuditStore and TablesRecreated. Of b it
// takes only Database: storage/chstore runs them against the server,
// storage/chdb on embedded ClickHouse.
func RunStores(t *testing.T, b Backend) {
	runSuites(t, b, []suite{{"AuditStore", AuditStore}, {"TablesRecreated", TablesRecreated}})
}

// runSuites runs each suite in a subtest, in a fresh database of b.
func runSuites(t *testing.T, b Backend, suites []suite) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			conn, db := b.Database(t)
			s.run(t, conn, db)
		})
	}
}
