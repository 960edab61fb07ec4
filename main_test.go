package udt

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run when goroutines or multiplexers outlive the tests.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(base); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks(base int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		registry.mu.Lock()
		muxes := len(registry.muxes)
		registry.mu.Unlock()
		n := runtime.NumGoroutine()
		if muxes == 0 && n <= base {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			var ours []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "udt-go/udt") && !strings.Contains(g, "checkLeaks") {
					ours = append(ours, g)
				}
			}
			return fmt.Errorf("leak: %d multiplexers still registered, %d goroutines (%d at start):\n%s",
				muxes, n, base, strings.Join(ours, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
