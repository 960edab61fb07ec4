package netsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/testenv"
)

func TestMain(m *testing.M) {
	before := goroutines()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(2 * time.Second)
		for goroutines() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := goroutines(); n > before {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "leaked goroutines: %d before, %d after\n%s\n", before, n, buf)
			code = 1
		}
	}
	os.Exit(code)
}

// goroutines counts the goroutines but the signal handler's, which the
// fuzzing engine starts (go test -fuzz) and leaves running.
func goroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if !bytes.Contains(g, []byte("os/signal.signal_recv")) {
			n++
		}
	}
	return n
}

// payload returns datagram i of size bytes (at least 8): the index, filler
// and a CRC-32 of the rest, so a changed byte anywhere is detected.
func payload(i, size int) []byte {
	p := make([]byte, max(size, 8))
	binary.BigEndian.PutUint32(p, uint32(i))
	for j := 4; j < len(p)-4; j++ {
		p[j] = byte(i*31 + j*7)
	}
	binary.BigEndian.PutUint32(p[len(p)-4:], crc32.ChecksumIEEE(p[:len(p)-4]))
	return p
}

// index returns the index of a datagram from payload and whether it is intact.
func index(p []byte) (int, bool) {
	if len(p) < 8 {
		return -1, false
	}
	return int(binary.BigEndian.Uint32(p)), binary.BigEndian.Uint32(p[len(p)-4:]) == crc32.ChecksumIEEE(p[:len(p)-4])
}

// readAll reads from c until nothing arrives for idle, returning the
// datagrams and the time each was read.
func readAll(t *testing.T, c net.PacketConn, idle time.Duration) ([][]byte, []time.Time) {
	t.Helper()
	var got [][]byte
	var at []time.Time
	buf := make([]byte, 1<<16)
	for {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(idle)))
		n, _, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got, at
		}
		require.NoError(t, err)
		got = append(got, slices.Clone(buf[:n]))
		at = append(at, time.Now())
	}
}

func TestLinkRateAndQueue(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(LinkConfig{Rate: 8e6, Delay: 10 * time.Millisecond}, 1) // 1 byte/µs; queue 64 KiB
	for range 100 {
		l.Send(now, make([]byte, 1000))
	}
	st := l.Stats()
	require.Equal(t, uint64(100), st.Sent)
	// 65 datagrams of 1000 bytes fit a 64 KiB queue (backlog before the 66th is 65,000).
	require.Equal(t, uint64(35), st.QueueDrops)
	next, ok := l.Next()
	require.True(t, ok)
	require.Equal(t, now.Add(11*time.Millisecond), next)
	buf := make([]byte, 2000)
	var last time.Time
	for i := range 65 {
		due := now.Add(10*time.Millisecond + time.Duration(i+1)*time.Millisecond)
		_, ok := l.Receive(due.Add(-time.Nanosecond), buf)
		require.False(t, ok, "datagram %d early", i)
		n, ok := l.Receive(due, buf)
		require.True(t, ok)
		require.Equal(t, 1000, n)
		last = due
	}
	_, ok = l.Next()
	require.False(t, ok)
	require.Equal(t, now.Add(75*time.Millisecond), last)
	require.Equal(t, uint64(65), l.Stats().Delivered)
}

func TestLinkSeedReplays(t *testing.T) {
	run := func(seed uint64) []int {
		l := New(LinkConfig{Loss: 0.3}, seed)
		var lost []int
		now := time.Now()
		buf := make([]byte, 8)
		for i := range 200 {
			l.Send(now, payload(i, 8))
			if _, ok := l.Receive(now, buf); !ok {
				lost = append(lost, i)
			}
		}
		return lost
	}
	require.Equal(t, run(7), run(7))
	require.NotEqual(t, run(7), run(8))
}

func TestLinkBurstLoss(t *testing.T) {
	ge := &GilbertElliott{PGoodToBad: 0.01, PBadToGood: 0.25, LossBad: 1}
	l := New(LinkConfig{Burst: ge}, 3)
	ge.LossBad = 0 // the link keeps its own copy
	now := time.Now()
	buf := make([]byte, 8)
	const n = 100_000
	var lost, bursts, run int
	for i := range n {
		l.Send(now, payload(i, 8))
		if _, ok := l.Receive(now, buf); ok {
			run = 0
			continue
		}
		lost++
		if run == 0 {
			bursts++
		}
		run++
	}
	require.InEpsilon(t, 0.01/0.26, float64(lost)/n, 0.1, "loss rate")
	require.InEpsilon(t, 4.0, float64(lost)/float64(bursts), 0.1, "mean burst")
	require.Equal(t, uint64(lost), l.Stats().Dropped)
	require.Equal(t, 1.0, l.Config().Burst.LossBad)
}

func TestPipeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Delay: 40 * time.Millisecond}, LinkConfig{Delay: 10 * time.Millisecond}, 1)
		defer a.Close()
		defer b.Close()
		buf := make([]byte, 64)

		start := time.Now()
		_, err := a.WriteTo([]byte("probe"), b.LocalAddr())
		require.NoError(t, err)
		n, from, err := b.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "probe", string(buf[:n]))
		require.Equal(t, a.LocalAddr(), from)
		require.InEpsilon(t, 40*time.Millisecond, time.Since(start), 0.1)

		_, err = b.WriteTo(buf[:n], from)
		require.NoError(t, err)
		_, from, err = a.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, b.LocalAddr(), from)
		require.InEpsilon(t, 50*time.Millisecond, time.Since(start), 0.1)
	})
}

func TestPipeJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay, jitter = 20 * time.Millisecond, 10 * time.Millisecond
		a, b := NewPacketPipe(LinkConfig{Delay: delay, Jitter: jitter}, LinkConfig{}, 2)
		defer a.Close()
		defer b.Close()
		const n = 1000
		sent := make([]time.Time, n)
		go func() {
			for i := range n {
				sent[i] = time.Now()
				_, _ = a.WriteTo(payload(i, 32), b.LocalAddr())
				time.Sleep(time.Millisecond)
			}
		}()
		got, at := readAll(t, b, time.Second)
		require.Len(t, got, n)
		inversions := 0
		prev := -1
		for k, p := range got {
			i, ok := index(p)
			require.True(t, ok)
			d := at[k].Sub(sent[i])
			require.GreaterOrEqual(t, d, delay)
			require.Less(t, d, delay+jitter)
			if i < prev {
				inversions++
			}
			prev = i
		}
		require.Positive(t, inversions, "jitter above the send gap reorders")
	})
}

func TestPipeLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Loss: 0.1}, LinkConfig{}, 3)
		defer a.Close()
		defer b.Close()
		const n = 20_000
		for i := range n {
			_, err := a.WriteTo(payload(i, 16), b.LocalAddr())
			require.NoError(t, err)
		}
		got, _ := readAll(t, b, time.Second)
		require.InEpsilon(t, 0.1, 1-float64(len(got))/n, 0.1)
		st := a.(*PipeConn).Link().Stats()
		require.Equal(t, uint64(n), st.Sent)
		require.Equal(t, uint64(n-len(got)), st.Dropped)
		require.Equal(t, uint64(len(got)), st.Delivered)
	})
}

func TestPipeRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate, size, n = 10e6, 1250, 1000
		a, b := NewPacketPipe(LinkConfig{Rate: rate, QueueBytes: 4 << 20, Delay: 5 * time.Millisecond}, LinkConfig{}, 4)
		defer a.Close()
		defer b.Close()
		for i := range n {
			_, err := a.WriteTo(payload(i, size), b.LocalAddr())
			require.NoError(t, err)
		}
		got, at := readAll(t, b, time.Second)
		require.Len(t, got, n)
		bps := float64((n-1)*size*8) / at[n-1].Sub(at[0]).Seconds()
		require.InEpsilon(t, rate, bps, 0.1)
	})

	t.Run("DropTail", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Queue is one BDP, 10 Mbit/s × 200 ms / 8 = 250,000 bytes: 200 datagrams.
			a, b := NewPacketPipe(LinkConfig{Rate: 10e6, Delay: 100 * time.Millisecond}, LinkConfig{}, 5)
			defer a.Close()
			defer b.Close()
			for i := range 1000 {
				_, err := a.WriteTo(payload(i, 1250), b.LocalAddr())
				require.NoError(t, err)
			}
			got, _ := readAll(t, b, time.Second)
			require.Len(t, got, 200)
			require.Equal(t, uint64(800), a.(*PipeConn).Link().Stats().QueueDrops)
		})
	})
}

func TestPipeDuplicateCorrupt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Duplicate: 0.1, Corrupt: 0.1, Jitter: time.Millisecond}, LinkConfig{}, 6)
		defer a.Close()
		defer b.Close()
		const n = 10_000
		for i := range n {
			_, err := a.WriteTo(payload(i, 64), b.LocalAddr())
			require.NoError(t, err)
		}
		got, _ := readAll(t, b, time.Second)
		st := a.(*PipeConn).Link().Stats()
		bad := 0
		for _, p := range got {
			if _, ok := index(p); !ok {
				bad++
			}
		}
		require.Equal(t, n+int(st.Duplicated), len(got))
		require.Equal(t, int(st.Corrupted), bad)
		require.InEpsilon(t, 0.1, float64(st.Duplicated)/n, 0.1)
		require.InEpsilon(t, 0.1, float64(st.Corrupted)/n, 0.1)
	})
}

func TestPipeCorruptChecksumCovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := LinkConfig{Corrupt: 0.1, ChecksumCovered: true, Delay: time.Millisecond}
		a, b := NewPacketPipe(cfg, LinkConfig{}, 9)
		defer a.Close()
		defer b.Close()
		const n = 5_000
		for i := range n {
			_, err := a.WriteTo(payload(i, 64), b.LocalAddr())
			require.NoError(t, err)
		}
		got, _ := readAll(t, b, time.Second)
		st := a.(*PipeConn).Link().Stats()
		for _, p := range got {
			_, ok := index(p)
			require.True(t, ok, "a corrupted datagram was delivered")
		}
		require.Equal(t, n-int(st.Corrupted), len(got))
		require.Equal(t, st.Corrupted, st.Dropped)
		require.InEpsilon(t, 0.1, float64(st.Corrupted)/n, 0.1)
	})
}

func TestPipeReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Reorder: 0.2, Delay: 5 * time.Millisecond}, LinkConfig{}, 7)
		defer a.Close()
		defer b.Close()
		const n = 1000
		go func() {
			for i := range n {
				_, _ = a.WriteTo(payload(i, 32), b.LocalAddr())
				time.Sleep(100 * time.Microsecond)
			}
		}()
		got, _ := readAll(t, b, time.Second)
		require.Len(t, got, n)
		late := 0
		highest := -1
		for _, p := range got {
			i, _ := index(p)
			if i < highest {
				late++
			}
			highest = max(highest, i)
		}
		st := a.(*PipeConn).Link().Stats()
		require.Equal(t, int(st.Reordered), late)
		require.InEpsilon(t, 0.2, float64(late)/n, 0.1)
	})
}

func TestPipeDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []int
		drop := func(p []byte, n int) bool {
			seen = append(seen, n)
			return n == 7
		}
		a, b := NewPacketPipe(LinkConfig{Drop: drop, Delay: time.Millisecond}, LinkConfig{}, 8)
		defer a.Close()
		defer b.Close()
		for i := 1; i <= 10; i++ {
			_, err := a.WriteTo(payload(i, 16), b.LocalAddr())
			require.NoError(t, err)
		}
		got, _ := readAll(t, b, time.Second)
		var ids []int
		for _, p := range got {
			i, ok := index(p)
			require.True(t, ok)
			ids = append(ids, i)
		}
		require.Equal(t, []int{1, 2, 3, 4, 5, 6, 8, 9, 10}, ids)
		require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, seen)
		require.Equal(t, uint64(1), a.(*PipeConn).Link().Stats().Dropped)
	})
}

func TestPipeBlackhole(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Blackhole: true}, LinkConfig{}, 9)
		defer a.Close()
		defer b.Close()
		for i := range 5 {
			_, err := a.WriteTo(payload(i, 16), b.LocalAddr())
			require.NoError(t, err)
		}
		got, _ := readAll(t, b, time.Second)
		require.Empty(t, got)
		l := a.(*PipeConn).Link()
		require.Equal(t, uint64(5), l.Stats().Dropped)

		l.SetConfig(LinkConfig{})
		_, err := a.WriteTo(payload(5, 16), b.LocalAddr())
		require.NoError(t, err)
		got, _ = readAll(t, b, time.Second)
		require.Len(t, got, 1)
	})
}

func TestPipeDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{}, LinkConfig{}, 10)
		defer a.Close()
		defer b.Close()
		buf := make([]byte, 16)
		requireTimeout := func(err error) {
			t.Helper()
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
		}

		// A deadline in the past fails at once.
		require.NoError(t, b.SetReadDeadline(time.Now().Add(-time.Second)))
		_, _, err := b.ReadFrom(buf)
		requireTimeout(err)

		// Data waiting does not beat a passed deadline; clearing it does.
		_, err = a.WriteTo([]byte("x"), b.LocalAddr())
		require.NoError(t, err)
		_, _, err = b.ReadFrom(buf)
		requireTimeout(err)
		require.NoError(t, b.SetReadDeadline(time.Time{}))
		n, _, err := b.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "x", string(buf[:n]))

		// A deadline set while a read blocks applies to it.
		start := time.Now()
		go func() {
			time.Sleep(10 * time.Millisecond)
			_ = b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		}()
		_, _, err = b.ReadFrom(buf)
		requireTimeout(err)
		require.Equal(t, 30*time.Millisecond, time.Since(start))

		// Extending it while blocked lets a later datagram through.
		require.NoError(t, b.SetReadDeadline(time.Now().Add(10*time.Millisecond)))
		go func() {
			time.Sleep(5 * time.Millisecond)
			_ = b.SetReadDeadline(time.Now().Add(time.Second))
			time.Sleep(20 * time.Millisecond)
			_, _ = a.WriteTo([]byte("late"), b.LocalAddr())
		}()
		n, _, err = b.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "late", string(buf[:n]))

		// Write deadlines and SetDeadline.
		require.NoError(t, a.SetWriteDeadline(time.Now().Add(-time.Second)))
		_, err = a.WriteTo([]byte("y"), b.LocalAddr())
		requireTimeout(err)
		require.NoError(t, a.SetDeadline(time.Time{}))
		_, err = a.WriteTo([]byte("y"), b.LocalAddr())
		require.NoError(t, err)
		require.NoError(t, b.SetDeadline(time.Time{}))

		// Short buffers truncate.
		n, _, err = b.ReadFrom(buf[:0])
		require.NoError(t, err)
		require.Zero(t, n)

		// Datagrams to other addresses vanish; other address types fail.
		_, err = a.WriteTo([]byte("z"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
		require.NoError(t, err)
		_, err = a.WriteTo([]byte("z"), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10002})
		require.Error(t, err)
		_, err = a.WriteTo(make([]byte, 70000), b.LocalAddr())
		require.Error(t, err)
		_, err = a.WriteTo([]byte("mapped"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[::ffff:127.0.0.1]:10002")))
		require.NoError(t, err)
		require.NoError(t, b.SetReadDeadline(time.Now().Add(time.Millisecond)))
		n, _, err = b.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "mapped", string(buf[:n]))
	})
}

func TestPipeClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Delay: 50 * time.Millisecond}, LinkConfig{}, 11)
		buf := make([]byte, 16)

		// Close unblocks a reader.
		errc := make(chan error, 1)
		go func() {
			_, _, err := a.ReadFrom(buf)
			errc <- err
		}()
		synctest.Wait()
		// What a sent before closing still arrives.
		_, err := a.WriteTo([]byte("bye"), b.LocalAddr())
		require.NoError(t, err)
		require.NoError(t, a.Close())
		require.ErrorIs(t, <-errc, net.ErrClosed)
		n, _, err := b.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, "bye", string(buf[:n]))

		require.NoError(t, a.Close(), "Close is idempotent")
		_, _, err = a.ReadFrom(buf)
		require.ErrorIs(t, err, net.ErrClosed)
		_, err = a.WriteTo(buf, b.LocalAddr())
		require.ErrorIs(t, err, net.ErrClosed)
		require.ErrorIs(t, a.SetDeadline(time.Now()), net.ErrClosed)
		var oe *net.OpError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, "write", oe.Op)

		// Writing to a closed peer succeeds and goes nowhere.
		_, err = b.WriteTo([]byte("nobody"), a.LocalAddr())
		require.NoError(t, err)
		require.NoError(t, b.Close())
	})
}

func TestPipeConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := NewPacketPipe(LinkConfig{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: 0.05}, LinkConfig{Delay: time.Millisecond}, 12)
		defer a.Close()
		var got atomic.Int64
		done := make(chan struct{})
		for range 4 {
			go func() {
				buf := make([]byte, 64)
				for {
					if _, _, err := b.ReadFrom(buf); err != nil {
						done <- struct{}{}
						return
					}
					got.Add(1)
				}
			}()
		}
		for w := range 4 {
			go func() {
				for i := range 1000 {
					_, _ = a.WriteTo(payload(w*1000+i, 32), b.LocalAddr())
					if i%10 == 0 {
						a.(*PipeConn).Link().SetConfig(LinkConfig{Delay: time.Duration(i%3) * time.Millisecond, Loss: 0.05})
					}
					time.Sleep(10 * time.Microsecond)
				}
			}()
		}
		time.Sleep(time.Second)
		require.NoError(t, b.Close())
		for range 4 {
			<-done
		}
		st := a.(*PipeConn).Link().Stats()
		require.Equal(t, uint64(4000), st.Sent)
		require.Equal(t, st.Delivered, uint64(got.Load()))
		require.Equal(t, uint64(4000), st.Delivered+st.Dropped)
	})
}

// listenUDP returns a socket on 127.0.0.1 (or ::1), closed at cleanup.
func listenUDP(tb testing.TB, network string) *net.UDPConn {
	tb.Helper()
	ip := net.IPv4(127, 0, 0, 1)
	if network == "udp6" {
		ip = net.IPv6loopback
	}
	if network == "udp6" {
		testenv.NeedIPv6(tb)
	}
	c, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	require.NoError(tb, err)
	setBuffers(c)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// echo answers every datagram on c until c closes.
func echo(c *net.UDPConn) {
	buf := make([]byte, 1<<16)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = c.WriteToUDPAddrPort(buf[:n], from)
	}
}

func newRelay(t *testing.T, target *net.UDPConn, to, from LinkConfig) *Relay {
	t.Helper()
	r, err := NewRelay(target.LocalAddr().(*net.UDPAddr), to, from, 1)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting for "+what)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

func TestRelayDelay(t *testing.T) {
	const delay = 20 * time.Millisecond
	target := listenUDP(t, "udp4")
	r := newRelay(t, target, LinkConfig{Delay: delay}, LinkConfig{})
	client := listenUDP(t, "udp4")
	buf := make([]byte, 64)
	var oneway []time.Duration
	for i := range 9 {
		start := time.Now()
		_, err := client.WriteTo(payload(i, 16), r.Addr())
		require.NoError(t, err)
		require.NoError(t, target.SetReadDeadline(time.Now().Add(time.Second)))
		n, from, err := target.ReadFrom(buf)
		require.NoError(t, err)
		oneway = append(oneway, time.Since(start))
		j, ok := index(buf[:n])
		require.True(t, ok)
		require.Equal(t, i, j)

		// The reply finds its way back to the client, from the relay.
		_, err = target.WriteTo(buf[:n], from)
		require.NoError(t, err)
		require.NoError(t, client.SetReadDeadline(time.Now().Add(time.Second)))
		_, rfrom, err := client.ReadFromUDPAddrPort(buf)
		require.NoError(t, err)
		require.Equal(t, r.Addr().AddrPort(), rfrom)
	}
	slices.Sort(oneway)
	median := oneway[len(oneway)/2]
	t.Logf("one-way delay: min %v median %v max %v", oneway[0], median, oneway[len(oneway)-1])
	require.InEpsilon(t, delay, median, 0.1)
	require.GreaterOrEqual(t, oneway[0], delay)
}

func TestRelayLoss(t *testing.T) {
	target := listenUDP(t, "udp4")
	// The test's datagrams carry a marker: other packages' tests run
	// beside this one, and a stray datagram (a peer's keep-alive to a port
	// since reused) must not count as delivered.
	p := bytes.Repeat([]byte{0xA5}, 64)
	var got atomic.Uint64
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, _, err := target.ReadFrom(buf)
			if err != nil {
				return
			}
			if bytes.Equal(buf[:n], p) {
				got.Add(1)
			}
		}
	}()
	r := newRelay(t, target, LinkConfig{Loss: 0.1}, LinkConfig{})
	toTarget, _ := r.Links()
	client := listenUDP(t, "udp4")
	const n, batch = 20_000, 500
	for i := 0; i < n; i += batch {
		for range batch {
			_, err := client.WriteTo(p, r.Addr())
			require.NoError(t, err)
		}
		// Pace by batches so no socket buffer overflows; a batch is done
		// when every datagram of it is delivered or dropped (the last one
		// may still be in the link when the reader has caught up).
		waitFor(t, "batch", func() bool {
			st := toTarget.Stats()
			return st.Sent == uint64(i+batch) && st.Delivered+st.Dropped == st.Sent && got.Load() == st.Delivered
		})
	}
	st := toTarget.Stats()
	require.Equal(t, uint64(n), st.Sent)
	require.Equal(t, st.Delivered, got.Load())
	require.Equal(t, uint64(n), st.Delivered+st.Dropped)
	require.InEpsilon(t, 0.1, float64(st.Dropped)/n, 0.1)
}

func TestRelayDrop(t *testing.T) {
	target := listenUDP(t, "udp4")
	r := newRelay(t, target, LinkConfig{Drop: func(p []byte, n int) bool { return n == 3 }}, LinkConfig{})
	client := listenUDP(t, "udp4")
	buf := make([]byte, 64)
	var ids []int
	for i := 1; i <= 5; i++ {
		_, err := client.WriteTo(payload(i, 16), r.Addr())
		require.NoError(t, err)
		if i == 3 {
			continue
		}
		require.NoError(t, target.SetReadDeadline(time.Now().Add(time.Second)))
		n, _, err := target.ReadFrom(buf)
		require.NoError(t, err)
		j, _ := index(buf[:n])
		ids = append(ids, j)
	}
	require.Equal(t, []int{1, 2, 4, 5}, ids)
	to, _ := r.Stats()
	require.Equal(t, uint64(1), to.Dropped)

	// Reconfigured at run time: replies blackholed.
	r.SetConfig(LinkConfig{}, LinkConfig{Blackhole: true})
	go echo(target)
	_, err := client.WriteTo(payload(6, 16), r.Addr())
	require.NoError(t, err)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, _, err = client.ReadFrom(buf)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	_, from := r.Stats()
	require.Equal(t, uint64(1), from.Dropped)
}

func TestRelayClients(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			target := listenUDP(t, network)
			go echo(target)
			r := newRelay(t, target, LinkConfig{Delay: time.Millisecond}, LinkConfig{Delay: time.Millisecond})
			require.Equal(t, network == "udp6", r.Addr().IP.To4() == nil)
			clients := []*net.UDPConn{listenUDP(t, network), listenUDP(t, network), listenUDP(t, network)}
			for round := range 3 {
				for i, c := range clients {
					_, err := c.WriteTo(payload(round*10+i, 32), r.Addr())
					require.NoError(t, err)
				}
				for i, c := range clients {
					buf := make([]byte, 64)
					require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
					n, _, err := c.ReadFrom(buf)
					require.NoError(t, err)
					j, ok := index(buf[:n])
					require.True(t, ok)
					require.Equal(t, round*10+i, j)
				}
			}
			waitFor(t, "counters", func() bool {
				to, from := r.Stats()
				return to.Delivered == 9 && from.Delivered == 9
			})
		})
	}
}

func TestRelayClose(t *testing.T) {
	before := runtime.NumGoroutine()
	target := listenUDP(t, "udp4")
	r, err := NewRelay(target.LocalAddr().(*net.UDPAddr), LinkConfig{Delay: time.Second}, LinkConfig{}, 1)
	require.NoError(t, err)
	for range 3 {
		c := listenUDP(t, "udp4")
		for i := range 10 {
			_, err := c.WriteTo(payload(i, 100), r.Addr())
			require.NoError(t, err)
		}
	}
	waitFor(t, "datagrams in flight", func() bool {
		to, _ := r.Stats()
		return to.Sent == 30
	})
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	to, _ := r.Stats()
	require.Equal(t, uint64(30), to.Overflow, "in flight at Close")
	require.NoError(t, target.Close())
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

func TestRelayTargetGone(t *testing.T) {
	target := listenUDP(t, "udp4")
	r := newRelay(t, target, LinkConfig{}, LinkConfig{})
	require.NoError(t, target.Close())
	client := listenUDP(t, "udp4")
	// ICMP port-unreachable errors on the upstream socket do not stop the relay.
	for i := range 5 {
		_, err := client.WriteTo(payload(i, 16), r.Addr())
		require.NoError(t, err)
	}
	waitFor(t, "datagrams relayed", func() bool {
		to, _ := r.Stats()
		return to.Sent == 5
	})
	_, err := NewRelay(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, LinkConfig{}, LinkConfig{}, 1)
	require.Error(t, err)
}

// BenchmarkRelayThroughput pushes 1472-byte datagrams from one UDP socket
// through a relay to another, keeping at most a window of them unreceived so
// no socket buffer overflows. Mbit/s counts delivered payload.
func BenchmarkRelayThroughput(b *testing.B) {
	b.Run("unimpaired", func(b *testing.B) { benchRelay(b, LinkConfig{}) })
	b.Run("delay=1ms", func(b *testing.B) { benchRelay(b, LinkConfig{Delay: time.Millisecond}) })
}

func benchRelay(b *testing.B, cfg LinkConfig) {
	const size, window = 1472, 512
	dst := listenUDP(b, "udp4")
	r, err := NewRelay(dst.LocalAddr().(*net.UDPAddr), cfg, LinkConfig{}, 1)
	require.NoError(b, err)
	defer r.Close()
	src := listenUDP(b, "udp4")

	var got atomic.Int64
	credit := make(chan struct{}, window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := dst.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
			select {
			case <-credit:
			default:
			}
		}
	}()

	p := make([]byte, size)
	to := r.Addr().AddrPort()
	timer := time.NewTimer(time.Hour)
	b.SetBytes(size)
	b.ReportAllocs()
	sent := 0
	for b.Loop() {
		select {
		case credit <- struct{}{}:
		default:
			timer.Reset(20 * time.Millisecond)
			select {
			case credit <- struct{}{}:
			case <-timer.C:
				// The window is lost; start a new one.
				for len(credit) > 0 {
					<-credit
				}
				credit <- struct{}{}
			}
		}
		if _, err := src.WriteToUDPAddrPort(p, to); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	elapsed := b.Elapsed()
	delivered := got.Load()
	b.ReportMetric(float64(delivered)*size*8/elapsed.Seconds()/1e6, "Mbit/s")
	b.ReportMetric(100*float64(delivered)/float64(sent), "%delivered")
	_ = dst.Close()
	<-done
}

// BenchmarkPipeThroughput pushes 1472-byte datagrams through an unimpaired
// in-memory pipe in real time.
func BenchmarkPipeThroughput(b *testing.B) {
	const size = 1472
	a, c := NewPacketPipe(LinkConfig{}, LinkConfig{}, 1)
	defer a.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	p := make([]byte, size)
	to := c.LocalAddr()
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.WriteTo(p, to); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	<-done
	st := a.(*PipeConn).Link().Stats()
	b.ReportMetric(float64(st.Bytes)*8/b.Elapsed().Seconds()/1e6, "Mbit/s")
}
