//go:build !(linux && (amd64 || arm64))

package chdb

import (
	"fmt"
	"runtime"
)

// loadLibrary fails: chDB's library and callwatch's binding of it are for
// Linux on amd64 and arm64.
func loadLibrary(path string) (*library, error) {
	return nil, fmt.Errorf("load %s: embedded ClickHouse runs on linux/amd64 and linux/arm64, not %s/%s", path, runtime.GOOS, runtime.GOARCH)
}
