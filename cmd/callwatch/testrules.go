package main

import (
	"context"
	"fmt"
	"io"
)

// runTestRules runs `callwatch test rules` and returns the exit code.
func runTestRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "callwatch test rules: not implemented yet")
	return 1
}
