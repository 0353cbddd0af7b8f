package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/chtest"
)

func TestSelectWritesItsPiecesInOrderWithTheirValues(t *testing.T) {
	cols := Columns{"tenant_id": "Nullable(String)", "app_code": "Enum8('chat' = 1)", "status": "String", "cost": "Nullable(Float64)"}
	q := NewSelect(SelectOptions{Table: "analytics.calls", Time: "created_at", Columns: cols})
	// Values added before a label still come after every label.
	q.Value("cw_n", "count()")
	q.Label("tenant_id", "")
	q.Label("app_code", "cw_app")
	q.Value("", "toFloat64(sumIf(x, y = ?))", "a")
	q.Value("", "toFloat64(a) + toFloat64(b)")
	w := q.Window(100, 200)
	q.Where(w.SQL, w.Args...)
	q.Where("")
	or := AnyOf(Expr{SQL: "`status` = ?", Args: []any{"ok"}}, Expr{SQL: "`status` = ?", Args: []any{"error"}})
	q.Where(or.SQL, or.Args...)
	q.GroupByLabels().GroupBy("intDiv(x, ?)", int64(60))
	q.OrderBy("cw_n DESC").Limit(10)
	want := "SELECT\n" +
		"    ifNull(`tenant_id`, ''),\n" +
		"    toString(`app_code`) AS cw_app,\n" +
		"    toFloat64(count()) AS cw_n,\n" +
		"    toFloat64(sumIf(x, y = ?)),\n" +
		"    toFloat64(toFloat64(a) + toFloat64(b))\n" +
		"FROM `analytics`.`calls`\n" +
		"WHERE `created_at` > toDateTime(?) AND `created_at` <= toDateTime(?)\n" +
		"    AND ((`status` = ?) OR (`status` = ?))\n" +
		"GROUP BY ifNull(`tenant_id`, ''), cw_app, intDiv(x, ?)\n" +
		"ORDER BY cw_n DESC\n" +
		"LIMIT 10"
	if got := q.String(); got != want {
		t.Errorf("SQL:\n%s\nwant:\n%s", got, want)
	}
	if got, want := q.Args(), []any{"a", int64(100), int64(200), "ok", "error", int64(60)}; !reflect.DeepEqual(got, want) {
		t.Errorf("args = %#v, want %#v", got, want)
	}
	if got := strings.Count(q.String(), "?"); got != len(q.Args()) {
		t.Errorf("%d placeholders for %d args", got, len(q.Args()))
	}
}

func TestAConditionWithATopLevelORIsParenthesized(t *testing.T) {
	for _, tc := range []struct {
		name, cond string
		want       string
	}{
		{"an AND chain stays bare", "a = ? AND b = ?", "WHERE a = ? AND b = ?"},
		{"an OR inside parentheses stays bare", "f(a OR b) AND c", "WHERE f(a OR b) AND c"},
		{"a top-level OR is parenthesized", "a = ? OR b = ?", "WHERE (a = ? OR b = ?)"},
		{"in any case", "a or b", "WHERE (a or b)"},
		{"OR inside a word is no OR", "ORDER_x = 1 AND xor(a, b)", "WHERE ORDER_x = 1 AND xor(a, b)"},
		{"OR inside a quoted name is no OR", "`a OR b` = 1", "WHERE `a OR b` = 1"},
		{"OR inside a string literal is no OR", "a = ' OR '", "WHERE a = ' OR '"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewSelect(SelectOptions{Table: "t", Time: "ts"}).Value("", "count()").Where(tc.cond).Where("c")
			if got := q.String(); !strings.Contains(got, "\n"+tc.want+"\n    AND (c)") {
				t.Errorf("SQL:\n%s\nwant it to contain %q then AND (c)", got, tc.want)
			}
		})
	}
}

func TestValuesAreConvertedToFloat64Once(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"count()", "toFloat64(count())"},
		{"toFloat64(count())", "toFloat64(count())"},
		{"toFloat64(a) + 1", "toFloat64(toFloat64(a) + 1)"},
		{"toFloat64(a) + toFloat64(b)", "toFloat64(toFloat64(a) + toFloat64(b))"},
		{"toFloat64(f(')'))", "toFloat64(f(')'))"},
		{"toFloat64x(a)", "toFloat64(toFloat64x(a))"},
	} {
		q := NewSelect(SelectOptions{Table: "t", Time: "ts"}).Value("", tc.in)
		if got := strings.TrimPrefix(strings.Split(q.String(), "\n")[1], "    "); got != tc.want {
			t.Errorf("Value(%q) writes %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWindowsAreClippedToDateTime(t *testing.T) {
	q := NewSelect(SelectOptions{Table: "t", Time: "ts"})
	for _, tc := range []struct {
		name     string
		from, to int64
		sql      string
		args     []any
	}{
		{"a window after 1970", 100, 200, "`ts` > toDateTime(?) AND `ts` <= toDateTime(?)", []any{int64(100), int64(200)}},
		{"a window starting before 1970 has no lower bound", -50, 200, "`ts` <= toDateTime(?)", []any{int64(200)}},
		{"a window ending before 1970 selects nothing", -500, -50, "`ts` > toDateTime(?) AND `ts` <= toDateTime(?)", []any{int64(0), int64(0)}},
		{"a window past 2106 ends there", 100, math.MaxUint32 + 10, "`ts` > toDateTime(?) AND `ts` <= toDateTime(?)", []any{int64(100), int64(math.MaxUint32)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := q.Window(tc.from, tc.to)
			if w.SQL != tc.sql || !reflect.DeepEqual(w.Args, tc.args) {
				t.Errorf("Window(%d, %d) = %q %v, want %q %v", tc.from, tc.to, w.SQL, w.Args, tc.sql, tc.args)
			}
		})
	}
	if a := AnyOf(); a.SQL != "" || a.Args != nil {
		t.Errorf("AnyOf() = %+v, want no condition", a)
	}
}

func TestLimitsAreWrittenInTheSettingsClause(t *testing.T) {
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{}, ""},
		{Limits{Timeout: 1500 * time.Millisecond}, "\nSETTINGS max_execution_time = 2"},
		{Limits{Timeout: time.Millisecond}, "\nSETTINGS max_execution_time = 1"},
		{Limits{Timeout: 30 * time.Second, MaxGroups: 100}, "\nSETTINGS max_execution_time = 30, max_rows_to_group_by = 101, group_by_overflow_mode = 'throw'"},
		{Limits{MaxGroups: 5}, "\nSETTINGS max_rows_to_group_by = 6, group_by_overflow_mode = 'throw'"},
	} {
		if got := tc.lim.settings(); got != tc.want {
			t.Errorf("%+v: settings = %q, want %q", tc.lim, got, tc.want)
		}
	}
}

// The tests' canned rows are Rows.
var _ Rows = (*chtest.Rows)(nil)

func TestRunScansLabelsThenValuesUnderItsLimits(t *testing.T) {
	var gotSQL string
	var gotArgs []any
	var deadline bool
	conn := ConnFunc(func(ctx context.Context, sql string, args ...any) (Rows, error) {
		gotSQL, gotArgs = sql, args
		_, deadline = ctx.Deadline()
		return &chtest.Rows{Rows: [][]any{{"acme", 1.0, 2.0}, {"beta", 3.0, 4.0}, {"gamma", 5.0, 6.0}}}, nil
	})
	q := NewSelect(SelectOptions{Table: "t", Time: "ts", Columns: Columns{"tenant_id": "String"}}).
		Label("tenant_id", "").Value("", "count()").Value("", "sum(x)")
	w := q.Window(0, 60)
	q.Where(w.SQL, w.Args...).GroupByLabels()
	var got []string
	err := q.Run(context.Background(), conn, Limits{Timeout: time.Minute, MaxGroups: 2}, func(labels []string, values []float64) error {
		got = append(got, fmt.Sprint(labels, values))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"[acme] [1 2]", "[beta] [3 4]", "[gamma] [5 6]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rows = %q, want %q", got, want)
	}
	if want := q.String() + "\nSETTINGS max_execution_time = 60, max_rows_to_group_by = 3, group_by_overflow_mode = 'throw'"; gotSQL != want {
		t.Errorf("ran\n%s\nwant\n%s", gotSQL, want)
	}
	if !reflect.DeepEqual(gotArgs, q.Args()) || !deadline {
		t.Errorf("ran with args %v (want %v), deadline %v", gotArgs, q.Args(), deadline)
	}

	stop := errors.New("stop")
	n := 0
	err = q.Run(context.Background(), conn, Limits{}, func([]string, []float64) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("a row's error: Run = %v after %d rows, want it after 1", err, n)
	}
	if deadline {
		t.Error("a query without a timeout ran with a deadline")
	}
}
