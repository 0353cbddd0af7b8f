package proctest

import "syscall"

// SysProcAttr makes the kernel kill a started server when the test binary
// dies (a panic or a test timeout), so no server outlives its test.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
