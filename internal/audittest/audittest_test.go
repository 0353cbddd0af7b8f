package audittest

import (
	"context"
	"sync"
	"testing"

	"github.com/callwatch/callwatch/engine"
)

func TestLogKeepsEveryRecordInOrder(t *testing.T) {
	var l Log
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { l.Record(context.Background(), engine.AuditRecord{Rule: "a"}, engine.AuditRecord{Rule: "b"}) })
	}
	wg.Wait()
	recs := l.Records()
	if len(recs) != 20 {
		t.Fatalf("%d records, want 20", len(recs))
	}
	for i := 0; i < len(recs); i += 2 {
		if recs[i].Rule != "a" || recs[i+1].Rule != "b" {
			t.Fatalf("records %d and %d are %q and %q: a call's records were split", i, i+1, recs[i].Rule, recs[i+1].Rule)
		}
	}
	recs[0].Rule = "changed"
	if l.Records()[0].Rule != "a" {
		t.Fatal("Records returned the log's own slice")
	}
}
