package clickhouse

import (
	"context"
	"maps"
	"reflect"
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
	for _, tc := range []struct {
		p    dsl.Partial
		want []string
	}{
		{dsl.PartialMoments, []string{"stddev needs moments"}},
		{dsl.PartialAtOrBelow, []string{"count_le needs count at or below the threshold", "count_gt needs count at or below the threshold"}},
	} {
		t.Run("the incremental path without "+tc.p.String()+" fails", func(t *testing.T) {
			saved := bucketPartials[tc.p]
			delete(bucketPartials, tc.p)
			defer func() { bucketPartials[tc.p] = saved }()
			err := checkIncremental()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("checkIncremental without %s = %v, want it to say %q", tc.p, err, w)
				}
			}
		})
	}
}

// TestBucketCountsOfTwoReadsAddUp: two bucket reads count one selector
// over different buckets; a quantile step checks buckets of both, and
// gets each from the read that counted it.
func TestBucketCountsOfTwoReadsAddUp(t *testing.T) {
	cond := fragment{sql: "`tenant_id` = ?", args: []any{"t1"}}
	cols := []gridColumn{{kind: colCount, cond: cond}}
	c := &bucketCounts{pending: 2, done: make(chan struct{}), counts: map[string]map[int64]float64{},
		covers: map[string][]bucketRange{cond.key(): {{10, 12}, {13, 13}}}}
	pl := &vcPlan{cond: cond, check: []int64{11, 12, 13}}
	if !c.serves([]*vcPlan{pl}) {
		t.Fatal("the reads, as planned, count buckets 10 to 13: they serve")
	}
	c.add(cols, []bucketRow{{bucket: 11, v: []float64{4}}, {bucket: 11, v: []float64{1}}}, []bucketRange{{10, 12}})
	c.readDone()
	c.add(cols, []bucketRow{{bucket: 13, v: []float64{7}}}, []bucketRange{{13, 13}})
	c.readDone()
	got := c.lookup(context.Background(), []*vcPlan{pl})
	if want := []map[int64]float64{{11: 5, 12: 0, 13: 7}}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}
