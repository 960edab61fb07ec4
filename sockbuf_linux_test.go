package udt

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// A Transport's Listen and Dial raise the caller's socket buffers to what
// their Config asks (the system may cap them), and never lower a buffer
// the caller made larger.
func TestTransportGrowsBuffers(t *testing.T) {
	open := func(rcv int) *net.UDPConn {
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		t.Cleanup(func() { uc.Close() })
		require.NoError(t, uc.SetReadBuffer(rcv))
		return uc
	}
	small := open(64 << 10)
	r0, _, ok := socketBuffers(small)
	require.True(t, ok)
	tr, err := NewTransport(small)
	require.NoError(t, err)
	defer tr.Close()
	r1, _, _ := socketBuffers(small)
	require.Equal(t, r0, r1, "NewTransport leaves the buffers")
	ln, err := tr.Listen(Config{})
	require.NoError(t, err)
	defer ln.Close()
	r2, _, _ := socketBuffers(small)
	require.Greater(t, r2, r0, "Listen raised the receive buffer (%d -> %d)", r0, r2)

	large := open(1 << 20)
	r0, _, _ = socketBuffers(large)
	tr2, err := NewTransport(large)
	require.NoError(t, err)
	defer tr2.Close()
	ln2, err := tr2.Listen(Config{UDPReceiveBuffer: 256 << 10})
	require.NoError(t, err)
	defer ln2.Close()
	r1, _, _ = socketBuffers(large)
	require.Equal(t, r0, r1, "a larger buffer of the caller's is left")
}

// A listener's socket that a dial shares grows to the dial's Config, and
// a socket of the library's own gets what its first Config asks, smaller
// than the system's default or not.
func TestSharedSocketGrowsBuffers(t *testing.T) {
	ln := listenRaw(t, Config{UDPReceiveBuffer: 64 << 10})
	uc := ln.m.conn.(udpConn).c
	r0, _, ok := socketBuffers(uc)
	require.True(t, ok)
	require.Equal(t, 64<<10, r0, "the first Config's buffer, as asked")

	other := listenRaw(t, Config{})
	d := Dialer{Config: Config{UDPReceiveBuffer: 1 << 20}, LocalAddr: ln.Addr().(*net.UDPAddr)}
	c, err := d.DialUDT(t.Context(), "udp", other.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.Same(t, ln.m, c.m, "the dial shares the listener's socket")
	r1, _, _ := socketBuffers(uc)
	require.Greater(t, r1, r0, "the dial grew the shared socket's receive buffer")

	d.Config.UDPReceiveBuffer = 128 << 10
	c2, err := d.DialUDT(t.Context(), "udp", other.Addr().String())
	require.NoError(t, err)
	defer c2.Close()
	r2, _, _ := socketBuffers(uc)
	require.Equal(t, r1, r2, "a smaller Config leaves a shared socket's buffer")
}
