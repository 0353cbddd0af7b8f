package chtest

import "syscall"

// sysProcAttr makes the kernel kill the server when the test binary dies
// (a panic or a test timeout), so no server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
