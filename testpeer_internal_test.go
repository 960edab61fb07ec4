package udt

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/seq"
)

// memConn is a packetConn with no socket: the test writes the datagrams
// that arrive (in) and reads those the multiplexer sends (out).
type memConn struct {
	laddr     netip.AddrPort
	in        chan datagram
	out       chan datagram
	closed    chan struct{}
	closeOnce sync.Once
}

type datagram struct {
	b    []byte
	addr netip.AddrPort // the sender's (in) or the destination's (out)
}

func newMemConn(laddr netip.AddrPort) *memConn {
	return &memConn{laddr: laddr, in: make(chan datagram, 1024), out: make(chan datagram, 4096), closed: make(chan struct{})}
}

func (m *memConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-m.in:
		return copy(b, d.b), d.addr, nil
	case <-m.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (m *memConn) WriteTo(b []byte, to netip.AddrPort) error {
	select {
	case <-m.closed:
		return net.ErrClosed
	case m.out <- datagram{append([]byte(nil), b...), to}:
	default: // the test stopped reading: as a full socket buffer, dropped
	}
	return nil
}

func (m *memConn) LocalAddrPort() netip.AddrPort { return m.laddr }

func (m *memConn) Close() error {
	m.closeOnce.Do(func() { close(m.closed) })
	return nil
}

// testPeer drives one connection packet by packet, with no socket, in the
// virtual time of a synctest bubble: the test plays the peer. It writes
// datagrams to the connection (send, sendData, sendControl), reads what
// the connection sent (next, expect), and moves the clock with
// time.Sleep; after each step the bubble settles (synctest.Wait), so what
// the connection does in answer is there to read.
type testPeer struct {
	t    *testing.T
	pc   *memConn
	c    *Conn          // the connection under test, dialed by the library
	addr netip.AddrPort // the peer's address
	id   uint32         // the peer's socket ID
	isn  seq.Num        // the first sequence number, both ways
	mss  int
	// Packets expect passed over, for next to return first.
	skipped []packet
}

// testPeerRTT is the round trip the test peer takes to answer each
// handshake request: the connection's first RTT estimate.
const testPeerRTT = 20 * time.Millisecond

// newTestPeer dials a connection with cfg to a peer the test plays, and
// answers its handshake as a listener would. Call it inside a synctest
// bubble.
func newTestPeer(t *testing.T, cfg Config) *testPeer {
	t.Helper()
	cfg, err := cfg.withDefaults()
	require.NoError(t, err)
	tp := &testPeer{
		t:    t,
		pc:   newMemConn(netip.MustParseAddrPort("192.0.2.1:9000")),
		addr: netip.MustParseAddrPort("192.0.2.2:9000"),
		id:   0x2233,
	}
	// Runs last: a closed connection lingers for closeWait.
	t.Cleanup(func() { time.Sleep(closeWait + time.Second) })
	m := newMultiplexer(tp.pc)
	m.start()
	dialed := make(chan *Conn, 1)
	go func() {
		c, err := dialOn(context.Background(), m, cfg, tp.addr)
		if err != nil {
			t.Error("dial:", err)
		}
		dialed <- c
	}()
	// The induction request, answered with a cookie; then the
	// conclusion, answered as accepted.
	req := tp.expectHandshake(reqInduction)
	reply := req
	reply.cookie = 0x5eed
	time.Sleep(testPeerRTT)
	tp.send(appendHandshakePacket(nil, req.socketID, &reply))
	concl := tp.expectHandshake(reqConclusion)
	require.Equal(t, uint32(0x5eed), concl.cookie, "the conclusion carries the cookie")
	resp := concl
	resp.socketID = tp.id
	time.Sleep(testPeerRTT)
	tp.send(appendHandshakePacket(nil, concl.socketID, &resp))
	tp.c = <-dialed
	require.NotNil(t, tp.c)
	t.Cleanup(func() { tp.c.Close() })
	tp.isn, tp.mss = seq.Num(concl.isn), int(min(concl.mss, resp.mss))
	return tp
}

// send delivers datagram b to the connection, and lets it settle.
func (tp *testPeer) send(b []byte) {
	tp.pc.in <- datagram{b, tp.addr}
	synctest.Wait()
}

// sendData delivers a data packet of one whole message.
func (tp *testPeer) sendData(s seq.Num, payload []byte) {
	p := packet{seq: s, pos: posSolo, msg: 1, dst: tp.c.id}
	tp.send(append(p.appendHeader(nil), payload...))
}

// sendControl delivers a control packet.
func (tp *testPeer) sendControl(typ ctrlType, info uint32, body []byte) {
	tp.send(appendControl(nil, typ, info, tp.c.id, body))
}

// next returns the next datagram the connection sent, parsed, or false
// if it has sent none since.
func (tp *testPeer) next() (packet, bool) {
	tp.t.Helper()
	if len(tp.skipped) > 0 {
		p := tp.skipped[0]
		tp.skipped = tp.skipped[1:]
		return p, true
	}
	return tp.read()
}

// read returns the next datagram the connection sent once the bubble has
// settled, or false if there is none.
func (tp *testPeer) read() (packet, bool) {
	tp.t.Helper()
	synctest.Wait()
	select {
	case d := <-tp.pc.out:
		require.Equal(tp.t, tp.addr, d.addr, "sent to the peer")
		p, err := parsePacket(d.b)
		require.NoError(tp.t, err)
		return p, true
	default:
		return packet{}, false
	}
}

// expect returns the next control packet of type typ the connection
// sent, and fails the test if there is none; the packets sent before it
// stay for next.
func (tp *testPeer) expect(typ ctrlType) packet {
	tp.t.Helper()
	for i, p := range tp.skipped {
		if p.control && p.typ == typ {
			tp.skipped = append(tp.skipped[:i:i], tp.skipped[i+1:]...)
			return p
		}
	}
	for {
		p, ok := tp.read()
		require.True(tp.t, ok, "no %v sent", typ)
		if p.control && p.typ == typ {
			return p
		}
		tp.skipped = append(tp.skipped, p)
	}
}

// expectHandshake returns the next handshake request, of type reqType.
func (tp *testPeer) expectHandshake(reqType int32) handshake {
	tp.t.Helper()
	p := tp.expect(ctrlHandshake)
	h, err := parseHandshake(p.body)
	require.NoError(tp.t, err)
	require.Equal(tp.t, reqType, h.reqType)
	return h
}

// settle lets the connection's timer fire once at establishment (it
// sends its first ACK then, as 4.11 does) and discards what it has sent.
func (tp *testPeer) settle() {
	time.Sleep(time.Millisecond)
	tp.drain()
}

// drain discards what the connection has sent so far.
func (tp *testPeer) drain() {
	for {
		if _, ok := tp.next(); !ok {
			return
		}
	}
}

// A gap in the data draws a NAK naming it at once, before any timer; the
// first data packet draws the first ACK at once, and later in-order ones
// nothing until the ACK period ends.
func TestDrivenGapDrawsNAK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newTestPeer(t, Config{})
		tp.settle()
		payload := make([]byte, tp.mss-44)
		tp.sendData(tp.isn, payload)
		first := tp.expect(ctrlACK)
		a, err := parseACK(first.body)
		require.NoError(t, err)
		require.Equal(t, tp.isn.Add(1), a.ack, "the first ACK")
		tp.sendData(tp.isn.Add(1), payload)
		p, ok := tp.next()
		require.False(t, ok, "nothing answers in-order data within the ACK period: %+v", p)
		tp.sendData(tp.isn.Add(4), payload)
		nak := tp.expect(ctrlNAK)
		var got []lossl.Range
		require.NoError(t, lossl.ParseNAK(nak.body, func(r lossl.Range) bool { got = append(got, r); return true }))
		require.Equal(t, []lossl.Range{{First: tp.isn.Add(2), Last: tp.isn.Add(3)}}, got)
	})
}

// A full ACK follows data within the ACK period (10 ms), acknowledging
// through the first packet missing; the peer's ACK2 gives the connection
// an RTT sample of the time between them.
func TestDrivenACKAndACK2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newTestPeer(t, Config{})
		tp.settle()
		start := time.Now()
		payload := make([]byte, tp.mss-44)
		for i := range 3 {
			tp.sendData(tp.isn.Add(i), payload)
		}
		tp.expect(ctrlACK) // the first, at once
		var ack packet
		for ok := false; !ok; {
			time.Sleep(time.Millisecond) // the next, within the ACK period: sent within the last ms
			ack, ok = tp.next()
			require.Less(t, time.Since(start), time.Second, "no second ACK")
		}
		require.True(t, ack.control && ack.typ == ctrlACK, "%+v", ack)
		a, err := parseACK(ack.body)
		require.NoError(t, err)
		require.Equal(t, tp.isn.Add(3), a.ack, "acknowledged through what arrived: %+v", a)
		require.GreaterOrEqual(t, a.words, 6, "a full ACK")
		time.Sleep(30 * time.Millisecond)
		tp.sendControl(ctrlACK2, ack.info, nil)
		tp.c.mu.Lock()
		rtt := tp.c.cc.rtt.RTT
		tp.c.mu.Unlock()
		// Seeded by the handshake's round trip, then smoothed by 1/8 of
		// the sample's difference: 20 + (30..31 - 20)/8 ms.
		require.InDelta(t, float64(testPeerRTT+(30*time.Millisecond-testPeerRTT)/8), float64(rtt), float64(200*time.Microsecond),
			"RTT %v: the handshake's seed smoothed with the ACK2's sample", rtt)
	})
}

// The connection answers each full ACK with an ACK2 naming it, and sends
// no new packet beyond what the flow window in the peer's latest ACK
// allows.
func TestDrivenFlowWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newTestPeer(t, Config{})
		tp.settle()
		go func() { _, _ = tp.c.Write(make([]byte, 1<<20)) }()
		// newData returns the highest new sequence number sent since
		// the last call, and how many data packets went.
		highest := tp.isn.Dec()
		newData := func() (seq.Num, int) {
			n := 0
			for {
				p, ok := tp.next()
				if !ok {
					return highest, n
				}
				if !p.control {
					n++
					if seq.Cmp(p.seq, highest) > 0 {
						highest = p.seq
					}
				}
			}
		}
		time.Sleep(time.Millisecond)
		last, n := newData()
		require.Positive(t, n, "the first packets go at once")
		inFlight := seq.Off(tp.isn, last) + 1
		require.GreaterOrEqual(t, inFlight, 4)

		// A full ACK of the first two, offering a window of 2: what is
		// in flight already fills it, and no new packet goes.
		ack := ackBody{ack: tp.isn.Add(2), rtt: 20000, rttVar: 1000, avail: 2, rate: 1000, bandwidth: 1000, words: 6}
		tp.sendControl(ctrlACK, 7, ack.append(nil))
		require.Equal(t, uint32(7), tp.expect(ctrlACK2).info, "the ACK2 names the ACK")
		time.Sleep(50 * time.Millisecond)
		got, _ := newData()
		require.Equal(t, last, got, "new data beyond a full window")

		// A full ACK of all that went, offering 4: four new packets go,
		// and no fifth.
		ack = ackBody{ack: last.Inc(), rtt: 20000, rttVar: 1000, avail: 4, rate: 1000, bandwidth: 1000, words: 6}
		tp.sendControl(ctrlACK, 8, ack.append(nil))
		require.Equal(t, uint32(8), tp.expect(ctrlACK2).info, "the ACK2 names the ACK")
		time.Sleep(50 * time.Millisecond)
		got, _ = newData()
		require.Equal(t, last.Add(4), got, "new packets sent into a window of 4")
	})
}

// A full receive buffer answers the data it drops for lack of room (the
// sender's window probes) with an ACK offering its window, unchanged ACK
// number and all, though an ACK2 has confirmed that number: at most one per
// RTT+4·RTTVar, however many probes come.
func TestDrivenProbeAnswerRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newTestPeer(t, Config{ReceiveBuffer: 32})
		tp.settle()
		tp.c.mu.Lock()
		bufSize := tp.c.rcv.buf.Limit()
		tp.c.mu.Unlock()
		payload := make([]byte, tp.mss-44)
		// Fill the buffer, nobody reading: it holds bufSize-1 packets.
		for i := range bufSize - 1 {
			tp.sendData(tp.isn.Add(i), payload)
		}
		full := tp.isn.Add(bufSize - 1)
		// Confirm every ACK, as a sender does, until none comes: the
		// ACK point is then confirmed, and an unanswered receiver
		// would stay silent.
		for range 50 {
			time.Sleep(10 * time.Millisecond)
			for {
				p, ok := tp.next()
				if !ok {
					break
				}
				if p.control && p.typ == ctrlACK && p.info != 0 {
					tp.sendControl(ctrlACK2, p.info, nil)
				}
			}
		}
		p, ok := tp.next()
		require.False(t, ok, "the buffer full and its ACK confirmed, nothing more goes: %+v", p)
		tp.c.mu.Lock()
		require.Equal(t, full, tp.c.rcv.lastAck2, "the ACK point confirmed")
		repeat := tp.c.cc.rtt.RTT + 4*tp.c.cc.rtt.Var
		tp.c.mu.Unlock()

		// probes sends n probes, spread over less than the repeat
		// interval, and returns the ACKs they drew.
		probes := func(n int) []ackBody {
			var acks []ackBody
			for i := range n {
				tp.sendData(full.Add(i%2), payload) // the floor window: 2 packets
				time.Sleep(repeat / time.Duration(2*n))
			}
			for {
				p, ok := tp.next()
				if !ok {
					return acks
				}
				require.True(t, p.control && p.typ == ctrlACK, "only ACKs answer probes: %+v", p)
				a, err := parseACK(p.body)
				require.NoError(t, err)
				acks = append(acks, a)
			}
		}
		acks := probes(10)
		require.Len(t, acks, 1, "10 probes within RTT+4·RTTVar (%v) draw one ACK", repeat)
		require.Equal(t, full, acks[0].ack, "the unchanged ACK point")
		require.Equal(t, uint32(minAdvertisedWindow), acks[0].avail, "the window offered: the floor")
		require.GreaterOrEqual(t, acks[0].words, 4, "a full or short ACK, which carries the window")

		time.Sleep(repeat)
		acks = probes(10)
		require.Len(t, acks, 1, "a repeat interval later, 10 more probes draw one ACK")

		tp.c.mu.Lock()
		dropped, answered := tp.c.stats.pktRecvDropped, tp.c.stats.probesAnswered
		tp.c.mu.Unlock()
		require.Equal(t, uint64(20), dropped, "every probe dropped")
		require.Equal(t, uint64(2), answered, "probes answered")
	})
}

// TestWindowLimitedMark: a sender whose window holds back new data marks
// what it sends meanwhile as window-limited, for the controller to judge
// its rate samples by (see cc.Model's heldBack); the mark is gone once the
// peer's ACK passes the packets the rate reports span; a sender with
// nothing left to send is application-limited instead.
func TestWindowLimitedMark(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp := newTestPeer(t, Config{})
		tp.settle()
		go func() { _, _ = tp.c.Write(make([]byte, 1<<20)) }()
		time.Sleep(time.Millisecond)
		// A full ACK offering a window of 2: what is in flight fills it.
		ack := ackBody{ack: tp.isn.Add(2), rtt: 20000, rttVar: 1000, avail: 2, rate: 1000, bandwidth: 1000, words: 6}
		tp.sendControl(ctrlACK, 7, ack.append(nil))
		tp.expect(ctrlACK2)
		time.Sleep(50 * time.Millisecond)

		c := tp.c
		c.mu.Lock()
		c.snd.windowLimited.on, c.snd.appLimited.on = false, false
		_, _, ok := c.nextNewLocked(time.Now())
		require.False(t, ok, "new data beyond a full window")
		require.True(t, c.snd.windowLimited.on, "the window holds new data back")
		require.False(t, c.snd.appLimited.on)
		require.Equal(t, c.snd.currSeq, c.snd.windowLimited.to)
		require.True(t, c.ccInputsLocked().WindowLimited, "the controller is told")
		last := c.snd.currSeq
		c.mu.Unlock()

		// An ACK of everything sent, and of rateReportSpan packets more
		// than were sent when the mark was set, ends it.
		ack = ackBody{ack: last.Add(rateReportSpan + 2), rtt: 20000, rttVar: 1000, avail: 8192, rate: 1000, bandwidth: 1000, words: 6}
		c.mu.Lock()
		c.ackEstimatesLocked(&ack, time.Now())
		require.False(t, c.snd.windowLimited.on, "the ACK passed the packets sent while held")
		c.mu.Unlock()
	})
}
