package udt

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitMetrics waits up to 5 s for get's figures to satisfy ok, and returns
// them.
func waitMetrics(t *testing.T, get func() SocketMetrics, ok func(SocketMetrics) bool, what string) SocketMetrics {
	t.Helper()
	var m SocketMetrics
	require.Eventually(t, func() bool { m = get(); return ok(m) }, 5*time.Second, time.Millisecond,
		"%s; last figures: %+v", what, m)
	return m
}

// A stream moves the counters of both sockets: the listener's counts the
// accepted connection and the data in, the dialer's the dial and the data
// out, and what one side read the other wrote.
func TestSocketMetricsTransfer(t *testing.T) {
	const n = 4 << 20
	c, s := internalPair(t, Config{})
	srv, cli := s.SocketMetrics(), c.SocketMetrics()
	require.Equal(t, uint64(1), srv.Accepted)
	require.GreaterOrEqual(t, srv.Inductions, uint64(1)) // a slow answer draws a repeat
	require.Zero(t, srv.Dialed)
	require.Equal(t, int64(1), srv.Conns)
	require.Equal(t, uint64(1), cli.Dialed)
	require.Zero(t, cli.Accepted)
	require.Equal(t, int64(1), cli.Conns)

	transfer(t, c, s, n)
	pkts := uint64((n + c.payload - 1) / c.payload)
	// Loaded in this order, what the server read cannot exceed what the
	// client wrote: each side counts a datagram before writing it.
	srv, cli = s.SocketMetrics(), c.SocketMetrics()
	t.Logf("server: %+v", srv)
	t.Logf("client: %+v", cli)
	require.GreaterOrEqual(t, srv.PacketsIn, pkts, "data packets read")
	require.GreaterOrEqual(t, srv.BytesIn, uint64(n)+pkts*headerSize, "bytes read")
	require.GreaterOrEqual(t, cli.PacketsOut, pkts, "data packets written")
	require.LessOrEqual(t, srv.PacketsIn, cli.PacketsOut)
	require.LessOrEqual(t, srv.BytesIn, cli.BytesOut)
	require.Less(t, cli.BytesOut, uint64(3*n), "written more than thrice the stream")
	// ACKs, and the handshake answers, the other way.
	require.Positive(t, srv.PacketsOut)
	require.Positive(t, cli.PacketsIn)
	require.Zero(t, srv.Dropped)
	require.Zero(t, srv.Refused)
}

// Each reason the listener refuses a conclusion has its counter: the
// dials see ErrConnRefused, and nothing else moves.
func TestSocketMetricsRefused(t *testing.T) {
	dial := func(t *testing.T, ln *Listener, cfg Config) (*Conn, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err := (&Dialer{Config: cfg}).DialUDT(ctx, "udp", ln.Addr().String())
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return c, err
	}
	t.Run("backlog", func(t *testing.T) {
		ln := listenRaw(t, Config{Backlog: 1})
		_, err := dial(t, ln, Config{})
		require.NoError(t, err)
		_, err = dial(t, ln, Config{})
		require.ErrorIs(t, err, ErrConnRefused)
		m := ln.Metrics()
		require.Equal(t, HandshakeRefusals{BacklogFull: 1}, m.Refused)
		require.Equal(t, uint64(1), m.Accepted)
	})
	t.Run("MaxConns", func(t *testing.T) {
		ln := listenRaw(t, Config{MaxConns: 1})
		_, err := dial(t, ln, Config{})
		require.NoError(t, err)
		s, err := ln.AcceptUDT()
		require.NoError(t, err)
		defer s.Close()
		_, err = dial(t, ln, Config{})
		require.ErrorIs(t, err, ErrConnRefused)
		require.Equal(t, HandshakeRefusals{MaxConns: 1}, ln.Metrics().Refused)
	})
	t.Run("socket type", func(t *testing.T) {
		ln := listenRaw(t, Config{})
		_, err := dial(t, ln, Config{Type: TypeMessage})
		require.ErrorIs(t, err, ErrConnRefused)
		m := ln.Metrics()
		require.Equal(t, HandshakeRefusals{SocketType: 1}, m.Refused)
		require.Zero(t, m.Accepted)
	})
	t.Run("version", func(t *testing.T) {
		ln := listenRaw(t, Config{})
		r := newRawClient(t, ln.Addr())
		req := r.request(21)
		r.send(&req)
		_, reply, ok := r.recv(2 * time.Second)
		require.True(t, ok, "no cookie")
		req.reqType, req.cookie, req.version = reqConclusion, reply.cookie, 5
		r.send(&req)
		_, h, ok := r.recv(2 * time.Second)
		require.True(t, ok, "no answer")
		require.EqualValues(t, reqRefused, h.reqType)
		require.Equal(t, HandshakeRefusals{Version: 1}, ln.Metrics().Refused)
	})
}

// A conclusion that reaches a listener being closed is refused and
// counted. Only a Close between the receive worker's two looks at the
// listener makes one, so the test plays the worker, on a listener
// without a socket.
func TestSocketMetricsRefusedClosing(t *testing.T) {
	ln, _ := sinkListener(t, Config{}, 0)
	from := netip.MustParseAddrPort("127.0.0.1:4000")
	h := sinkConclusion(ln, from, 1)
	ln.mu.Lock()
	ln.closing = true
	ln.mu.Unlock()
	ln.conclude(&ln.m.rcvOut, &h, from, time.Now())
	ln.m.rcvOut.writeTo(ln.m, from)
	ln.mu.Lock()
	ln.closing = false // for the cleanup's Close
	ln.mu.Unlock()
	m := ln.Metrics()
	require.Equal(t, HandshakeRefusals{Closing: 1}, m.Refused)
	require.Equal(t, uint64(1), m.PacketsOut, "the refusal")
}

// Conclusions with forged cookies are dropped and counted, unanswered.
func TestSocketMetricsCookiesRejected(t *testing.T) {
	ln := listenRaw(t, Config{})
	r := newRawClient(t, ln.Addr())
	const forged = 7
	for i := range forged {
		req := r.request(uint32(30 + i))
		req.reqType, req.cookie = reqConclusion, 0xdeadbeef+uint32(i)
		r.send(&req)
	}
	m := waitMetrics(t, ln.Metrics, func(m SocketMetrics) bool { return m.CookiesRejected >= forged },
		"forged conclusions not counted")
	require.Equal(t, uint64(forged), m.CookiesRejected)
	require.Equal(t, uint64(forged), m.PacketsIn)
	require.Zero(t, m.PacketsOut, "a forged conclusion answered")
	require.Zero(t, m.Accepted)
}

// Datagrams the socket cannot use are dropped and counted by reason:
// garbage and a bad handshake as malformed, unknown destinations as
// unroutable, a connection's ID from another address as foreign.
func TestSocketMetricsDrops(t *testing.T) {
	_, s := internalPair(t, Config{})
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer other.Close()
	to := net.UDPAddrFromAddrPort(s.m.laddr)
	data := func(dst uint32) []byte {
		p := packet{pos: posSolo, inOrder: true, msg: 1, dst: dst, body: []byte("stray")}
		return p.append(nil)
	}
	hs := appendHandshakePacket(nil, 0, &handshake{version: udtVersion, reqType: reqInduction, socketID: 5})
	sends := []struct {
		b    []byte
		want DatagramDrops
	}{
		{[]byte("garbage"), DatagramDrops{Malformed: 1}},                             // shorter than a header
		{hs[:len(hs)-4], DatagramDrops{Malformed: 1}},                                // a handshake cut short
		{data(s.id ^ 0x1000), DatagramDrops{Unroutable: 1}},                          // no such socket
		{data(0x80000001), DatagramDrops{Unroutable: 1}},                             // IDs are 31-bit
		{appendControl(nil, ctrlKeepAlive, 0, 0, nil), DatagramDrops{Unroutable: 1}}, // dst 0, not a handshake
		{data(s.id), DatagramDrops{Foreign: 1}},                                      // the connection's, from elsewhere
	}
	for i, tc := range sends {
		before := s.SocketMetrics()
		_, err := other.WriteTo(tc.b, to)
		require.NoError(t, err)
		m := waitMetrics(t, s.SocketMetrics, func(m SocketMetrics) bool { return m.Dropped != before.Dropped },
			fmt.Sprintf("datagram %d not counted", i))
		got := m.Dropped
		got.Malformed -= before.Dropped.Malformed
		got.Unroutable -= before.Dropped.Unroutable
		got.Foreign -= before.Dropped.Foreign
		require.Equal(t, tc.want, got, "datagram %d", i)
	}
}

// A Transport counts the datagrams it queues for ReadNonUDTPacket and
// those it drops when the queue is full, and its caller's WriteTo, a
// refused one included; on both of its I/O paths.
func TestSocketMetricsTransport(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(*net.UDPConn) net.PacketConn
	}{
		{"batch", func(uc *net.UDPConn) net.PacketConn { return uc }},
		{"plain", func(uc *net.UDPConn) net.PacketConn { return struct{ net.PacketConn }{uc} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer uc.Close()
			require.NoError(t, uc.SetReadBuffer(4<<20)) // the drops counted are the queue's
			tr, err := NewTransport(tc.wrap(uc))
			require.NoError(t, err)
			defer tr.Close()
			other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			require.NoError(t, err)
			defer other.Close()
			const extra = 50
			for i := range NonUDTQueue + extra {
				_, err := other.WriteTo([]byte{byte(i >> 8), byte(i)}, uc.LocalAddr())
				require.NoError(t, err)
				if i%32 == 31 {
					time.Sleep(time.Millisecond)
				}
			}
			m := waitMetrics(t, tr.Metrics, func(m SocketMetrics) bool { return m.PacketsIn == NonUDTQueue+extra },
				"datagrams not read")
			require.Equal(t, uint64(NonUDTQueue), m.NonUDT)
			require.Equal(t, uint64(extra), m.Dropped.NonUDTQueueFull)
			require.Equal(t, uint64(extra), tr.NonUDTDropped())
			require.Equal(t, uint64(2*(NonUDTQueue+extra)), m.BytesIn)

			_, err = tr.WriteTo([]byte("reply"), other.LocalAddr())
			require.NoError(t, err)
			_, err = tr.WriteTo(make([]byte, 70000), other.LocalAddr()) // over UDP's limit
			require.Error(t, err)
			m = tr.Metrics()
			require.Equal(t, uint64(2), m.PacketsOut)
			require.Equal(t, uint64(70005), m.BytesOut)
			require.Equal(t, uint64(1), m.SendErrors)
		})
	}
}

// Data beyond the socket's ReceiveMemory, while the reader does not read,
// is dropped and counted (the sender's probes of the 2-packet window), and
// the held bytes show in ReceiveHeld; the stream arrives whole once read.
func TestSocketMetricsReceiveMemory(t *testing.T) {
	const budget, n = 64 << 10, 1 << 20
	c, s := internalPair(t, Config{ReceiveMemory: budget})
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(pattern(n))
		done <- err
	}()
	m := waitMetrics(t, s.SocketMetrics, func(m SocketMetrics) bool { return m.Dropped.ReceiveMemory > 0 },
		"nothing dropped over ReceiveMemory")
	require.Positive(t, m.ReceiveHeld)
	require.LessOrEqual(t, m.ReceiveHeld, int64(2*budget)) // repairs of a gap may go over
	got := make([]byte, n)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err := io.ReadFull(s, got)
	require.NoError(t, err)
	require.Equal(t, pattern(n), got)
	require.NoError(t, <-done)
}

// The send queue's depth shows a connection with paced data waiting, and
// falls back to 0 when it has sent everything.
func TestSocketMetricsSendQueueDepth(t *testing.T) {
	const n = 256 << 10
	c, s := internalPair(t, Config{MaxBandwidth: 1 << 20}) // about 250 ms for the stream
	go func() { _, _ = io.Copy(io.Discard, s) }()
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(pattern(n))
		done <- err
	}()
	waitMetrics(t, c.SocketMetrics, func(m SocketMetrics) bool { return m.SendQueueDepth == 1 },
		"the connection never seen waiting in the send queue")
	require.NoError(t, <-done)
	waitMetrics(t, c.SocketMetrics, func(m SocketMetrics) bool { return m.SendQueueDepth == 0 },
		"the send queue not empty after the stream")
}

// A stream's data goes out in batches that hold what falls due within
// batchWindow, up to txBatchMax packets, whatever the stream's rate: at
// least half of that on average. Written whenever the next packet was not
// yet due, a loopback stream at 7-8 Gbit/s wrote 12-18 packets a call,
// where 128 fell due within batchWindow (see sendWorker.waitUntil).
func TestSendBatchesFill(t *testing.T) {
	const n = 64 << 20
	c, s := internalPair(t, Config{})
	read := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, s, n)
		read <- err
	}()
	b0, p0 := c.m.ctr.batches.Load(), c.m.ctr.batched.Load()
	start := time.Now()
	_, err := c.Write(pattern(n))
	require.NoError(t, err)
	require.NoError(t, <-read)
	elapsed := time.Since(start)
	batches, packets := c.m.ctr.batches.Load()-b0, c.m.ctr.batched.Load()-p0
	require.Positive(t, batches)
	rate := float64(packets) / elapsed.Seconds()
	due := min(float64(txBatchMax), rate*batchWindow.Seconds())
	mean := float64(packets) / float64(batches)
	t.Logf("%d packets in %v (%.0f a second): %d writes, %.1f packets each; %.1f fall due within batchWindow",
		packets, elapsed.Round(time.Millisecond), rate, batches, mean, due)
	require.GreaterOrEqual(t, mean, due/2, "packets a write")
}

// sinkListener is a listener on a multiplexer with neither socket nor
// workers (sinkConn), holding n connections made from conclusions
// dispatched as the receive worker would, each from an address of its
// own. The test's goroutine plays the receive worker.
func sinkListener(tb testing.TB, cfg Config, n int) (*Listener, []*Conn) {
	tb.Helper()
	cfg.Backlog = maxBacklog
	cfg, err := cfg.withDefaults()
	require.NoError(tb, err)
	m := newMultiplexer(newSinkConn())
	ln, err := listenOn(m, cfg)
	require.NoError(tb, err)
	m.runPending() // installs the listener, as the worker would
	var conns []*Conn
	tb.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
		ln.Close()
	})
	for i := range n {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
		h := sinkConclusion(ln, from, i)
		m.dispatch(appendHandshakePacket(nil, 0, &h), from, time.Time{}, nil)
		select {
		case c := <-ln.accept:
			conns = append(conns, c)
		default:
			tb.Fatalf("conclusion %d made no connection", i)
		}
	}
	return ln, conns
}

// sinkConclusion is the i-th client's conclusion from from, with its
// cookie.
func sinkConclusion(ln *Listener, from netip.AddrPort, i int) handshake {
	h := handshake{version: udtVersion, sockType: sockStream, isn: uint32(i) * 7919, mss: 1500, window: 8192,
		reqType: reqConclusion, socketID: uint32(1 + i), cookie: ln.cookies.issue(from, time.Now())}
	putPeerIP(&h.peerIP, from.Addr())
	return h
}

// BenchmarkSocketMetrics reads a socket's figures with 10 and with 10,000
// connections open on it: the cost is the same (no walk over them).
func BenchmarkSocketMetrics(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			ln, _ := sinkListener(b, Config{}, n)
			require.Equal(b, int64(n), ln.Metrics().Conns)
			b.ReportAllocs()
			for b.Loop() {
				ln.Metrics()
			}
		})
	}
}
