package udt

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run when multiplexers or goroutines outlive the
// tests. Started with UDT_TEST_PEER set, the test binary is
// instead a peer process for the fault tests (see peerProcess) or the
// idle memory tests (see idleProcess).
func TestMain(m *testing.M) {
	if role := os.Getenv("UDT_TEST_PEER"); role != "" {
		if strings.HasPrefix(role, "idle") {
			idleProcess(role)
		}
		peerProcess(role, os.Getenv("UDT_TEST_PEER_ADDR"))
		return
	}
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// ourGoroutines returns the stacks of goroutines running this module's code.
func ourGoroutines() []string {
	buf := make([]byte, 4<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	var ours []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if strings.Contains(g, "github.com/udt-go/udt") && !strings.Contains(g, "udt.checkLeaks") &&
			!strings.Contains(g, "udt.TestMain") {
			ours = append(ours, g)
		}
	}
	return ours
}

func checkLeaks() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		registry.mu.Lock()
		muxes := len(registry.muxes)
		registry.mu.Unlock()
		ours := ourGoroutines()
		if muxes == 0 && len(ours) == 0 {
			// Then any goroutine at all, the standard library's and the
			// dependencies' included (goleak waits a while for them).
			return goleak.Find()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leak: %d multiplexers still registered, %d goroutines:\n%s",
				muxes, len(ours), strings.Join(ours, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
