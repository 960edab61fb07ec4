package udt

import (
	"math/rand/v2"
	"time"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/seq"
)

// A connection that falls behind its schedule catches up in a burst of at
// most maxPacingLag's worth of packets, or pacingLagPackets where that is
// more; beyond it, the missed time is forgotten. The count matters at low
// rates on a loaded machine: a send queue woken every few milliseconds
// sent one or two packets a wake, 2 ms' worth, and a flow paced at 500
// packets a second could not reach more; the rates the receiver reported
// were then what the sleeps allowed, and a model trusting them never grew.
const (
	maxPacingLag     = 2 * time.Millisecond
	pacingLagPackets = 8
)

// kickLocked puts the connection in the send queue if it is not there.
func (c *Conn) kickLocked(now time.Time) {
	if c.snd.scheduled || c.state != stateConnected || c.err != nil || c.live.peerClosed {
		return
	}
	c.snd.scheduled = true
	if c.snd.target.Before(now) {
		c.snd.target = now
	}
	if c.snd.target.Before(c.snd.holdUntil) {
		c.snd.target = c.snd.holdUntil
	}
	c.m.sndq.schedule(c, c.snd.target)
}

// packBatch appends to t the data packets due by horizon, under one lock,
// as long as t has room. It returns when the connection wants to send
// again, and false when it has nothing to send.
func (c *Conn) packBatch(t *txBatch, now, horizon time.Time) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.wakeWriterBehindLocked()
	// Only the send queue's worker, which runs this, moves flushed: the
	// batch being filled is flushed+1 throughout.
	flushed := c.m.sndq.flushed.Load()
	c.snd.releaseDeferred(flushed)
	for range t.room() {
		n := len(t.buf)
		b, pay, next, ok := c.packLocked(t.buf, now)
		t.buf = b
		if len(b) > n {
			t.add(pay, c.peer)
			if pay != nil {
				// The payload stays in the send buffer until the batch
				// being filled is written.
				c.snd.pinned = flushed + 1
			}
		}
		if !ok || next.After(horizon) || t.full() {
			return next, ok
		}
	}
	return c.snd.target, true
}

// wakeWriterBehindLocked wakes a Write that waits for the sender to catch
// up (see writeAhead) once there is room for writeRefill packets: each
// batch packed may have made it, and the ACKs that wake writers for room
// in the send buffer do not come when the buffer has room. The Write is
// woken long before the sender could run dry.
func (c *Conn) wakeWriterBehindLocked() {
	if c.snd.writerAhead && c.snd.buf != nil && c.snd.unsentLocked() <= writeAhead-writeRefill {
		c.snd.writerAhead = false
		c.sig.wakeWriter()
	}
}

// packLocked appends the next data packet due (a retransmission first, else
// a new packet the windows allow) to b: its header, and the payload it
// returns (in the send buffer), or a whole drop request and no payload. It
// returns when the connection wants to send again, and false when it has
// nothing to send.
func (c *Conn) packLocked(b []byte, now time.Time) ([]byte, []byte, time.Time, bool) {
	if c.state != stateConnected || c.err != nil || c.live.peerClosed {
		c.snd.scheduled = false
		return b, nil, time.Time{}, false
	}
	s, off, retrans, found := c.pickLocked(now)
	if !found {
		c.snd.scheduled = false
		return b, nil, time.Time{}, false
	}
	pk := c.snd.buf.At(off)
	if pk.expire != 0 && now.Sub(c.start).Nanoseconds() >= pk.expire {
		// Its message outlived its TTL: a drop request takes the slot.
		return c.dropMessageLocked(b, off), nil, c.snd.target, true
	}
	b, pay := c.appendDataLocked(b, s, off, retrans, now)

	// Pacing: the next packet is due one period after this one was; a
	// connection running late catches up in a burst of bounded length.
	if !retrans && s%16 == 0 {
		// Probe pair: the next packet follows at once.
		c.snd.probeNext = true
		return b, pay, c.snd.target, true
	}
	c.snd.target = c.snd.target.Add(jitter(c.cc.period))
	if floor := now.Add(-max(maxPacingLag, pacingLagPackets*c.cc.period)); c.snd.target.Before(floor) {
		c.snd.target = floor
	}
	return b, pay, c.snd.target, true
}

// pickLocked chooses the packet to send next: the partner of a probe
// start, else the first reported lost, else a new one if the windows
// allow. It returns its sequence number and offset in the send buffer.
func (c *Conn) pickLocked(now time.Time) (s seq.Num, off int, retrans, found bool) {
	if c.snd.probeNext {
		// The partner of a probe start follows it before any
		// retransmission, so that the receiver measures the pair (see
		// window.Arrivals.OnData).
		c.snd.probeNext = false
		if s, off, found = c.nextNewLocked(now); found {
			return s, off, false, true
		}
	}
	for {
		first, ok := c.snd.loss.PopFirst()
		if !ok {
			break
		}
		off = seq.Off(c.snd.lastAck, first)
		if off < 0 || off >= c.snd.buf.Len() || seq.Cmp(first, c.snd.currSeq) > 0 {
			continue // acknowledged meanwhile, or never sent
		}
		return first, off, true, true
	}
	s, off, found = c.nextNewLocked(now)
	return s, off, false, found
}

// appendDataLocked appends the header of data packet s, at offset off in
// the send buffer, to b, counts it sent and returns its payload (in the
// send buffer).
func (c *Conn) appendDataLocked(b []byte, s seq.Num, off int, retrans bool, now time.Time) ([]byte, []byte) {
	pk := c.snd.buf.Ptr(off)
	p := packet{
		seq:     s,
		pos:     pk.pos,
		inOrder: pk.inOrder,
		msg:     pk.msg,
		ts:      uint32(now.Sub(c.start).Microseconds()),
		dst:     c.peerID,
	}
	b = p.appendHeader(b)
	// The send time, for the sender's RTT samples (see onACKLocked).
	if retrans {
		pk.sentAt = -now.Sub(c.start).Nanoseconds() - 1
	} else {
		pk.sentAt = now.Sub(c.start).Nanoseconds()
	}
	size := len(*pk.buf)
	c.stats.pktSent++
	c.stats.bytesSent += uint64(size)
	if retrans {
		c.stats.pktRetrans++
		c.stats.bytesRetrans += uint64(size)
	}
	if c.cc.perPkt {
		c.cc.ctl.OnPktSent(now, CongestionPacket{Seq: uint32(s), Size: size, Retransmission: retrans})
		c.ccUpdateLocked()
	}
	if c.tr.t != nil {
		c.tr.t.PacketSent(TracePacket{Time: now, Seq: uint32(s), Msg: uint32(pk.msg), Size: size, Retransmit: retrans})
	}
	return b, *pk.buf
}

// jitter returns a gap drawn uniformly from [p/2, 3p/2]: the period p on
// average. Flows paced by exact timers through one drop-tail queue lock
// into phase with its departures, and the queue's drops then fall on the
// same flow event after event (Floyd and Jacobson, "On Traffic Phase
// Effects in Packet-Switched Gateways", 1992); the connections of one
// multiplexer are paced by one send queue and lock so more readily.
func jitter(p time.Duration) time.Duration {
	if p <= 1 {
		return p
	}
	return p/2 + time.Duration(rand.Int64N(int64(p)+1))
}

// nextNewLocked takes the next packet never sent, if the flow and
// congestion windows allow one.
func (c *Conn) nextNewLocked(now time.Time) (s seq.Num, off int, ok bool) {
	inflight := c.snd.inFlightLocked()
	window := c.snd.flowWindow
	if inflight == 0 {
		// A window probe: with nothing in flight, one packet goes even
		// into a window the peer offered as closed (an ACK of zero, or
		// light ACKs that used it up). Dropped by a peer still full, it
		// is resent at each EXP expiry like any packet outstanding, and
		// the ACK it draws once the reader has made room reopens the
		// window: the peer's own update, sent once, may be lost, and
		// nothing else would ever ask again.
		window = max(window, 1)
	}
	if c.cc.window > 0 {
		window = min(window, c.cc.window)
	}
	if inflight >= window {
		if inflight < c.snd.buf.Len() {
			c.snd.windowLimited.set(c.snd.currSeq)
		}
		return 0, 0, false
	}
	if inflight >= c.snd.buf.Len() {
		// Nothing left to send though the windows allow more: the
		// application holds the rate down, and the arrival rates the
		// peer reports for these packets say so, not the path's.
		c.snd.appLimited.set(c.snd.currSeq)
		return 0, 0, false
	}
	if inflight == 0 {
		c.live.lastProgress, c.live.ackAdvanced = now, now // data outstanding from now on
	}
	c.snd.currSeq = c.snd.currSeq.Inc()
	return c.snd.currSeq, inflight, true
}

// onACKLocked handles an ACK from the peer (docs/protocol.md §7.1).
func (c *Conn) onACKLocked(p *packet, now time.Time, ob *outbox) {
	a, err := parseACK(p.body)
	if err != nil {
		c.stats.dropped++
		return
	}
	c.stats.ackRecv++
	if c.tr.t != nil {
		c.traceACKLocked(now, p.info, &a, false)
		defer c.traceMetricsLocked(now)
	}
	if seq.Cmp(a.ack, c.snd.currSeq.Inc()) > 0 {
		// Acknowledges what was never sent: a spoofed or broken peer.
		// The C++ library breaks the connection; we drop the packet.
		c.stats.dropped++
		return
	}
	if a.words == 1 {
		// Light ACK: moves the window only.
		if seq.Cmp(a.ack, c.snd.lastAck) > 0 {
			c.snd.flowWindow -= seq.Off(c.snd.lastAck, a.ack)
			c.releaseAckedLocked(a.ack)
			c.onAckAdvancedLocked(now)
			c.kickLocked(now)
		}
		return
	}
	ob.add(appendControl(ob.next(), ctrlACK2, p.info, c.peerID, nil))
	c.traceControlLocked(now, ctrlACK2, p.info, true)
	if seq.Cmp(a.ack, c.snd.lastAck) >= 0 && a.words >= 4 {
		wasFull := c.snd.peerBufferFull()
		c.snd.flowWindow = int(min(a.avail, 1<<30))
		if wasFull && !c.snd.peerBufferFull() {
			// The reader made room: the no-progress bound, which
			// did not apply while the peer was full (see
			// peerLostLocked), starts now, not at the last advance
			// before the pause (a pause longer than PeerIdleTimeout
			// had the peer taken for lost by the window update
			// that ended it).
			c.live.lastProgress = now
		}
		c.cc.peerRTT = min(time.Duration(a.rtt)*time.Microsecond, maxRTT)
		c.cc.peerRTTVar = min(time.Duration(a.rttVar)*time.Microsecond, maxRTT)
	}
	if seq.Cmp(a.ack, c.snd.lastAck) > 0 {
		c.releaseAckedLocked(a.ack)
		c.onAckAdvancedLocked(now)
	}
	if seq.Cmp(a.ack, c.snd.dataAck) > 0 {
		c.snd.dataAck = a.ack
		c.sig.wakeWriter() // a lingering Close waits for this (see Close)
		c.ackEstimatesLocked(&a, now)
		in := c.ccInputsLocked()
		in.ArrivedRTT = c.arrivedRTTLocked(now)
		c.cc.ctl.OnACK(now, uint32(a.ack), in)
		c.ccUpdateLocked()
	}
	c.kickLocked(now)
}

// ackEstimatesLocked takes what a full ACK a that advanced tells of the
// path: RTT samples, ours and the peer's, and the peer's arrival rate and
// link capacity, each bounded to what is plausible.
func (c *Conn) ackEstimatesLocked(a *ackBody, now time.Time) {
	c.cc.ackRTT = 0
	if c.cc.ackedSentAt > 0 && !c.cc.ackedHole {
		c.cc.ackRTT = now.Sub(c.start) - time.Duration(c.cc.ackedSentAt)
	}
	c.cc.ackedSentAt, c.cc.ackedHole = 0, false
	if a.words >= 4 && a.rtt > 0 {
		c.cc.rttSample = c.plausibleRTTLocked(now, time.Duration(min(a.rtt, 1<<30))*time.Microsecond, c.cc.ackRTT)
		c.cc.rtt.Update(c.cc.rttSample)
	}
	c.cc.rateSample = 0
	c.snd.appLimited.clearPast(a.ack)
	c.snd.windowLimited.clearPast(a.ack)
	if a.words >= 6 {
		c.cc.rateSamples++
		warm := c.cc.rateSamples > rateWarmup
		cold := c.coldRateBoundLocked(now)
		c.cc.rateSample = plausibleRate(a.rate, c.cc.rate, warm, cold)
		if a.rate > 0 {
			c.cc.rate = (7*c.cc.rate + c.cc.rateSample) >> 3
		}
		if a.bandwidth > 0 {
			c.cc.bandwidth = (7*c.cc.bandwidth + plausibleRate(a.bandwidth, c.cc.bandwidth, warm, cold)) >> 3
		}
	}
}

// maxRTT is the longest round trip taken from the network: no path this
// library serves has a longer one, and a sample beyond it is corrupt or
// forged.
const maxRTT = 10 * time.Second

// plausibleRTTLocked bounds an RTT sample, which the peer reports in its
// ACKs (its smoothed RTT) or which an ACK2 gives (for an ACK that a late or
// forged ACK2 may name long after): no longer than the connection has been
// established, nor maxRTT; once the estimate rests on a measurement, no
// more than twice its RTT and four variations, and a SYN (the estimate
// can still double within a sample or two when a queue builds); and where
// the sender timed the ACK's packet itself (local, 0 if not), no more than
// twice that and a SYN. One corrupted or forged RTT word (UDT has no
// checksum of its own) replaced the first estimate outright: 2^30 µs put
// the EXP interval, and dead-peer detection with it, at days.
func (c *Conn) plausibleRTTLocked(now time.Time, sample, local time.Duration) time.Duration {
	bound := min(maxRTT, max(now.Sub(c.stats.start), time.Microsecond))
	if c.cc.rtt.Sampled() {
		bound = min(bound, 2*(c.cc.rtt.RTT+4*c.cc.rtt.Var)+synInterval)
	}
	if local > 0 {
		bound = min(bound, 2*local+synInterval)
	}
	return min(sample, bound)
}

// rateWarmup is how many full ACKs the rate averages take before
// plausibleRate bounds new samples by the averages themselves.
const rateWarmup = 16

// plausibleRate bounds a rate sample from an ACK (word 5 or 6, packets/s):
// at most 2^28; once warm, at most twice the running average avg; before,
// at most cold (see coldRateBoundLocked). A rate that truly grows still doubles
// the average within about six ACKs; one forged or corrupted word (UDT has
// no checksum of its own) can no longer raise the average a millionfold
// and, through the controller, let the sender burst without bound, on the
// first ACK no more than later.
func plausibleRate(sample uint32, avg int, warm bool, cold int) int {
	r := int(min(sample, 1<<28))
	if warm && avg > 0 {
		return min(r, 2*avg)
	}
	return min(r, cold)
}

// coldRateFactor is how far above our own fastest send rate a rate word
// may go before the averages are warm: the receiver's arrival rate is a
// median of its last inter-arrival times, which a burst sent back to back
// shortens below our average spacing, and its capacity estimate measures
// the link from packet pairs, which may be far faster than we send.
const coldRateFactor = 16

// coldRateFloor is the least coldRateBoundLocked allows, packets/s: what 4.11's
// averages start from, and then some.
const coldRateFloor = 1024

// coldRateBoundLocked returns the bound of a rate word before the averages are
// warm: coldRateFactor times the fastest we have sent over the span
// between two full ACKs (the peer cannot have received from us faster than
// we sent, but in bursts), and at least coldRateFloor. It ends the span in
// progress at now.
func (c *Conn) coldRateBoundLocked(now time.Time) int {
	if c.cc.rateMark.IsZero() {
		c.cc.rateMark = c.start
	}
	if dt := now.Sub(c.cc.rateMark); dt > 0 {
		r := float64(c.stats.pktSent-c.cc.rateMarkSent) / dt.Seconds()
		c.cc.maxSendRate = max(c.cc.maxSendRate, int(min(r, 1<<28)))
	}
	c.cc.rateMark, c.cc.rateMarkSent = now, c.stats.pktSent
	return max(coldRateFactor*c.cc.maxSendRate, coldRateFloor)
}

// releaseAckedLocked frees the send buffer up to ack (exclusive).
func (c *Conn) releaseAckedLocked(ack seq.Num) {
	n := min(seq.Off(c.snd.lastAck, ack), c.snd.buf.Len())
	flushed := c.m.sndq.flushed.Load()
	c.snd.releaseDeferred(flushed)
	for i := range n {
		pk := c.snd.buf.PopFront()
		c.snd.freeBuf(pk.buf, flushed)
		if pk.reported {
			c.cc.holes--
		}
		if pk.sentAt < 0 {
			c.cc.ackedHole = true
		}
		if i == n-1 {
			c.cc.ackedSentAt = pk.sentAt
			c.cc.newestAckedSentAt = pk.sentAt
		}
	}
	c.snd.lastAck = ack
	c.live.progressed(time.Now()) // the peer is receiving our data
	c.cc.delivered += uint64(max(n, 0))
	c.countArrivedLocked()
	if seq.Cmp(c.snd.currSeq, ack) < 0 {
		c.snd.currSeq = ack.Dec()
	}
	c.snd.loss.RemoveBefore(ack)
	if n > 0 {
		c.sig.wakeWriter()
	}
}

// maxNAKRanges is the most ranges of one loss report taken; the rest are
// left for the report's repeats. A report of thousands of scattered
// losses, which a broken or hostile peer can send in one datagram, then
// costs bounded work.
const maxNAKRanges = 1024

// onNAKLocked handles a loss report: the listed packets go first in line.
func (c *Conn) onNAKLocked(p *packet, now time.Time) {
	c.snd.nakScratch = c.snd.nakScratch[:0]
	valid := true
	err := lossl.ParseNAK(p.body, func(r lossl.Range) bool {
		if seq.Cmp(r.Last, c.snd.currSeq) > 0 {
			valid = false // reports a loss of what was never sent
			return false
		}
		if seq.Cmp(r.Last, c.snd.lastAck) < 0 {
			return true // already acknowledged
		}
		if seq.Cmp(r.First, c.snd.lastAck) < 0 {
			r.First = c.snd.lastAck
		}
		if len(c.snd.nakScratch) < maxNAKRanges {
			c.snd.nakScratch = append(c.snd.nakScratch, r)
		}
		return true
	})
	if err != nil || !valid {
		c.stats.dropped++
		return
	}
	c.stats.nakRecv++
	c.live.lastProgress = now
	if c.tr.t != nil {
		c.traceNAKLocked(now, p.body, false)
		defer c.traceMetricsLocked(now)
	}
	if len(c.snd.nakScratch) == 0 {
		return
	}
	lossRTT := c.lossRTTLocked(now, c.snd.nakScratch[len(c.snd.nakScratch)-1])
	c.takeArrivalsLocked(c.snd.nakScratch)
	in := c.ccInputsLocked()
	in.LossRTT = lossRTT
	in.ArrivedRTT = c.arrivedRTTLocked(now)
	c.cc.ctl.OnLoss(now, c.cc.lossRanges(c.snd.nakScratch), in)
	c.ccUpdateLocked()
	reported := 0
	for _, r := range c.snd.nakScratch {
		if off := seq.Off(c.snd.lastAck, r.First); !c.cc.peerRenaks && off >= 0 && off < c.snd.buf.Len() && c.snd.buf.Ptr(off).sentAt < 0 {
			c.cc.peerRenaks = true // a retransmission reported lost: the peer repeats its reports
		}
		n := uint64(c.snd.loss.Insert(r.First, r.Last))
		c.traceLossLocked(now, r.First, r.Last, "nak")
		c.stats.pktSndLoss += n
		c.cc.nakLost += n
		reported += seq.Len(r.First, r.Last)
	}
	if reported >= burstLog {
		c.logRetransmissionLocked(now, "loss report", reported)
	}
	c.kickLocked(now)
}

// takeArrivalsLocked counts what a loss report's ranges rs (clipped to
// what is unacknowledged and sent) show of arrivals past the ACK point
// (see CongestionInfo.Arrived): the packets they name are marked, once
// each, and the packet after each range arrived, or the peer would not
// have seen the gap.
func (c *Conn) takeArrivalsLocked(rs []lossl.Range) {
	for _, r := range rs {
		for off, end := seq.Off(c.snd.lastAck, r.First), min(seq.Off(c.snd.lastAck, r.Last), c.snd.buf.Len()-1); off <= end; off++ {
			if p := c.snd.buf.Ptr(off); !p.reported {
				p.reported = true
				c.cc.holes++
			}
		}
		if next := r.Last.Inc(); seq.Cmp(next, c.snd.currSeq) <= 0 && (!c.cc.reached || seq.Cmp(next, c.cc.known) > 0) {
			c.cc.known, c.cc.reached = next, true
		}
	}
	c.countArrivedLocked()
}

// countArrivedLocked brings CongestionInfo.Arrived up to date: the packets
// acknowledged, and those from the ACK point to the newest a loss report
// showed arrived that no report named. It never goes back: a late report
// naming packets counted before (a repeat whose first copy was lost)
// holds it where it is.
func (c *Conn) countArrivedLocked() {
	n := c.cc.delivered
	if c.cc.reached && seq.Cmp(c.cc.known, c.snd.lastAck) >= 0 {
		n += uint64(max(seq.Off(c.snd.lastAck, c.cc.known)+1-c.cc.holes, 0))
	} else {
		c.cc.reached = false
	}
	c.cc.arrived = max(c.cc.arrived, n)
}

// arrivedRTTLocked is CongestionInfo.ArrivedRTT at now.
func (c *Conn) arrivedRTTLocked(now time.Time) time.Duration {
	at := c.cc.newestAckedSentAt
	if off := seq.Off(c.snd.lastAck, c.cc.known); c.cc.reached && off >= 0 && off < c.snd.buf.Len() {
		at = c.snd.buf.Ptr(off).sentAt
	}
	if at <= 0 {
		return 0 // retransmitted: which copy arrived is not known
	}
	return max(now.Sub(c.start)-time.Duration(at), 0)
}

// lossRTTLocked is the round trip a loss report r, the newest range of a
// NAK, measures (see CongestionInfo.LossRTT): from the sending of the
// packet after r, whose arrival revealed the gap, to now. It is 0 where
// that packet was retransmitted or not sent yet, and where r is not new:
// already queued for retransmission, or its first packet retransmitted
// (a periodic re-report comes long after the packet that revealed it).
// onNAKLocked has clipped r to what is unacknowledged and sent.
func (c *Conn) lossRTTLocked(now time.Time, r lossl.Range) time.Duration {
	next := r.Last.Inc()
	if c.snd.loss.Contains(r.First) || seq.Cmp(next, c.snd.currSeq) > 0 {
		return 0
	}
	first, after := c.snd.buf.Ptr(seq.Off(c.snd.lastAck, r.First)).sentAt, c.snd.buf.Ptr(seq.Off(c.snd.lastAck, next)).sentAt
	if first < 0 || after < 0 {
		return 0
	}
	return max(now.Sub(c.start)-time.Duration(after), 0)
}

// burstLog is the size of a loss report logged as a retransmission burst.
const burstLog = 64
