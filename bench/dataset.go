// The dataset: the events table and the INSERT … SELECT that generates
// it inside the server.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// load creates the events table and fills it with the dataset.
func load(ctx context.Context, conn *clickhouse.NativeConn, events int64, rep *report, log *slog.Logger) error {
	for _, q := range []string{"CREATE DATABASE IF NOT EXISTS " + database, clickhouse.EventsDDL(table, dsl.DefaultSchema())} {
		if err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("create the events table: %w", err)
		}
	}
	log.Info("loading the dataset server-side", "events", events, "span", datasetSpan, "now", benchNow)
	start := time.Now()
	if err := conn.Exec(ctx, generateSQL(events, 0, benchNow.Add(-datasetSpan), datasetSpan)); err != nil {
		return fmt.Errorf("load the dataset: %w", err)
	}
	rep.insertDur = time.Since(start)
	// Merge the inserted parts so that the measurements do not race the
	// background merges, and warm the page cache with every column.
	start = time.Now()
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active", database, "events")
	if err != nil {
		return err
	}
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return err
		}
		parts = append(parts, p)
	}
	rows.Close()
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return fmt.Errorf("unexpected partition %q", p)
		}
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+table+" PARTITION "+p+" FINAL"); err != nil {
			return fmt.Errorf("optimize partition %s: %w", p, err)
		}
	}
	rep.optimize = time.Since(start)
	var n, sum float64
	if err := queryRow(ctx, conn, "SELECT toFloat64(count()), toFloat64(sum(latency_ms + input_tokens + output_tokens)) + sum(cost) + toFloat64(sum(length(tenant_id) + length(app_code) + length(model) + length(provider) + length(status) + length(error_code))) FROM "+table, &n, &sum); err != nil {
		return err
	}
	if int64(n) != events {
		return fmt.Errorf("the table holds %d events, want %d", int64(n), events)
	}
	log.Info("dataset loaded", "insert", rep.insertDur.Round(time.Millisecond), "optimize", rep.optimize.Round(time.Millisecond))
	return nil
}

// generateSQL returns the INSERT … SELECT that generates count events with
// times spread evenly over (after, after+span], the row numbers offset by
// offset so that later batches differ from earlier ones. It runs on
// ClickHouse 18.16: no toStartOfInterval, no DateTime64, and cityHash64 of
// the row number rather than rand(), so the rows are the same every run.
//
//   - tenants t0…t49 with a skewed share (tenant ⌊50·u²⌋: t0 gets 14%,
//     t7 2.6%, t49 1%), apps a0…a6 and three models (with their provider)
//     uniform;
//   - 3% of calls have status error (else ok) and an error_code;
//   - latency_ms is lognormal, exp(μ_model + 0.8·z) with μ = 6.9, 7.1, 6.6
//     (medians 1.0 s, 1.2 s, 0.7 s, p99 ≈ 6–8 s), capped at 10 minutes;
//   - input and output tokens are lognormal (medians 665 and 245), cost is
//     their price per model.
//
// z are standard normals from the Box–Muller transform of two hashes.
func generateSQL(count, offset int64, after time.Time, span time.Duration) string {
	u := func(seed int) string {
		return fmt.Sprintf("((cityHash64(number + %d, %d) %% 4294967296) + 0.5) / 4294967296", offset, seed)
	}
	return fmt.Sprintf(`INSERT INTO %[1]s (created_at, tenant_id, app_code, model, provider, status, error_code, latency_ms, input_tokens, output_tokens, cost)
SELECT
    toDateTime(%[2]d + 1 + intDiv(n * %[3]d, %[4]d)) AS created_at,
    concat('t', toString(toUInt32(floor(pow(u1, 2) * %[5]d)))) AS tenant_id,
    concat('a', toString(h2 %% %[6]d)) AS app_code,
    arrayElement(['gpt-4o', 'claude-sonnet', 'qwen-max'], m + 1) AS model,
    arrayElement(['openai', 'anthropic', 'alibaba'], m + 1) AS provider,
    if(h3 %% 10000 < %[7]d, 'error', 'ok') AS status,
    if(h3 %% 10000 < %[7]d, arrayElement(['timeout', 'rate_limited', 'upstream_5xx'], intDiv(h3, 10000) %% 3 + 1), '') AS error_code,
    toUInt32(least(exp(arrayElement([6.9, 7.1, 6.6], m + 1) + 0.8 * r1 * cos(t1)), 600000)) AS latency_ms,
    toUInt32(least(exp(6.5 + 0.9 * r1 * sin(t1)), 200000)) AS input_tokens,
    toUInt32(least(exp(5.5 + 0.8 * r2 * cos(t2)), 32000)) AS output_tokens,
    (input_tokens * arrayElement([17.5, 21.0, 2.4], m + 1) + output_tokens * arrayElement([70.0, 105.0, 9.6], m + 1)) / 1000000 AS cost
FROM
(
    SELECT
        number AS n,
        %[8]s AS u1,
        cityHash64(number + %[12]d, 2) AS h2,
        intDiv(h2, %[6]d) %% 3 AS m,
        cityHash64(number + %[12]d, 3) AS h3,
        sqrt(-2 * log(%[9]s)) AS r1,
        2 * pi() * %[10]s AS t1,
        sqrt(-2 * log(%[11]s)) AS r2,
        2 * pi() * %[13]s AS t2
    FROM numbers(%[4]d)
)`, table, after.Unix(), int64(span/time.Second), count, tenants, apps, errorBasisPoints,
		u(1), u(4), u(5), u(6), offset, u(7))
}
