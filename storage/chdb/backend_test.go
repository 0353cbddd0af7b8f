package chdb

import (
	"flag"
	"testing"

	"github.com/callwatch/callwatch/internal/storetest"
)

// seedFlag replays one seed of the randomized suites (also CALLWATCH_SEED).
var seedFlag = flag.String("seed", "", "seed of the randomized SQL suites (default: one from the clock; also CALLWATCH_SEED)")

// TestEventsContractEmbedded runs the events-SQL contract on embedded
// ClickHouse; engine/clickhouse runs it against a 18.16 server.
func TestEventsContractEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.Events(t, c, db)
}

// embeddedSeeds are the seeds of the randomized suites here: one per run,
// from the clock unless one is replayed. A statement of these suites costs
// embedded ClickHouse about 10 ms (the server runs several at a time), and
// engine/clickhouse runs the fixed seed on the server: a second seed here
// would double the time of this package.
func embeddedSeeds(t *testing.T) []uint64 {
	seeds := storetest.Seeds(t, *seedFlag)
	return seeds[len(seeds)-1:]
}

// TestDifferentialEmbedded compares embedded ClickHouse with the memory
// evaluator over random events and expressions.
func TestDifferentialEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.Differential(t, c, db, embeddedSeeds(t))
}

// TestIncrementalStepAfterStepEmbedded steps the incremental path through
// arriving events on embedded ClickHouse.
func TestIncrementalStepAfterStepEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.IncrementalStepAfterStep(t, c, db, embeddedSeeds(t), nil)
}

// TestRangeMatchesInstantsEmbedded computes range queries in one
// aggregation on embedded ClickHouse (ARRAY JOIN of aggregate states runs
// there as on 18.16) and compares each step with the memory evaluator.
func TestRangeMatchesInstantsEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.RangeMatchesInstants(t, c, db, embeddedSeeds(t))
}

// TestSubqueriesEmbedded evaluates subqueries over range functions on
// embedded ClickHouse and in memory.
func TestSubqueriesEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.SubqueriesMatchInstants(t, c, db)
}

// TestSLOsMatchMemoryEmbedded evaluates an SLO's and a budget's generated
// groups on embedded ClickHouse and in memory.
func TestSLOsMatchMemoryEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.SLOsMatchMemory(t, c, db)
}

// TestCalendarMonthsMatchMemoryEmbedded evaluates a calendar-month SLO and
// budget across a month boundary in Asia/Shanghai on embedded ClickHouse
// and in memory.
func TestCalendarMonthsMatchMemoryEmbedded(t *testing.T) {
	c, db := newDatabase(t)
	storetest.CalendarMonthsMatchMemory(t, c, db)
}
