package udt

import (
	"time"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/pktbuf"
	"github.com/udt-go/udt/internal/seq"
)

// maxPacingLag bounds how far behind its schedule a connection may fall and
// still catch up in a burst: beyond it, the missed time is forgotten.
const maxPacingLag = 2 * time.Millisecond

// kickLocked puts the connection in the send queue if it is not there.
func (c *Conn) kickLocked(now time.Time) {
	if c.scheduled || c.state != stateConnected || c.err != nil || c.peerClosed {
		return
	}
	c.scheduled = true
	if c.sndTarget.Before(now) {
		c.sndTarget = now
	}
	if c.sndTarget.Before(c.holdUntil) {
		c.sndTarget = c.holdUntil
	}
	c.m.sndq.schedule(c, c.sndTarget)
}

// packData appends the next data packet due (a retransmission first, else a
// new packet the windows allow) to b. It returns when the connection wants
// to send again, and false when it has nothing to send.
func (c *Conn) packData(b []byte, now time.Time) ([]byte, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateConnected || c.err != nil || c.peerClosed {
		c.scheduled = false
		return b, time.Time{}, false
	}
	var (
		s       seq.Num
		pk      sndPkt
		found   bool
		retrans bool
	)
	for {
		first, ok := c.sndLoss.PopFirst()
		if !ok {
			break
		}
		off := seq.Off(c.sndLastAck, first)
		if off < 0 || off >= c.sndBuf.Len() || seq.Cmp(first, c.sndCurrSeq) > 0 {
			continue // acknowledged meanwhile, or never sent
		}
		s, pk, found, retrans = first, c.sndBuf.At(off), true, true
		break
	}
	if !found {
		inflight := seq.Off(c.sndLastAck, c.sndCurrSeq) + 1
		window := min(c.flowWindow, c.cc.Window())
		if inflight >= window || inflight >= c.sndBuf.Len() {
			c.scheduled = false
			return b, time.Time{}, false
		}
		if inflight == 0 {
			c.lastProgress = now // data outstanding from now on
		}
		s = c.sndCurrSeq.Inc()
		pk = c.sndBuf.At(inflight)
		c.sndCurrSeq = s
	}
	p := packet{
		seq:     s,
		pos:     pk.pos,
		inOrder: pk.inOrder,
		msg:     pk.msg,
		ts:      uint32(now.Sub(c.start).Microseconds()),
		dst:     c.peerID,
	}
	b = append(p.appendHeader(b), *pk.buf...)
	c.stampSentLocked(s, now, retrans)
	c.stats.pktSent++
	c.stats.bytesSent += uint64(len(*pk.buf))
	if retrans {
		c.stats.pktRetrans++
		c.stats.bytesRetrans += uint64(len(*pk.buf))
	}

	// Pacing: the next packet is due one period after this one was; a
	// connection running late catches up in a burst of bounded length.
	if !retrans && s%16 == 0 {
		// Probe pair: the next packet follows at once.
		return b, c.sndTarget, true
	}
	c.sndTarget = c.sndTarget.Add(c.period)
	if floor := now.Add(-maxPacingLag); c.sndTarget.Before(floor) {
		c.sndTarget = floor
	}
	return b, c.sndTarget, true
}

// onACK handles an ACK from the peer (§7.1 of the protocol notes).
func (c *Conn) onACK(p *packet, now time.Time, ob *outbox) {
	a, err := parseACK(p.body)
	if err != nil {
		c.stats.dropped++
		return
	}
	c.stats.ackRecv++
	if seq.Cmp(a.ack, c.sndCurrSeq.Inc()) > 0 {
		// Acknowledges what was never sent: a spoofed or broken peer.
		// The C++ library breaks the connection; we drop the packet.
		c.stats.dropped++
		return
	}
	if a.words == 1 {
		// Light ACK: moves the window only.
		if seq.Cmp(a.ack, c.sndLastAck) > 0 {
			c.flowWindow -= seq.Off(c.sndLastAck, a.ack)
			c.releaseAckedLocked(a.ack)
			c.kickLocked(now)
		}
		return
	}
	ob.add(appendControl(ob.next(), ctrlACK2, p.info, c.peerID, nil))
	if seq.Cmp(a.ack, c.sndLastAck) >= 0 && a.words >= 4 {
		c.flowWindow = int(min(a.avail, 1<<30))
	}
	if seq.Cmp(a.ack, c.sndLastAck) > 0 {
		c.releaseAckedLocked(a.ack)
	}
	if seq.Cmp(a.ack, c.sndDataAck) <= 0 {
		c.kickLocked(now)
		return
	}
	c.sndDataAck = a.ack
	if a.words >= 4 && a.rtt > 0 {
		c.rttSample = time.Duration(min(a.rtt, 1<<30)) * time.Microsecond
		c.rtt.Update(c.rttSample)
	}
	c.rateSample = 0
	if a.words >= 6 {
		c.rateSample = int(min(a.rate, 1<<28))
		if a.rate > 0 {
			c.rate = (7*c.rate + int(min(a.rate, 1<<28))) >> 3
		}
		if a.bandwidth > 0 {
			c.bandwidth = (7*c.bandwidth + int(min(a.bandwidth, 1<<28))) >> 3
		}
	}
	c.ackRTT = 0
	if pk := c.lastAcked; c.lastAckedOK && pk.sentAt != 0 && !pk.retransmitted {
		// Sent once, so this ACK answers that transmission (Karn).
		c.ackRTT = now.Sub(c.start) - time.Duration(pk.sentAt)
	}
	c.deliveryRate, c.sendRate, c.deliveryInterval = c.deliveryRateLocked(now)
	c.cc.OnACK(now, a.ack, c.ccInputs())
	c.period = c.ccPeriod()
	c.kickLocked(now)
}

// stampSentLocked records the delivery-rate sampling state in the send
// buffer entry of s, which is being (re)transmitted at now.
func (c *Conn) stampSentLocked(s seq.Num, now time.Time, retrans bool) {
	off := seq.Off(c.sndLastAck, s)
	if off < 0 || off >= c.sndBuf.Len() {
		return
	}
	t := now.Sub(c.start).Nanoseconds()
	n := c.stats.pktSent + 1 // counting this one
	if seq.Off(c.sndLastAck, c.sndCurrSeq) == 0 {
		// Nothing else in flight: the sample starts now, not at the last
		// delivery, so an idle spell does not dilute it.
		c.firstSentAt, c.deliveredAt, c.firstSentCount = t, t, n
	}
	pk := c.sndBuf.At(off)
	pk.sentAt, pk.delivered, pk.deliveredAt, pk.firstSentAt = t, c.delivered, c.deliveredAt, c.firstSentAt
	pk.sentCount, pk.firstSentCount = n, c.firstSentCount
	pk.retransmitted = pk.retransmitted || retrans
	c.sndBuf.Set(off, pk)
}

// minRateInterval is the shortest interval a delivery-rate sample spans;
// shorter ones measure the burstiness of the path, not its rate.
const minRateInterval = time.Millisecond

// deliveryRateLocked returns a delivery-rate sample, packets/s, the rate
// at which its packets were sent and the interval it spans, for the ACK
// that arrived at now and has just been applied, or zeros if it gives
// none. As in BBR, the packets delivered since the last
// acknowledged packet was sent are divided by the longer of the time they
// took to be sent and to be acknowledged: a burst of ACKs after a hole is
// repaired cannot look faster than the packets were sent.
func (c *Conn) deliveryRateLocked(now time.Time) (rate, sendRate float64, interval time.Duration) {
	pk, ok := c.lastAcked, c.lastAckedOK
	c.lastAckedOK = false
	if !ok || pk.sentAt == 0 {
		return 0, 0, 0
	}
	t := now.Sub(c.start).Nanoseconds()
	sendElapsed := pk.sentAt - pk.firstSentAt
	ackElapsed := t - pk.deliveredAt
	c.firstSentAt, c.firstSentCount = pk.sentAt, pk.sentCount
	span := max(sendElapsed, ackElapsed)
	if span < int64(minRateInterval) || c.delivered <= pk.delivered {
		return 0, 0, 0
	}
	// A UDT ACK cannot pass a hole: when one is repaired, the ACK point
	// leaps over packets that arrived long before, sent before this
	// sample began. Counting them would measure the repair, not the path,
	// so the sample counts no more packets than were sent in its span.
	sent := pk.sentCount - pk.firstSentCount + 1
	n := min(c.delivered-pk.delivered, sent)
	if sendElapsed >= span/2 {
		// Sent over half the interval or more: not a burst.
		sendRate = float64(sent) * 1e9 / float64(sendElapsed)
	}
	return float64(n) * 1e9 / float64(span), sendRate, time.Duration(span)
}

// releaseAckedLocked frees the send buffer up to ack (exclusive).
func (c *Conn) releaseAckedLocked(ack seq.Num) {
	n := min(seq.Off(c.sndLastAck, ack), c.sndBuf.Len())
	pool := pktbuf.PoolFor(c.payload)
	for i := range n {
		pk := c.sndBuf.PopFront()
		pool.Put(pk.buf)
		if i == n-1 {
			c.lastAcked, c.lastAckedOK = pk, true
		}
	}
	c.sndLastAck = ack
	now := time.Now()
	c.lastProgress = now // the peer is receiving our data
	c.delivered += uint64(max(n, 0))
	if n > 0 {
		c.deliveredAt = now.Sub(c.start).Nanoseconds()
	}
	if seq.Cmp(c.sndCurrSeq, ack) < 0 {
		c.sndCurrSeq = ack.Dec()
	}
	c.sndLoss.RemoveBefore(ack)
	if n > 0 {
		c.signalWrite()
	}
	if c.sndBuf.Len() == 0 {
		c.sndBuf.Release()
	}
}

// onNAK handles a loss report: the listed packets go first in line.
func (c *Conn) onNAK(p *packet, now time.Time) {
	c.nakScratch = c.nakScratch[:0]
	valid := true
	err := lossl.ParseNAK(p.body, func(r lossl.Range) bool {
		if seq.Cmp(r.Last, c.sndCurrSeq) > 0 {
			valid = false // reports a loss of what was never sent
			return false
		}
		if seq.Cmp(r.Last, c.sndLastAck) < 0 {
			return true // already acknowledged
		}
		if seq.Cmp(r.First, c.sndLastAck) < 0 {
			r.First = c.sndLastAck
		}
		if len(c.nakScratch) < 1024 {
			c.nakScratch = append(c.nakScratch, r)
		}
		return true
	})
	if err != nil || !valid {
		c.stats.dropped++
		return
	}
	c.stats.nakRecv++
	c.lastProgress = now
	if len(c.nakScratch) == 0 {
		return
	}
	c.cc.OnLoss(now, c.nakScratch[0].First, c.ccInputs())
	c.period = c.ccPeriod()
	for _, r := range c.nakScratch {
		c.stats.pktSndLoss += uint64(c.sndLoss.Insert(r.First, r.Last))
	}
	c.kickLocked(now)
}
