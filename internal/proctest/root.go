package proctest

import (
	"errors"
	"os"
	"path/filepath"
)

// ModuleRoot returns the directory of go.mod above the working directory
// (a test's package directory): the repository's root, where docs/,
// .cache/ and the other packages are.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
