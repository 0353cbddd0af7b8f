package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/chtest"
)

// TestFaultQueryFlood floods the query API while rules run: heavy grouped
// quantiles from 30 clients at once, hundreds of cheap queries with
// distinct matchers and queries far in the future. Ad-hoc queries have
// their own source and connections, so the rules keep their schedule,
// their incremental SQL stays what it was (the flood never enters their
// cache), and no DatasourceDown fires. Run by `make test-faults`.
func TestFaultQueryFlood(t *testing.T) {
	s := chtest.Start(t) // its own server: the flood loads it
	db := errorEvents(t, s, 5)
	// Two million calls of the last day for the heavy queries to read.
	s.Exec(t, fmt.Sprintf(`INSERT INTO %s.ai_call_events (created_at, tenant_id, app_code, model, status, latency_ms)
SELECT toDateTime(%d - number %% 86000), concat('t', toString(number %% 500)), concat('a', toString(number %% 37)), 'm', 'ok', toUInt32(number %% 10007)
FROM system.numbers LIMIT 2000000`, db, time.Now().Add(-time.Hour).Unix()))
	got := newHook(t)
	dir := t.TempDir()
	cfgFile := writeConfig(t, dir, fmt.Sprintf(`clickhouse:
  dsn: %s
  query_timeout: 5s
  health_interval: 1s
  down_after: 3s
  incremental: {bucket: 1s, late_window: 5s}
limits:
  query_timeout: 2s
  max_concurrent_queries: 2
notifiers:
  - {name: pager, type: webhook, url: %q, timeout: 2s}
default_notify: [pager]
rule_files: [rules.yaml]
`, s.DSN(db), got.URL))
	writeFile(t, filepath.Join(dir, "rules.yaml"), serveRules)
	p := startProc(t, cfgFile)
	waitFor(t, "the Errors alert to be delivered", 20*time.Second, func() bool { return got.get("Errors/firing") == 1 })

	lastSQL := func() string {
		e := ruleEvaluations(t, p.base, "Errors").Data[0].Evaluations
		if len(e) == 0 || len(e[len(e)-1].Statements) != 1 {
			return ""
		}
		return e[len(e)-1].Statements[0]
	}
	var before string
	waitFor(t, "an evaluation from partial aggregates", 15*time.Second, func() bool {
		before = lastSQL()
		return containsAll(before, "intDiv")
	})

	// The flood.
	var sent, answered, timedOut, other atomic.Int64
	query := func(q string, extra url.Values) {
		v := url.Values{"query": {q}}
		for k, x := range extra {
			v[k] = x
		}
		sent.Add(1)
		resp, err := http.PostForm(p.base+"/api/v1/query", v)
		if err != nil {
			other.Add(1)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			answered.Add(1)
		case http.StatusServiceUnavailable:
			timedOut.Add(1)
		default:
			if other.Add(1) <= 3 {
				t.Logf("%s: %d %s", q, resp.StatusCode, body)
			}
		}
	}
	floodStart := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 30 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch i % 3 {
				case 0:
					query(`max by (tenant_id) (p99(latency_ms[1d])) + ignoring(tenant_id) group_left max(p50(latency_ms[1d]))`, nil)
				case 1:
					query(fmt.Sprintf(`sum by (tenant_id) (count_over_time(events{model="m%d-%d"}[1m]))`, c, i), nil)
				default:
					query(`sum by (tenant_id) (count_over_time(events[5m]))`, url.Values{"time": {"4102444800"}}) // 2100-01-01
				}
			}
		})
	}
	time.Sleep(10 * time.Second)
	close(stop)
	wg.Wait()
	floodEnd := time.Now()

	// The rules kept their schedule and their SQL.
	ev := ruleEvaluations(t, p.base, "Errors")
	var gap time.Duration
	var prev time.Time
	failed := 0
	for _, e := range ev.Data[0].Evaluations {
		if e.Time.Before(floodStart) || e.Time.After(floodEnd) {
			continue
		}
		if !prev.IsZero() && e.Time.Sub(prev) > gap {
			gap = e.Time.Sub(prev)
		}
		prev = e.Time
		if e.Err != "" {
			failed++
		}
	}
	after := lastSQL()
	downs := got.get("DatasourceDown/firing")
	t.Logf("FAULT REPORT: faults injected: 1 (query flood: %d queries from 30 clients in %s, %d answered, %d timed out with 503, %d other); rule evaluations failed: %d; longest gap between evaluations: %s (interval 1s); rule SQL changed: %v; DatasourceDown fired: %d; alerts lost: %d",
		sent.Load(), floodEnd.Sub(floodStart).Round(time.Second), answered.Load(), timedOut.Load(), other.Load(), failed, gap, after != before, downs, got.get("Errors/resolved"))
	if other.Load() != 0 {
		t.Errorf("%d queries got an answer other than 200 or 503 timeout", other.Load())
	}
	if answered.Load() == 0 {
		t.Errorf("no query of the flood was answered")
	}
	if failed != 0 || gap > 3*time.Second {
		t.Errorf("rules under the flood: %d failed evaluations, longest gap %s", failed, gap)
	}
	if after != before {
		t.Errorf("the flood changed the rule's SQL (the queries entered the rules' cache):\nbefore: %s\nafter:  %s", before, after)
	}
	if downs != 0 {
		t.Errorf("the query load fired DatasourceDown %d times", downs)
	}
	if n := got.get("Errors/resolved"); n != 0 {
		t.Errorf("the flood resolved the Errors alert %d times", n)
	}
}
