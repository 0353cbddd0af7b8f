package exporter

import (
	"context"
	"maps"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine/clickhouse"
	"github.com/callwatch/callwatch/internal/chtest"
	"github.com/callwatch/callwatch/internal/testrules"
)

func TestLateRowsAreCountedOnce(t *testing.T) { forEachBackend(t, testLateRowsAreCountedOnce) }

func testLateRowsAreCountedOnce(t *testing.T, tb *backend) {
	e := newTestExporter(t, tb.conn, tb.table, config.Exporter{LateWindow: new(dsl.Duration(2 * time.Minute))}, nil)
	acme := func(d time.Duration, status string) event {
		return event{at: at(d), tenant: "acme", app: "chat", model: "gpt-4o", provider: "openai", status: status,
			latencyMS: 800, inTokens: 100, outTokens: 10, cost: 0.5}
	}
	calls := func() float64 {
		t.Helper()
		return sum(gather(t, e), "callwatch_calls_total", map[string]string{"tenant_id": "acme"})
	}
	steps := []struct {
		name   string
		insert []event
		now    time.Duration
		want   float64
	}{
		{name: "events before the start are not counted", insert: []event{acme(-30*time.Second, "success")}, now: 10 * time.Second, want: 0},
		{name: "new events are counted", insert: []event{acme(10*time.Second, "success"), acme(20*time.Second, "error"), acme(30*time.Second, "success")}, now: 60 * time.Second, want: 3},
		{name: "a late row behind the watermark is counted", insert: []event{acme(15*time.Second, "success")}, now: 75 * time.Second, want: 4},
		{name: "re-reading the late window does not count it again", now: 90 * time.Second, want: 4},
		{name: "finalizing the window does not count it again", now: 200 * time.Second, want: 4},
		{name: "an update with nothing new changes nothing", now: 200 * time.Second, want: 4},
		{name: "a row later than the late window is not counted", insert: []event{acme(50*time.Second, "success")}, now: 215 * time.Second, want: 4},
		{name: "a late row inside the window after finalization is counted", insert: []event{acme(150*time.Second, "error"), acme(210*time.Second, "success")}, now: 230 * time.Second, want: 6},
		{name: "and stays counted once over many updates", now: 245 * time.Second, want: 6},
		{name: "after its window closes too", now: 600 * time.Second, want: 6},
	}
	for _, s := range steps {
		if len(s.insert) > 0 {
			tb.insert(t, s.insert...)
		}
		mustUpdate(t, e, at(s.now))
		if got := calls(); got != s.want {
			t.Fatalf("%s: callwatch_calls_total = %v, want %v", s.name, got, s.want)
		}
	}
	mfs := gather(t, e)
	checkSums(t, mfs, []wantSum{
		{"callwatch_calls_total", map[string]string{"status": "error"}, 2},
		{"callwatch_call_errors_total", nil, 2},
		{"callwatch_input_tokens_total", nil, 600},
		{"callwatch_output_tokens_total", nil, 60},
		{"callwatch_cost_total", nil, 3},
		{"callwatch_call_duration_seconds", nil, 6},
		{"callwatch_exporter_watermark_timestamp_seconds", nil, float64(at(600 * time.Second).Unix())},
		{"callwatch_datasource_up", nil, 1},
	})
	var durationSum float64
	for _, m := range series(mfs, "callwatch_call_duration_seconds", nil) {
		durationSum += m.Histogram.GetSampleSum()
	}
	if math.Abs(durationSum-4.8) > 1e-9 {
		t.Errorf("duration sum = %v, want 4.8", durationSum)
	}
}

func TestCountersNeverDecreaseAcrossUpdates(t *testing.T) {
	forEachBackend(t, testCountersNeverDecreaseAcrossUpdates)
}

func testCountersNeverDecreaseAcrossUpdates(t *testing.T, tb *backend) {
	e := newTestExporter(t, tb.conn, tb.table, config.Exporter{LateWindow: new(dsl.Duration(time.Minute))}, nil)
	var last float64
	for i := range 20 {
		now := time.Duration(i+1) * 10 * time.Second
		// Each round inserts an on-time event and one 25s late.
		tb.insert(t,
			event{at: at(now - time.Second), tenant: "t", status: "success", latencyMS: 100},
			event{at: at(now - 25*time.Second), tenant: "t", status: "success", latencyMS: 100})
		mustUpdate(t, e, at(now))
		got := sum(gather(t, e), "callwatch_calls_total", nil)
		if got < last {
			t.Fatalf("round %d: callwatch_calls_total went down from %v to %v", i, last, got)
		}
		last = got
	}
	// 20 on-time events, and the 18 late ones whose time is after the
	// start (5s, 15s, … 175s).
	if last != 38 {
		t.Fatalf("callwatch_calls_total = %v, want 38", last)
	}
}

func TestZeroLateWindowReadsOnlyNewRows(t *testing.T) {
	forEachBackend(t, testZeroLateWindowReadsOnlyNewRows)
}

func testZeroLateWindowReadsOnlyNewRows(t *testing.T, tb *backend) {
	e := newTestExporter(t, tb.conn, tb.table, config.Exporter{LateWindow: new(dsl.Duration(0))}, nil)
	tb.insert(t, event{at: at(10 * time.Second), tenant: "t"})
	mustUpdate(t, e, at(20*time.Second))
	tb.insert(t, event{at: at(15 * time.Second), tenant: "t"}) // behind the watermark
	mustUpdate(t, e, at(30*time.Second))
	if got := sum(gather(t, e), "callwatch_calls_total", nil); got != 1 {
		t.Fatalf("callwatch_calls_total = %v, want 1 (no late window)", got)
	}
}

func TestDurationHistogramMatchesClientGolang(t *testing.T) {
	forEachBackend(t, testDurationHistogramMatchesClientGolang)
}

func testDurationHistogramMatchesClientGolang(t *testing.T, tb *backend) {
	// Every whole millisecond from 0 to ten minutes, one call each, then
	// every 7th up to an hour, plus the classic bounds and their neighbours
	// twice more: ClickHouse computes the bucket indexes, client_golang
	// observes the same durations, and both must agree on every bucket.
	const exhaustiveMS, maxMS, step = 600000, 3600000, 7
	tb.exec(t, "INSERT INTO "+tb.table+" (created_at, tenant_id, status, latency_ms) "+
		"SELECT toDateTime(?) + (number % 50), 'acme', 'success', "+
		"if(number <= 600000, number, toUInt64(600000 + (number - 600000) * 7)) FROM system.numbers LIMIT "+
		strconv.Itoa(exhaustiveMS+1+(maxMS-exhaustiveMS)/step), at(time.Second).Unix())
	var durations []float64
	for ms := 0; ms <= exhaustiveMS; ms++ {
		durations = append(durations, float64(ms)/1000)
	}
	for ms := exhaustiveMS + step; ms <= maxMS; ms += step {
		durations = append(durations, float64(ms)/1000)
	}
	var extra []event
	for _, b := range config.DefaultDurationBuckets() {
		ms := int(math.Round(b * 1000))
		for _, v := range []int{ms - 1, ms, ms + 1} {
			extra = append(extra, event{at: at(2 * time.Second), tenant: "acme", latencyMS: v}, event{at: at(3 * time.Second), tenant: "acme", latencyMS: v})
		}
	}
	tb.insert(t, extra...)
	e := newTestExporter(t, tb.conn, tb.table, config.Exporter{}, nil)
	start := time.Now()
	mustUpdate(t, e, at(time.Minute))
	t.Logf("update over %d calls took %v", len(durations)+len(extra), time.Since(start))

	ref := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ref", Help: "ref", Buckets: config.DefaultDurationBuckets(),
		NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 0,
	})
	for _, d := range durations {
		ref.Observe(d)
	}
	for _, ev := range extra {
		ref.Observe(float64(ev.latencyMS) / 1000)
	}
	var want dto.Metric
	if err := ref.Write(&want); err != nil {
		t.Fatal(err)
	}
	hs := series(gather(t, e), "callwatch_call_duration_seconds", nil)
	if len(hs) != 1 {
		t.Fatalf("%d duration series, want 1", len(hs))
	}
	compareHistograms(t, hs[0].Histogram, want.Histogram)
}

// compareHistograms compares two histograms bucket by bucket, classic and
// native (decoded, so that span layouts may differ).
func compareHistograms(t *testing.T, got, want *dto.Histogram) {
	t.Helper()
	if got.GetSampleCount() != want.GetSampleCount() {
		t.Errorf("count = %d, want %d", got.GetSampleCount(), want.GetSampleCount())
	}
	if d := math.Abs(got.GetSampleSum() - want.GetSampleSum()); d > 1e-9*math.Abs(want.GetSampleSum()) {
		t.Errorf("sum = %v, want %v", got.GetSampleSum(), want.GetSampleSum())
	}
	if len(got.Bucket) != len(want.Bucket) {
		t.Fatalf("%d classic buckets, want %d", len(got.Bucket), len(want.Bucket))
	}
	for i := range want.Bucket {
		if got.Bucket[i].GetUpperBound() != want.Bucket[i].GetUpperBound() || got.Bucket[i].GetCumulativeCount() != want.Bucket[i].GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want le=%v: %d", got.Bucket[i].GetUpperBound(), got.Bucket[i].GetCumulativeCount(),
				want.Bucket[i].GetUpperBound(), want.Bucket[i].GetCumulativeCount())
		}
	}
	if got.GetSchema() != want.GetSchema() {
		t.Errorf("schema = %d, want %d", got.GetSchema(), want.GetSchema())
	}
	if got.GetZeroThreshold() != want.GetZeroThreshold() || got.GetZeroCount() != want.GetZeroCount() {
		t.Errorf("zero bucket = %v: %d, want %v: %d", got.GetZeroThreshold(), got.GetZeroCount(), want.GetZeroThreshold(), want.GetZeroCount())
	}
	g, w := decodeNative(got.PositiveSpan, got.PositiveDelta), decodeNative(want.PositiveSpan, want.PositiveDelta)
	if len(g) != len(w) {
		t.Errorf("%d native buckets, want %d", len(g), len(w))
	}
	bad := 0
	for k, n := range w {
		if g[k] != n && bad < 10 {
			bad++
			t.Errorf("native bucket %d = %d, want %d", k, g[k], n)
		}
	}
}

// decodeNative turns spans and deltas into counts by bucket index, leaving
// out empty buckets.
func decodeNative(spans []*dto.BucketSpan, deltas []int64) map[int32]int64 {
	out := map[int32]int64{}
	var idx int32
	var count int64
	d := 0
	for i, s := range spans {
		if i == 0 {
			idx = s.GetOffset()
		} else {
			idx += s.GetOffset()
		}
		for range s.GetLength() {
			count += deltas[d]
			d++
			if count != 0 {
				out[idx] = count
			}
			idx++
		}
	}
	return out
}

func TestLabelsBeyondTheCapAreFoldedIntoOther(t *testing.T) {
	forEachBackend(t, testLabelsBeyondTheCapAreFoldedIntoOther)
}

func testLabelsBeyondTheCapAreFoldedIntoOther(t *testing.T, tb *backend) {
	var events []event
	add := func(tenant string, n int, d time.Duration) {
		for range n {
			events = append(events, event{at: at(d), tenant: tenant, app: "chat", status: "success", latencyMS: 100})
		}
	}
	// Over the lookback, before and after the start, a has 7 calls, c 6,
	// b and d 5, e 1.
	add("a", 5, -10*time.Minute)
	add("b", 4, -10*time.Minute)
	add("c", 3, -10*time.Minute)
	add("d", 1, -10*time.Minute)
	// After the start.
	add("a", 2, 10*time.Second)
	add("b", 1, 10*time.Second)
	add("c", 3, 10*time.Second)
	add("d", 4, 10*time.Second)
	add("e", 1, 10*time.Second)
	tb.insert(t, events...)

	t.Run("the top values over the lookback keep their own series", func(t *testing.T) {
		e := newTestExporter(t, tb.conn, tb.table, config.Exporter{LabelLimits: map[string]int{"tenant_id": 2}}, nil)
		mustUpdate(t, e, at(time.Minute))
		mfs := gather(t, e)
		got := map[string]float64{}
		for _, m := range series(mfs, "callwatch_calls_total", nil) {
			for _, lp := range m.Label {
				if lp.GetName() == "tenant_id" {
					got[lp.GetValue()] += m.Counter.GetValue()
				}
			}
		}
		want := map[string]float64{"a": 2, "c": 3, "other": 6}
		if len(got) != len(want) || got["a"] != 2 || got["c"] != 3 || got["other"] != 6 {
			t.Errorf("calls by tenant = %v, want %v", got, want)
		}
		// b, d and e are in the lookback (1h back from now) and folded.
		checkSum(t, mfs, "callwatch_label_values_folded", map[string]string{"label": "tenant_id"}, 3)
		checkSum(t, mfs, "callwatch_label_values_folded", map[string]string{"label": "app_code"}, 0)
		if v := sum(mfs, "callwatch_call_errors_total", map[string]string{"tenant_id": "other"}); v != 0 || len(series(mfs, "callwatch_call_errors_total", map[string]string{"tenant_id": "other"})) != 1 {
			t.Errorf("callwatch_call_errors_total{tenant_id=other} missing or not 0")
		}
	})
	t.Run("new values are admitted by volume while there is room", func(t *testing.T) {
		e := newTestExporter(t, tb.conn, tb.table, config.Exporter{LabelLimits: map[string]int{"tenant_id": 4}, CardinalityLookback: dsl.Duration(time.Second)}, nil)
		// The lookback (the second before 20s) holds nothing: the first
		// update meets a, b, c, d, e after the start and admits the
		// busiest four: d (4), c (3), a (2), then b and e tie at 1, b
		// first by name.
		mustUpdate(t, e, at(20*time.Second))
		if got, want := strings.Join(labelSets(gather(t, e), "callwatch_call_errors_total"), " "),
			"app_code=chat,model=,provider=,tenant_id=a app_code=chat,model=,provider=,tenant_id=b app_code=chat,model=,provider=,tenant_id=c app_code=chat,model=,provider=,tenant_id=d app_code=chat,model=,provider=,tenant_id=other"; got != want {
			t.Errorf("series:\n got %s\nwant %s", got, want)
		}
	})
}

func TestFailingClickHouseKeepsTheLastValues(t *testing.T) {
	ctx := context.Background()
	srv := chtest.Start(t)
	tb := newServerBackend(t, srv)
	conn, err := clickhouse.Open(ctx, srv.DSN(tb.db)+"?dial_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := newTestExporter(t, conn, tb.table, config.Exporter{QueryTimeout: dsl.Duration(5 * time.Second)}, nil)
	tb.insert(t, event{at: at(10 * time.Second), tenant: "acme", status: "success", latencyMS: 300})
	mustUpdate(t, e, at(30*time.Second))
	before := gather(t, e)
	if v := sum(before, "callwatch_calls_total", nil); v != 1 {
		t.Fatalf("callwatch_calls_total = %v before the failure, want 1", v)
	}

	srv.Close()
	start := time.Now()
	if err := e.Update(ctx, at(45*time.Second)); err == nil {
		t.Fatal("Update with ClickHouse down succeeded")
	}
	t.Logf("failed update took %v", time.Since(start))
	after := gather(t, e)
	checkSums(t, after, []wantSum{
		{"callwatch_calls_total", nil, 1},
		{"callwatch_call_duration_seconds", nil, 1},
		{"callwatch_datasource_up", nil, 0},
		{"callwatch_query_errors_total", map[string]string{"kind": "update"}, 1},
		{"callwatch_exporter_collector_success", map[string]string{"collector": "events"}, 0},
		{"callwatch_exporter_watermark_timestamp_seconds", nil, float64(at(30 * time.Second).Unix())},
		{"callwatch_exporter_last_update_timestamp_seconds", nil, float64(at(30 * time.Second).Unix())},
	})
	// The scrape still works and says nothing bad about the registry.
	reg := prometheus.NewPedanticRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) == 0 {
		t.Fatalf("gather after the failure: %d families, %v", len(mfs), err)
	}
}

func TestNullLabelsAndNonFiniteValuesNeverBreakTheCounters(t *testing.T) {
	forEachBackend(t, testNullLabelsAndNonFiniteValues)
}

// testNullLabelsAndNonFiniteValues: in a user's table with Nullable labels
// and a Float64 cost holding NaN and ±Inf, a NULL label is the empty value
// (the label is left out), non-finite costs stay out of the cost counter
// and are counted on their own, and the update succeeds — with the types
// read from the table and with unknown ones.
func testNullLabelsAndNonFiniteValues(t *testing.T, tb *backend) {
	tb.exec(t, "DROP TABLE "+tb.table)
	tb.exec(t, "CREATE TABLE "+tb.table+` (created_at DateTime, tenant_id Nullable(String), app_code String, model Nullable(String),
		provider String, status Nullable(String), error_code String, latency_ms Nullable(UInt32), input_tokens Int64, output_tokens Int64,
		cost Float64) ENGINE = MergeTree ORDER BY created_at`)
	var rows []string
	for i, r := range []struct{ tenant, status, cost string }{
		{"'acme'", "'success'", "1.5"}, {"NULL", "'success'", "nan"}, {"NULL", "NULL", "inf"}, {"'acme'", "'error'", "-inf"}, {"NULL", "'success'", "2"},
	} {
		rows = append(rows, "SELECT toDateTime("+strconv.FormatInt(at(time.Duration(10+i)*time.Second).Unix(), 10)+"), "+r.tenant+", 'chat', NULL, 'openai', "+
			r.status+", '', NULL, toInt64(9000000000000000000), toInt64(1), "+r.cost)
	}
	tb.exec(t, "INSERT INTO "+tb.table+" "+strings.Join(rows, " UNION ALL "))
	read, err := clickhouse.ReadColumns(context.Background(), tb.conn, tb.table)
	if err != nil {
		t.Fatal(err)
	}
	for name, cols := range map[string]clickhouse.Columns{"read types": read, "unknown types": nil} {
		e, err := New(Options{Config: config.Exporter{SafetyLag: new(dsl.Duration(0))}, Conn: tb.conn, Table: tb.table, Columns: cols, Start: base})
		if err != nil {
			t.Fatal(err)
		}
		mustUpdate(t, e, at(time.Minute))
		mfs := gather(t, e)
		t.Run(name, func(t *testing.T) {
			checkSums(t, mfs, []wantSum{
				{"callwatch_calls_total", nil, 5},
				{"callwatch_calls_total", map[string]string{"tenant_id": "acme"}, 2},
				{"callwatch_cost_total", nil, 3.5},
				{"callwatch_input_tokens_total", nil, 4.5e19},
				{"callwatch_events_nonfinite_values_total", map[string]string{"field": "cost"}, 3},
			})
			if got := len(series(mfs, "callwatch_calls_total", nil)); got != 4 {
				t.Errorf("%d call series, want 4 (acme/success, acme/error, no tenant/success, no tenant and no status): %v", got, labelSets(mfs, "callwatch_calls_total"))
			}
		})
	}
}

func TestOddColumnsReadAsTheRulesReadThem(t *testing.T) {
	forEachBackend(t, testOddColumnsReadAsTheRulesReadThem)
}

// testOddColumnsReadAsTheRulesReadThem: the exporter and the rules' range
// functions read the events table through one SQL builder, so on a table
// with an Enum label, a padded FixedString label, a Nullable label holding
// NULL and a Nullable cost holding NULL and NaN, the exporter's call series
// are the groups of a leaf, with the same label values and counts, and
// both sum the cost alike (NULL as 0, NaN skipped).
func testOddColumnsReadAsTheRulesReadThem(t *testing.T, tb *backend) {
	tb.exec(t, "DROP TABLE "+tb.table)
	tb.exec(t, "CREATE TABLE "+tb.table+` (created_at DateTime, tenant_id Enum8('acme' = 1, 'globex' = 2), app_code FixedString(8),
		model Nullable(String), provider String, status Enum8('' = 0, 'success' = 1, 'error' = 2), error_code String,
		latency_ms Nullable(UInt32), input_tokens UInt32, output_tokens UInt32, cost Nullable(Float64)) ENGINE = MergeTree ORDER BY created_at`)
	var rows []string
	for i, r := range []struct{ tenant, app, model, status, latency, cost string }{
		{"'acme'", "'chat'", "'gpt-4o'", "'success'", "100", "1.5"},
		{"'acme'", "'chat'", "NULL", "'error'", "NULL", "nan"},
		{"'globex'", "'search'", "NULL", "''", "300", "2"},
		{"'globex'", "'search'", "NULL", "''", "200", "NULL"},
	} {
		rows = append(rows, "SELECT toDateTime("+strconv.FormatInt(at(time.Duration(10+i)*time.Second).Unix(), 10)+"), "+
			r.tenant+", "+r.app+", "+r.model+", 'openai', "+r.status+", '', "+r.latency+", toUInt32(1), toUInt32(2), "+r.cost)
	}
	tb.exec(t, "INSERT INTO "+tb.table+" (created_at, tenant_id, app_code, model, provider, status, error_code, latency_ms, input_tokens, output_tokens, cost) "+
		strings.Join(rows, " UNION ALL "))
	ctx := context.Background()
	cols, err := clickhouse.ReadColumns(ctx, tb.conn, tb.table)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Config: config.Exporter{SafetyLag: new(dsl.Duration(0))}, Conn: tb.conn, Table: tb.table, Columns: cols, Start: base})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, e, at(time.Minute))
	mfs := gather(t, e)
	exported := map[string]float64{}
	for _, m := range series(mfs, "callwatch_calls_total", nil) {
		var parts []string
		for _, lp := range m.Label {
			if lp.GetValue() != "" { // an empty label is no label in Prometheus
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
		}
		exported[strings.Join(parts, ",")] = m.Counter.GetValue()
	}
	want := map[string]float64{
		"app_code=chat,model=gpt-4o,provider=openai,status=success,tenant_id=acme": 1,
		"app_code=chat,provider=openai,status=error,tenant_id=acme":                1,
		"app_code=search,provider=openai,tenant_id=globex":                         2,
	}
	if !maps.Equal(exported, want) {
		t.Errorf("exported call series = %v, want %v", exported, want)
	}

	src, err := clickhouse.New(clickhouse.Options{Conn: tb.conn, Table: tb.table, Columns: cols})
	if err != nil {
		t.Fatal(err)
	}
	expr := testrules.Expr(t, `sum by (tenant_id, app_code, model, provider, status) (count_over_time(events[1m])) or sum(sum_over_time(cost[1m]))`)
	res, err := src.EvalLeaves(ctx, at(time.Minute), expr.Leaves)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(res.Statements, "\n\n"))
	}
	groups := map[string]float64{}
	for _, s := range res.Vectors[0] {
		var parts []string
		s.Labels.Range(func(l labels.Label) { parts = append(parts, l.Name+"="+l.Value) })
		groups[strings.Join(parts, ",")] = s.Value
	}
	if !maps.Equal(groups, exported) {
		t.Errorf("the leaf's groups = %v, the exporter's series = %v; want them equal", groups, exported)
	}
	if len(res.Vectors[1]) != 1 || res.Vectors[1][0].Value != 3.5 {
		t.Errorf("sum_over_time(cost[1m]) = %v, want 3.5 (NULL as 0, NaN skipped)", res.Vectors[1])
	}
	if got := sum(mfs, "callwatch_cost_total", nil); got != 3.5 {
		t.Errorf("callwatch_cost_total = %v, want 3.5 (NULL as 0, NaN skipped)", got)
	}
	if got := sum(mfs, "callwatch_call_errors_total", nil); got != 1 {
		t.Errorf("callwatch_call_errors_total = %v, want 1 (the Enum status read by name)", got)
	}
}
