package demo

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/testrules"
)

var server = chtest.NewShared()

func TestMain(m *testing.M) { os.Exit(server.Run(m)) }

func TestInserterWritesIntoClickHouse(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, clickhouse.EventsDDL(db+".ai_call_events", dsl.DefaultSchema()))
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	start := time.Date(2025, 11, 24, 2, 0, 10, 0, time.UTC)
	g := New(Options{Seed: 1, Start: start})
	events := g.Generate(start.Add(-5*time.Minute), start.Add(2*time.Minute))
	ins, err := NewInserter(InserterOptions{Exec: conn, Table: db + ".ai_call_events"})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := ins.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events in %d statements in %s", len(events), (len(events)+499)/500, time.Since(began))

	t.Run("every column arrives as generated", func(t *testing.T) {
		var want struct {
			errors             uint64
			tokens, maxLatency uint64
			cost               float64
			tenants            map[string]bool
		}
		want.tenants = map[string]bool{}
		for _, e := range events {
			if e.Status == "error" {
				want.errors++
			}
			want.tokens += uint64(e.InputTokens) + uint64(e.OutputTokens)
			want.maxLatency = max(want.maxLatency, uint64(e.LatencyMs))
			want.cost += e.Cost
			want.tenants[e.TenantID] = true
		}
		rows, err := conn.Query(ctx, "SELECT toUInt64(count()), toUInt64(countIf(status = 'error')), toUInt64(sum(input_tokens + output_tokens)), "+
			"toUInt64(max(latency_ms)), sum(cost), uniqExact(tenant_id), toUInt64(min(created_at)), toUInt64(countIf(error_code != '' AND status = 'ok')) FROM ai_call_events")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		rows.Next()
		var n, errs, tokens, maxLat, tenants, minTime, badCodes uint64
		var cost float64
		if err := rows.Scan(&n, &errs, &tokens, &maxLat, &cost, &tenants, &minTime, &badCodes); err != nil {
			t.Fatal(err)
		}
		if n != uint64(len(events)) || errs != want.errors || tokens != want.tokens || maxLat != want.maxLatency ||
			math.Abs(cost-want.cost) > 1e-6 || tenants != uint64(len(want.tenants)) || badCodes != 0 ||
			int64(minTime) != events[0].Time.Unix() {
			t.Fatalf("table: %d rows, %d errors, %d tokens, max latency %d, cost %.6f, %d tenants, first at %d, %d ok rows with a code; "+
				"generated: %d, %d, %d, %d, %.6f, %d, %d", n, errs, tokens, maxLat, cost, tenants, minTime, badCodes,
				len(events), want.errors, want.tokens, want.maxLatency, want.cost, len(want.tenants), events[0].Time.Unix())
		}
	})

	t.Run("the rules see the error burst in ClickHouse", func(t *testing.T) {
		src, err := clickhouse.New(clickhouse.Options{Conn: conn, Table: "ai_call_events"})
		if err != nil {
			t.Fatal(err)
		}
		q := engine.NewQuerier(engine.QuerierOptions{Source: src})
		e := testrules.Expr(t, `sum by (tenant_id) (count_over_time(events{status="error"}[5m])) / sum by (tenant_id) (count_over_time(events[5m])) > 0.05`)
		res, err := q.Query(ctx, e, start.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Vector) != 1 || res.Vector[0].Labels.Get("tenant_id") != "globex" {
			t.Fatalf("tenants over 5%% errors: %v", res.Vector)
		}
	})
}

func TestNewInserterChecksItsInput(t *testing.T) {
	exec := execFunc(func(context.Context, string, ...any) error { return nil })
	other := dsl.DefaultSchema()
	other.Labels = []string{"tenant", "status"}
	for _, tc := range []struct {
		name string
		opts InserterOptions
		want string
	}{
		{"a table name with a quote is refused", InserterOptions{Exec: exec, Table: "x`; DROP TABLE y"}, "write table or database.table"},
		{"a three-part table name is refused", InserterOptions{Exec: exec, Table: "a.b.c"}, "write table or database.table"},
		{"a schema without the baseline's labels is refused", InserterOptions{Exec: exec, Table: "t", Schema: other}, "does not map label tenant_id, label app_code"},
		{"no connection is refused", InserterOptions{Table: "t"}, "no connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewInserter(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("batches are capped and values bound", func(t *testing.T) {
		var stmts []string
		var nargs []int
		ins, err := NewInserter(InserterOptions{Table: "db.t", BatchSize: 2, Exec: execFunc(func(_ context.Context, sql string, args ...any) error {
			stmts, nargs = append(stmts, sql), append(nargs, len(args))
			return nil
		})})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2025, 11, 24, 2, 0, 0, 0, time.UTC)
		events := New(Options{Seed: 1, Start: start, Rate: 20}).Generate(start, start.Add(time.Second))[:5]
		events[0].TenantID = "o'brien"
		if err := ins.Write(context.Background(), events); err != nil {
			t.Fatal(err)
		}
		if len(stmts) != 3 || nargs[0] != 22 || nargs[2] != 11 || strings.Contains(stmts[0], "brien") ||
			!strings.HasPrefix(stmts[0], "INSERT INTO `db`.`t` (`created_at`, `tenant_id`") || !strings.HasSuffix(stmts[2], "[?] AS c9, [?] AS c10") {
			t.Fatalf("statements %q with %v args", stmts, nargs)
		}
	})
}

type execFunc func(ctx context.Context, sql string, args ...any) error

func (f execFunc) Exec(ctx context.Context, sql string, args ...any) error {
	return f(ctx, sql, args...)
}

var _ clickhouse.Execer = execFunc(nil)
