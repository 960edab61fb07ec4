package udt

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// faultyConn is a real UDP socket whose reads can be made to fail with a
// chosen error, as a broken or flooded socket's do.
type faultyConn struct {
	udpConn
	inject atomic.Pointer[error]
}

func newFaultyConn(t *testing.T) *faultyConn {
	t.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	return &faultyConn{udpConn: udpConn{c: uc}}
}

func (f *faultyConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		if e := f.inject.Load(); e != nil {
			return 0, netip.AddrPort{}, *e
		}
		n, from, err := f.udpConn.ReadFrom(b)
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			_ = f.c.SetReadDeadline(time.Time{})
			continue // woken to fail, or the fault was cleared meanwhile
		}
		return n, from, err
	}
}

// setFault makes reads fail with err from now on (nil clears it).
func (f *faultyConn) setFault(err error) {
	if err == nil {
		f.inject.Store(nil)
		return
	}
	f.inject.Store(&err)
	_ = f.c.SetReadDeadline(time.Now()) // wake a blocked read
}

// faultyServer listens on a faultyConn and connects a client to it from
// an ordinary socket; it returns the server's end, its listener and socket,
// and the client's end.
func faultyServer(t *testing.T, cfg Config) (s *Conn, ln *Listener, fc *faultyConn, c *Conn) {
	t.Helper()
	cfg, err := cfg.withDefaults()
	require.NoError(t, err)
	fc = newFaultyConn(t)
	m := newMultiplexer(fc)
	m.start()
	ln, err = listenOn(m, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	d := Dialer{Config: cfg}
	c, err = d.DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err = ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s, ln, fc, c
}

// echoSome checks that c's bytes reach s.
func echoSome(t *testing.T, c, s *Conn, msg string) {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	got := make([]byte, len(msg))
	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, msg, string(got))
}

// blockedCalls starts a Read and a Write on s that can only end in an
// error (the Write fills the send buffer, which the client never drains
// once the socket is dead) and returns their results.
func blockedCalls(s *Conn) (readErr, writeErr <-chan error) {
	r, w := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 1))
		r <- err
	}()
	go func() {
		_, err := s.Write(make([]byte, 64<<20))
		w <- err
	}()
	return r, w
}

func requireSocketError(t *testing.T, ch <-chan error, within time.Duration, cause error) {
	t.Helper()
	select {
	case err := <-ch:
		var se *SocketError
		require.ErrorAs(t, err, &se)
		require.ErrorIs(t, err, cause)
	case <-time.After(within):
		t.Fatalf("no error within %v of the socket failing", within)
	}
}

// A multiplexer whose socket is closed from outside ends everything on
// it at once with a *SocketError: established connections' blocked Read
// and Write, the listener's Accept, and a dial in progress.
func TestSocketClosedUnderneath(t *testing.T) {
	s, ln, fc, _ := faultyServer(t, Config{Linger: -1})
	// A dial from the same socket to a port that never answers.
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	dialErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cfg, _ := Config{}.withDefaults()
		cfg.ConnectTimeout = 10 * time.Second
		registry.mu.Lock()
		ln.m.refs++ // the dial's reference, as acquireMux takes one
		registry.mu.Unlock()
		_, err := dialOn(ctx, ln.m, cfg, silent.LocalAddr().(*net.UDPAddr).AddrPort())
		dialErr <- err
	}()
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		acceptErr <- err
	}()
	readErr, writeErr := blockedCalls(s)
	time.Sleep(200 * time.Millisecond) // all four are waiting

	failed := time.Now()
	require.NoError(t, fc.c.Close())
	for _, ch := range []<-chan error{readErr, writeErr, acceptErr, dialErr} {
		requireSocketError(t, ch, 2*time.Second, net.ErrClosed)
	}
	t.Logf("all four ended %v after the close", time.Since(failed).Round(time.Millisecond))
	_, err = s.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
}

// A socket in the registry that fails is taken out of it: a new listener
// on the same address gets a new socket and works.
func TestFailedSocketLeavesRegistry(t *testing.T) {
	ln, err := (&ListenConfig{}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	addr := ln.Addr().String()
	require.NoError(t, ln.m.conn.Close())
	_, err = ln.Accept()
	var se *SocketError
	require.ErrorAs(t, err, &se)

	ln2, err := (&ListenConfig{}).ListenUDT(t.Context(), "udp4", addr)
	require.NoError(t, err, "listening again on the failed socket's address")
	defer ln2.Close()
	require.NotSame(t, ln.m, ln2.m)
	done := make(chan error, 1)
	go func() {
		c, err := ln2.Accept()
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	c, err := Dial("udp", addr)
	require.NoError(t, err)
	c.Close()
	require.NoError(t, <-done)
}

// Read errors that pass (ICMP reports, a full buffer) leave the
// connections alone however long they last; an error not known to pass
// ends them once it has lasted failAfter.
func TestSocketReadErrors(t *testing.T) {
	s, ln, fc, c := faultyServer(t, Config{Linger: -1})
	echoSome(t, c, s, "before")

	fc.setFault(syscall.ECONNREFUSED)
	time.Sleep(2 * failAfter)
	fc.setFault(nil)
	echoSome(t, c, s, "after passing errors")

	readErr, writeErr := blockedCalls(s)
	acceptErr := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		acceptErr <- err
	}()
	start := time.Now()
	fc.setFault(syscall.EIO)
	requireSocketError(t, readErr, failAfter+2*time.Second, syscall.EIO)
	took := time.Since(start)
	require.GreaterOrEqual(t, took, failAfter, "ended before the error had lasted failAfter")
	requireSocketError(t, writeErr, time.Second, syscall.EIO)
	requireSocketError(t, acceptErr, time.Second, syscall.EIO)
	t.Logf("EIO ended the connection after %v", took.Round(time.Millisecond))
}
