package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Errorf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Helper()                           {}

func TestCompareReportsAMismatchAndUpdateRewrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "testdata", "x.golden")
	r := &recorder{TB: t}
	Compare(r, path, []byte("a\n"))
	if r.failed == "" {
		t.Fatal("a missing golden file passed")
	}
	*update = true
	Compare(t, path, []byte("a\nb\n"))
	*update = false
	r = &recorder{TB: t}
	Compare(r, path, []byte("a\nb\n"))
	if r.failed != "" {
		t.Fatalf("the rewritten file differs: %s", r.failed)
	}
	Compare(r, path, []byte("a\nc\n"))
	if r.failed == "" {
		t.Fatal("a different output passed")
	}
	if data, _ := os.ReadFile(path); string(data) != "a\nb\n" {
		t.Fatalf("a comparison without -update wrote the file: %q", data)
	}
}

func TestDiffNamesTheLinesThatDiffer(t *testing.T) {
	d := Diff("a\nb\nc\n", "a\nx\nc\nd\n")
	if !strings.Contains(d, "line 2:\n  want \"b\"\n  got  \"x\"") || !strings.Contains(d, "line 4:") || strings.Contains(d, "line 1:") {
		t.Fatalf("Diff =\n%s", d)
	}
}
