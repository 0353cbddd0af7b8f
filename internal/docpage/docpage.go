// Package docpage reads the documentation pages (docs/*.md) for the tests
// that keep them in step with the code: a page, a section of it, or a code
// block of a section.
package docpage

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/callwatch/callwatch/internal/proctest"
)

// Read returns the page docs/name of the repository the test runs in (the
// folder of go.mod above the test's folder).
func Read(t testing.TB, name string) string {
	t.Helper()
	dir, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatalf("reading docs/%s: %v", name, err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(page)
}

// Section returns the lines of page docs/name below the heading line (such
// as "## The events table") up to the next heading of its level or a
// higher one. Lines in code blocks are not headings.
func Section(t testing.TB, name, heading string) string {
	t.Helper()
	text, ok := section(Read(t, name), heading)
	if !ok {
		t.Fatalf("docs/%s has no %q section", name, heading)
	}
	return text
}

// section returns the lines of page below the heading line up to the next
// heading of its level or a higher one, and whether page has the heading.
func section(page, heading string) (string, bool) {
	level := headingLevel(heading)
	var lines []string
	found, fenced := false, false
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if !fenced && found {
			if l := headingLevel(line); l > 0 && l <= level {
				break
			}
		}
		if found {
			lines = append(lines, line)
		} else if !fenced && line == heading {
			found = true
		}
	}
	return strings.Join(lines, "\n"), found
}

// CodeBlock returns the lines of the first code block of language lang
// (its opening fence is ```lang) in the section of docs/name below heading.
func CodeBlock(t testing.TB, name, heading, lang string) string {
	t.Helper()
	lines := strings.Split(Section(t, name, heading), "\n")
	if open := slices.Index(lines, "```"+lang); open >= 0 {
		body := lines[open+1:]
		if n := slices.IndexFunc(body, func(l string) bool { return strings.HasPrefix(l, "```") }); n >= 0 {
			return strings.Join(body[:n], "\n")
		}
	}
	t.Fatalf("docs/%s: the %q section has no %s code block", name, heading, lang)
	return ""
}

// headingLevel returns the level of a Markdown heading line (the number of
// #s before its space), or 0 for another line.
func headingLevel(line string) int {
	n := len(line) - len(strings.TrimLeft(line, "#"))
	if n == 0 || n > 6 || !strings.HasPrefix(line[n:], " ") {
		return 0
	}
	return n
}
