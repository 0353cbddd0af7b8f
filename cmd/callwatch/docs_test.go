package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The pages whose code blocks TestDocsCommandsPrintWhatThePagesShow runs,
// relative to the repository root.
var docPages = []string{"README.md", "docs/*.md"}

// A code block is run when the line before its opening fence is one of
// these markers:
//
//	<!-- doctest -->             each `$ ` line is a shell command (a line
//	                             ending in \ continues it); the lines up to
//	                             the next `$ ` line are its output, stdout
//	                             and stderr together. `…` stands for any text.
//	<!-- doctest: file NAME -->  the block is written to NAME, for the
//	                             page's later commands to read.
var doctestMarker = regexp.MustCompile(`^<!-- doctest(?:: file (\S+))? -->$`)

// docBlock is one marked code block of a page.
type docBlock struct {
	line int    // of the opening fence, 1-based
	file string // the NAME of a file block, "" for commands
	text string // the lines between the fences
}

// docCommand is one `$ ` command of a block and the output the page shows.
type docCommand struct {
	line      int
	cmd, want string
}

// readDocBlocks returns the marked code blocks of a page.
func readDocBlocks(path string) ([]docBlock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var blocks []docBlock
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		m := doctestMarker.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "```") {
			return nil, fmt.Errorf("%s:%d: a doctest marker must stand right before a code block's opening ```", path, n)
		}
		n++
		b := docBlock{line: n, file: m[1]}
		var lines []string
		closed := false
		for sc.Scan() {
			n++
			if strings.HasPrefix(sc.Text(), "```") {
				closed = true
				break
			}
			lines = append(lines, sc.Text())
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: the code block is not closed; end it with ```", path, b.line)
		}
		b.text = strings.Join(lines, "\n") + "\n"
		blocks = append(blocks, b)
	}
	return blocks, sc.Err()
}

// commands splits a block into its `$ ` commands and their outputs.
func (b docBlock) commands() []docCommand {
	var cmds []docCommand
	lines := strings.Split(strings.TrimSuffix(b.text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		cmd, ok := strings.CutPrefix(lines[i], "$ ")
		if !ok {
			if len(cmds) > 0 {
				cmds[len(cmds)-1].want += lines[i] + "\n"
			}
			continue
		}
		c := docCommand{line: b.line + 1 + i, cmd: cmd}
		for strings.HasSuffix(lines[i], `\`) && i+1 < len(lines) {
			i++
			c.cmd += "\n" + lines[i]
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// normalize drops trailing blanks of each line and trailing empty lines, so
// that the blank line a page leaves between two commands does not count.
func normalize(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// matchesShown reports whether got is the output want shows, where `…`
// stands for any text (also across lines).
func matchesShown(got, want string) bool {
	got, want = normalize(got), normalize(want)
	if !strings.Contains(want, "…") {
		return got == want
	}
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`(?s)\A` + strings.Join(parts, ".*?") + `\z`).MatchString(got)
}

// docWorkDir returns a directory set up as the pages assume the reader's
// is: the repository's sample events, rules and rule tests, and a
// `callwatch` (also as bin/callwatch) on PATH that is this test binary
// running main.
func docWorkDir(t *testing.T, root string) (dir string, env []string) {
	t.Helper()
	dir = t.TempDir()
	for _, d := range []string{"testdata", "rules.d", "alerts_test"} {
		if err := os.Symlink(filepath.Join(root, d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nCALLWATCH_MAIN=1 exec '%s' \"$@\"\n", self)
	if err := os.WriteFile(filepath.Join(bin, "callwatch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// TestDocsCommandsPrintWhatThePagesShow runs the commands of the README's
// and docs/*.md's code blocks marked <!-- doctest --> against callwatch
// and the bundled sample events, and compares their output with the lines
// the page shows, so the pages cannot drift from the binary.
func TestDocsCommandsPrintWhatThePagesShow(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var pages []string
	for _, g := range docPages {
		m, err := filepath.Glob(filepath.Join(root, g))
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, m...)
	}
	var ran []string
	for _, page := range pages {
		rel, _ := filepath.Rel(root, page)
		blocks, err := readDocBlocks(page)
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			continue
		}
		t.Run(rel, func(t *testing.T) {
			dir, env := docWorkDir(t, root)
			for _, b := range blocks {
				if b.file != "" {
					writeFile(t, filepath.Join(dir, b.file), b.text)
					continue
				}
				cmds := b.commands()
				if len(cmds) == 0 {
					t.Errorf("%s:%d: a <!-- doctest --> block has no `$ ` command; mark it <!-- doctest: file NAME --> or drop the marker", rel, b.line)
				}
				for _, c := range cmds {
					ran = append(ran, c.cmd)
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					cmd := exec.CommandContext(ctx, "sh", "-c", c.cmd)
					cmd.Dir, cmd.Env = dir, env
					out, _ := cmd.CombinedOutput()
					cancel()
					if !matchesShown(string(out), c.want) {
						t.Errorf("%s:%d: $ %s\nprints:\n%s\nthe page shows:\n%s", rel, c.line, c.cmd, out, c.want)
					}
				}
			}
		})
	}
	// The pages must keep showing the commands a newcomer runs first; a
	// marker dropped by an edit would otherwise leave them untested.
	for _, want := range []string{"callwatch query", "callwatch check rules", "callwatch test rules", "callwatch explain", "callwatch backtest"} {
		if !slices.ContainsFunc(ran, func(c string) bool { return strings.Contains(c, want+" ") }) {
			t.Errorf("no <!-- doctest --> block runs %q; mark the block that shows it", want)
		}
	}
}

func TestDocsOutputMatching(t *testing.T) {
	for _, tc := range []struct {
		got, want string
		match     bool
	}{
		{"a\nb\n", "a\nb\n\n", true},
		{"a  \nb\n", "a\nb", true},
		{"a\nb\n", "a\nc\n", false},
		{"head\nx\ny\nlast\n", "head\n…\nlast\n", true},
		{"labels are a, b, c\n", "labels are a, …\n", true},
		{"labels are a, b, c\n", "labels are x, …\n", false},
		{"a.b\n", "a…c\n", false},
	} {
		if got := matchesShown(tc.got, tc.want); got != tc.match {
			t.Errorf("matchesShown(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.match)
		}
	}
	b := docBlock{line: 10, text: "$ callwatch query \\\n    'x'\nout1\n\n$ callwatch check rules f.yaml\nout2\n"}
	cmds := b.commands()
	if len(cmds) != 2 || cmds[0].cmd != "callwatch query \\\n    'x'" || cmds[0].want != "out1\n\n" || cmds[0].line != 11 ||
		cmds[1].cmd != "callwatch check rules f.yaml" || cmds[1].want != "out2\n" || cmds[1].line != 15 {
		t.Errorf("commands = %+v", cmds)
	}
}
