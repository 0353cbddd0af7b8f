//go:build linux && (amd64 || arm64)

package chdb

import (
	"fmt"
	"syscall"
	"unsafe"
)

// kernelSigaction is the kernel's struct sigaction on linux/amd64 and
// linux/arm64 (not glibc's, whose mask is 128 bytes): what rt_sigaction(2)
// reads and writes when its last argument, the mask size, is 8.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// savedSignals are the signals whose handlers the library replaces when it
// connects: the fatal ones get ClickHouse's crash reporter, which prints a
// stack trace and sleeps before re-raising, and SIGTSTP (Ctrl-Z) gets the
// same handler. Go needs its own handlers of the fatal signals: a nil
// dereference is a SIGSEGV that the runtime turns into a panic. (Connecting
// also sets a handler of signal 34, the first real-time signal, which Go
// leaves alone and the engine uses itself.)
var savedSignals = []syscall.Signal{
	syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL,
	syscall.SIGABRT, syscall.SIGTRAP, syscall.SIGSYS, syscall.SIGTSTP,
}

// signalHandlers are saved signal dispositions.
type signalHandlers struct {
	sigs []syscall.Signal
	acts []kernelSigaction
	// replaced are the dispositions restore found and replaced, by signal
	// (tests put them back to show what the restore prevents).
	replaced map[syscall.Signal]kernelSigaction
}

// saveSignalHandlers reads the current dispositions of savedSignals.
func saveSignalHandlers() (*signalHandlers, error) {
	h := &signalHandlers{sigs: savedSignals, acts: make([]kernelSigaction, len(savedSignals))}
	for i, sig := range h.sigs {
		if err := rtSigaction(sig, nil, &h.acts[i]); err != nil {
			return nil, fmt.Errorf("save the handler of %v: %w", sig, err)
		}
	}
	return h, nil
}

// restore puts the saved dispositions back and returns the signals whose
// handler had been changed in between.
func (h *signalHandlers) restore() ([]syscall.Signal, error) {
	var changed []syscall.Signal
	for i, sig := range h.sigs {
		var cur kernelSigaction
		if err := rtSigaction(sig, nil, &cur); err != nil {
			return changed, fmt.Errorf("read the handler of %v: %w", sig, err)
		}
		if cur == h.acts[i] {
			continue
		}
		changed = append(changed, sig)
		if h.replaced == nil {
			h.replaced = map[syscall.Signal]kernelSigaction{}
		}
		h.replaced[sig] = cur
		if err := rtSigaction(sig, &h.acts[i], nil); err != nil {
			return changed, fmt.Errorf("restore the handler of %v: %w", sig, err)
		}
	}
	return changed, nil
}

// rtSigaction is the rt_sigaction system call. golang.org/x/sys/unix has
// no wrapper for it, and libc's sigaction would be a second foreign call.
func rtSigaction(sig syscall.Signal, act, old *kernelSigaction) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), unsafe.Sizeof(uint64(0)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
