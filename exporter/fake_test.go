package exporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/callwatch/callwatch/engine/clickhouse"
)

// fakeConn answers the exporter's queries with canned rows, recognised by
// their column aliases: the update query, and per label the ranking and
// folded-count queries.
type fakeConn struct {
	mu sync.Mutex
	// update are the rows of every update query.
	update [][]any
	// top are the ranking rows per label ([value, calls]).
	top map[string][][]any
	// folded is the folded count per label.
	folded map[string]float64
	// err, when set, fails every query.
	err error
	// queries are the SQL and arguments received.
	queries []fakeQuery
}

type fakeQuery struct {
	sql  string
	args []any
}

var _ clickhouse.Conn = (*fakeConn)(nil)

func (f *fakeConn) Query(_ context.Context, sql string, args ...any) (clickhouse.Rows, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, fakeQuery{sql, args})
	if f.err != nil {
		return nil, f.err
	}
	switch {
	case strings.Contains(sql, aliasPending):
		return &fakeRows{rows: f.update}, nil
	case strings.Contains(sql, "cw_value"):
		for l, rows := range f.top {
			if strings.Contains(sql, "`"+l+"` AS cw_value") {
				return &fakeRows{rows: rows}, nil
			}
		}
		return &fakeRows{}, nil
	case strings.Contains(sql, "uniqExact"):
		for l, n := range f.folded {
			if strings.Contains(sql, "uniqExact(`"+l+"`)") || strings.Contains(sql, "uniqExactIf(`"+l+"`,") {
				return &fakeRows{rows: [][]any{{n}}}, nil
			}
		}
		return &fakeRows{rows: [][]any{{0.0}}}, nil
	}
	return nil, fmt.Errorf("fake: unexpected query %q", sql)
}

// fakeRows scans canned values into *string and *float64.
type fakeRows struct {
	rows [][]any
	i    int
}

var _ clickhouse.Rows = (*fakeRows)(nil)

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.rows) }

func (r *fakeRows) Scan(dest ...any) error {
	row := r.rows[r.i-1]
	if len(dest) != len(row) {
		return fmt.Errorf("fake: scan %d columns of a row of %d", len(dest), len(row))
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *string:
			s, ok := row[i].(string)
			if !ok {
				return fmt.Errorf("fake: column %d is %T, not string", i, row[i])
			}
			*d = s
		case *float64:
			switch v := row[i].(type) {
			case float64:
				*d = v
			case int:
				*d = float64(v)
			default:
				return fmt.Errorf("fake: column %d is %T, not a number", i, row[i])
			}
		default:
			return errors.New("fake: scan into an unsupported type")
		}
	}
	return nil
}

func (r *fakeRows) Err() error   { return nil }
func (r *fakeRows) Close() error { return nil }

// updateRow is one canned row of the update query with the default schema
// and labels: tenant, app, model, provider, status, then pending, failed,
// classic bucket, native bucket, calls, latency sum (ms), input and output
// tokens, cost.
func updateRow(tenant, app, model, provider, status string, pending bool, bucket, native, calls int, latencyMS, in, out int, cost float64) []any {
	return []any{tenant, app, model, provider, status, boolFloat(pending), boolFloat(status == "error"),
		bucket, native, calls, latencyMS, in, out, cost}
}
