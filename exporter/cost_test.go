package exporter

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/config"
)

func TestAnUpdateReadsOnlyTheNewRowsAndTheLateWindow(t *testing.T) {
	tb := newServerBackend(t, server.Get(t))
	// A million calls of history, hours before the start (outside the
	// cardinality lookback too), and a few new ones.
	const history = 1000000
	tb.exec(t, "INSERT INTO "+tb.table+" (created_at, tenant_id, status, latency_ms) "+
		"SELECT toDateTime(?) + intDiv(number, 300), 'old', 'success', 100 FROM system.numbers LIMIT 1000000", at(-3*time.Hour).Unix())
	tb.insert(t,
		event{at: at(10 * time.Second), tenant: "new", latencyMS: 100},
		event{at: at(20 * time.Second), tenant: "new", latencyMS: 200})

	var read atomic.Uint64
	ctx := chgo.Context(context.Background(), chgo.WithProgress(func(p *chgo.Progress) { read.Add(p.Rows) }))
	e := newTestExporter(t, tb.conn, tb.table, config.Exporter{}, nil)
	for i, now := range []time.Duration{30 * time.Second, 45 * time.Second, 60 * time.Second} {
		read.Store(0)
		start := time.Now()
		if err := e.Update(ctx, at(now)); err != nil {
			t.Fatal(err)
		}
		t.Logf("update %d (with the cardinality refresh: %v) read %d rows of %d in %v", i, i == 0, read.Load(), history+2, time.Since(start))
		// MergeTree reads whole granules (8192 rows) around the range:
		// a few of them, never the history.
		if read.Load() > 100000 {
			t.Errorf("update %d read %d rows; the table has %d rows of history it should skip", i, read.Load(), history)
		}
	}
	checkSum(t, gather(t, e), "callwatch_calls_total", nil, 2)
}

func TestScrapeAndUpdateTimings(t *testing.T) {
	// 50 tenants × 10 apps × 4 models × 2 statuses = 4000 series, each with
	// two classic and two native buckets in use, half of them pending.
	conn := &fakeConn{}
	for tn := range 50 {
		for app := range 10 {
			for m := range 4 {
				for _, st := range []string{"success", "error"} {
					tenant, a, model := fmt.Sprintf("tenant-%02d", tn), fmt.Sprintf("app-%d", app), fmt.Sprintf("model-%d", m)
					conn.update = append(conn.update,
						updateRow(tenant, a, model, "openai", st, false, 4, -2, 3, 2400, 300, 30, 0.75),
						updateRow(tenant, a, model, "openai", st, true, 5, 3, 1, 1200, 100, 10, 0.25))
				}
			}
		}
	}
	e := newTestExporter(t, conn, "calls", config.Exporter{}, nil)
	start := time.Now()
	mustUpdate(t, e, at(time.Minute))
	updateTook := time.Since(start)

	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	const scrapes = 20
	start = time.Now()
	var n int
	for range scrapes {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n = 0
		for _, mf := range mfs {
			n += len(mf.Metric)
		}
	}
	scrapeTook := time.Since(start) / scrapes
	t.Logf("%d result rows → %d series: update (folding, merge, building metrics) %v; gather of %d metrics %v",
		len(conn.update), len(conn.update)/2, updateTook, n, scrapeTook)
	// Generous bounds that only catch a scrape doing I/O or quadratic work.
	if scrapeTook > time.Second {
		t.Errorf("a gather took %v", scrapeTook)
	}
}
