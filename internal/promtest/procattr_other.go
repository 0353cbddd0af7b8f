//go:build !linux

package promtest

import "syscall"

// sysProcAttr returns nil: only Linux can tie the process's life to the test binary's.
func sysProcAttr() *syscall.SysProcAttr { return nil }
