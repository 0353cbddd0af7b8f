package chtest

import (
	"sync"
	"testing"

	"github.com/callwatch/callwatch/internal/proctest"
)

// Shared is one server for all the tests of a package: started by the first
// test that asks for it, killed by Run when the package's tests are done.
// Declare one in the test package and call Run from TestMain.
type Shared struct {
	once   sync.Once
	server *Server
	err    error
}

// NewShared returns a Shared whose server is not started yet.
func NewShared() *Shared { return &Shared{} }

// Get returns the shared server, starting it on first use. When ClickHouse
// is not installed it skips the test, or fails it when CI is "true"; when
// the server failed to start it fails the test.
func (sh *Shared) Get(t testing.TB) *Server {
	t.Helper()
	sh.once.Do(func() { sh.server, sh.err = StartServer("") })
	if sh.err != nil {
		proctest.SkipOrFatal(t, sh.err, ErrNotInstalled)
	}
	return sh.server
}

// Run runs the tests and then kills the server, if one was started. It
// returns m.Run's exit code: os.Exit(shared.Run(m)).
func (sh *Shared) Run(m *testing.M) int {
	code := m.Run()
	sh.Close()
	return code
}

// Close kills the server, if one was started.
func (sh *Shared) Close() {
	sh.once.Do(func() {}) // no server may start after Close
	if sh.server != nil {
		sh.server.Close()
	}
}
