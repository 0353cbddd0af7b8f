package dsl_test

import (
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/internal/docpage"
	"github.com/callwatch/callwatch/internal/testrules"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := dsl.LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// A calendar month is (M, t]: left-open as every window, so the first
// instant of a month still reads the whole month that just ended, and a
// zone's month starts at its own midnight (daylight saving included).
func TestMonthToDateWindow(t *testing.T) {
	shanghai, berlin := mustZone(t, "Asia/Shanghai"), mustZone(t, "Europe/Berlin")
	cases := []struct {
		name     string
		loc      *time.Location
		at       time.Time
		from     time.Time
		progress float64
	}{
		{"inside a month", shanghai, time.Date(2026, 4, 16, 0, 0, 0, 0, shanghai), time.Date(2026, 4, 1, 0, 0, 0, 0, shanghai), 0.5},
		{"at midnight the month that ended", shanghai, time.Date(2026, 4, 1, 0, 0, 0, 0, shanghai), time.Date(2026, 3, 1, 0, 0, 0, 0, shanghai), 1},
		{"a second after midnight the new month", shanghai, time.Date(2026, 4, 1, 0, 0, 1, 0, shanghai), time.Date(2026, 4, 1, 0, 0, 0, 0, shanghai), 1.0 / (30 * 86400)},
		{"UTC's month is still March at 16:00Z on the 31st", time.UTC, time.Date(2026, 3, 31, 16, 0, 1, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), (30*86400 + 16*3600 + 1) / float64(31*86400)},
		{"February in a leap year", time.UTC, time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC), (28*86400 + 12*3600) / float64(29*86400)},
		{"a month whose first midnight the clocks skip starts when they jump", mustZone(t, "America/Asuncion"), time.Date(2023, 10, 5, 0, 0, 0, 0, time.UTC), time.Date(2023, 10, 1, 4, 0, 0, 0, time.UTC), float64(4*86400-4*3600) / float64(31*86400-3600)},
		{"the last instant of the month before it is still September", mustZone(t, "America/Asuncion"), time.Date(2023, 10, 1, 3, 59, 0, 0, time.UTC), time.Date(2023, 9, 1, 4, 0, 0, 0, time.UTC), float64(30*86400-60) / float64(30*86400)},
		{"a month with the change back from summer time is an hour longer than 31 days", berlin, time.Date(2026, 11, 1, 0, 0, 0, 0, berlin), time.Date(2026, 10, 1, 0, 0, 0, 0, berlin), 1},
		{"a month with the change to summer time is an hour shorter", berlin, time.Date(2026, 3, 31, 0, 0, 0, 0, berlin), time.Date(2026, 3, 1, 0, 0, 0, 0, berlin), float64(30*86400-3600) / float64(31*86400-3600)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := testrules.Expr(t, `month_to_date(sum_over_time(cost[31d]), "`+c.loc.String()+`")`)
			from, to := e.Leaves[0].Window(c.at)
			if !from.Equal(c.from) || !to.Equal(c.at) {
				t.Errorf("window (%s, %s], want (%s, %s]", from, to, c.from, c.at)
			}
			if got := dsl.MonthProgress(c.at, c.loc); got != c.progress {
				t.Errorf("month_progress %v, want %v", got, c.progress)
			}
		})
	}
}

func TestMonthToDateParses(t *testing.T) {
	e, err := dsl.Parse(`sum by (tenant_id) (month_to_date(sum_over_time(cost[31d]), "Asia/Shanghai")) / month_progress("Asia/Shanghai")
		+ sum by (tenant_id) (sum_over_time(cost[31d])) * 0 + month_progress("Asia/Shanghai") * 0`, dsl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Leaves) != 2 || e.Leaves[0].Calendar == nil || e.Leaves[1].Calendar != nil {
		t.Fatalf("leaves %v: the month so far and the rolling 31d are two leaves", e.Leaves)
	}
	if e.Leaves[0].Key() == e.Leaves[1].Key() {
		t.Error("a calendar leaf has the key of the rolling leaf of the same window")
	}
	if len(e.Clocks) != 1 || !strings.Contains(e.Query, "scalar("+e.Clocks[0].Name+")") {
		t.Errorf("clocks %v in %s: one clock per zone, read as a scalar", e.Clocks, e.Query)
	}
	utc, err := dsl.Parse(`month_to_date(count_over_time(events[31d]))`, dsl.Options{})
	if err != nil || utc.Leaves[0].Calendar != time.UTC {
		t.Fatalf("the zone defaults to UTC: %v %v", utc, err)
	}
	if got := utc.Leaves[0].CountExpr(); got != `month_to_date(count_over_time(events[31d]), "UTC")` {
		t.Errorf("CountExpr %s: the volume behind a calendar leaf is counted over the same month", got)
	}
}

func TestMonthToDateRejects(t *testing.T) {
	cases := []struct{ name, expr, want string }{
		{"a window shorter than the longest month", `month_to_date(sum_over_time(cost[30d]))`, `1:15: month_to_date needs a window of at least 31d (the longest month), not 30d`},
		{"an unknown zone", `month_to_date(sum_over_time(cost[31d]), "Mars/Base")`, `1:41: time zone "Mars/Base" is not a zone of the IANA database; write e.g. UTC`},
		{"a zone in the wrong case gets a did-you-mean", `month_progress("asia/shanghai")`, `1:16: time zone "asia/shanghai" is not a zone of the IANA database; did you mean "Asia/Shanghai"? (zone names are case-sensitive)`},
		{"so does utc", `month_progress("utc")`, `time zone "utc" is not a zone of the IANA database; did you mean "UTC"?`},
		{"the machine's zone is not a zone", `month_progress("Local")`, `1:16: time zone "Local" is not a zone: the machine's own zone differs between machines; name an IANA zone`},
		{"a zone that is not a literal", `month_progress(label_replace(vector(1), "a", "b", "", ""))`, `1:16: expected type string in call to function "month_progress"`},
		{"rate has no fixed window", `month_to_date(rate(events[31d]))`, `1:15: rate over a calendar month is not supported; a calendar month has no fixed width`},
		{"a selector is not a range function", `month_to_date(cost)`, `1:15: month_to_date takes one range function`},
		{"an expression is not a range function", `month_to_date(sum_over_time(cost[31d]) * 2)`, `1:15: month_to_date takes one range function`},
		{"nested", `month_to_date(month_to_date(sum_over_time(cost[31d])))`, `1:15: month_to_date takes one range function`},
		{"inside a subquery", `max_over_time(month_to_date(sum_over_time(cost[31d]))[1d:1h])`, `1:15: month_to_date inside a subquery is not supported`},
		{"over a subquery", `month_to_date(max_over_time(p95(latency_ms[5m])[31d:1h]))`, `1:29: month_to_date over a subquery is not supported`},
		{"a clock inside a subquery", `max_over_time((vector(month_progress()))[1d:1h])`, `1:23: month_progress inside a subquery is not supported`},
		{"beyond max_window", `month_to_date(sum_over_time(cost[40d]))`, `more than the configured maximum`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dsl.Parse(c.expr, dsl.Options{Limits: dsl.Limits{MaxRange: 35 * 24 * time.Hour}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestCalendarFunctionsAreDocumented(t *testing.T) {
	page := docpage.Read(t, "language.md")
	for _, f := range []string{"`month_to_date(f(x[31d]), \"zone\")`", "`month_progress(\"zone\")`"} {
		if !strings.Contains(page, f) {
			t.Errorf("docs/language.md does not document %s", f)
		}
	}
}
