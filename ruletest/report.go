package ruletest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/callwatch/callwatch/rulefmt"
)

// WriteText prints a file's result as promtool does: "Unit Testing: FILE",
// then "  SUCCESS", or "  FAILED:" and every failure, indented, each
// followed by a blank line.
func WriteText(w io.Writer, r FileResult) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Unit Testing: %s\n", r.File)
	if !r.Failed() {
		sb.WriteString("  SUCCESS\n\n")
		_, err := io.WriteString(w, sb.String())
		return err
	}
	sb.WriteString("  FAILED:\n")
	for _, f := range r.failures() {
		sb.WriteString(indent(f, "    "))
		sb.WriteString("\n\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// failures lists the file's problems: its load errors one by one, or the
// failures of its tests.
func (r *FileResult) failures() []string {
	if r.Err != nil {
		var errs rulefmt.Errors
		if errors.As(r.Err, &errs) {
			out := make([]string, len(errs))
			for i, e := range errs {
				out[i] = e.Error()
			}
			return out
		}
		return []string{r.Err.Error()}
	}
	var out []string
	for _, t := range r.Tests {
		out = append(out, t.Failures...)
	}
	return out
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}

// The JUnit report has promtool's shape: one testsuite per file, one
// testcase per test, a failure element per unmet expectation, and an error
// element when the file could not be run.
type (
	junitReport struct {
		XMLName xml.Name     `xml:"testsuites"`
		Suites  []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Timestamp string      `xml:"timestamp,attr"`
		Cases     []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name     string   `xml:"name,attr"`
		Failures []string `xml:"failure,omitempty"`
		Error    string   `xml:"error,omitempty"`
	}
)

// WriteJUnit writes the results as a JUnit XML report.
func WriteJUnit(w io.Writer, results []FileResult) error {
	rep := junitReport{}
	for _, r := range results {
		s := junitSuite{Name: r.File, Timestamp: r.Started.Format("2006-01-02T15:04:05")}
		if r.Err != nil {
			s.Errors = 1
			s.Tests = 1
			s.Cases = []junitCase{{Name: r.File, Error: strings.Join(r.failures(), "\n")}}
		}
		for _, t := range r.Tests {
			s.Tests++
			s.Failures += len(t.Failures)
			s.Cases = append(s.Cases, junitCase{Name: t.Name, Failures: t.Failures})
		}
		rep.Suites = append(rep.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}
