package layering

import (
	"errors"
	"go/build"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLayoutNamesEveryPackage: the README's Layout section is where a
// newcomer finds which package owns what, so every package of the tree has
// its line there, every line names a folder that exists, and every package
// says what it owns in its package comment.
func TestLayoutNamesEveryPackage(t *testing.T) {
	listed := layoutFolders(t)
	var pkgs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := build.ImportDir(path, build.ImportComment)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		pkgs = append(pkgs, rel)
		if p.Doc == "" {
			t.Errorf("package %s has no package comment: say what it owns", rel)
		}
		if !slices.Contains(listed, rel) {
			t.Errorf("the README's Layout section has no line for %s/", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 20 {
		t.Fatalf("found %d packages, want the whole tree: %v", len(pkgs), pkgs)
	}
	for _, f := range listed {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(f))); err != nil || !fi.IsDir() {
			t.Errorf("the README's Layout section names %s/, which is not a folder of the tree", f)
		}
	}
}

// layoutFolders returns the folders the code block of the README's Layout
// section names: the first word of each line that does not continue the
// one before (continuations are indented), without its trailing "/".
func layoutFolders(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	_, block, ok := strings.Cut(section, "\n```\n")
	if ok {
		block, _, ok = strings.Cut(block, "\n```")
	}
	if !ok {
		t.Fatal("the README's Layout section has no code block")
	}
	var folders []string
	for _, line := range strings.Split(block, "\n") {
		if line == "" || strings.HasPrefix(line, " ") {
			continue
		}
		word, _, _ := strings.Cut(line, " ")
		if !strings.HasSuffix(word, "/") {
			t.Errorf("the Layout line %q does not start with a folder (name/)", line)
			continue
		}
		folders = append(folders, strings.TrimSuffix(word, "/"))
	}
	return folders
}
