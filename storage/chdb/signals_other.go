//go:build !(linux && (amd64 || arm64))

package chdb

import (
	"errors"
	"syscall"
)

type signalHandlers struct{}

func saveSignalHandlers() (*signalHandlers, error) {
	return nil, errors.New("saving signal handlers is implemented on linux/amd64 and linux/arm64 only")
}

func (h *signalHandlers) restore() ([]syscall.Signal, error) { return nil, nil }
