// Package leaktest waits for goroutines to wind down before reporting
// them as leaked, for the module's tests.
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Patience is how long Find waits. A connection closed at the end of a
// test may stay registered a few seconds (its linger, then the peer's
// shutdown), more on a loaded machine than goleak's own retries (about
// two seconds) allow.
const Patience = 15 * time.Second

// Find retries goleak.Find with opts for up to Patience and returns its
// last error, nil once no unexpected goroutine is left.
func Find(opts ...goleak.Option) error {
	var err error
	for deadline := time.Now().Add(Patience); time.Now().Before(deadline); {
		if err = goleak.Find(opts...); err == nil {
			return nil
		}
	}
	return err
}

// Main runs m's tests and fails the run when goroutines outlive them (see
// Find); a TestMain calls it.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
