//go:build !linux

package udt

import (
	"fmt"
	"os"
)

// idleProcess is the child process of the idle memory tests, which need
// Linux (scale_internal_test.go).
func idleProcess(role string) {
	fmt.Fprintf(os.Stderr, "idle process %s: the scale tests run on Linux only\n", role)
	os.Exit(2)
}
