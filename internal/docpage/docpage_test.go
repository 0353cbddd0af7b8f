package docpage

import (
	"strings"
	"testing"
)

func TestASectionEndsAtTheNextHeadingOfItsLevelOutsideCodeBlocks(t *testing.T) {
	page := "# Page\n\n## One\n\ntext\n\n### Sub\n\n```sh\n# a comment, not a heading\n```\n\n## Two\n\nmore\n"
	for _, tc := range []struct{ heading, want string }{
		{"## One", "\ntext\n\n### Sub\n\n```sh\n# a comment, not a heading\n```\n"},
		{"### Sub", "\n```sh\n# a comment, not a heading\n```\n"},
		{"## Two", "\nmore\n"},
	} {
		if got, ok := section(page, tc.heading); !ok || got != tc.want {
			t.Errorf("section %q = %q, %v; want %q", tc.heading, got, ok, tc.want)
		}
	}
	if _, ok := section(page, "## Three"); ok {
		t.Error(`found a "## Three" section`)
	}
	if _, ok := section(page, "# a comment, not a heading"); ok {
		t.Error("found a section under a line of a code block")
	}
}

func TestCodeBlockReadsTheFirstBlockOfItsLanguageInTheSection(t *testing.T) {
	got := CodeBlock(t, "language.md", "## The events table", "sql")
	if !strings.HasPrefix(got, "CREATE TABLE") || strings.HasSuffix(got, "\n") || strings.Contains(got, "```") {
		t.Errorf("the events table's sql block = %q, want the CREATE TABLE statement without fences", got)
	}
}
