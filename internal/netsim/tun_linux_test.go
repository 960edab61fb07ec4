package netsim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// requireTun skips the test when this machine cannot build a TunPath, or
// fails it if UDT_NETNS=require, as CI sets it.
func requireTun(t *testing.T) {
	t.Helper()
	if err := TunAvailable(); err != nil {
		if os.Getenv("UDT_NETNS") == "require" {
			t.Fatal(err)
		}
		t.Skipf("%v (set UDT_NETNS=require to make this a failure)", err)
	}
}

// newTunPath builds a TunPath closed at the end of the test (see
// requireTun).
func newTunPath(t *testing.T, aToB, bToA LinkConfig) *TunPath {
	t.Helper()
	requireTun(t)
	p, err := NewTunPath(aToB, bToA, 1)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// tcpPair returns a TCP connection from A to B and its accepted end, both
// closed at the end of the test.
func tcpPair(t *testing.T, p *TunPath) (c, s *net.TCPConn) {
	t.Helper()
	var ln *net.TCPListener
	require.NoError(t, p.Do(1, func() (err error) {
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(1), 0)))
		return err
	}))
	defer ln.Close()
	require.NoError(t, p.Do(0, func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		c = nc.(*net.TCPConn)
		return nil
	}))
	t.Cleanup(func() { c.Close() })
	require.NoError(t, ln.SetDeadline(time.Now().Add(5*time.Second)))
	s, err := ln.AcceptTCP()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c, s
}

// maxSize returns a Drop hook that keeps the largest packet size in m.
func maxSize(m *atomic.Int64) func([]byte, int) bool {
	return func(p []byte, _ int) bool {
		if int64(len(p)) > m.Load() {
			m.Store(int64(len(p)))
		}
		return false
	}
}

func TestTunPathTCP(t *testing.T) {
	const rate, delay = 50e6, 10 * time.Millisecond
	var biggest atomic.Int64
	l := LinkConfig{Rate: rate, Delay: delay, Drop: maxSize(&biggest)}
	p := newTunPath(t, l, LinkConfig{Rate: rate, Delay: delay})
	c, s := tcpPair(t, p)
	require.Equal(t, p.Addr(0), c.LocalAddr().(*net.TCPAddr).AddrPort().Addr())
	require.Equal(t, p.Addr(0), s.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())

	// Round trip: the quickest of ten one-byte exchanges.
	echoed := make(chan error, 1)
	go func() {
		_, err := io.CopyN(s, s, 10)
		echoed <- err
	}()
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
	require.NoError(t, <-echoed)
	t.Logf("round trip %v (links add %v)", rtt, 2*delay)
	require.GreaterOrEqual(t, rtt, 2*delay)
	require.LessOrEqual(t, rtt, 2*delay*11/10+time.Millisecond)

	// Bulk: 8 MiB from A to B, compared byte for byte. The goodput is
	// measured past the first 2 MiB, once slow start and the recovery from
	// its overshoot are over.
	const n, warm = 8 << 20, 2 << 20
	data := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)
	sent := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		sent <- errors.Join(err, c.CloseWrite())
	}()
	got := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	start := time.Now()
	var warmAt time.Time
	var warmed int
	require.NoError(t, s.SetReadDeadline(start.Add(10*time.Second)))
	for {
		k, err := s.Read(buf)
		got = append(got, buf[:k]...)
		if warmAt.IsZero() && len(got) >= warm {
			warmAt, warmed = time.Now(), len(got)
		}
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
	}
	end := time.Now()
	require.NoError(t, <-sent)
	require.True(t, bytes.Equal(data, got), "TCP delivered %d bytes, not the %d sent", len(got), n)

	// TCP carries at most 1448 payload bytes (MSS less the timestamp
	// option) in each 1500-byte packet.
	ceiling := rate / 1e6 * 1448 / TunMTU
	steady := float64(len(got)-warmed) * 8 / 1e6 / end.Sub(warmAt).Seconds()
	whole := float64(n) * 8 / 1e6 / end.Sub(start).Seconds()
	st, _ := p.Stats()
	t.Logf("TCP goodput %.1f Mbit/s past the first 2 MiB, %.1f overall (ceiling %.1f); A→B %+v; largest packet %d bytes; sender %s",
		steady, whole, ceiling, st, biggest.Load(), tcpInfo(c))
	if steady < 0.85*ceiling {
		out, _ := p.Command(0, "ip", "-s", "link", "show", tunName).CombinedOutput()
		t.Logf("A's device:\n%s", out)
	}
	// Under -race the emulator's own goroutines run several times slower,
	// and on a CI host busy with other packages' tests it once forwarded
	// 36.9 Mbit/s of this 50 Mbit/s link, TCP's window (214 packets, twice
	// the path's) not binding: the link's rate is checked in CI's pass
	// without -race.
	if !raceEnabled {
		require.Greater(t, steady, 0.85*ceiling)
	}
	// The link's rate binds: over the whole transfer, not past the
	// warm-up, where a link that fell behind on a loaded host and caught
	// up (51.4 Mbit/s on this 50 Mbit/s link once in CI) counts high.
	require.Less(t, whole, rate/1e6)
	// No offloads: the kernel segments to the MTU before the link.
	require.LessOrEqual(t, biggest.Load(), int64(TunMTU))
	require.Greater(t, biggest.Load(), int64(TunMTU-100))
}

func TestTunPathUDPLoss(t *testing.T) {
	const n, loss = 2000, 0.1
	p := newTunPath(t, LinkConfig{Loss: loss, Delay: time.Millisecond}, LinkConfig{})
	var rc, sc *net.UDPConn
	require.NoError(t, p.Do(1, func() (err error) {
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(1), 0)))
		return err
	}))
	defer rc.Close()
	require.NoError(t, rc.SetReadBuffer(4<<20))
	require.NoError(t, p.Do(0, func() (err error) {
		sc, err = net.DialUDP("udp4", nil, rc.LocalAddr().(*net.UDPAddr))
		return err
	}))
	defer sc.Close()

	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			if _, err := rc.Read(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	for i := range n {
		_, err := sc.Write([]byte{byte(i), byte(i >> 8)})
		require.NoError(t, err)
		if i%20 == 19 {
			time.Sleep(time.Millisecond) // within the socket buffers
		}
	}
	require.Eventually(t, func() bool {
		st, _ := p.Stats()
		return st.Delivered+st.Dropped >= n && got.Load() >= int64(st.Delivered)
	}, 5*time.Second, 5*time.Millisecond, "datagrams still missing")
	rc.Close()
	<-done
	st, back := p.Stats()
	t.Logf("%d of %d datagrams arrived; A→B %+v", got.Load(), n, st)
	require.EqualValues(t, n, st.Sent, "the link carried packets other than the test's")
	require.EqualValues(t, n, st.Delivered+st.Dropped)
	require.EqualValues(t, got.Load(), st.Delivered)
	require.EqualValues(t, n*(20+8+2), st.SentBytes, "link bytes are IP packet bytes")
	require.InDelta(t, loss, float64(st.Dropped)/n, 0.025)
	require.Zero(t, back.Sent)
}

// TestTunPathObserve: the function sees every IP packet delivered in its
// direction, whole, and none after it is removed.
func TestTunPathObserve(t *testing.T) {
	const n = 100
	p := newTunPath(t, LinkConfig{Loss: 0.2}, LinkConfig{})
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
	var seen, seenBytes, back atomic.Int64
	var bad atomic.Value
	p.Observe(0, func(pkt []byte) {
		seen.Add(1)
		seenBytes.Add(int64(len(pkt)))
		// IPv4, UDP, to B, with the test's 3-byte payload.
		if len(pkt) != 20+8+3 || pkt[0]>>4 != 4 || pkt[9] != 17 || netip.AddrFrom4([4]byte(pkt[16:20])) != p.Addr(1) || pkt[28] != 'o' {
			bad.Store(fmt.Sprintf("% x", pkt))
		}
	})
	p.Observe(1, func([]byte) { back.Add(1) })
	send := func(k int) {
		for range k {
			_, err := sc.Write([]byte{'o', 'b', 's'})
			require.NoError(t, err)
		}
	}
	send(n)
	require.Eventually(t, func() bool {
		st, _ := p.Stats()
		return st.Delivered+st.Dropped >= n
	}, 5*time.Second, 5*time.Millisecond)
	st, _ := p.Stats()
	require.EqualValues(t, st.Delivered, seen.Load())
	require.EqualValues(t, st.Bytes, seenBytes.Load())
	require.Nil(t, bad.Load(), "unexpected packet")
	require.Zero(t, back.Load())

	p.Observe(0, nil)
	send(10)
	require.Eventually(t, func() bool {
		st, _ := p.Stats()
		return st.Delivered+st.Dropped >= n+10
	}, 5*time.Second, 5*time.Millisecond)
	require.EqualValues(t, st.Delivered, seen.Load(), "observed after Observe(0, nil)")
}

func TestTunPathTCPCongestion(t *testing.T) {
	p := newTunPath(t, LinkConfig{}, LinkConfig{})
	c, s := tcpPair(t, p)
	for _, name := range []string{"cubic", "bbr", "cubic"} {
		require.NoError(t, SetTCPCongestion(c, name))
		got, err := tcpCongestion(c)
		require.NoError(t, err)
		require.Equal(t, name, got)
	}
	err := SetTCPCongestion(s, "no-such-algorithm")
	require.ErrorIs(t, err, unix.ENOENT)
	require.ErrorContains(t, err, "no-such-algorithm")

	// The connection still works after the switches.
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)
	require.Equal(t, "ping", string(buf))
}

// TestForceSocketBuffers: buffers past net.core.wmem_max and rmem_max, on
// a connection and, through its listener, on the connections it accepts.
func TestForceSocketBuffers(t *testing.T) {
	const size = 16 << 20
	p := newTunPath(t, LinkConfig{}, LinkConfig{})
	var ln *net.TCPListener
	require.NoError(t, p.Do(1, func() (err error) {
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(1), 0)))
		return err
	}))
	defer ln.Close()
	require.NoError(t, ForceSocketBuffers(ln, size))
	var c *net.TCPConn
	require.NoError(t, p.Do(0, func() error {
		nc, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		if err == nil {
			c = nc.(*net.TCPConn)
		}
		return err
	}))
	defer c.Close()
	require.NoError(t, ForceSocketBuffers(c, size))
	require.NoError(t, ln.SetDeadline(time.Now().Add(5*time.Second)))
	s, err := ln.AcceptTCP()
	require.NoError(t, err)
	defer s.Close()
	for _, conn := range []*net.TCPConn{c, s} {
		for _, opt := range []int{unix.SO_SNDBUF, unix.SO_RCVBUF} {
			rc, err := conn.SyscallConn()
			require.NoError(t, err)
			var n int
			var gerr error
			require.NoError(t, rc.Control(func(fd uintptr) { n, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt) }))
			require.NoError(t, gerr)
			require.GreaterOrEqual(t, n, size, "option %d of %v", opt, conn.LocalAddr())
		}
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

func TestTunPathCommandAndClose(t *testing.T) {
	p := newTunPath(t, LinkConfig{}, LinkConfig{})
	for side := range 2 {
		out, err := p.Command(side, "ip", "-o", "-4", "addr", "show", "dev", tunName).CombinedOutput()
		require.NoError(t, err, "%s", out)
		want := fmt.Sprintf("inet %v peer %v/32", p.Addr(side), p.Addr(1-side))
		require.Contains(t, string(out), want)
	}
	// Both ends are in their namespaces only.
	out, err := exec.Command("ip", "-o", "addr").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), p.Addr(0).String())

	ns := []string{p.Namespace(0), p.Namespace(1)}
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "second Close")
	for _, n := range ns {
		_, err := os.Stat(tunNetnsDir + "/" + n)
		require.ErrorIs(t, err, os.ErrNotExist, "namespace %s left behind", n)
	}
	require.ErrorIs(t, p.Do(0, func() error { return nil }), net.ErrClosed)
	a, b := p.Stats()
	require.Zero(t, a.Sent+b.Sent, "an idle path carried packets")
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	require.NotContains(t, stacks, "netsim.(*TunPath)", "goroutines left after Close")
}

func TestTunPathDoError(t *testing.T) {
	p := newTunPath(t, LinkConfig{}, LinkConfig{})
	errFn := errors.New("from fn")
	var inside string
	require.ErrorIs(t, p.Do(1, func() error {
		b, err := os.Readlink("/proc/thread-self/ns/net")
		inside = b
		return errors.Join(err, errFn)
	}), errFn)
	outside, err := os.Readlink("/proc/thread-self/ns/net")
	require.NoError(t, err)
	require.NotEqual(t, outside, inside, "Do ran outside the namespace")
}

func TestTunStaleNamespaces(t *testing.T) {
	requireTun(t)
	// A process that has ended leaves its pid unused for a while.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	stale := fmt.Sprintf("%s%d-1-a", tunPrefix, cmd.Process.Pid)
	mine := fmt.Sprintf("%s%d-999999-a", tunPrefix, os.Getpid())
	for _, ns := range []string{stale, mine} {
		require.NoError(t, ipCmd("netns", "add", ns))
	}
	t.Cleanup(func() {
		for _, ns := range []string{stale, mine} {
			if _, err := os.Stat(tunNetnsDir + "/" + ns); err == nil {
				_ = ipCmd("netns", "del", ns)
			}
		}
	})
	removeStaleNamespaces()
	_, err := os.Stat(tunNetnsDir + "/" + stale)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = os.Stat(tunNetnsDir + "/" + mine)
	require.NoError(t, err, "removed a namespace of a live process")
}

// tcpInfo summarizes the kernel's view of connection c.
func tcpInfo(c *net.TCPConn) string {
	rc, err := c.SyscallConn()
	if err != nil {
		return err.Error()
	}
	var ti *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		ti, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return err.Error()
	}
	if gerr != nil {
		return gerr.Error()
	}
	return fmt.Sprintf("rtt %v, cwnd %d, %d segments retransmitted, %d retransmission timeouts",
		time.Duration(ti.Rtt)*time.Microsecond, ti.Snd_cwnd, ti.Total_retrans, ti.Total_rto)
}
