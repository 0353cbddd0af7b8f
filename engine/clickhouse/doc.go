// Package clickhouse computes the leaves of callwatch expressions inside
// ClickHouse.
//
// Compile turns leaves into SQL: one GROUP BY query per distinct window,
// offset and grouping, in which every leaf of that shape becomes a set of
// -If aggregates (countIf, sumIf, quantileExactIf, …) over the leaf's own
// selector, so no event row ever leaves the database. Every value in the SQL
// (window bounds, label values, regular expressions) is a bound parameter;
// identifiers come only from the configured dsl.Schema. The SQL runs on
// ClickHouse 18.16 (the oldest server tested) and on current releases.
//
// Every query on the events table, the exporter's included, is a Select
// (query.go), run by Select.Run: the select list, the conditions with their
// bound values, the grouping and the scan of label strings and float64
// values exist once, with the column handling of Columns.
//
// Source runs those statements through a minimal Conn and implements
// engine.LeafSource. NativeConn adapts clickhouse-go's native protocol to
// Conn; an embedded engine (storage/chdb) implements the same interface.
// Conn, Execer and ExecQuerier, identifier quoting (QuoteIdent, QuoteTable)
// and ErrorCode (exec.go) are the connection layer every package that
// talks to ClickHouse shares: the audit and lease stores of
// storage/chstore, the exporter and the demo traffic.
package clickhouse
