package udt

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIdleConnectionCost opens 500 connections through one listener from
// one dialing port, lets them go idle after a first exchange, and
// measures what each costs: heap bytes (both ends) and goroutines. Idle
// connections hold no buffers and no goroutine of their own; measured,
// about 4.4 KB each.
func TestIdleConnectionCost(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 500 connections")
	}
	const n = 500
	ln := listenRaw(t, Config{Backlog: n})
	// All dials from one port: one multiplexer on each side.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	d := Dialer{LocalAddr: probe.LocalAddr().(*net.UDPAddr)}
	require.NoError(t, probe.Close())
	first, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.NoError(t, err)
	s0, err := ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { first.Close(); s0.Close() })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	conns := make([]*Conn, 0, 2*n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	buf := make([]byte, 5)
	for range n {
		c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
		require.NoError(t, err)
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		conns = append(conns, c, s)
		_, err = c.Write([]byte("hello"))
		require.NoError(t, err)
		require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = s.Read(buf)
		require.NoError(t, err)
	}
	// Idle: everything acknowledged, buffers released.
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()

	perConn := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (2 * n)
	goroutines := float64(g1-g0) / (2 * n)
	t.Logf("%d idle connections (both ends): %.0f heap bytes and %.2f goroutines each", 2*n, perConn, goroutines)
	require.Less(t, perConn, float64(16<<10), "heap bytes per idle connection")
	require.Less(t, goroutines, 0.05, "goroutines per idle connection")
}
