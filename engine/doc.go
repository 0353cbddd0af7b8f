// Package engine is the rule runtime: it evaluates the groups a rule file
// describes (package rulefmt) and keeps what evaluation produces.
//
// It owns
//
//   - the query bridge (Querier, QueryFunc, LeafSource): range functions are
//     computed by a storage backend (engine/clickhouse, engine/memory) and
//     everything above them by Prometheus' PromQL engine;
//   - groups and rules (Group, AlertingRule, RecordingRule): Group.Eval is
//     deterministic for a timestamp, and each rule evaluates itself and
//     records the transitions of its alerts where they happen;
//   - the noise controls' judging (tiers, hysteresis, min_events, grace,
//     per-group no data), cooldown and daily caps;
//   - the Manager: loading, validated reloads that keep alert state,
//     acknowledge and resolve, restoring state from the audit trail;
//   - silences, the HA leader election (Elector), backtests, and the
//     Prometheus API's JSON shapes of query results.
//
// It declares the small interfaces it consumes (Notifier, Auditor,
// AuditReader, LeaseStore, LeafSource) and imports no adapter: delivery
// (package notify), storage (engine/clickhouse, storage/chstore) and HTTP
// (package web) import engine, never the reverse. Time comes from an
// injected clock; there is no package-level state.
package engine
