package udt

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/seq"
)

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

// TestEXPIntervalOutlastsHeldACK checks that the EXP interval outlasts the
// spell a receiver holds back an unchanged ACK (RTT+4·RTTVar, then its
// next SYN tick): a variance term of at least a quarter of the RTT on a
// path whose RTT hardly varies, and beyond 4.11's interval an eighth of the
// RTT and a SYN of margin where it varies. The receiver holds back by the
// RTT and variation its ACKs report, which our smoothed RTT lags while a
// queue grows: the greater counts, the report at most twice our RTT (so a
// forged one stretches nothing far). Below the 300 ms floor nothing
// changes.
func TestEXPIntervalOutlastsHeldACK(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	saved, savedCount, savedPeer, savedPeerVar := c.cc.rtt, c.live.expCount, c.cc.peerRTT, c.cc.peerRTTVar
	defer func() {
		c.cc.rtt, c.live.expCount, c.cc.peerRTT, c.cc.peerRTTVar = saved, savedCount, savedPeer, savedPeerVar
	}()
	c.live.expCount, c.cc.peerRTT, c.cc.peerRTTVar = 1, 0, 0
	c.cc.rtt.RTT, c.cc.rtt.Var = 300*time.Millisecond, time.Millisecond
	held := c.cc.rtt.RTT + 4*c.cc.rtt.Var + synInterval // the receiver's silence, at most
	require.Greater(t, c.expIntervalLocked(), held+50*time.Millisecond)
	require.Equal(t, 432500*time.Microsecond, c.expIntervalLocked())
	c.cc.rtt.Var = 100 * time.Millisecond // a varying path: 4.11's term, and margin
	held = c.cc.rtt.RTT + 4*c.cc.rtt.Var + synInterval
	require.Greater(t, c.expIntervalLocked(), held+40*time.Millisecond)
	require.Equal(t, 757500*time.Microsecond, c.expIntervalLocked())

	// The receiver's report runs ahead of our RTT: it sets the interval.
	c.cc.rtt.Var = 10 * time.Millisecond
	c.cc.peerRTT, c.cc.peerRTTVar = 500*time.Millisecond, 60*time.Millisecond
	held = c.cc.peerRTT + 4*c.cc.peerRTTVar + synInterval
	require.Greater(t, c.expIntervalLocked(), held+50*time.Millisecond)
	require.Equal(t, 822500*time.Microsecond, c.expIntervalLocked())
	// A forged report counts no more than twice our RTT, a variation no
	// more than our RTT.
	c.cc.peerRTT, c.cc.peerRTTVar = time.Hour, time.Hour
	require.Equal(t, (600+1200+75+20)*time.Millisecond, c.expIntervalLocked())

	c.cc.peerRTT, c.cc.peerRTTVar = 0, 0
	c.cc.rtt.RTT, c.cc.rtt.Var = 100*time.Millisecond, time.Millisecond
	require.Equal(t, minEXPInterval, c.expIntervalLocked())
	c.live.expCount = 3
	require.Equal(t, 3*minEXPInterval, c.expIntervalLocked())
}

// TestStallDueAfterRetransmission checks when the oldest unacknowledged
// packet is resent while the peer's ACK does not move: an EXP interval
// after the ACK's last advance for a packet sent once, but a round trip
// (RTT+4·RTTVar and two SYNs) after its retransmission for one already
// retransmitted, well before the EXP timer, since a 4.11 receiver waiting
// at that hole sends nothing.
func TestStallDueAfterRetransmission(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.timer.Stop()
	saved := c.cc.rtt
	defer func() { c.cc.rtt = saved; c.snd.buf.PopFront() }()
	c.cc.rtt.RTT, c.cc.rtt.Var = 100*time.Millisecond, time.Millisecond
	require.Zero(t, c.snd.buf.Len())
	sent := time.Duration(5 * time.Second)
	require.True(t, c.snd.buf.Push(sndPkt{sentAt: int64(sent)}))
	c.live.ackAdvanced, c.live.stallResent, c.live.stallResends = c.start.Add(sent), time.Time{}, 0
	require.Equal(t, c.start.Add(sent+c.expIntervalLocked()), c.stallDueLocked(), "a packet sent once")
	resent := sent + 80*time.Millisecond
	c.snd.buf.Ptr(0).sentAt = -int64(resent) - 1
	wait := c.cc.rtt.RTT + 4*c.cc.rtt.Var + 2*synInterval
	require.Equal(t, c.start.Add(resent+wait), c.stallDueLocked(), "a retransmitted packet")
	require.Less(t, resent+wait, sent+c.expIntervalLocked())
	c.live.stallResends = 2 // no backoff: each resend's answer is due a round trip after it
	require.Equal(t, c.start.Add(resent+wait), c.stallDueLocked())
	c.snd.buf.Ptr(0).sentAt = int64(sent) // backoff for a packet sent once
	require.Equal(t, c.start.Add(sent+4*c.expIntervalLocked()), c.stallDueLocked())
}

// TestStallResendsOverdueRetransmissions checks what a stall resend
// queues when the oldest packet was a retransmission: the oldest at the
// first stall; at the next, up to four packets whose retransmission is as
// overdue, for a peer that reports each loss once (4.11); only the oldest
// for a peer that has repeated a loss report.
func TestStallResendsOverdueRetransmissions(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.timer.Stop()
	saved, savedCurr := c.cc.rtt, c.snd.currSeq
	defer func() {
		c.cc.rtt, c.snd.currSeq, c.cc.peerRenaks = saved, savedCurr, false
		c.snd.loss.Clear()
		for c.snd.buf.Len() > 0 {
			c.snd.buf.PopFront()
		}
	}()
	c.cc.rtt.RTT, c.cc.rtt.Var = 100*time.Millisecond, time.Millisecond
	require.Zero(t, c.snd.buf.Len())
	t0 := 5 * time.Second
	for _, at := range []int64{
		-int64(t0) - 1,                      // retransmitted at t0: the hole
		int64(t0),                           // sent once
		-int64(t0+10*time.Millisecond) - 1,  // retransmitted, as overdue
		-int64(t0+100*time.Millisecond) - 1, // retransmitted lately
	} {
		require.True(t, c.snd.buf.Push(sndPkt{sentAt: at}))
	}
	c.snd.currSeq = c.snd.lastAck.Add(3)
	now := c.start.Add(t0 + 10*time.Millisecond + c.cc.retransWait())
	c.live.stallResends = 0
	c.resendStalledLocked(now)
	require.Equal(t, 1, c.snd.loss.Len(), "the first stall: the oldest alone")
	require.True(t, c.snd.loss.Contains(c.snd.lastAck))

	c.snd.loss.Clear()
	c.resendStalledLocked(now)
	require.Equal(t, 2, c.snd.loss.Len(), "the stall again: the overdue retransmissions too")
	require.True(t, c.snd.loss.Contains(c.snd.lastAck))
	require.True(t, c.snd.loss.Contains(c.snd.lastAck.Add(2)))

	c.snd.loss.Clear()
	c.cc.peerRenaks = true
	c.resendStalledLocked(now)
	require.Equal(t, 1, c.snd.loss.Len(), "a peer that repeats its loss reports")
	require.True(t, c.snd.loss.Contains(c.snd.lastAck))
}

// TestAckAtOverdueHoleResends checks what an advancing ACK that comes to
// rest at a packet whose retransmission is overdue does (a 4.11 receiver
// reports a loss once): the packet is queued at once; the next such ACK
// in a row takes up to four overdue retransmissions with it, the one
// after sixteen; an ACK at a retransmission not yet due continues the
// chain, one at a packet sent once ends it; a peer that repeats its loss
// reports asks itself.
func TestAckAtOverdueHoleResends(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.timer.Stop()
	saved, savedCurr, savedAck := c.cc.rtt, c.snd.currSeq, c.snd.lastAck
	defer func() {
		c.cc.rtt, c.snd.currSeq, c.snd.lastAck, c.cc.peerRenaks, c.live.holeChain = saved, savedCurr, savedAck, false, 0
		c.snd.loss.Clear()
		for c.snd.buf.Len() > 0 {
			c.snd.buf.PopFront()
		}
	}()
	c.cc.rtt.RTT, c.cc.rtt.Var = 100*time.Millisecond, time.Millisecond
	t0 := 5 * time.Second
	overdue := -int64(t0) - 1 // retransmitted at t0
	for range 40 {
		require.True(t, c.snd.buf.Push(sndPkt{sentAt: overdue}))
	}
	c.snd.currSeq = c.snd.lastAck.Add(39)
	now := c.start.Add(t0 + c.cc.retransWait())
	for _, want := range []int{1, 4, 16} {
		c.snd.loss.Clear()
		c.onAckAdvancedLocked(now)
		require.Equal(t, want, c.snd.loss.Len())
		require.True(t, c.snd.loss.Contains(c.snd.lastAck))
	}
	c.snd.loss.Clear()
	c.onAckAdvancedLocked(now.Add(-time.Millisecond))
	require.Zero(t, c.snd.loss.Len(), "its retransmission not overdue yet")
	require.Equal(t, 3, c.live.holeChain, "the chain goes on")
	c.onAckAdvancedLocked(now)
	require.Equal(t, 40, c.snd.loss.Len(), "the next overdue hole: up to 64")

	c.snd.loss.Clear()
	c.snd.buf.Ptr(0).sentAt = int64(t0)
	c.onAckAdvancedLocked(now)
	require.Zero(t, c.snd.loss.Len(), "a packet sent once: a new loss, reported by the peer")
	require.Zero(t, c.live.holeChain)

	c.snd.buf.Ptr(0).sentAt = overdue
	c.cc.peerRenaks = true
	c.onAckAdvancedLocked(now)
	require.Zero(t, c.snd.loss.Len(), "a peer that repeats its loss reports")
}

// TestEXPScheduleMatchesCpp checks the default broken-connection rule: the
// 17th consecutive EXP expiry, about 46 s of silence at the 300 ms floor,
// with keep-alives sent meanwhile.
func TestEXPScheduleMatchesCpp(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.timer.Stop()
	now := c.live.lastHeard
	start := now
	var ob outbox
	keepalives := 0
	for c.err == nil {
		now = c.live.lastHeard.Add(c.expIntervalLocked())
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

// TestACKRepeatsAtHole checks that a receiver whose ACK waits at a hole
// repeats it every RTT+4·RTTVar even after its ACK2 came back (4.11 falls
// silent then), and arms its timer for the repeat: the sender's EXP
// interval outlasts one held-back ACK, not a lost retransmission's re-report.
// With everything received and confirmed, it stays quiet.
func TestACKRepeatsAtHole(t *testing.T) {
	_, s := internalPair(t, Config{Linger: -1})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live.timer.Stop()
	s.cc.rtt.RTT, s.cc.rtt.Var = 300*time.Millisecond, 5*time.Millisecond
	acks := func(ob *outbox) (n int, last seq.Num) {
		from := 0
		for _, end := range ob.ends {
			p, err := parsePacket(ob.b[from:end])
			from = end
			require.NoError(t, err)
			if p.control && p.typ == ctrlACK {
				a, err := parseACK(p.body)
				require.NoError(t, err)
				n, last = n+1, a.ack
			}
		}
		ob.b, ob.ends = ob.b[:0], ob.ends[:0]
		return n, last
	}
	ob := new(outbox)
	first := s.rcv.lastSeq.Inc()
	payload := []byte("x")
	now := time.Now()
	data := func(n int) {
		s.onDataLocked(&packet{seq: first.Add(n), pos: posSolo, inOrder: true, msg: seq.Msg(n + 1), body: payload}, now, ob)
	}
	data(0)
	data(2) // first+1 is missing
	require.Equal(t, 1, s.rcv.loss.Len())
	s.sendACKLocked(now, ob)
	n, ack := acks(ob)
	require.Equal(t, 1, n)
	require.Equal(t, first.Inc(), ack)
	s.rcv.lastAck2 = ack // its ACK2 came back

	now = now.Add(100 * time.Millisecond)
	data(3) // data keeps arriving behind the hole
	s.sendACKLocked(now, ob)
	n, _ = acks(ob)
	require.Zero(t, n, "held back for RTT+4·RTTVar")
	s.live.timerAt = time.Time{}
	s.armTimerLocked(now)
	due := s.rcv.lastAckAt.Add(s.cc.rtt.RTT + 4*s.cc.rtt.Var)
	require.False(t, s.live.timerAt.After(due), "the timer wakes for the repeat")
	s.live.timer.Stop()

	now = due
	s.sendACKLocked(now, ob)
	n, ack = acks(ob)
	require.Equal(t, 1, n, "repeated at the hole after its ACK2")
	require.Equal(t, first.Inc(), ack)

	// The hole repaired, acknowledged and confirmed: nothing to repeat.
	data(1)
	s.sendACKLocked(now, ob)
	n, ack = acks(ob)
	require.Equal(t, 1, n)
	require.Equal(t, first.Add(4), ack)
	s.rcv.lastAck2 = ack
	now = now.Add(time.Second)
	s.sendACKLocked(now, ob)
	n, _ = acks(ob)
	require.Zero(t, n)
}

// TestArrivedCountsPastHoles checks CongestionInfo.Arrived: a loss
// report shows the packet after each gap it lists arrived, and with it
// every earlier packet that no report named; a repeat of a report changes
// nothing; an ACK passing repaired holes adds those, and one passing the
// newest packet known to have arrived counts what it acknowledges.
func TestArrivedCountsPastHoles(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live.timer.Stop()
	base, delivered := c.snd.lastAck, c.cc.delivered
	for i := range 20 {
		require.True(t, c.snd.buf.Push(sndPkt{buf: c.snd.bufs.Get(), sentAt: int64(i+1) * int64(time.Millisecond)}))
	}
	c.snd.currSeq = base.Add(19)
	nak := func(first, last int) {
		c.takeArrivalsLocked([]lossl.Range{{First: base.Add(first), Last: base.Add(last)}})
	}
	require.Equal(t, delivered, c.ccInputsLocked().Arrived, "nothing reported yet")
	nak(3, 4) // 5 arrived: 0-2 and 5
	require.Equal(t, delivered+4, c.ccInputsLocked().Arrived)
	nak(10, 10) // 11 arrived: 6-9 and 11 too
	require.Equal(t, delivered+9, c.ccInputsLocked().Arrived)
	nak(3, 4) // a repeat
	require.Equal(t, delivered+9, c.ccInputsLocked().Arrived)
	c.releaseAckedLocked(base.Add(5)) // 3 and 4 repaired
	require.Equal(t, delivered+11, c.ccInputsLocked().Arrived)
	require.Equal(t, 1, c.cc.holes)
	c.releaseAckedLocked(base.Add(15)) // past 11: the ACK counts alone
	require.Equal(t, delivered+15, c.ccInputsLocked().Arrived)
	require.Zero(t, c.cc.holes)
	nak(19, 19) // the newest packet sent: none after it known to have arrived
	require.Equal(t, delivered+15, c.ccInputsLocked().Arrived)
	c.releaseAckedLocked(base.Add(20))
	require.Equal(t, delivered+20, c.ccInputsLocked().Arrived)
	require.Zero(t, c.cc.holes)
}
