package udt

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/udt-go/udt/internal/leaktest"
)

// openFDs counts the process's open file descriptors, or -1 where
// /proc/self/fd does not exist.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// liveHeap is the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the second empties the pools' victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// 10,000 connections opened and closed, each carrying a byte each way:
// half dialed from a new socket each, half from one shared socket. After
// the loop the file descriptors and goroutines return to what they were
// before it, and the live heap to within 128 KiB of what it was after a
// warm-up round of 1,000 (the runtime keeps the descriptors of exited
// goroutines, as many as ran at once, and maps keep their grown size;
// neither grows with the number of connections).
func TestOpenCloseChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 connections; -short skips it")
	}
	// The last connections may stay registered a few seconds (linger,
	// then the peer's shutdown): leaktest.Find waits for them.
	before := goleak.IgnoreCurrent()
	defer func() { require.NoError(t, leaktest.Find(before), "goroutines outlived the connections") }()
	fds0, goroutines0 := openFDs(), runtime.NumGoroutine()
	churn(t, 1000, fds0, goroutines0)
	heap0 := liveHeap()
	const total = 10000
	took := churn(t, total, fds0, goroutines0)
	var heap uint64
	// The last connections' timers may still hold them for a moment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if heap = liveHeap(); heap <= heap0+128<<10 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d connections in %v; after: %d fds, %d goroutines (as before), live heap %d KiB (%d KiB after the warm-up)",
		total, took.Round(time.Millisecond), openFDs(), runtime.NumGoroutine(), heap>>10, heap0>>10)
	require.LessOrEqual(t, heap, heap0+128<<10, "the live heap grew by more than 128 KiB over 10,000 connections")
}

// churn opens and closes n connections with 8 dialers at once, then
// waits for the file descriptors and goroutines to return to fds0 and
// goroutines0; it returns how long the n took.
func churn(t *testing.T, n int64, fds0, goroutines0 int) time.Duration {
	t.Helper()
	const workers = 8
	cfg := Config{Linger: time.Second}
	ln, err := (&ListenConfig{Config: cfg}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	// The shared client socket, held open by a listener of its own.
	hold, err := (&ListenConfig{Config: cfg}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	shared := hold.Addr().(*net.UDPAddr)

	var served atomic.Int64
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			s, err := ln.AcceptUDT()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer s.Close()
				b := make([]byte, 1)
				if _, err := io.ReadFull(s, b); err != nil {
					return
				}
				if _, err := s.Write(b); err == nil {
					served.Add(1)
				}
			})
		}
	}()

	var peak atomic.Int64 // goroutines
	stopPeak := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopPeak:
				return
			case <-time.After(time.Millisecond):
			}
			if g := int64(runtime.NumGoroutine()); g > peak.Load() {
				peak.Store(g)
			}
		}
	}()
	start := time.Now()
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if err := churnOne(i, ln.Addr().String(), shared, cfg); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(stopPeak)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d connections in %v, at most %d goroutines at once (sampled each ms)", n, took.Round(time.Millisecond), peak.Load())
	require.NoError(t, ln.Close())
	require.NoError(t, hold.Close())
	<-serveDone
	require.EqualValues(t, n, served.Load())

	// Closed connections leave within closeWait (sooner once both sides'
	// shutdowns have crossed).
	deadline := time.Now().Add(closeWait + 10*time.Second)
	for {
		fds, goroutines := openFDs(), runtime.NumGoroutine()
		if fds <= fds0 && goroutines <= goroutines0 {
			return took
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d connections: %d fds (%d before), %d goroutines (%d before)",
				n, fds, fds0, goroutines, goroutines0)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// churnOne dials, echoes a byte and closes; odd i dial from shared.
func churnOne(i int64, addr string, shared *net.UDPAddr, cfg Config) error {
	d := Dialer{Config: cfg}
	if i%2 == 1 {
		d.LocalAddr = shared
	}
	c, err := d.DialUDT(context.Background(), "udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte{byte(i)}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != byte(i) {
		return fmt.Errorf("echo %d, want %d", b[0], byte(i))
	}
	return c.Close()
}
