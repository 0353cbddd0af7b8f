package storetest

import (
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// Backend is a ClickHouse the events-SQL contracts run on (Run): how a
// suite gets a database on it, which seeds its randomized suites explore,
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

// Run runs every events-SQL contract on b, each in a subtest named for its
// suite: Events, Differential, IncrementalStepAfterStep,
// RangeMatchesInstants, SubqueriesMatchInstants, IncrementalConcurrent
// (where b takes it), SLOsMatchMemory and CalendarMonthsMatchMemory.
func Run(t *testing.T, b Backend) {
	suites := []struct {
		name  string
		suite func(t *testing.T, conn clickhouse.ExecQuerier, db string)
	}{
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
		{"IncrementalConcurrent", IncrementalConcurrent},
		{"SLOsMatchMemory", SLOsMatchMemory},
		{"CalendarMonthsMatchMemory", CalendarMonthsMatchMemory},
	}
	for _, s := range suites {
		if s.name == "IncrementalConcurrent" && !b.IncrementalConcurrent {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			conn, db := b.Database(t)
			s.suite(t, conn, db)
		})
	}
}
