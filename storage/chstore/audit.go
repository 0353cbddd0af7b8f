package chstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
)

// auditColumns are the audit table's columns, in order, with their types
// and the conversion applied to the bound value on insert. Labels and
// annotations are JSON text: Map does not exist on 18.16.
var auditColumns = []struct{ name, typ, conv string }{
	{"time", "DateTime", "toDateTime(?)"},
	{"nanos", "Int64", "toInt64(?)"},
	{"kind", "String", "?"},
	{"fingerprint", "String", "?"},
	{"group_name", "String", "?"},
	{"rule_name", "String", "?"},
	{"alert_type", "String", "?"},
	{"severity", "String", "?"},
	{"title", "String", "?"},
	{"message", "String", "?"},
	{"labels", "String", "?"},
	{"annotations", "String", "?"},
	{"tenant_id", "String", "?"},
	{"app_code", "String", "?"},
	{"metric_value", "Float64", "toFloat64(?)"},
	{"threshold_value", "String", "?"},
	{"active_at", "DateTime", "toDateTime(?)"},
	{"fired_at", "DateTime", "toDateTime(?)"},
	{"resolved_at", "DateTime", "toDateTime(?)"},
	{"channel", "String", "?"},
	{"notification_status", "String", "?"},
	{"notification_state", "String", "?"},
	{"notification_result", "String", "?"},
	{"attempt", "UInt32", "toUInt32(?)"},
	{"latency_ms", "UInt32", "toUInt32(?)"},
	{"actor", "String", "?"},
	{"comment", "String", "?"},
	{"reason", "String", "?"},
	{"silence_id", "String", "?"},
	{"replica", "String", "?"},
	// evidence is engine.Evidence as JSON, "" without: added by Migrate
	// to older tables.
	{"evidence", "String", "?"},
}

// auditNames are the names of the audit table's columns.
func auditNames() []string {
	names := make([]string, len(auditColumns))
	for i, c := range auditColumns {
		names[i] = c.name
	}
	return names
}

// AuditDDL is the CREATE TABLE of the audit table. It runs on 18.16 and
// on current releases.
func AuditDDL(table string) string { return auditDef(table).ddl("")[0] }

// AuditClusterDDL are the statements that create the audit table on
// cluster (see SetCluster): a ReplicatedMergeTree table_local on every
// server and the Distributed table in front, both ON CLUSTER.
func AuditClusterDDL(table, cluster string) []string { return auditDef(table).ddl(cluster) }

func auditDef(table string) tableDef {
	cols := make([]string, len(auditColumns))
	for i, c := range auditColumns {
		cols[i] = clickhouse.QuoteIdent(c.name) + " " + c.typ
	}
	return tableDef{table: table, columns: cols, engine: "MergeTree", tail: "\nPARTITION BY toYYYYMM(`time`)\nORDER BY (`time`, `nanos`)"}
}

// AuditStore is the audit trail in a ClickHouse table. When the table
// disappears while callwatch runs (dropped by hand, lost with the server's
// data), the next write or read re-creates it and goes through.
type AuditStore struct {
	conn  clickhouse.ExecQuerier
	table string
	place placement
	// Timeout bounds each statement (default 10s).
	timeout time.Duration
	keep    *recreator
}

var (
	_ engine.Auditor     = (*AuditStore)(nil)
	_ engine.AuditReader = (*AuditStore)(nil)
)

// NewAuditStore returns the store; call Migrate once to create the table.
func NewAuditStore(conn clickhouse.ExecQuerier, table string) (*AuditStore, error) {
	if !validTable(table) {
		return nil, fmt.Errorf("audit table %q: write table or database.table", table)
	}
	s := &AuditStore{conn: conn, table: table, place: newPlacement(table), timeout: 10 * time.Second}
	s.keep = &recreator{table: table, migrate: s.Migrate}
	return s, nil
}

// SetCluster keeps the audit trail on a ClickHouse cluster (the name of
// one in the servers' remote_servers; "" is one server, the default):
// Migrate creates the tables ON CLUSTER (AuditClusterDDL), records are
// written into the replicated table on the server callwatch is connected
// to, and read through the Distributed table, so every replica of
// callwatch sees every record, whichever server it is connected to. Call
// it before Migrate.
func (s *AuditStore) SetCluster(cluster string) error {
	if err := s.place.setCluster(cluster); err != nil {
		return fmt.Errorf("audit table %s: %w", s.table, err)
	}
	return nil
}

// SetLogger sets where the store logs what it does on its own, such as
// re-creating its table (default: nowhere). Call it before using the store.
func (s *AuditStore) SetLogger(l *slog.Logger) { s.keep.logger = l }

// storeErr marks a failure of the store for the callers that answer it
// (503 rather than 400).
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return &engine.StoreError{Err: err}
}

func validTable(t string) bool {
	parts := strings.Split(t, ".")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i, r := range p {
			if !(r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')) {
				return false
			}
		}
	}
	return true
}

// Migrate creates the table when it is missing and adds columns a newer
// callwatch needs to an older table.
func (s *AuditStore) Migrate(ctx context.Context) error {
	timeout := s.timeout
	if s.place.cluster != "" {
		// A statement ON CLUSTER returns when every server has run it.
		timeout = max(timeout, clusterDDLTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ddls, err := s.place.create(ctx, s.conn, auditDef(s.table), s.keep.logger)
	if err != nil {
		return fmt.Errorf("create audit table %s: %w", s.table, err)
	}
	// 18.16 has no ADD COLUMN IF NOT EXISTS: compare with system.columns
	// (of the table that stores the rows, on a cluster the local one).
	have, err := tableColumns(ctx, s.conn, s.place.write)
	if err != nil {
		return fmt.Errorf("migrate audit table %s: %w", s.table, err)
	}
	var add []string
	for _, c := range auditColumns {
		if !have[c.name] {
			add = append(add, "ADD COLUMN "+clickhouse.QuoteIdent(c.name)+" "+c.typ)
		}
	}
	if len(add) > 0 {
		// On a cluster, ON CLUSTER: one replica per shard runs it, the
		// others take it from ZooKeeper.
		sql := "ALTER TABLE " + clickhouse.QuoteTable(s.place.write) + onCluster(s.place.cluster) + " " + strings.Join(add, ", ")
		if err := execOnCluster(ctx, s.conn, s.place.cluster, sql, hasColumns(s.conn, s.place.write, auditNames()...), s.keep.logger); err != nil {
			return fmt.Errorf("migrate audit table %s: add columns: %w", s.table, err)
		}
	}
	if s.place.cluster == "" {
		return nil
	}
	// The Distributed table in front takes the new columns by being
	// created again (it holds no rows): 18.16 refuses an ALTER ON CLUSTER
	// of a table that is not replicated on a cluster whose shards are.
	front, err := tableColumns(ctx, s.conn, s.place.read)
	if err != nil {
		return fmt.Errorf("migrate audit table %s: %w", s.table, err)
	}
	if hasAll(front, auditNames()) {
		return nil
	}
	dropped := func(ctx context.Context) bool {
		cols, err := tableColumns(ctx, s.conn, s.place.read)
		return err == nil && len(cols) == 0
	}
	if err := execOnCluster(ctx, s.conn, s.place.cluster, "DROP TABLE IF EXISTS "+clickhouse.QuoteTable(s.place.read)+onCluster(s.place.cluster), dropped, s.keep.logger); err != nil {
		return fmt.Errorf("migrate audit table %s: re-create the Distributed table: %w", s.table, err)
	}
	if err := execOnCluster(ctx, s.conn, s.place.cluster, ddls[len(ddls)-1], hasColumns(s.conn, s.place.read, auditNames()...), s.keep.logger); err != nil {
		return fmt.Errorf("migrate audit table %s: re-create the Distributed table: %w", s.table, err)
	}
	return nil
}

// Record appends records in one INSERT … SELECT with bound values (the
// insert form that works on 18.16 through the native protocol).
func (s *AuditStore) Record(ctx context.Context, recs ...engine.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	names := make([]string, len(auditColumns))
	conv := make([]string, len(auditColumns))
	for i, c := range auditColumns {
		names[i], conv[i] = clickhouse.QuoteIdent(c.name), c.conv
	}
	row := "SELECT " + strings.Join(conv, ", ")
	rows := make([]string, len(recs))
	args := make([]any, 0, len(recs)*len(auditColumns))
	for i, r := range recs {
		rows[i] = row
		args = append(args, auditArgs(r)...)
	}
	sql := fmt.Sprintf("INSERT INTO %s (%s) %s", clickhouse.QuoteTable(s.place.write), strings.Join(names, ", "), strings.Join(rows, " UNION ALL "))
	err := s.keep.do(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return s.conn.Exec(ctx, sql, args...)
	})
	if err != nil {
		return storeErr(fmt.Errorf("write %d audit records: %w", len(recs), err))
	}
	return nil
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func jsonText(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func auditArgs(r engine.AuditRecord) []any {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	return []any{
		r.Time.Unix(), r.Time.UnixNano(), string(r.Kind), r.Fingerprint, r.Group, r.Rule, r.AlertType, r.Severity,
		r.Title, r.Message, jsonText(r.Labels), jsonText(r.Annotations), r.TenantID, r.AppCode, r.Value, r.Threshold,
		unix(r.ActiveAt), unix(r.FiredAt), unix(r.ResolvedAt), r.Channel, r.NotifyStatus, r.NotifyState, r.Result,
		int64(max(r.Attempt, 0)), max(r.LatencyMs, 0), r.By, r.Comment, r.Reason, r.SilenceID, r.Replica,
		evidenceText(r.Evidence),
	}
}

// evidenceText is the evidence column's value: JSON, "" for none.
func evidenceText(ev *engine.Evidence) string {
	if ev == nil {
		return ""
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "" // Evidence holds strings, numbers and times only
	}
	return string(b)
}

// History returns the records matching f, newest first.
func (s *AuditStore) History(ctx context.Context, f engine.AuditQuery) ([]engine.AuditRecord, error) {
	out, err := read(ctx, s.keep, func(ctx context.Context) ([]engine.AuditRecord, error) { return s.history(ctx, f) })
	return out, storeErr(err)
}

func (s *AuditStore) history(ctx context.Context, f engine.AuditQuery) ([]engine.AuditRecord, error) {
	var where []string
	var args []any
	if !f.From.IsZero() {
		where, args = append(where, "`time` >= toDateTime(?)"), append(args, f.From.Unix())
	}
	if !f.To.IsZero() {
		where, args = append(where, "`time` <= toDateTime(?)"), append(args, f.To.Unix())
	}
	if f.Rule != "" {
		where, args = append(where, "`rule_name` = ?"), append(args, f.Rule)
	}
	if f.Fingerprint != "" {
		where, args = append(where, "`fingerprint` = ?"), append(args, f.Fingerprint)
	}
	if len(f.Kinds) > 0 {
		ph := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			ph[i] = "?"
			args = append(args, string(k))
		}
		where = append(where, "`kind` IN ("+strings.Join(ph, ", ")+")")
	}
	// By name, so the same filters make the same statement.
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		// visitParamExtractString exists on 18.16 and, as an alias, on 26.x.
		where, args = append(where, "visitParamExtractString(`labels`, ?) = ?"), append(args, k, f.Labels[k])
	}
	limit := f.Limit
	if limit <= 0 || limit > 100000 {
		limit = 1000
	}
	cols := make([]string, len(auditColumns))
	for i, c := range auditColumns {
		cols[i] = clickhouse.QuoteIdent(c.name)
		if c.typ == "DateTime" {
			cols[i] = "toInt64(toUInt32(" + cols[i] + "))"
		}
	}
	sql := "SELECT " + strings.Join(cols, ", ") + " FROM " + clickhouse.QuoteTable(s.place.read)
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY `time` DESC, `nanos` DESC LIMIT %d", limit)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit history: %w", err)
	}
	defer rows.Close()
	var out []engine.AuditRecord
	for rows.Next() {
		var (
			t, nanos, activeAt, firedAt, resolvedAt int64
			attempt, latency                        uint32
			kind, labelsJSON, annJSON, evidenceJSON string
			r                                       engine.AuditRecord
		)
		if err := rows.Scan(&t, &nanos, &kind, &r.Fingerprint, &r.Group, &r.Rule, &r.AlertType, &r.Severity, &r.Title,
			&r.Message, &labelsJSON, &annJSON, &r.TenantID, &r.AppCode, &r.Value, &r.Threshold, &activeAt, &firedAt,
			&resolvedAt, &r.Channel, &r.NotifyStatus, &r.NotifyState, &r.Result, &attempt, &latency, &r.By,
			&r.Comment, &r.Reason, &r.SilenceID, &r.Replica, &evidenceJSON); err != nil {
			return nil, fmt.Errorf("read audit history: %w", err)
		}
		r.Time = time.Unix(0, nanos).UTC()
		r.Kind = engine.AuditKind(kind)
		r.ActiveAt, r.FiredAt, r.ResolvedAt = fromUnix(activeAt), fromUnix(firedAt), fromUnix(resolvedAt)
		r.Attempt, r.LatencyMs = int(attempt), int64(latency)
		if err := json.Unmarshal([]byte(labelsJSON), &r.Labels); err != nil {
			return nil, errors.New("read audit history: labels are not JSON")
		}
		_ = json.Unmarshal([]byte(annJSON), &r.Annotations)
		if evidenceJSON != "" {
			var ev engine.Evidence
			if json.Unmarshal([]byte(evidenceJSON), &ev) == nil {
				r.Evidence = &ev
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// LastSent returns, per channel and alert fingerprint, the alert state
// ("firing" or "resolved") the channel was last told about successfully
// since the given time, and when.
func (s *AuditStore) LastSent(ctx context.Context, since time.Time) ([]engine.SentState, error) {
	out, err := read(ctx, s.keep, func(ctx context.Context) ([]engine.SentState, error) { return s.lastSent(ctx, since) })
	return out, storeErr(err)
}

func (s *AuditStore) lastSent(ctx context.Context, since time.Time) ([]engine.SentState, error) {
	sql := "SELECT `channel`, `fingerprint`, argMax(`notification_state`, `nanos`), argMax(`severity`, `nanos`), max(`nanos`) FROM " + clickhouse.QuoteTable(s.place.read) +
		" WHERE `kind` = ? AND `notification_status` = ? AND `time` >= toDateTime(?) GROUP BY `channel`, `fingerprint`"
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.conn.Query(ctx, sql, string(engine.AuditNotification), engine.NotifySent, since.Unix())
	if err != nil {
		return nil, fmt.Errorf("read last notifications: %w", err)
	}
	defer rows.Close()
	var out []engine.SentState
	for rows.Next() {
		var st engine.SentState
		var nanos int64
		if err := rows.Scan(&st.Channel, &st.Fingerprint, &st.State, &st.Severity, &nanos); err != nil {
			return nil, fmt.Errorf("read last notifications: %w", err)
		}
		st.At = time.Unix(0, nanos).UTC()
		out = append(out, st)
	}
	return out, rows.Err()
}
