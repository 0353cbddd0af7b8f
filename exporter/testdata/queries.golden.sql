SELECT
    `tenant_id` AS cw_value,
    toFloat64(count()) AS cw_calls
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)
GROUP BY cw_value
ORDER BY cw_calls DESC, cw_value ASC
LIMIT 2;
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    toFloat64(uniqExactIf(`tenant_id`, `tenant_id` NOT IN (?, ?)))
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?);
-- args: 'acme', 'beta', 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    `app_code` AS cw_value,
    toFloat64(count()) AS cw_calls
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)
GROUP BY cw_value
ORDER BY cw_calls DESC, cw_value ASC
LIMIT 100;
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    toFloat64(uniqExact(`app_code`))
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?);
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    `model` AS cw_value,
    toFloat64(count()) AS cw_calls
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)
GROUP BY cw_value
ORDER BY cw_calls DESC, cw_value ASC
LIMIT 100;
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    toFloat64(uniqExact(`model`))
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?);
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    `provider` AS cw_value,
    toFloat64(count()) AS cw_calls
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)
GROUP BY cw_value
ORDER BY cw_calls DESC, cw_value ASC
LIMIT 100;
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    toFloat64(uniqExact(`provider`))
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?);
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    `status` AS cw_value,
    toFloat64(count()) AS cw_calls
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)
GROUP BY cw_value
ORDER BY cw_calls DESC, cw_value ASC
LIMIT 100;
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    toFloat64(uniqExact(`status`))
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?);
-- args: 2025-11-24T15:01:00Z, 2025-11-24T16:01:00Z

SELECT
    `tenant_id` AS cw_l0,
    `app_code` AS cw_l1,
    `model` AS cw_l2,
    `provider` AS cw_l3,
    `status` AS cw_l4,
    toFloat64(`created_at` > toDateTime(?)) AS cw_pending,
    toFloat64(`status` = ?) AS cw_failed,
    toFloat64(multiIf((`latency_ms` / 1000) <= 0.05, 0, (`latency_ms` / 1000) <= 0.1, 1, (`latency_ms` / 1000) <= 0.25, 2, (`latency_ms` / 1000) <= 0.5, 3, (`latency_ms` / 1000) <= 1.0, 4, (`latency_ms` / 1000) <= 2.5, 5, (`latency_ms` / 1000) <= 5.0, 6, (`latency_ms` / 1000) <= 10.0, 7, (`latency_ms` / 1000) <= 20.0, 8, (`latency_ms` / 1000) <= 30.0, 9, (`latency_ms` / 1000) <= 60.0, 10, (`latency_ms` / 1000) <= 120.0, 11, (`latency_ms` / 1000) <= 300.0, 12, 13)) AS cw_bucket,
    toFloat64(if((`latency_ms` / 1000) <= 2.938735877055719e-39, (-1e+09), ceil(log2((`latency_ms` / 1000)) * 8.0))) AS cw_native,
    toFloat64(count()),
    toFloat64(sum(`latency_ms`)),
    toFloat64(sum(`input_tokens`)),
    toFloat64(sum(`output_tokens`)),
    toFloat64(sum(`cost`))
FROM `calls`
WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)
GROUP BY cw_l0, cw_l1, cw_l2, cw_l3, cw_l4, cw_pending, cw_failed, cw_bucket, cw_native;
-- args: 2025-11-24T16:00:00Z, 'error', 2025-11-24T16:00:00Z, 2025-11-24T16:01:00Z

