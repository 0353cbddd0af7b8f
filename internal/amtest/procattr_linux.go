package amtest

import "syscall"

// sysProcAttr makes the kernel kill Alertmanager when the test binary dies
// (a panic or a test timeout), so no Alertmanager outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
