package main

import (
	"fmt"
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
	cfgFile := writeConfig(t, t.TempDir(), fmt.Sprintf("clickhouse:\n  dsn: %s\n", s.DSN(db)))
	files, _ := filepath.Glob("../../alerts_test/*.yaml")
	if len(files) == 0 {
		t.Fatal("no alerts_test files")
	}
	code, out, errOut := runCLI(append([]string{"test", "rules", "--clickhouse", "--config.file", cfgFile}, files...)...)
	if code != 0 || strings.Count(out, "SUCCESS") != len(files) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}
