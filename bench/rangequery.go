// The range query a Grafana panel sends, against its hand-written
// counterpart.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/prometheus/prometheus/model/labels"
)

// rangeExpr is the range query of the bench: what a Grafana panel of
// exact per-tenant p95s sends.
const rangeExpr = "max by (tenant_id) (p95(latency_ms[5m]))"

// rangeQuery times rangeExpr over the last day at a 1m step through a
// querier as the query API builds it (a source without incremental
// state), and the hand-written query it stands against; it checks a few
// steps against instant queries.
func rangeQuery(ctx context.Context, conn clickhouse.Conn, o options, rep *report, log *slog.Logger) error {
	src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: table, Schema: dsl.DefaultSchema(), Columns: clickhouse.EventsColumns(dsl.DefaultSchema())})
	if err != nil {
		return err
	}
	q := engine.NewQuerier(engine.QuerierOptions{Source: src, MaxSamples: 50_000_000})
	e, err := dsl.Parse(rangeExpr, dsl.Options{Schema: dsl.DefaultSchema()})
	if err != nil {
		return err
	}
	end := benchNow
	start := end.Add(-datasetSpan + 5*time.Minute)
	hand := fmt.Sprintf("SELECT tenant_id, intDiv(toUInt32(created_at), 60) AS m, quantileExact(0.95)(latency_ms) FROM %s WHERE created_at > toDateTime(%d) AND created_at <= toDateTime(%d) GROUP BY tenant_id, m",
		table, start.Add(-5*time.Minute).Unix(), end.Unix())
	log.Info("range query: a day at a 1m step", "expr", rangeExpr, "reps", o.reps)
	var res engine.RangeResult
	for range o.reps {
		t0 := time.Now()
		rows, err := conn.Query(ctx, hand)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		rep.rangeHandAll = append(rep.rangeHandAll, time.Since(t0))
		t0 = time.Now()
		if res, err = q.QueryRange(ctx, e, start, end, time.Minute); err != nil {
			return err
		}
		rep.rangeAll = append(rep.rangeAll, time.Since(t0))
	}
	rep.rangeSteps = int(engine.Steps(start, end, time.Minute))
	// Exact: three steps equal the instant query at their time.
	for _, k := range []int{0, rep.rangeSteps / 2, rep.rangeSteps - 1} {
		ts := start.Add(time.Duration(k) * time.Minute)
		inst, err := q.Query(ctx, e, ts)
		if err != nil {
			return err
		}
		for _, smp := range inst.Vector {
			found := false
			for _, sr := range res.Matrix {
				if labels.Equal(sr.Labels, smp.Labels) {
					for _, p := range sr.Points {
						if p.T == ts.UnixMilli() {
							found = p.V == smp.Value
						}
					}
				}
			}
			if !found {
				return fmt.Errorf("range step %s of %s differs from the instant query (%s = %v)", ts.Format(time.RFC3339), rangeExpr, smp.Labels, smp.Value)
			}
		}
		rep.rangeChecked++
	}
	return nil
}
