package exporter

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/dsl"
)

func TestScrapesDuringUpdatesSeeWholeUpdates(t *testing.T) {
	// One update adds 3 calls in two rows; a scrape must never see 1 of
	// them without the other.
	conn := &fakeConn{update: [][]any{
		updateRow("acme", "chat", "gpt-4o", "openai", "success", false, 4, -2, 1, 800, 0, 0, 0),
		updateRow("beta", "chat", "gpt-4o", "openai", "success", false, 4, -2, 2, 1600, 0, 0, 0),
	}}
	e := newTestExporter(t, conn, "calls", config.Exporter{LateWindow: new(dsl.Duration(0))}, nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			if err := e.Update(context.Background(), at(time.Duration(i+1)*time.Second)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 200 {
		v := sum(gather(t, e), "callwatch_calls_total", nil)
		if int(v)%3 != 0 {
			t.Fatalf("a scrape saw %v calls, part of an update", v)
		}
	}
	wg.Wait()
	if v := sum(gather(t, e), "callwatch_calls_total", nil); v != 600 {
		t.Fatalf("callwatch_calls_total = %v after 200 updates, want 600", v)
	}
}

func TestRunUpdatesEveryIntervalUntilCancelled(t *testing.T) {
	conn := &fakeConn{}
	e, err := New(Options{Config: config.Exporter{Interval: dsl.Duration(10 * time.Millisecond)}, Conn: conn, Table: "calls"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.Run(ctx)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn.mu.Lock()
		n := 0
		for _, q := range conn.queries {
			if len(q.args) == 4 {
				n++
			}
		}
		conn.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d updates in 10s with a 10ms interval", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestWithoutTheStatusLabelErrorsKeepEveryLabel(t *testing.T) {
	conn := &fakeConn{update: [][]any{
		// tenant, then pending, failed, bucket, native, calls, latency
		// sum, input, output, cost.
		{"acme", 0.0, 1.0, 4, -2, 2, 1600, 0, 0, 0.0},
		{"acme", 0.0, 0.0, 4, -2, 5, 4000, 0, 0, 0.0},
	}}
	e := newTestExporter(t, conn, "calls", config.Exporter{Labels: []string{"tenant_id"}}, nil)
	mustUpdate(t, e, at(time.Minute))
	mfs := gather(t, e)
	if got := labelSets(mfs, "callwatch_calls_total"); len(got) != 1 || got[0] != "tenant_id=acme" {
		t.Errorf("callwatch_calls_total series = %v, want [tenant_id=acme]", got)
	}
	checkSum(t, mfs, "callwatch_calls_total", nil, 7)
	checkSum(t, mfs, "callwatch_call_errors_total", map[string]string{"tenant_id": "acme"}, 2)
}

func TestStartIsFlooredToASecondAndShiftedByTheSafetyLag(t *testing.T) {
	conn := &fakeConn{}
	e, err := New(Options{Config: config.Exporter{SafetyLag: new(dsl.Duration(5 * time.Second))}, Conn: conn, Table: "calls",
		Start: at(10*time.Second + 700*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, e, at(20*time.Second+300*time.Millisecond))
	q := conn.queries[len(conn.queries)-1]
	// F' (nothing to finalize yet), status, F = start − lag, to = now − lag.
	want := []any{at(5 * time.Second).Unix(), "error", at(5 * time.Second).Unix(), at(15 * time.Second).Unix()}
	for i := range want {
		if q.args[i] != want[i] {
			t.Fatalf("update args = %v, want %v", q.args, want)
		}
	}
}

func TestLabelValuesThatAreNotUTF8AreRepaired(t *testing.T) {
	conn := &fakeConn{update: [][]any{
		updateRow("ac\xffme", "chat", "gpt-4o", "openai", "success", false, 4, -2, 1, 800, 0, 0, 0),
	}}
	e := newTestExporter(t, conn, "calls", config.Exporter{}, nil)
	mustUpdate(t, e, at(time.Minute))
	checkSum(t, gather(t, e), "callwatch_calls_total", map[string]string{"tenant_id": "ac\uFFFDme"}, 1)
}

func TestDefaultLabelsAreThoseTheSchemaMaps(t *testing.T) {
	schema := dsl.Schema{Time: "ts", Labels: []string{"tenant_id", "model", "status", "region"},
		Fields: map[string]dsl.Columns{"latency_ms": {"duration_ms"}}}
	e, err := New(Options{Conn: &fakeConn{}, Table: "calls", Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tenant_id", "model", "status"}; !reflect.DeepEqual(e.labels, want) {
		t.Fatalf("labels = %v, want %v", e.labels, want)
	}
	// Only the fields the schema maps have metrics.
	ch := make(chan *prometheus.Desc, 100)
	e.Describe(ch)
	close(ch)
	var names []string
	for d := range ch {
		names = append(names, d.String())
	}
	all := strings.Join(names, "\n")
	if strings.Contains(all, "tokens") || strings.Contains(all, "cost") || !strings.Contains(all, "callwatch_call_duration_seconds") {
		t.Errorf("descriptors:\n%s", all)
	}
}
