// Package chstore keeps callwatch's own state in ClickHouse tables: the
// audit trail of alert transitions and notification attempts (AuditStore,
// an engine.Auditor and engine.AuditReader) and the heartbeats of the HA
// election (LeaseStore, an engine.LeaseStore). These are storage, not
// evaluation, so they live outside engine; they speak to ClickHouse through
// the adapter of engine/clickhouse (its Conn and Execer interfaces, its
// quoting and its error codes), so a ClickHouse server and embedded
// ClickHouse (storage/chdb) run them unchanged.
//
// On a ClickHouse cluster (SetCluster) each store's table is a Distributed
// table over a replicated table on every server, created ON CLUSTER: rows
// are written on the connected server and read from every shard.
//
// Each store creates its table (Migrate) and re-creates it when it
// disappears while callwatch runs, instead of failing every write until a
// restart. Writes and reads are wrapped as engine.StoreError, so the engine
// can tell a store that is down from a bad request.
package chstore
