package promtest

import "syscall"

// sysProcAttr makes the kernel kill Prometheus when the test binary dies
// (a panic or a test timeout), so no Prometheus outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
