package udt

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// internalPair returns a dialed conn and its accepted peer.
func internalPair(t *testing.T, cfg Config) (*Conn, *Conn) {
	t.Helper()
	ln := listenRaw(t, cfg)
	d := Dialer{Config: cfg}
	c, err := d.DialUDT(context.Background(), "udp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, s
}

func TestSilentPeerIsLost(t *testing.T) {
	c, s := internalPair(t, Config{PeerIdleTimeout: time.Second, Linger: -1})
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)

	// The server's socket dies: from the client's side the peer goes silent.
	require.NoError(t, s.m.conn.Close())
	start := time.Now()
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		readErr <- err
	}()
	select {
	case err := <-readErr:
		require.ErrorIs(t, err, ErrConnLost)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout())
		// Its own error: not a passed deadline, nor the peer's shutdown.
		require.NotErrorIs(t, err, os.ErrDeadlineExceeded)
		require.NotErrorIs(t, err, io.EOF)
		var op *net.OpError
		require.ErrorAs(t, err, &op)
		require.Equal(t, "read", op.Op)
		require.Equal(t, "udt", op.Net)
		require.Equal(t, c.LocalAddr().String(), op.Source.String())
		require.Equal(t, c.RemoteAddr().String(), op.Addr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not fail after the peer went silent")
	}
	require.Less(t, time.Since(start), 3*time.Second)
	_, err = c.Write([]byte("x"))
	require.ErrorIs(t, err, ErrConnLost)
}

// TestEXPScheduleMatchesCpp checks the default broken-connection rule: the
// 17th consecutive EXP expiry, about 46 s of silence at the 300 ms floor,
// with keep-alives sent meanwhile.
func TestEXPScheduleMatchesCpp(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer.Stop()
	now := c.lastHeard
	start := now
	var ob outbox
	keepalives := 0
	for c.err == nil {
		now = c.lastHeard.Add(c.expInterval())
		c.onExpiryLocked(now, &ob)
		keepalives = len(ob.ends)
		require.Less(t, now.Sub(start), 2*time.Minute)
	}
	require.ErrorIs(t, c.err, ErrConnLost)
	silent := now.Sub(start)
	require.InDelta(t, 45.9, silent.Seconds(), 1.5, "silence before the connection is lost")
	require.Equal(t, 16, keepalives, "a keep-alive at each expiry before the last")
	c.err = nil // let Cleanup close normally
}
