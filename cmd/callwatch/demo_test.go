package main

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDemoWritesTrafficIntoClickHouse(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	cfgFile := callsConfig(t, s, db)

	var stderr syncBuffer
	err := runDemo(context.Background(), []string{"--config.file", cfgFile, "--rate", "50", "--backfill", "1m", "--duration", "3s"}, nil, &stderr)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"writing demo traffic", `msg="demo incident scheduled" kind=error_burst tenant=globex`, "demo backfill written"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
	rows, err := s.Conn(t, db).Query(context.Background(), "SELECT toUInt64(count()), toUInt64(max(created_at) - min(created_at)) FROM calls")
	if err != nil {
		t.Fatalf("the demo did not create its table: %v", err)
	}
	defer rows.Close()
	rows.Next()
	var n, span uint64
	if err := rows.Scan(&n, &span); err != nil {
		t.Fatal(err)
	}
	// A minute of backfill and about three seconds live, at 50 calls/s
	// varied by the time of day (0.4 to 1.45 of the mean).
	if n < 900 || span < 60 {
		t.Fatalf("%d calls over %d s", n, span)
	}
}

func TestDemoRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--rate", "0"}, {"--backfill", "-1m"}, {"extra"}, {"--seed", "x"}} {
		var stderr syncBuffer
		var ue usageError
		if err := runDemo(context.Background(), args, nil, &stderr); !errors.As(err, &ue) {
			t.Errorf("demo %v: err = %v, want a usage error", args, err)
		}
	}
}
