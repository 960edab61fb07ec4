package udt

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// TestHostilePeerPackets sends, from the peer's own address and to the
// right socket IDs, packets a broken or hostile peer might, while 16 MiB
// cross the connection: each must be dropped and counted, and the
// transfer must finish intact (4.11 would break the connection on some
// of them: an ACK or NAK beyond what was sent).
func TestHostilePeerPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
		c, s, pa, pb := simPair(t, l, l, Config{}, 9)
		toSender := func(b []byte) { // as if from s
			_, err := pb.WriteTo(b, pa.LocalAddr())
			require.NoError(t, err)
		}
		toReceiver := func(b []byte) { // as if from c
			_, err := pa.WriteTo(b, pb.LocalAddr())
			require.NoError(t, err)
		}
		c.mu.Lock()
		cid, sid := c.id, s.id
		c.mu.Unlock()

		done := make(chan float64, 1)
		go func() { done <- transfer(t, c, s, 16<<20) }()
		time.Sleep(200 * time.Millisecond) // mid-transfer

		c.mu.Lock()
		sent := c.snd.currSeq
		c.mu.Unlock()
		s.mu.Lock()
		last := s.rcv.lastSeq
		s.mu.Unlock()
		droppedC, droppedS := c.Stats().Total.Dropped, s.Stats().Total.Dropped
		malformedC := c.SocketMetrics().Dropped.Malformed

		nak := func(rs ...lossl.Range) []byte {
			return appendControl(nil, ctrlNAK, 0, cid, lossl.AppendNAK(nil, rs))
		}
		var long []lossl.Range
		for i := range 3000 {
			f := sent.Add(-6000 + 2*i)
			long = append(long, lossl.Range{First: f, Last: f})
		}
		inverted := binary.BigEndian.AppendUint32(nil, uint32(sent)|1<<31)
		inverted = binary.BigEndian.AppendUint32(inverted, uint32(sent.Add(-50)))
		toSenderBad := [][]byte{
			appendControl(nil, ctrlACK, 7, cid, (&ackBody{ack: sent.Add(20_000), words: 1}).append(nil)), // beyond what was sent
			appendControl(nil, ctrlACK, 8, cid, (&ackBody{ack: sent.Add(1 << 29), words: 6, rtt: 1, rate: 1, bandwidth: 1}).append(nil)),
			nak(lossl.Range{First: sent.Add(20_000), Last: sent.Add(20_010)}), // never sent (16 MiB is 11,500 packets)
			nak(lossl.Range{First: sent.Add(-10), Last: sent.Add(1 << 30)}),   // huge
			appendControl(nil, ctrlNAK, 0, cid, inverted),                     // first > last
			appendControl(nil, ctrlNAK, 0, cid, []byte{1, 2, 3}),              // truncated
			appendControl(nil, 0x1234, 0, cid, nil),                           // unknown type
			make([]byte, 10),                                                  // truncated datagrams
			make([]byte, 15),
		}
		for _, b := range toSenderBad {
			toSender(b)
		}
		toSender(nak(long...)) // thousands of entries: may be taken, bounded

		far := packet{seq: last.Add(100_000), msg: 1, pos: posSolo, dst: sid, body: []byte("far")}
		big := packet{seq: last.Inc(), msg: 1, pos: posSolo, dst: sid, body: make([]byte, 4000)}
		toReceiverBad := [][]byte{
			appendControl(nil, ctrlACK2, 123456, sid, nil),                                                            // answers no ACK
			appendControl(nil, ctrlDropReq, 1, sid, (&dropBody{first: last.Add(10), last: last.Add(20)}).append(nil)), // stream: ignored
			appendControl(nil, ctrlHandshake, 0, sid, make([]byte, 10)),                                               // truncated handshake
		}
		for _, b := range toReceiverBad {
			toReceiver(b)
		}
		toReceiver(append(far.appendHeader(nil), far.body...)) // far outside the window
		toReceiver(append(big.appendHeader(nil), big.body...)) // larger than the MSS allows

		mbps := <-done
		cs, ss := c.Stats().Total, s.Stats().Total
		t.Logf("transfer at %.1f Mbit/s intact; sender dropped %d bad packets, receiver %d control and %d data",
			mbps, cs.Dropped-droppedC, ss.Dropped-droppedS, ss.PktRecvDropped)
		require.GreaterOrEqual(t, cs.Dropped-droppedC, uint64(len(toSenderBad)-2), "sender's count of dropped packets")
		require.GreaterOrEqual(t, ss.Dropped-droppedS, uint64(len(toReceiverBad)-1), "receiver's count of dropped packets")
		require.GreaterOrEqual(t, ss.PktRecvDropped, uint64(2), "far and oversized data packets")
		// The truncated datagrams never reached the connection: the
		// sender's socket counts them, by reason.
		require.Equal(t, uint64(2), c.SocketMetrics().Dropped.Malformed-malformedC, "the sender's socket's malformed datagrams")
		c.mu.Lock()
		defer c.mu.Unlock()
		require.Zero(t, c.snd.loss.Len(), "losses left behind by the hostile reports")
	})
}

// TestLongNAKBounded sends the sender one loss report of 3,000 scattered
// single-packet losses, all in flight: it takes the first maxNAKRanges of
// them, in order, and leaves the rest to the report's repeats.
func TestLongNAKBounded(t *testing.T) {
	c, _ := internalPair(t, Config{Linger: -1})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.timer.Stop()
	const inFlight = 7000
	for range inFlight {
		require.True(t, c.snd.buf.Push(sndPkt{sentAt: int64(time.Second)}))
	}
	c.snd.currSeq = c.snd.lastAck.Add(inFlight - 1)
	defer func() {
		c.snd.loss.Clear()
		for c.snd.buf.Len() > 0 {
			c.snd.buf.PopFront()
		}
		c.snd.currSeq = c.snd.lastAck.Dec()
	}()
	var long []lossl.Range
	for i := range 3000 {
		f := c.snd.lastAck.Add(2 * i)
		long = append(long, lossl.Range{First: f, Last: f})
	}
	c.onNAKLocked(&packet{control: true, typ: ctrlNAK, body: lossl.AppendNAK(nil, long)}, time.Now())
	require.Equal(t, maxNAKRanges, c.snd.loss.NumRanges())
	require.True(t, c.snd.loss.Contains(long[maxNAKRanges-1].First))
	require.False(t, c.snd.loss.Contains(long[maxNAKRanges].First))
}

// TestWrongAddressIgnored sends a connected socket, over real UDP, a
// shutdown, an ACK and data from an address that is not its peer's: each
// is dropped and counted, and the connection carries on.
func TestWrongAddressIgnored(t *testing.T) {
	c, s := internalPair(t, Config{})
	attacker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer attacker.Close()
	s.mu.Lock()
	sid, next := s.id, s.rcv.lastSeq.Inc()
	s.mu.Unlock()
	to := s.LocalAddr().(*net.UDPAddr)
	data := packet{seq: next, msg: 1, pos: posSolo, dst: sid, body: []byte("forged")}
	for _, b := range [][]byte{
		appendControl(nil, ctrlShutdown, 0, sid, nil),
		appendControl(nil, ctrlACK, 1, sid, (&ackBody{ack: seq.Num(5), words: 1}).append(nil)),
		append(data.appendHeader(nil), data.body...),
	} {
		_, err := attacker.WriteToUDP(b, to)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return s.Stats().Total.Dropped >= 3 }, 5*time.Second, 10*time.Millisecond,
		"the foreign packets are counted")
	require.GreaterOrEqual(t, s.SocketMetrics().Dropped.Foreign, uint64(3), "the socket's count of foreign datagrams")

	_, err = c.Write([]byte("genuine"))
	require.NoError(t, err)
	buf := make([]byte, 16)
	require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := s.Read(buf)
	require.NoError(t, err, "the connection survives a foreign shutdown")
	require.Equal(t, "genuine", string(buf[:n]), "forged data was delivered")

	// A cookie issued to the attacker's address does not admit a dial
	// from another.
	ln := listenRaw(t, Config{})
	r := newRawClient(t, ln.Addr())
	req := r.request(99)
	r.send(&req)
	_, reply, ok := r.recv(2 * time.Second)
	require.True(t, ok)
	replay := req
	replay.reqType, replay.cookie = reqConclusion, reply.cookie
	other := newRawClient(t, ln.Addr())
	other.send(&replay)
	_, _, answered := other.recv(300 * time.Millisecond)
	require.False(t, answered, "a cookie replayed from another address was accepted")
	require.Equal(t, uint64(1), ln.Metrics().CookiesRejected, "the replayed cookie, rejected")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := Dialer{}
	gc, err := d.DialUDT(ctx, "udp", ln.Addr().String())
	require.NoError(t, err, "the listener still takes genuine dials")
	gc.Close()
}

// TestHandshakeAnswersLimited sends an accepted connection, from its
// peer's address, 50 repeats of the peer's conclusion request and 50 bare
// 16-byte handshake headers within 50 ms: it answers one conclusion, and
// the next only hsAnswerInterval later; the headers get nothing.
func TestHandshakeAnswersLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var answers atomic.Int32
		fwd := netsim.LinkConfig{Delay: time.Millisecond}
		back := netsim.LinkConfig{Delay: time.Millisecond, Drop: func(b []byte, _ int) bool {
			if p, err := parsePacket(b); err == nil && p.control && p.typ == ctrlHandshake {
				answers.Add(1)
			}
			return false
		}}
		c, s, pa, pb := simPair(t, fwd, back, Config{Linger: -1}, 3)
		time.Sleep(100 * time.Millisecond)
		c.mu.Lock()
		req := c.hs.ours // the conclusion request it dialed with
		c.mu.Unlock()
		s.mu.Lock()
		sid := s.id
		s.mu.Unlock()
		require.Equal(t, int32(reqConclusion), req.reqType)
		before, dropped := answers.Load(), s.Stats().Total.Dropped
		send := func(b []byte) {
			_, err := pa.WriteTo(b, pb.LocalAddr())
			require.NoError(t, err)
		}
		for range 50 {
			send(appendHandshakePacket(nil, sid, &req))
			send(appendControl(nil, ctrlHandshake, 0, sid, nil))
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		require.Equal(t, int32(1), answers.Load()-before, "answers to 50 repeats in 50 ms")
		require.Equal(t, uint64(99), s.Stats().Total.Dropped-dropped, "dropped")
		time.Sleep(hsAnswerInterval)
		send(appendHandshakePacket(nil, sid, &req))
		time.Sleep(10 * time.Millisecond)
		require.Equal(t, int32(2), answers.Load()-before, "answers after the interval")
	})
}

// TestListenerTablesExpireWhenQuiet dials 100 connections to a listener
// and closes them all, then sends it nothing more: the handshakes it keeps
// for their repeats are forgotten retireAfter after each closed, on a
// timer, and the tables' memory is given back (a map does not shrink when
// emptied; the listener makes its table anew), where before they waited
// for the next valid conclusion to arrive.
func TestListenerTablesExpireWhenQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := netsim.LinkConfig{Delay: time.Millisecond}
		c1, s1, _, _ := simPair(t, l, l, Config{Linger: -1}, 3)
		cfg, err := Config{Linger: -1}.withDefaults()
		require.NoError(t, err)
		conns := []*Conn{c1, s1}
		for range 99 {
			registry.mu.Lock()
			c1.m.refs++ // the reference dialOn takes over
			registry.mu.Unlock()
			c, err := dialOn(t.Context(), c1.m, cfg, s1.m.laddr)
			require.NoError(t, err)
			s, err := s1.ln.AcceptUDT()
			require.NoError(t, err)
			conns = append(conns, c, s)
		}
		ln := s1.ln
		ln.tabMu.Lock()
		require.Len(t, ln.known, 100)
		ln.tabMu.Unlock()
		for _, c := range conns {
			require.NoError(t, c.Close())
		}
		time.Sleep(closeWait + retireAfter + time.Second)
		ln.tabMu.Lock()
		defer ln.tabMu.Unlock()
		require.Zero(t, len(ln.known), "handshakes remembered")
		require.Zero(t, ln.peak, "the table made anew")
		require.Nil(t, ln.retired)
		require.Nil(t, ln.expiry)
	})
}

// TestGapPinningPeerCutOff: a peer that never repairs a gap in its data,
// though told of it every NAK interval, and keeps sending behind it, is cut
// off once the gap has stood for the progress bound (PeerIdleTimeout, 5 s
// here; 46 s by default): the reader gets what lay before the gap, then
// ErrConnLost saying why, and the payloads held behind the gap are freed.
// Before, the connection lived on (the sender takes each NAK as the peer's
// progress) with everything behind the gap pinned.
func TestGapPinningPeerCutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const before = 100 // packets delivered before the gap
		var first atomic.Int64
		first.Store(-1)
		l := netsim.LinkConfig{Rate: 100e6, Delay: 5 * time.Millisecond}
		fwd := l
		fwd.Drop = func(p []byte, _ int) bool { // every copy of one data packet
			if len(p) < 16 || p[0]&0x80 != 0 {
				return false
			}
			s := int64(binary.BigEndian.Uint32(p) & uint32(seq.Max))
			first.CompareAndSwap(-1, s)
			return s == (first.Load()+before)&int64(seq.Max)
		}
		const bound = 5 * time.Second
		c, s, _, _ := simPair(t, fwd, l, Config{PeerIdleTimeout: bound}, 1)
		go c.Write(make([]byte, 4<<20))
		start := time.Now()
		require.NoError(t, s.SetReadDeadline(start.Add(time.Minute)))
		buf := make([]byte, 1<<20)
		n := 0
		var err error
		for err == nil {
			var k int
			k, err = s.Read(buf)
			n += k
		}
		took := time.Since(start)
		t.Logf("cut off after %v: %v", took, err)
		require.ErrorIs(t, err, ErrConnLost)
		require.ErrorContains(t, err, "gap")
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Equal(t, before*s.payload, n, "what lay before the gap was read")
		require.Less(t, took, bound+2*time.Second, "the gap stood past the bound")
		held := 0
		for i := range s.rcv.buf.Len() {
			if s.rcv.buf.At(i).buf != nil {
				held++
			}
		}
		require.Zero(t, held, "payloads still held behind the gap")
	})
}

// TestReceiveMemoryBounded: three connections to one listener socket,
// whose readers do not read, are each sent more than a third of the
// socket's ReceiveMemory (2 MiB): together they hold no more than twice it
// (see overMemoryLocked), and once the readers read, one after the other,
// every byte arrives intact. Without the bound they held everything sent
// (their own buffers take 12 MB each).
func TestReceiveMemoryBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget, conns, each = 2 << 20, 3, 3 << 20
		l := netsim.LinkConfig{Rate: 1e9, Delay: time.Millisecond}
		a, b := netsim.NewPacketPipe(l, l, 1)
		ma := newMultiplexer(netPacketConn{c: a})
		ma.start()
		mb := newMultiplexer(netPacketConn{c: b})
		mb.start()
		t.Cleanup(func() { time.Sleep(closeWait + time.Second) })
		cfg, err := Config{ReceiveMemory: budget}.withDefaults()
		require.NoError(t, err)
		ln, err := listenOn(mb, cfg)
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		var srv [conns]*Conn
		for i := range conns {
			c, err := dialOn(t.Context(), ma, cfg, mb.laddr)
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			srv[i], err = ln.AcceptUDT()
			require.NoError(t, err)
			t.Cleanup(func() { srv[i].Close() })
			data := pattern(each)
			go c.Write(data)
		}
		peak := int64(0)
		for range 3000 { // 3 s
			time.Sleep(time.Millisecond)
			peak = max(peak, mb.rcvHeld.Load())
		}
		t.Logf("peak held %d bytes of a %d budget", peak, budget)
		// Over the budget, a connection below its share (a third) still
		// takes data up to it: twice the budget at the very most.
		require.LessOrEqual(t, peak, int64(2*budget), "received data held on the socket")
		require.Positive(t, peak, "nothing arrived")
		for _, s := range srv {
			got := make([]byte, each)
			require.NoError(t, s.SetReadDeadline(time.Now().Add(time.Minute)))
			_, err := io.ReadFull(s, got)
			require.NoError(t, err)
			require.True(t, bytes.Equal(pattern(each), got), "the stream arrived altered")
		}
	})
}

// TestWindowProbes: a sender whose peer's window is closed keeps probing
// it, so that a lost update reopening it does not stall the connection.
func TestWindowProbes(t *testing.T) {
	l := netsim.LinkConfig{Rate: 100e6, Delay: 10 * time.Millisecond}
	readAll := func(t *testing.T, s *Conn, n int) {
		t.Helper()
		require.NoError(t, s.SetReadDeadline(time.Now().Add(5*time.Second)))
		_, err := io.ReadFull(s, make([]byte, n))
		require.NoError(t, err, "the transfer stalled")
	}

	// A full ACK offering no window at all (4.11 and ours offer at least
	// 2 packets; another peer may offer 0), after which the update that
	// would reopen the window never comes: the sender, with nothing in
	// flight, sent nothing more, and the connection stalled for good.
	t.Run("zero window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, s, pa, pb := simPair(t, l, l, Config{}, 1)
			go c.Write(make([]byte, 1<<20))
			readAll(t, s, 1<<20)
			time.Sleep(100 * time.Millisecond) // all acknowledged
			c.mu.Lock()
			closed := ackBody{ack: c.snd.currSeq.Inc(), rtt: 20_000, rttVar: 1000, avail: 0, words: 4}
			id := c.id
			c.mu.Unlock()
			_, err := pb.WriteTo(appendControl(nil, ctrlACK, 1, id, closed.append(nil)), pa.LocalAddr())
			require.NoError(t, err)
			time.Sleep(20 * time.Millisecond)
			c.mu.Lock()
			require.Zero(t, c.snd.flowWindow, "the closing ACK was taken")
			c.mu.Unlock()
			start := time.Now()
			go c.Write(make([]byte, 1<<20))
			readAll(t, s, 1<<20)
			t.Logf("1 MiB through the closed window in %v", time.Since(start))
		})
	})

	// The receiver's buffer fills while its reader pauses; the ACK that
	// reopens the window once it reads is lost. The probes the sender
	// keeps outstanding, resent at its EXP expiries, draw another.
	t.Run("update lost", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var closed, dropped atomic.Bool
			back := l
			back.Drop = func(p []byte, _ int) bool {
				if len(p) < 32 || binary.BigEndian.Uint32(p) != 0x80000000|uint32(ctrlACK)<<16 {
					return false
				}
				switch avail := binary.BigEndian.Uint32(p[28:]); {
				case avail <= minAdvertisedWindow:
					closed.Store(true)
				case closed.Load() && !dropped.Load():
					dropped.Store(true)
					return true // the first ACK that reopens the window
				}
				return false
			}
			c, s, _, _ := simPair(t, l, back, Config{ReceiveBuffer: 64}, 1)
			const n = 1 << 20
			go c.Write(make([]byte, n))
			time.Sleep(2 * time.Second) // the reader pauses; the buffer fills
			require.True(t, closed.Load(), "the receive buffer never filled")
			start := time.Now()
			readAll(t, s, n)
			require.True(t, dropped.Load(), "no reopening ACK was dropped")
			t.Logf("1 MiB read in %v after the reader resumed", time.Since(start))
		})
	})
}
