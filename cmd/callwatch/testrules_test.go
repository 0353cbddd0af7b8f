package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestRulesOnClickHouse runs the repository's rule unit tests with
// --clickhouse: the same events, loaded into the real server, must give the
// same alerts as in memory.
func TestTestRulesOnClickHouse(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	cfgFile := filepath.Join(t.TempDir(), "callwatch.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("clickhouse:\n  dsn: %s\n", s.DSN(db))), 0o644)
	files, _ := filepath.Glob("../../alerts_test/*.yaml")
	if len(files) == 0 {
		t.Fatal("no alerts_test files")
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"test", "rules", "--clickhouse", "--config.file", cfgFile}, files...), &out, &errOut)
	if code != 0 || strings.Count(out.String(), "SUCCESS") != len(files) {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
}
