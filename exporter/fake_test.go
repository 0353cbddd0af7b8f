package exporter

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
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
		return &chtest.Rows{Rows: f.update}, nil
	case strings.Contains(sql, "cw_value"):
		for l, rows := range f.top {
			if strings.Contains(sql, "`"+l+"` AS cw_value") {
				return &chtest.Rows{Rows: rows}, nil
			}
		}
		return &chtest.Rows{}, nil
	case strings.Contains(sql, "uniqExact"):
		for l, n := range f.folded {
			if strings.Contains(sql, "uniqExact(`"+l+"`)") || strings.Contains(sql, "uniqExactIf(`"+l+"`,") {
				return &chtest.Rows{Rows: [][]any{{n}}}, nil
			}
		}
		return &chtest.Rows{Rows: [][]any{{0.0}}}, nil
	}
	return nil, fmt.Errorf("fake: unexpected query %q", sql)
}

// updateRow is one canned row of the update query with the default schema
// and labels: tenant, app, model, provider, status, then pending, failed,
// classic bucket, native bucket, calls, latency sum (ms), input and output
// tokens, cost.
func updateRow(tenant, app, model, provider, status string, pending bool, bucket, native, calls int, latencyMS, in, out int, cost float64) []any {
	return []any{tenant, app, model, provider, status, boolFloat(pending), boolFloat(status == "error"),
		bucket, native, calls, latencyMS, in, out, cost}
}
