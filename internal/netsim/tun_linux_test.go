package netsim

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// newTunPath builds a TunPath, or skips when this machine cannot (fails if
// UDT_NETNS=require, as CI sets it).
func newTunPath(t *testing.T, aToB, bToA LinkConfig) *TunPath {
	t.Helper()
	if err := TunAvailable(); err != nil {
		if os.Getenv("UDT_NETNS") == "require" {
			t.Fatal(err)
		}
		t.Skipf("%v (set UDT_NETNS=require to make this a failure)", err)
	}
	p, err := NewTunPath(aToB, bToA, 1)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

func TestTunPathTCP(t *testing.T) {
	l := LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond}
	p := newTunPath(t, l, l)

	var ln net.Listener
	require.NoError(t, p.Do(1, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(p.Addr(1), 0).String())
		return err
	}))
	defer ln.Close()
	var c net.Conn
	require.NoError(t, p.Do(0, func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}))
	defer c.Close()
	s, err := ln.Accept()
	require.NoError(t, err)
	defer s.Close()

	// Round trip: the smallest of ten one-byte exchanges.
	go io.Copy(s, s)
	rtt := time.Hour
	one := []byte{1}
	for range 10 {
		start := time.Now()
		_, err := c.Write(one)
		require.NoError(t, err)
		_, err = io.ReadFull(c, one)
		require.NoError(t, err)
		rtt = min(rtt, time.Since(start))
	}
	t.Logf("round trip %v (set 20 ms)", rtt)
	require.InDelta(t, 20e-3, rtt.Seconds(), 2e-3+0.1*20e-3)

	// Bulk: 8 MiB one way at 50 Mbit/s, byte for byte.
	c2, s2 := dialPair(t, p)
	const n = 8 << 20
	data := bytes.Repeat([]byte("netsim tun "), n/11+1)[:n]
	go func() {
		c2.Write(data)
		c2.Close()
	}()
	start := time.Now()
	got, err := io.ReadAll(s2)
	require.NoError(t, err)
	secs := time.Since(start).Seconds()
	require.True(t, bytes.Equal(data, got), "TCP data differs")
	mbps := float64(n) * 8 / 1e6 / secs
	t.Logf("TCP goodput %.1f Mbit/s through a 50 Mbit/s link", mbps)
	require.Greater(t, mbps, 0.7*50)
	require.Less(t, mbps, 50.0)
}

// dialPair returns a fresh TCP connection from A to B.
func dialPair(t *testing.T, p *TunPath) (c, s net.Conn) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, p.Do(1, func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(p.Addr(1), 0).String())
		return err
	}))
	defer ln.Close()
	require.NoError(t, p.Do(0, func() (err error) {
		c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return err
	}))
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, s
}

func TestTunPathUDPLoss(t *testing.T) {
	p := newTunPath(t, LinkConfig{Loss: 0.1, Delay: time.Millisecond}, LinkConfig{})
	var rc, sc *net.UDPConn
	require.NoError(t, p.Do(1, func() (err error) {
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(1), 0)))
		return err
	}))
	defer rc.Close()
	require.NoError(t, p.Do(0, func() (err error) {
		sc, err = net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
		return err
	}))
	defer sc.Close()
	const n = 2000
	arrived := make(chan int)
	go func() {
		got := 0
		buf := make([]byte, 64)
		for {
			rc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := rc.Read(buf); err != nil {
				arrived <- got
				return
			}
			got++
		}
	}()
	for i := range n {
		_, err := sc.Write([]byte{byte(i), byte(i >> 8)})
		require.NoError(t, err)
		if i%20 == 19 {
			time.Sleep(time.Millisecond) // stay within socket buffers
		}
	}
	got := <-arrived
	st, _ := p.Stats()
	t.Logf("%d of %d datagrams arrived; link saw %d, dropped %d", got, n, st.Sent, st.Dropped)
	// The kernel may send a packet of its own (IPv6 link set-up) over the
	// link too.
	require.InDelta(t, n, got+int(st.Dropped), 3)
	require.InDelta(t, 0.1, float64(st.Dropped)/n, 0.01+0.1*0.1)
}

func TestTunPathTCPCongestionAndClose(t *testing.T) {
	p := newTunPath(t, LinkConfig{}, LinkConfig{})
	c, _ := dialPair(t, p)
	for _, name := range []string{"cubic", "bbr"} {
		require.NoError(t, SetTCPCongestion(c.(*net.TCPConn), name))
		got, err := tcpCongestion(c.(*net.TCPConn))
		require.NoError(t, err)
		require.Equal(t, name, got)
	}
	c.Close()
	ns := []string{p.Namespace(0), p.Namespace(1)}
	require.NoError(t, p.Close())
	for _, n := range ns {
		_, err := os.Stat("/var/run/netns/" + n)
		require.ErrorIs(t, err, os.ErrNotExist, "namespace %s left behind", n)
	}
}

func tcpCongestion(c *net.TCPConn) (string, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return "", err
	}
	var name string
	var gerr error
	err = rc.Control(func(fd uintptr) {
		name, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	if err != nil {
		return "", err
	}
	return name, gerr
}
