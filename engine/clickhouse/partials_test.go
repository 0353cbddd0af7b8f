package clickhouse

import (
	"maps"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/dsl"
)

// TestEveryBackendComputesEveryAggregate: the full query and the
// incremental path each compute every partial state of every aggregate,
// and leaving one out of a backend's table is an error at start, naming
// the aggregates it breaks, instead of a silent 0.
func TestEveryBackendComputesEveryAggregate(t *testing.T) {
	if err := checkPartials("the ClickHouse full query", fullPartials); err != nil {
		t.Fatal(err)
	}
	if err := checkIncremental(); err != nil {
		t.Fatal(err)
	}
	for _, p := range dsl.Partials() {
		t.Run("the full query without "+p.Name+" fails", func(t *testing.T) {
			table := maps.Clone(fullPartials)
			delete(table, p.Partial)
			err := checkPartials("the ClickHouse full query", table)
			if err == nil || !strings.Contains(err.Error(), "needs "+p.Name) {
				t.Fatalf("checkPartials without %s = %v", p.Name, err)
			}
		})
	}
	t.Run("the incremental path without moments fails", func(t *testing.T) {
		saved := bucketPartials[dsl.PartialMoments]
		delete(bucketPartials, dsl.PartialMoments)
		defer func() { bucketPartials[dsl.PartialMoments] = saved }()
		if err := checkIncremental(); err == nil || !strings.Contains(err.Error(), "stddev needs moments") {
			t.Fatalf("checkIncremental without moments = %v", err)
		}
	})
}
