//go:build linux && (amd64 || arm64)

package chdb

import (
	"fmt"
	"strings"

	"github.com/ebitengine/purego"
)

// loadLibrary opens libchdb.so and binds the functions callwatch uses. The
// library is never closed: its engine starts threads that outlive any
// connection, and dlopen of the same path returns the same handle.
func loadLibrary(path string) (*library, error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	lib := &library{path: path}
	syms := []struct {
		name string
		fn   any
	}{
		{"chdb_connect", &lib.connect},
		{"chdb_close_conn", &lib.closeConn},
		{"chdb_query_n", &lib.queryN},
		{"chdb_result_buffer", &lib.resultBuffer},
		{"chdb_result_length", &lib.resultLength},
		{"chdb_result_error", &lib.resultError},
		{"chdb_destroy_query_result", &lib.destroyResult},
	}
	var missing []string
	for _, s := range syms {
		addr, err := purego.Dlsym(h, s.name)
		if err != nil || addr == 0 {
			missing = append(missing, s.name)
			continue
		}
		purego.RegisterFunc(s.fn, addr)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("load %s: not a chDB library of the connection API (v2.x, %s): it lacks %s",
			path, Version, strings.Join(missing, ", "))
	}
	return lib, nil
}
