// Package exporter exports Prometheus metrics computed from the call events
// in ClickHouse, the rule engine's results and callwatch's own health, in
// the collector pattern of node_exporter and mysqld_exporter.
//
// # Metrics
//
// Call metrics, labelled by the configured label columns (default
// tenant_id, app_code, model, provider, status):
//
//	callwatch_calls_total                    counter
//	callwatch_call_errors_total              counter, calls whose status is "error"; labels minus status
//	callwatch_input_tokens_total             counter
//	callwatch_output_tokens_total            counter
//	callwatch_cost_total                     counter, in the cost column's currency (CNY by default)
//	callwatch_call_duration_seconds          histogram: classic buckets (50ms … 5m by default) and,
//	                                         in the protobuf exposition, native buckets
//	callwatch_label_values_folded{label}     gauge, values folded into "other" by the cardinality cap
//
// Rule results (from the engine, through the Rules interface): every
// recording rule's last output as a gauge named after its record, and the
// ALERTS and ALERTS_FOR_STATE series, as Prometheus exposes them.
//
// Self-metrics: callwatch_query_duration_seconds{kind} and
// callwatch_query_errors_total{kind} (the exporter's ClickHouse queries),
// callwatch_datasource_up, callwatch_build_info,
// callwatch_exporter_last_update_timestamp_seconds,
// callwatch_exporter_watermark_timestamp_seconds, and node_exporter's pair
// callwatch_exporter_collector_success{collector} and
// callwatch_exporter_collector_duration_seconds{collector} for the events,
// cardinality and rules collectors. The rule engine and the notifiers
// register their own metrics.
//
// # Scrapes are served from memory
//
// A background updater (Run, whose step is Update) queries ClickHouse every
// interval and publishes an immutable snapshot; Describe sends descriptors
// built once, and Collect only reads the snapshot and the engine's
// in-memory state. A scrape therefore never queries ClickHouse: it costs a
// few microseconds per exposed sample (about 50 ms for 4,000 call series with
// their histograms, 22,000 samples, on a loaded two-core machine), and always
// finishes far inside the X-Prometheus-Scrape-Timeout-Seconds that
// Prometheus sends, so the header needs no handling beyond that. A failing query never empties a
// scrape: the last good values stay, callwatch_datasource_up is 0 and
// callwatch_exporter_collector_success{collector="events"} is 0.
//
// # Counters, the watermark and late rows
//
// Counters advance incrementally: each update reads only the events after
// a finalized boundary — the new ones plus a trailing late window (default
// 2m) that is re-read and whose partial aggregate is replaced, not added —
// so a row inserted late, behind the watermark but inside the late window,
// is counted exactly once, and the cost of an update grows with the number
// of new events and series, never with the size of the table. The
// algorithm and its proof are in the comment at the top of events.go.
//
// # Restarts
//
// The counters count the events whose time is after the moment callwatch
// started (minus the safety lag): at start every counter is 0 and series
// appear as calls arrive. A restart therefore resets them, exactly like the
// restart of any exporter; Prometheus' rate(), increase() and
// histogram_quantile(… rate(…)) handle counter resets, and the counters
// carry their start as created timestamp for Prometheus versions that use
// it. The calls made while callwatch was down are not counted by the
// counters (they remain in ClickHouse, where the rules and `callwatch query`
// still see them). Counting from the process start, rather than replaying
// history, keeps startup cheap whatever the table's size.
//
// # Cardinality
//
// Each exported label has a cap (label_limit, default 100, per label in
// label_limits). The values admitted to their own series are the top ones
// by number of calls over the cardinality lookback (default 1h), then new
// values as they appear while there is room; once a label is full, every
// other value is folded into "other" and counted in
// callwatch_label_values_folded. Admitted values are kept until restart, so
// a series never moves in or out of "other" and its counter never drops.
package exporter
