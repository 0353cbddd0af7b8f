package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callwatch/callwatch/dsl"
	"github.com/callwatch/callwatch/engine"
)

// blockingHistory is an audit reader whose reads wait until released, and
// which counts how many ran at once.
type blockingHistory struct {
	release          chan struct{}
	running, maxSeen atomic.Int32
}

func (h *blockingHistory) History(ctx context.Context, _ engine.AuditQuery) ([]engine.AuditRecord, error) {
	n := h.running.Add(1)
	defer h.running.Add(-1)
	for {
		m := h.maxSeen.Load()
		if n <= m || h.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-h.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestHistoryReadsTakeQuerySlots: the history API and the status page read
// the audit table in ClickHouse, as heavy as any query (a 100,000-row read
// of a big audit table takes seconds), and anyone may send them, so they
// take the query API's slots and deadline: a flood of them waits for a
// slot, answers 503, and never runs more than limits.max_concurrent_queries
// reads at once next to the rules.
func TestHistoryReadsTakeQuerySlots(t *testing.T) {
	h := &blockingHistory{release: make(chan struct{})}
	queries := atomic.Int32{}
	srv := httptest.NewServer(Handler(Options{
		Rules:   staticRules{},
		History: h,
		Query: func(_ context.Context, _ *dsl.Expr, _ time.Time) (engine.Result, error) {
			queries.Add(1)
			return engine.Result{}, nil
		},
		MaxConcurrentQueries: 2,
		QueryTimeout:         300 * time.Millisecond,
	}))
	defer srv.Close()
	get := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	codes := make(chan int, 20)
	for i := range 20 {
		wg.Go(func() {
			path := "/api/v1/alerts/history?limit=100000"
			if i%2 == 1 {
				path = "/"
			}
			codes <- get(path)
		})
	}
	time.Sleep(100 * time.Millisecond)
	if got := get("/api/v1/query?query=1"); got != http.StatusServiceUnavailable {
		t.Errorf("a query while history reads hold every slot answered %d, want 503", got)
	}
	// The reads that got in end after a while, whether or not the flood
	// waited for a slot.
	time.AfterFunc(time.Second, func() { close(h.release) })
	wg.Wait()
	close(codes)
	if m := h.maxSeen.Load(); m > 2 {
		t.Errorf("%d history reads ran at once, more than the 2 query slots", m)
	}
	busy := 0
	for c := range codes {
		if c == http.StatusServiceUnavailable {
			busy++
		}
	}
	if busy == 0 {
		t.Errorf("no history request of the flood answered 503 while the slots were taken")
	}
	if got := get("/api/v1/alerts/history"); got != http.StatusOK {
		t.Errorf("a history request after the flood answered %d, want 200", got)
	}
}
