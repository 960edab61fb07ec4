package udt

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A listener with MaxConns refuses handshakes beyond it, queued and
// accepted connections both counting, and takes new ones again as soon
// as one is closed.
func TestListenerMaxConns(t *testing.T) {
	const limit = 5
	ln, err := (&ListenConfig{Config: Config{MaxConns: limit, Linger: -1}}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	for range limit {
		c, err := (&Dialer{}).DialUDT(t.Context(), "udp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	// Two accepted, three queued: all five count.
	var servers []*Conn
	for range 2 {
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		defer s.Close()
		servers = append(servers, s)
	}
	start := time.Now()
	_, err = (&Dialer{}).DialUDT(t.Context(), "udp", ln.Addr().String())
	require.ErrorIs(t, err, ErrConnRefused)
	require.Less(t, time.Since(start), time.Second, "refused at once, not timed out")
	ln.mu.Lock()
	refused := ln.refused
	ln.mu.Unlock()
	require.EqualValues(t, 1, refused)

	// Closing an accepted connection frees its place at once.
	require.NoError(t, servers[0].Close())
	c, err := (&Dialer{}).DialUDT(t.Context(), "udp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = (&Dialer{}).DialUDT(t.Context(), "udp", ln.Addr().String())
	require.ErrorIs(t, err, ErrConnRefused)
	require.EqualValues(t, limit, ln.m.open.Load())
}

// Dials from a shared local address stop at MaxConns with ErrTooManyConns,
// the socket's listener's connections counting too; a failed dial gives
// its place back.
func TestDialMaxConns(t *testing.T) {
	ln, err := (&ListenConfig{Config: Config{Linger: -1}}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	local := ln.Addr().(*net.UDPAddr)
	peer, err := (&ListenConfig{Config: Config{Linger: -1}}).ListenUDT(t.Context(), "udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer peer.Close()

	// One connection in from the peer's socket: it counts on ours.
	in, err := (&Dialer{LocalAddr: peer.Addr().(*net.UDPAddr)}).DialUDT(t.Context(), "udp", local.String())
	require.NoError(t, err)
	defer in.Close()
	s, err := ln.AcceptUDT()
	require.NoError(t, err)
	defer s.Close()

	d := Dialer{LocalAddr: local, Config: Config{MaxConns: 3, Linger: -1, ConnectTimeout: 300 * time.Millisecond}}
	// A dial that fails (nothing answers there) gives its place back.
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer silent.Close()
	_, err = d.DialUDT(t.Context(), "udp", silent.LocalAddr().String())
	require.ErrorIs(t, err, ErrHandshakeTimeout)

	for range 2 {
		c, err := d.DialUDT(t.Context(), "udp", peer.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	_, err = d.DialUDT(context.Background(), "udp", peer.Addr().String())
	require.ErrorIs(t, err, ErrTooManyConns)
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "dial", oe.Op)
	_, err = (&Dialer{LocalAddr: local, Config: Config{MaxConns: 3}}).DialRendezvous(t.Context(), "udp", local.String(), "127.0.0.1:9")
	require.Error(t, err) // the port has a listener; refused before the count

	require.EqualValues(t, 3, ln.m.open.Load())
	// A limit on another Config of the same socket sees the same count.
	c, err := (&Dialer{LocalAddr: local, Config: Config{MaxConns: 4}}).DialUDT(t.Context(), "udp", peer.Addr().String())
	require.NoError(t, err)
	c.Close()
}
