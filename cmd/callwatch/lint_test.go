package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/internal/golden"
)

// TestCheckRulesGolden runs `callwatch check rules` on each file of
// testdata/lint, a corpus of rule files each broken one way (an expression
// that never matches, a template reading a label the result cannot carry,
// a for shorter than the interval, windows off the bucket or within the
// late window, tiers out of order, unknown keys, bad durations, unknown
// fields and labels, …) and compares what it prints, and its exit code,
// with the file's .golden. go test ./cmd/callwatch -run TestCheckRulesGolden
// -update rewrites them.
func TestCheckRulesGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/lint/*.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("the corpus testdata/lint/*.yaml has %d files (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			golden.Compare(t, strings.TrimSuffix(f, ".yaml")+".golden", []byte(checkRulesTranscript(t, f)))
		})
	}
}

// checkRulesTranscript is the command line, its exit code and its output.
func checkRulesTranscript(t *testing.T, file string) string {
	t.Helper()
	code, out, errOut := runCLI("check", "rules", file)
	if len(errOut) > 0 {
		t.Errorf("check rules %s wrote to stderr: %s", file, errOut)
	}
	return fmt.Sprintf("$ callwatch check rules %s\n%s(exit %d)\n", file, out, code)
}

// TestCheckRulesLintModes: a file with warnings only passes by default,
// fails with --lint=fatal (as promtool's --lint-fatal) and is silent with
// --lint=none; a file with errors fails whatever the mode, and a clean
// file passes in every mode.
func TestCheckRulesLintModes(t *testing.T) {
	const warned, broken, clean = "testdata/lint/never-match-ratio.yaml", "testdata/lint/unknown-rule-key.yaml", "testdata/lint/clean.yaml"
	for _, tc := range []struct {
		file, mode string
		code       int
		has, lacks string
	}{
		{warned, "--lint=warn", 0, "WARNING: 1 findings", "FAILED"},
		{warned, "--lint=fatal", 1, "FAILED (--lint fatal):\n" + warned + ":6:15:", "SUCCESS"},
		{warned, "--lint=none", 0, "SUCCESS: 1 rules found", "WARNING"},
		{broken, "--lint=none", 1, "FAILED:", "SUCCESS"},
		{broken, "--lint=fatal", 1, "FAILED:", "SUCCESS"},
		{clean, "--lint=fatal", 0, "SUCCESS: 3 rules found", "WARNING"},
	} {
		t.Run(filepath.Base(tc.file)+" "+tc.mode, func(t *testing.T) {
			code, out, errOut := runCLI("check", "rules", tc.mode, tc.file)
			if code != tc.code || !strings.Contains(out, tc.has) || strings.Contains(out, tc.lacks) {
				t.Errorf("exit %d (want %d), want %q and no %q in\n%s%s", code, tc.code, tc.has, tc.lacks, out, errOut)
			}
		})
	}
	t.Run("an unknown mode is a usage error", func(t *testing.T) {
		if code, _, errOut := runCLI("check", "rules", "--lint=strict", clean); code != 2 ||
			!strings.Contains(errOut, `--lint "strict": write warn, fatal or none`) {
			t.Errorf("exit %d, want 2 and what to write\n%s", code, errOut)
		}
	})
}
