package chdb

import (
	"flag"
	"testing"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/storetest"
)

// seedFlag replays one seed of the randomized suites (also CALLWATCH_SEED).
var seedFlag = flag.String("seed", "", "seed of the randomized SQL suites (default: one from the clock; also CALLWATCH_SEED)")

// TestBackendEmbedded runs the events-SQL contracts of internal/storetest
// on embedded ClickHouse; engine/clickhouse runs them against a 18.16
// server. The randomized suites run one seed, from the clock unless one is
// replayed: a statement of these suites costs embedded ClickHouse about
// 10 ms (the server runs several at a time), and engine/clickhouse runs
// the fixed seed on the server: a second seed here would double the time
// of this package. The range suite's ARRAY JOIN of aggregate states runs
// here as on 18.16.
func TestBackendEmbedded(t *testing.T) {
	seeds := func(t *testing.T) []uint64 {
		seeds := storetest.Seeds(t, *seedFlag)
		return seeds[len(seeds)-1:]
	}
	storetest.Run(t, storetest.Backend{
		Database:  func(t *testing.T) (clickhouse.ExecQuerier, string) { return newDatabase(t) },
		Seeds:     seeds,
		StepSeeds: seeds,
	})
}

// TestStoresEmbedded runs the contracts of the audit and lease stores on
// embedded ClickHouse; storage/chstore runs them against a 18.16 server.
func TestStoresEmbedded(t *testing.T) {
	storetest.RunStores(t, storetest.Backend{
		Database: func(t *testing.T) (clickhouse.ExecQuerier, string) { return newDatabase(t) },
	})
}
