package udt

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Closing a listener while handshakes are in flight: 100 dials, 2 ms
// apart, race the close. The application accepts 20, and closes the
// listener once the backlog of 30 is full and dials are being refused.
// Each dial ends within its connect timeout, refused, timed out (the ones
// after the close) or connected; a connection the application accepted
// keeps working; one queued but never accepted is closed by the listener,
// and its dialer's Read sees the end; the address is free for a new
// listener at once.
func TestListenerCloseDuringHandshakes(t *testing.T) {
	const (
		dials    = 100
		accepted = 20 // the application accepts this many, then closes
		backlog  = 30
		timeout  = time.Second
	)
	cfg := Config{ConnectTimeout: timeout, Linger: -1, Backlog: backlog}
	ln, err := (&ListenConfig{Config: cfg}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()

	type result struct {
		c    *Conn
		err  error
		took time.Duration
	}
	results := make(chan result, dials)
	var wg sync.WaitGroup
	for i := range dials {
		wg.Go(func() {
			time.Sleep(time.Duration(2*i) * time.Millisecond) // spread across the close
			start := time.Now()
			c, err := (&Dialer{Config: cfg}).DialUDT(context.Background(), "udp", addr)
			results <- result{c, err, time.Since(start)}
		})
	}
	// Accept some, echo on them from the server side, then close.
	var servers []*Conn
	for range accepted {
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		servers = append(servers, s)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		ln.mu.Lock()
		full := len(ln.accept) == backlog && ln.refused >= 5
		ln.mu.Unlock()
		if full {
			break
		}
		require.True(t, time.Now().Before(deadline), "the backlog did not fill")
	}
	require.NoError(t, ln.Close())
	_, err = ln.Accept()
	require.ErrorIs(t, err, net.ErrClosed)
	wg.Wait()
	close(results)

	// The address is free again: a new listener binds it.
	ln2, err := (&ListenConfig{Config: cfg}).ListenUDT(t.Context(), "udp4", addr)
	require.NoError(t, err, "listening again after Close")
	require.NoError(t, ln2.Close())

	byAddr := make(map[string]*Conn)
	for _, s := range servers {
		byAddr[s.RemoteAddr().String()] = s
		go func() { _, _ = io.Copy(s, s) }()
	}
	var connected, refused, timedOut, orphaned int
	for r := range results {
		require.Less(t, r.took, timeout+time.Second, "a dial outlived its connect timeout")
		switch {
		case errors.Is(r.err, ErrConnRefused):
			refused++
		case errors.Is(r.err, ErrHandshakeTimeout):
			timedOut++
		case r.err != nil:
			t.Fatalf("dial: unexpected error %v", r.err)
		case byAddr[r.c.LocalAddr().String()] != nil:
			connected++
			_, err := r.c.Write([]byte("ping"))
			require.NoError(t, err)
			got := make([]byte, 4)
			require.NoError(t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err = io.ReadFull(r.c, got)
			require.NoError(t, err, "an accepted connection stopped working when its listener closed")
			require.Equal(t, "ping", string(got))
			r.c.Close()
		default:
			// Queued, never accepted: the listener closed it and sent a
			// shutdown, which ends the stream.
			orphaned++
			require.NoError(t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
			_, err := r.c.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "an unaccepted connection was not shut down")
			r.c.Close()
		}
	}
	for _, s := range servers {
		s.Close()
	}
	t.Logf("%d dials: %d accepted and working, %d queued and shut down, %d refused, %d timed out",
		dials, connected, orphaned, refused, timedOut)
	require.Equal(t, accepted, connected)
	require.Equal(t, backlog, orphaned)
	require.Positive(t, refused)
	require.Positive(t, timedOut)
	require.Equal(t, dials, connected+orphaned+refused+timedOut)
}
