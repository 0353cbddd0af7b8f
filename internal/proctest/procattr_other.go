//go:build !linux

package proctest

import "syscall"

// SysProcAttr returns nil: only Linux can tie a process's life to the test binary's.
func SysProcAttr() *syscall.SysProcAttr { return nil }
