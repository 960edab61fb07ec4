package udt

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/seq"
)

const (
	synInterval    = 10 * time.Millisecond
	lightACKEvery  = 64
	minEXPInterval = 300 * time.Millisecond
	minNAKInterval = 20 * time.Millisecond
)

// handlePacket processes one datagram from the peer of an established
// connection; receive worker only.
func (c *Conn) handlePacket(p *packet) {
	ob := &c.m.rcvOut
	c.mu.Lock()
	now := time.Now()
	if c.state != stateConnected {
		done := c.state == stateClosed && c.answerClosedLocked(p, now, ob)
		c.mu.Unlock()
		c.flush(ob)
		if done {
			go c.unregister() // it waits for nothing the worker holds, but keep the worker free
		}
		return
	}
	c.live.heard(now)
	c.snd.holdUntil = time.Time{}
	if !p.control {
		c.onDataLocked(p, now, ob)
	} else {
		c.stats.ctrlRecv++
		switch p.typ {
		case ctrlACK:
			c.onACKLocked(p, now, ob)
		case ctrlNAK:
			c.onNAKLocked(p, now)
		case ctrlACK2:
			c.onACK2Locked(p, now)
		case ctrlShutdown:
			c.onShutdownLocked()
		case ctrlHandshake:
			c.onHandshakeWhileConnectedLocked(p, now, ob)
		case ctrlDropReq:
			c.onDropRequestLocked(p, now)
		case ctrlKeepAlive:
			c.traceControlLocked(now, ctrlKeepAlive, 0, false)
		case ctrlCongestion, ctrlError, ctrlUser:
			// Keep-alive only resets the EXP state (done above). The
			// congestion warning's effect is void in 4.11 too; error
			// signals and user-defined packets have no stream meaning.
		default:
			c.stats.dropped++
		}
	}
	c.armTimerLocked(now)
	c.mu.Unlock()
	c.flush(ob)
}

// handleData handles a run of data packets, read together, under one
// lock: handlePacket for each, sharing its per-call work.
func (c *Conn) handleData(ps []packet) {
	ob := &c.m.rcvOut
	c.mu.Lock()
	if c.state != stateConnected {
		c.mu.Unlock()
		for i := range ps {
			c.handlePacket(&ps[i])
		}
		return
	}
	now := time.Now()
	c.live.heard(now)
	c.snd.holdUntil = time.Time{}
	c.rcv.inRun = true
	for i := range ps {
		c.onDataLocked(&ps[i], now, ob)
	}
	c.rcv.inRun = false
	if c.rcv.runACK {
		c.rcv.runACK = false
		if c.m.batching {
			c.oweACKLocked(&c.rcv.ackOwed)
		} else {
			c.sendACKLocked(now, ob)
		}
	}
	c.armTimerLocked(now)
	c.mu.Unlock()
	c.flush(ob)
}

// countForeign counts a packet for this socket from the wrong address.
func (c *Conn) countForeign() {
	c.mu.Lock()
	c.stats.dropped++
	c.mu.Unlock()
}

// onDataLocked stores a data packet in the receive window.
func (c *Conn) onDataLocked(p *packet, now time.Time, ob *outbox) {
	s := p.seq
	// Arrival-rate and packet-pair estimates use the kernel's arrival
	// time when there is one (see stamp_linux.go).
	at := now
	if !p.arrival.IsZero() {
		at = p.arrival
	}
	c.rcv.arrivals.OnData(at, s)
	c.stats.pktRecv++
	if c.cc.perPkt {
		c.cc.ctl.OnPktReceived(now, CongestionPacket{Seq: uint32(s), Size: len(p.body)})
		c.ccUpdateLocked()
	}
	off := seq.Off(c.rcv.readSeq, s)
	if why := c.refusesDataLocked(p, off); why != "" {
		c.stats.pktRecvDropped++
		if c.tr.t != nil {
			c.tr.t.PacketReceived(TracePacket{Time: now, Seq: uint32(s), Msg: uint32(p.msg), Size: len(p.body), Discarded: why})
		}
		if why == "window" || why == "memory" {
			c.answerProbeLocked(now, ob)
		}
		return
	}
	if c.tr.t != nil {
		c.tr.t.PacketReceived(TracePacket{Time: now, Seq: uint32(s), Msg: uint32(p.msg), Size: len(p.body), Retransmit: seq.Cmp(s, c.rcv.lastSeq) <= 0})
	}
	var buf *[]byte
	blk := p.blk
	if blk != nil {
		buf = c.holdViewLocked(blk, p.body)
	}
	if buf == nil {
		blk, buf = nil, c.holdRcvBufLocked()
		*buf = (*buf)[:copy(*buf, p.body)]
	}
	c.rcv.buf.Set(off, rcvPkt{buf: buf, blk: blk, msg: p.msg, pos: p.pos, inOrder: p.inOrder, state: slotData})
	c.stats.bytesRecv += uint64(len(p.body))
	if c.isMessage() && !p.inOrder {
		c.rcv.unordered++
	}

	wasReadable := c.readableLocked()
	oldContig := c.rcv.contig()
	if seq.Cmp(s, c.rcv.lastSeq) > 0 {
		c.advanceLastLocked(s, now, ob)
	} else {
		c.rcv.loss.Remove(s)
	}
	if c.isMessage() {
		c.onMessageDataLocked(off, oldContig)
	} else if !wasReadable && c.readableLocked() {
		c.sig.wakeReader()
	}
	c.ackDataLocked(len(p.body), now, ob)
}

// refusesDataLocked says why data packet p, off packets past the read
// point, is not to be stored ("" if it is): a duplicate ("duplicate"),
// outside the window ("window") or the connection's payload size
// ("size"), or beyond the socket's receive memory ("memory").
func (c *Conn) refusesDataLocked(p *packet, off int) string {
	s := p.seq
	switch {
	case off < 0:
		return "duplicate" // delivered already
	case off >= c.rcv.buf.Limit()-1:
		return "window"
	case len(p.body) > c.rcv.maxPayload || len(p.body) == 0:
		return "size"
	case c.rcv.buf.At(off).state != slotEmpty:
		return "duplicate" // or of a dropped message
	case seq.Cmp(s, c.rcv.lastSeq) <= 0 && !c.rcv.loss.Contains(s):
		return "duplicate" // already delivered
	case c.overMemoryLocked() && (c.rcv.loss.Len() == 0 || s != c.rcv.contig()):
		// The socket's connections hold all ReceiveMemory allows; only
		// a repair of the gap the ACK waits at, which makes data behind
		// it readable, is taken. The sender, offered less since, resends
		// the rest.
		c.m.ctr.drop(dropReceiveMemory)
		return "memory"
	}
	return ""
}

// advanceLastLocked takes s, newer than any received, as the newest, and
// reports the gap before it, if any, at once.
func (c *Conn) advanceLastLocked(s seq.Num, now time.Time, ob *outbox) {
	if next := c.rcv.lastSeq.Inc(); next != s {
		gap := lossl.Range{First: next, Last: s.Dec()}
		if c.rcv.loss.Len() == 0 {
			// The first loss outstanding starts the re-report
			// timer; later gaps leave it running, so that a steady
			// trickle of new losses cannot postpone it forever.
			c.rcv.nextNAK, c.rcv.nakThrough = now.Add(c.nakIntervalLocked()), gap.Last
		}
		c.stats.pktRcvLoss += uint64(c.rcv.loss.Insert(gap.First, gap.Last))
		body := lossl.AppendNAK(c.scratch[:0], []lossl.Range{gap})
		ob.add(appendControl(ob.next(), ctrlNAK, 0, c.peerID, body))
		c.stats.nakSent++
		if c.tr.t != nil {
			c.traceLossLocked(now, gap.First, gap.Last, "gap")
			c.traceNAKLocked(now, body, true)
		}
	}
	c.rcv.lastSeq = s
}

// ackDataLocked acknowledges data as a data packet of size bytes asks:
// at once after a short packet (it ends a message), at the controller's
// packet count, or with a light ACK every lightACKEvery packets. In a
// batch read, "at once" and the light ACK mean once after the batch.
func (c *Conn) ackDataLocked(size int, now time.Time, ob *outbox) {
	if size < c.payload {
		// A short packet ends a message: acknowledge at once, or in a
		// run read together, once at its end.
		if c.rcv.inRun {
			c.rcv.runACK = true
		} else {
			c.sendACKLocked(now, ob)
		}
		return
	}
	c.rcv.pktsSinceAck++
	if c.cc.ackEvery > 0 && c.rcv.pktsSinceAck >= c.cc.ackEvery {
		c.sendACKLocked(now, ob) // the controller's ACK interval
		return
	}
	if c.rcv.pktsSinceAck >= lightACKEvery*(c.rcv.lightAcks+1) {
		c.rcv.lightAcks++
		if c.rcv.inRun && c.m.batching {
			c.oweACKLocked(&c.rcv.lightOwed) // once, after the batch
		} else {
			c.sendLightACKLocked(now, ob)
		}
	}
}

// oweACKLocked sets flag, the kind of ACK owed after the batch being
// read (see multiplexer.sendOwedACKs), and puts the connection on the
// batch's list once. Receive worker only.
func (c *Conn) oweACKLocked(flag *bool) {
	if !c.rcv.ackOwed && !c.rcv.lightOwed {
		c.m.acksOwed = append(c.m.acksOwed, c)
	}
	*flag = true
}

// sendLightACKLocked sends a light ACK (the ACK number alone) unless the
// peer has confirmed that ACK point already.
func (c *Conn) sendLightACKLocked(now time.Time, ob *outbox) {
	ack := c.rcv.contig()
	if ack == c.rcv.lastAck2 {
		return
	}
	light := ackBody{ack: ack, words: 1}
	ob.add(appendControl(ob.next(), ctrlACK, 0, c.peerID, light.append(c.scratch[:0])))
	c.stats.ackSent++
	c.traceACKLocked(now, 0, &light, true)
}

// availLocked is the receive-buffer space beyond the ACK point, in packets,
// as announced in ACKs: no more than the socket's ReceiveMemory has left,
// or than this connection's fair share of it has (see overMemoryLocked),
// whichever is more; and never below 2, so a stalled sender can probe.
func (c *Conn) availLocked() int {
	used := seq.Off(c.rcv.readSeq, c.rcv.contig())
	avail := c.rcv.buf.Limit() - used - 1
	if limit := c.cfg.ReceiveMemory; limit > 0 && c.rcv.maxPayload > 0 {
		room := max(limit-c.m.rcvHeld.Load(), c.memoryShare()-c.rcv.held)
		avail = int(min(int64(avail), room/int64(c.rcv.maxPayload)))
	}
	return max(avail, minAdvertisedWindow)
}

// memoryShare is this connection's fair share of ReceiveMemory: an equal
// part among the socket's connections.
func (c *Conn) memoryShare() int64 {
	return c.cfg.ReceiveMemory / max(c.m.open.Load(), 1)
}

// overMemoryLocked reports whether the socket's connections hold all of
// ReceiveMemory and this one holds its fair share of it or more: it then
// takes no more data, but for repairs. A connection holding less keeps
// receiving up to its share, so that connections whose readers stall, and
// which filled the socket's memory, cannot starve the others.
func (c *Conn) overMemoryLocked() bool {
	limit := c.cfg.ReceiveMemory
	return limit > 0 && c.m.rcvHeld.Load()+int64(c.rcv.maxPayload) > limit && c.rcv.held >= c.memoryShare()
}

// holdRcvBufLocked takes a payload buffer for the receive window, counted
// against the socket's ReceiveMemory until freeRcvBufLocked gives it back.
func (c *Conn) holdRcvBufLocked() *[]byte {
	c.rcv.held += int64(c.rcv.maxPayload)
	c.m.rcvHeld.Add(int64(c.rcv.maxPayload))
	return c.rcv.bufs.Get()
}

// holdViewLocked keeps payload p, a slice of the receive worker's block
// blk, as a view of it (see rxBlock) rather than a copy: counted against
// the socket's ReceiveMemory for the block's share of each view, as a
// copy counts for its buffer. It returns nil where blk has no view left.
func (c *Conn) holdViewLocked(blk *rxBlock, p []byte) *[]byte {
	v := blk.view(p)
	if v != nil {
		c.rcv.held += blk.share
		c.m.rcvHeld.Add(blk.share)
	}
	return v
}

// freeRcvBufLocked gives back the payload of receive-window slot s, a
// buffer or a view; a slot may have none.
func (c *Conn) freeRcvBufLocked(s rcvPkt) {
	switch {
	case s.blk != nil:
		share := s.blk.share // read before the release that may recycle it
		c.rcv.held -= share
		c.m.rcvHeld.Add(-share)
		s.blk.release()
	case s.buf != nil:
		c.rcv.held -= int64(c.rcv.maxPayload)
		c.m.rcvHeld.Add(-int64(c.rcv.maxPayload))
		c.rcv.bufs.Put(s.buf)
	}
}

// minAdvertisedWindow is the least window an ACK offers, even with the
// buffer full (4.11's floor): the sender keeps probing with that many
// packets, and learns from the ACKs they draw when the reader has made
// room.
const minAdvertisedWindow = 2

// sendACKLocked sends a full or short ACK if the ACK point moved, or
// repeats it after RTT+4·RTTVar (§7.1).
//
// 4.11 stops repeating an ACK once its ACK2 has come back, even while the
// ACK waits at a hole; we keep repeating it while a loss is outstanding.
// The sender's EXP interval is sized to outlast one held-back ACK, not the
// re-report of a lost retransmission (one to two NAK intervals after its
// first report): with data still arriving behind the hole and no new loss
// for a while, the sender heard nothing past its EXP interval, took the
// peer for silent, and resent all it had in flight (700 packets the
// receiver had, on a 20 Mbit/s, 300 ms path at 0.5 % loss).
func (c *Conn) sendACKLocked(now time.Time, ob *outbox) {
	c.rcv.pktsSinceAck, c.rcv.lightAcks = 0, 0
	c.rcv.ackOwed, c.rcv.lightOwed = false, false // settled; the batch's list may still name c
	c.rcv.nextACK = now.Add(c.cc.ackPeriod)
	ack := c.rcv.contig()
	if ack == c.rcv.lastAck2 && seq.Cmp(ack, c.rcv.lastAck) <= 0 && c.rcv.loss.Len() == 0 {
		return // everything confirmed already
	}
	if seq.Cmp(ack, c.rcv.lastAck) < 0 ||
		ack == c.rcv.lastAck && now.Before(c.ackRepeatDueLocked()) {
		return
	}
	c.sendACKNowLocked(now, ack, ob)
}

// ackBeforeShutdownLocked acknowledges all that arrived, just before the
// shutdown that closeLocked sends: the peer's Close reports the data we
// never acknowledged as lost, and after the shutdown we acknowledge
// nothing more. Unlike sendACKLocked, it repeats the last ACK sent within
// RTT+4·RTTVar, unless an ACK2 confirmed it: that ACK may have been lost,
// or not yet written. The receive worker builds a run's ACK under the lock
// and writes it after releasing it, and the reader it woke can meanwhile
// read, Close and write its shutdown first; the peer, taking the shutdown
// before the ACK, then reported the last packets of the run (66 in
// TestTransportListenDial) though they had been read.
func (c *Conn) ackBeforeShutdownLocked(now time.Time, ob *outbox) {
	if ack := c.rcv.contig(); ack != c.rcv.lastAck2 {
		c.sendACKNowLocked(now, ack, ob)
	}
}

// answerProbeLocked answers a data packet dropped for lack of room (the
// window or ReceiveMemory): a sender facing our full buffer keeps the
// floor window's packets out as probes (see minAdvertisedWindow), and we
// answer with an ACK that offers the window we have, though its ACK
// number is unchanged and confirmed by ACK2, at most once per RTT+4·RTTVar
// (see ackRepeatDueLocked), however many probes come.
//
// Otherwise a full buffer made us silent: 4.11 sends no ACK whose number
// the ACK2 has confirmed, and a sender that probes every round trip keeps
// our EXP timer, and so our keep-alives, from ever firing. The sender then
// heard nothing for as long as the reader paused, and took us for lost
// after its 46 s bound (or PeerIdleTimeout). Answered, it hears us every
// probe, and learns of the room our reader makes from the next answer if
// the window update is lost.
func (c *Conn) answerProbeLocked(now time.Time, ob *outbox) {
	if now.Before(c.ackRepeatDueLocked()) {
		return
	}
	c.stats.probesAnswered++
	c.sendACKNowLocked(now, c.rcv.contig(), ob)
}

// ackRepeatDueLocked is when an unchanged ACK is sent again.
func (c *Conn) ackRepeatDueLocked() time.Time {
	return c.rcv.lastAckAt.Add(c.cc.rtt.RTT + 4*c.cc.rtt.Var)
}

// fastArrivals is the arrival rate, packets/s, above which the median
// of whole-microsecond gaps fails (a gap of 8 µs or less: the filter's
// lower bound, a median's eighth, rounds to 0).
const fastArrivals = 1_000_000 / 8

func (c *Conn) sendACKNowLocked(now time.Time, ack seq.Num, ob *outbox) {
	c.rcv.ackNo = c.rcv.ackNo.Next()
	a := ackBody{
		ack:    ack,
		rtt:    uint32(c.cc.rtt.RTT.Microseconds()),
		rttVar: uint32(c.cc.rtt.Var.Microseconds()),
		avail:  uint32(c.availLocked()),
		words:  4,
	}
	if now.Sub(c.rcv.lastFullAt) >= synInterval {
		a.rate = uint32(c.rcv.arrivalRate())
		a.bandwidth = uint32(c.rcv.arrivals.Bandwidth())
		a.words = 6
		c.rcv.lastFullAt = now
	}
	ob.add(appendControl(ob.next(), ctrlACK, uint32(c.rcv.ackNo), c.peerID, a.append(c.scratch[:0])))
	c.rcv.ackHist.Store(c.rcv.ackNo, ack, now)
	c.rcv.lastAck, c.rcv.lastAckAt = ack, now
	c.rcv.advertised = int(a.avail)
	c.stats.ackSent++
	c.traceACKLocked(now, uint32(c.rcv.ackNo), &a, true)
}

// windowUpdateLocked announces reopened receive space after a Read, when
// the last ACK left the sender nearly blocked.
func (c *Conn) windowUpdateLocked() *outbox {
	if c.state != stateConnected || c.rcv.buf == nil || c.rcv.advertised > c.rcv.buf.Limit()/4 {
		return nil
	}
	if c.availLocked() < c.rcv.buf.Limit()/2 {
		return nil
	}
	ob := getOutbox()
	c.sendACKNowLocked(time.Now(), c.rcv.contig(), ob)
	return ob
}

// onACK2Locked takes an RTT sample from the ACK it answers.
func (c *Conn) onACK2Locked(p *packet, now time.Time) {
	c.traceControlLocked(now, ctrlACK2, p.info&uint32(seq.Max), false)
	ack, rtt, ok := c.rcv.ackHist.Acknowledge(seq.Ack(p.info&uint32(seq.Max)), now)
	if !ok {
		c.stats.dropped++
		return
	}
	if rtt > 0 {
		c.cc.rtt.Update(c.plausibleRTTLocked(now, rtt, 0))
		c.traceMetricsLocked(now)
	}
	if seq.Cmp(ack, c.rcv.lastAck2) > 0 {
		c.rcv.lastAck2 = ack
	}
}

// onShutdownLocked ends the connection at the peer's request: what was received
// stays readable, then Read returns io.EOF. If packets the peer sent are
// known to be missing, the stream is incomplete and Read fails with
// ErrPeerAborted instead. On a message connection the messages those
// packets belong to are lost, like expired ones, and the rest are read.
func (c *Conn) onShutdownLocked() {
	if c.live.peerClosed {
		return // the repeat of a shutdown
	}
	c.live.peerClosed = true
	c.live.end(ErrPeerClosed)
	c.logClosedLocked(slog.LevelInfo, "peer", nil)
	c.traceControlLocked(time.Now(), ctrlShutdown, 0, false)
	c.traceClosedLocked("peer", nil)
	switch {
	case c.isMessage():
		c.rcv.abandonLosses()
	case c.rcv.loss.Len() > 0 && c.err == nil:
		c.err = ErrPeerAborted
	}
	if c.live.timer != nil {
		c.live.timer.Stop()
	}
	c.sig.wakeReader()
	c.sig.wakeWriter()
}

// onHandshakeWhileConnectedLocked re-answers a repeated request of the peer
// whose answer was lost. An accepted connection answers a conclusion
// request with the response it sent (the listener routes most of those,
// to destination 0; here only a stray one to our ID arrives); a
// rendezvous answers any request but an agreement (see
// answerRendezvousLocked); a dialed connection answers nothing. Only a
// whole handshake from the peer's socket is answered, and at most one per
// hsAnswerInterval: each answer is 64 bytes, and a forged source address
// would otherwise turn a stream of 16-byte headers into three times the
// traffic toward a victim.
func (c *Conn) onHandshakeWhileConnectedLocked(p *packet, now time.Time, ob *outbox) {
	h, err := parseHandshake(p.body)
	if err == nil && c.tr.t != nil {
		c.traceHandshakeLocked(now, &h, false)
	}
	switch {
	case err != nil || h.socketID != c.peerID || c.isDial && !c.rendezvous:
	case !c.rendezvous && h.reqType != reqConclusion, c.rendezvous && h.reqType == reqAgreement:
	case !c.hs.answeredAt.IsZero() && now.Sub(c.hs.answeredAt) < hsAnswerInterval:
	default:
		c.hs.answeredAt = now
		if c.rendezvous {
			c.answerRendezvousLocked(ob)
		} else {
			ob.add(appendHandshakePacket(ob.next(), c.peerID, &c.hs.ours))
			if c.tr.t != nil {
				c.traceHandshakeLocked(now, &c.hs.ours, true)
			}
		}
		return
	}
	c.stats.dropped++
}

// hsAnswerInterval is the least time between two answers to handshakes
// (see onHandshakeWhileConnectedLocked): well under the 250 ms at which both
// libraries repeat an unanswered request.
const hsAnswerInterval = 100 * time.Millisecond

// nakIntervalLocked is the period of the loss-list re-report: the time a
// retransmission takes to answer a NAK (a round trip, its variation, the
// sender's wait for its next sending slot and our timer's slack, which
// synInterval covers, as it does in the EXP interval), plus the time the
// sender needs to send every packet the list holds at the rate we receive.
// Shorter, it would re-report losses whose retransmission is on its way,
// and each duplicate NAK would count as a new congestion signal for the
// sender's controller.
func (c *Conn) nakIntervalLocked() time.Duration {
	d := c.cc.rtt.RTT + 4*c.cc.rtt.Var + synInterval
	if rate := c.rcv.arrivals.ReceiveRate(); rate > 0 {
		d += time.Duration(c.rcv.loss.Len()) * time.Second / time.Duration(rate)
	}
	return max(d, minNAKInterval)
}

// reportLossLocked is the periodic NAK: it re-reports the packets still
// missing that were already missing at the previous one (or, for the first,
// when the timer started), so each was last reported at least one interval
// ago and its retransmission should have arrived. Losses found since then
// are left to the next period: their first report, sent at once, is still
// being answered.
func (c *Conn) reportLossLocked(now time.Time, ob *outbox) {
	var n int
	c.rcv.nakBody, n = lossl.AppendNAKThrough(c.rcv.nakBody[:0], c.rcv.loss.Ranges(), c.rcv.nakThrough, c.payload)
	if n > 0 {
		ob.add(appendControl(ob.next(), ctrlNAK, 0, c.peerID, c.rcv.nakBody))
		c.stats.nakSent++
		c.traceNAKLocked(now, c.rcv.nakBody, true)
	}
	c.rcv.nextNAK, c.rcv.nakThrough = now.Add(c.nakIntervalLocked()), c.rcv.lastSeq
}

// expIntervalLocked is the EXP timeout after n expiries (§11.4), with the
// variance term at least a quarter of the RTT. A receiver waiting for a
// retransmission holds back its unchanged ACK for RTT+4·RTTVar (4.11 does,
// and so do we) and sends it at its next SYN tick: the sender hears
// nothing for as long as 4.11's EXP interval, RTT+4·RTTVar+SYN, on a path
// whose RTT hardly varies. Where the RTT is above the 300 ms floor the
// timer then expired on every repair, and all that was in flight went
// again: 946 packets in one round on a 20 Mbit/s, 300 ms link.
//
// The receiver holds back by its own RTT and variation, which its latest
// ACK reports: our RTT smooths those reports again and lags them while a
// queue grows, and the timer expired first (a 20 Mbit/s, 300 ms link in
// netsim, its queue filling at the end of start-up: 2,400-3,000 packets in
// flight sent again, 4-6 % of 30 s; our RTT 347 ms where the receiver held
// back for 620 ms). So the interval counts the greater of ours and the
// report (the report at most twice ours, so that a forged one cannot stretch
// dead-peer detection), plus an eighth of the RTT and a second SYN for the
// receiver's timer and the ACK's way back.
func (c *Conn) expIntervalLocked() time.Duration {
	n := time.Duration(c.live.expCount)
	rtt := max(c.cc.rtt.RTT, min(c.cc.peerRTT, 2*c.cc.rtt.RTT))
	rttVar := max(c.cc.rtt.Var, min(c.cc.peerRTTVar, c.cc.rtt.RTT))
	return max(n*(rtt+max(4*rttVar, rtt/4))+rtt/8+2*synInterval, n*minEXPInterval)
}

// onTimer runs the ACK, NAK and EXP timers.
func (c *Conn) onTimer() {
	c.mu.Lock()
	if c.state != stateConnected || c.err != nil || c.live.peerClosed {
		c.mu.Unlock()
		return
	}
	ob := getOutbox()
	defer putOutbox(ob)
	now := time.Now()
	c.live.timerAt = time.Time{}
	if !now.Before(c.rcv.nextACK) {
		c.sendACKLocked(now, ob)
	}
	if c.rcv.loss.Len() > 0 && !now.Before(c.rcv.nextNAK) {
		c.reportLossLocked(now, ob)
	}
	if c.rcvGapStuckLocked(now) {
		c.failLocked(&connLostError{fmt.Sprintf("a gap in the peer's data unrepaired for %v", c.progressBound())})
		c.dropHeldLocked()
	} else if c.peerLostLocked(now) {
		c.failLocked(ErrConnLost)
	} else if now.Sub(c.live.lastHeard) >= c.expIntervalLocked() {
		c.onExpiryLocked(now, ob)
	} else if seq.Cmp(c.snd.currSeq, c.snd.lastAck) >= 0 && !now.Before(c.stallDueLocked()) {
		c.resendStalledLocked(now)
	}
	if c.err == nil {
		c.armTimerLocked(now)
	}
	c.mu.Unlock()
	c.flush(ob)
}

// stallDueLocked is when, while data is unacknowledged, a peer that does not
// move its ACK has the oldest packet resent: one EXP interval after the
// last ACK advance or such resend, doubling with each resend up to 64
// intervals. It answers a lost retransmission when the peer never reports
// a loss twice, as 4.11 does (it has no periodic NAK): its repeated ACKs,
// and NAKs of later losses, keep the EXP timer from ever expiring, and the
// stream would stall for good.
//
// Where the oldest packet was itself a retransmission, its answer is due a
// round trip after it went: RTT+4·RTTVar and two SYNs after the later of
// the ACK's advance and that retransmission. A 4.11 receiver whose ACK
// waits at such a hole, its ACK2 received, sends nothing at all; waiting
// for the EXP timer there made every lost retransmission cost 300 ms of
// silence and a timeout that resent all that was in flight (5,574 packets
// the receiver had, on a 100 Mbit/s, 100 ms link at 1 % loss).
func (c *Conn) stallDueLocked() time.Time {
	from := c.live.ackAdvanced
	if c.live.stallResent.After(from) {
		from = c.live.stallResent
	}
	wait := c.expIntervalLocked()
	if c.snd.buf.Len() > 0 {
		if at, resent := c.snd.buf.Ptr(0).resentAt(); resent {
			if t := c.start.Add(at); t.After(from) {
				from = t
			}
			wait = min(wait, c.cc.retransWait())
			if !c.snd.peerBufferFull() || c.live.lastPacket.After(c.live.stallResent) {
				// Each resend's answer is due a round trip after it:
				// the resends, whose number grows (see
				// resendStalledLocked), keep that pace rather than
				// back off. So do the probes of a full buffer while
				// the peer answers them (see answerProbeLocked).
				return from.Add(wait)
			}
		}
	}
	// A 4.11 peer whose buffer is full drops the probes until its reader
	// makes room, and answers none: it sends no ACK that its ACK2 has
	// confirmed. Resent at a steady pace, the probes kept it hearing from
	// us, so its EXP timer never fired and it sent none of the keep-alives
	// that are all we hear of it; the connection was taken for lost at
	// PeerIdleTimeout or after 46 s (TestInteropSlowCppReader: lost 2.2 s
	// into its reader's 6 s pause). Backing off leaves it the silences of
	// its EXP interval (300 ms at least) in which it sends them.
	return from.Add(wait << min(c.live.stallResends, 6))
}

// resendStalledLocked queues the oldest unacknowledged packet again (see
// stallDueLocked), and, where that packet had been retransmitted already
// and the stall repeats, more of those whose latest retransmission is as
// overdue (see resendOverdueLocked), four times as many at each repeat. What is
// queued here is not reported to the congestion controller: nothing says
// it was lost to congestion.
func (c *Conn) resendStalledLocked(now time.Time) {
	budget := 1 << min(2*c.live.stallResends, 20)
	c.live.stallResent = now
	c.live.stallResends++
	c.stats.stallResent++
	n := c.snd.loss.Insert(c.snd.lastAck, c.snd.lastAck)
	c.traceLossLocked(now, c.snd.lastAck, c.snd.lastAck, "stall")
	if c.snd.buf.Len() > 0 && c.snd.buf.Ptr(0).sentAt < 0 {
		n += c.resendOverdueLocked(now, 1, budget-1)
	}
	if n > 0 {
		c.kickLocked(now)
	}
}

// resendOverdueLocked queues again, from offset from in the send buffer
// on, up to budget packets whose latest retransmission is overdue: sent
// more than retransWait ago, its answer should have come. It returns how
// many it queued.
//
// A 4.11 receiver reports a loss once: a lost retransmission shows only
// as its ACK coming to rest at the packet (and, with nothing behind it
// arriving, in nothing at all). Which of the other retransmissions in
// flight arrived it does not say. Resending every overdue one at the first
// stall wasted nearly all of them: on a 100 Mbit/s, 100 ms path at 0.1 %
// loss, after a startup overflow whose 1,650 retransmissions lost a
// handful, 2,248 packets went again and 2,237 reached the receiver twice
// (counted at the bottleneck): 0.9 % of the transfer. Resending one hole a
// round trip crawls where many retransmissions were lost (a C++ receiver's
// ACK once moved one hole every 170 ms, at 0.3 Mbit/s for seconds). The
// callers quadruple the budget each time the evidence repeats (the stall
// recurs, or the ACK comes to rest at another overdue hole), so L lost
// retransmissions cost about log4(L) round trips (the receiver's buffer
// holds about a second of data behind a hole: a handful of round trips)
// and at most about 3L packets sent in vain. A peer of ours repeats its loss reports and asks
// for each one itself: none is queued here for it.
func (c *Conn) resendOverdueLocked(now time.Time, from, budget int) (n int) {
	if c.cc.peerRenaks {
		return 0
	}
	due := now.Sub(c.start) - c.cc.retransWait()
	last := min(seq.Off(c.snd.lastAck, c.snd.currSeq), c.snd.buf.Len()-1)
	for i := from; i <= last && n < budget; i++ {
		if c.overdueLocked(i, due) {
			s := c.snd.lastAck.Add(i)
			if c.snd.loss.Insert(s, s) > 0 {
				n++
				c.traceLossLocked(now, s, s, "stall")
			}
		}
	}
	return n
}

// onAckAdvancedLocked looks at where an advancing ACK came to rest: at a
// packet whose retransmission is overdue, that retransmission was lost
// (the ACK names the first packet the receiver misses), and it is queued
// again at once rather than after a stall's wait. Each such ACK of a
// chain quadruples how many overdue retransmissions go with it (see
// resendOverdueLocked); ACKs at retransmissions not yet due continue the
// chain, one at a packet sent once ends it.
func (c *Conn) onAckAdvancedLocked(now time.Time) {
	if c.cc.peerRenaks || c.snd.buf.Len() == 0 || seq.Cmp(c.snd.lastAck, c.snd.currSeq) > 0 {
		c.live.holeChain = 0
		return
	}
	if !c.overdueLocked(0, now.Sub(c.start)-c.cc.retransWait()) {
		// A retransmission whose answer is not due yet: likely one that
		// an earlier ACK of the chain resent. The chain goes on, so that
		// the next overdue hole takes more with it; ended here, each ACK
		// came to rest at a hole resent a moment before, the budget
		// started again at one, and after an overflow at a 4.11
		// receiver that lost about a third of 3,300 retransmissions the
		// stream crawled at 7-17 Mbit/s for seconds on a 100 Mbit/s,
		// 100 ms link, its window full behind the holes.
		if _, resent := c.snd.buf.Ptr(0).resentAt(); !resent {
			c.live.holeChain = 0
		}
		return
	}
	budget := 1 << min(2*c.live.holeChain, 20)
	c.live.holeChain++
	if n := c.resendOverdueLocked(now, 0, budget); n > 0 {
		c.stats.stallResent++
		c.kickLocked(now)
	}
}

// onExpiryLocked handles an EXP expiry: retransmit what is unacknowledged,
// send a keep-alive when idle, or declare the peer lost.
func (c *Conn) onExpiryLocked(now time.Time, ob *outbox) {
	if c.peerLostLocked(now) {
		c.failLocked(ErrConnLost)
		return
	}
	c.stats.expiries++
	unacked := seq.Cmp(c.snd.currSeq, c.snd.lastAck) >= 0
	if c.tr.t != nil {
		c.tr.t.TimedOut(TraceTimeout{Time: now, Count: c.live.expCount + 1, Unacked: c.snd.inFlightLocked()})
		defer c.traceMetricsLocked(now)
	}
	switch {
	case unacked:
		if c.snd.loss.Len() == 0 {
			c.stats.pktSndLoss += uint64(c.snd.loss.Insert(c.snd.lastAck, c.snd.currSeq))
			c.traceLossLocked(now, c.snd.lastAck, c.snd.currSeq, "timeout")
		}
		c.logRetransmissionLocked(now, "timeout", c.snd.loss.Len())
		if !c.snd.peerBufferFull() {
			c.cc.ctl.OnTimeout(now, c.ccInputsLocked())
			c.ccUpdateLocked()
		}
		c.kickLocked(now)
	case c.snd.buf.Len() > 0:
		c.kickLocked(now)
	default:
		ob.add(appendControl(ob.next(), ctrlKeepAlive, 0, c.peerID, nil))
		c.traceControlLocked(now, ctrlKeepAlive, 0, true)
		c.releaseIdleLocked()
	}
	c.live.expCount++
	c.live.lastHeard = now
}

// releaseIdleLocked hands the storage of empty buffers back: the rings'
// slots and the payload buffers kept at hand. A busy connection keeps them,
// since its buffers empty and fill again many times a second; this runs
// once it has been idle for an EXP interval.
func (c *Conn) releaseIdleLocked() {
	if c.snd.buf.Len() == 0 {
		c.snd.buf.Release()
		c.snd.bufs.Flush()
	}
	if c.rcv.buf.Len() == 0 {
		c.rcv.buf.Release()
		c.rcv.bufs.Flush()
	}
}

// peerLostLocked reports whether the peer has been silent past the bound:
// Config.PeerIdleTimeout if set, else the C++ library's 17th consecutive
// EXP expiry more than 5 s after the previous one. A peer that is heard
// but neither advances its ACK nor sends a NAK for as long while our data
// is outstanding (a path dead in one direction) is lost too.
func (c *Conn) peerLostLocked(now time.Time) bool {
	if seq.Cmp(c.snd.currSeq, c.snd.lastAck) >= 0 && !c.snd.peerBufferFull() && now.Sub(c.live.lastProgress) >= c.progressBound() {
		return true
	}
	if c.cfg.PeerIdleTimeout > 0 {
		return now.Sub(c.live.lastPacket) >= c.cfg.PeerIdleTimeout
	}
	return c.live.expCount > 16 && now.Sub(c.live.lastHeard) > 5*time.Second
}

// rcvGapStuckLocked reports whether the receive window's first gap (the
// point our ACK waits at) has stayed unrepaired for the progress bound,
// while we reported it lost again every NAK interval: the mirror of the
// sender's bound (see peerLostLocked). A peer that never repairs a gap but
// keeps the connection alive, with keep-alives or new data, would
// otherwise pin everything received behind the gap, up to the whole
// receive buffer, for as long as it liked.
func (c *Conn) rcvGapStuckLocked(now time.Time) bool {
	if c.rcv.loss.Len() == 0 {
		c.rcv.stuckAt = time.Time{}
		return false
	}
	if contig := c.rcv.contig(); c.rcv.stuckAt.IsZero() || contig != c.rcv.stuckSeq {
		c.rcv.stuckSeq, c.rcv.stuckAt = contig, now
		return false
	}
	return now.Sub(c.rcv.stuckAt) >= c.progressBound()
}

// dropHeldLocked frees the payloads received behind the first gap, which
// a lost connection can no longer deliver; what lies before it can still
// be read.
func (c *Conn) dropHeldLocked() {
	for i := seq.Off(c.rcv.readSeq, c.rcv.contig()); i < c.rcv.buf.Len(); i++ {
		if s := c.rcv.buf.At(i); s.state == slotData {
			c.settleSlotLocked(i, slotDropped)
		}
	}
	c.rcv.bufs.Flush()
}

// progressBound is how long outstanding data may go without the peer's
// ACK advancing or a NAK before the peer is lost.
func (c *Conn) progressBound() time.Duration {
	if c.cfg.PeerIdleTimeout > 0 {
		return c.cfg.PeerIdleTimeout
	}
	return defaultStallTimeout
}

// defaultStallTimeout is how long outstanding data may go unacknowledged
// before the connection is lost, when PeerIdleTimeout is not set: the C++
// library's broken-connection bound at its 300 ms EXP floor.
const defaultStallTimeout = 46 * time.Second

// armTimerLocked sets the connection's one timer to its earliest deadline.
func (c *Conn) armTimerLocked(now time.Time) {
	at := c.live.lastHeard.Add(c.expIntervalLocked())
	if c.cfg.PeerIdleTimeout > 0 {
		at = minTime(at, c.live.lastPacket.Add(c.cfg.PeerIdleTimeout))
	}
	if seq.Cmp(c.snd.currSeq, c.snd.lastAck) >= 0 {
		if !c.snd.peerBufferFull() {
			at = minTime(at, c.live.lastProgress.Add(c.progressBound()))
		}
		at = minTime(at, c.stallDueLocked())
	}
	switch {
	case c.rcv.contig() != c.rcv.lastAck2:
		at = minTime(at, c.rcv.nextACK)
	case c.rcv.loss.Len() > 0: // the ACK waits at a hole: its repeat
		at = minTime(at, maxTime(c.rcv.nextACK, c.ackRepeatDueLocked()))
	}
	if c.rcv.loss.Len() > 0 {
		at = minTime(at, c.rcv.nextNAK)
	}
	if !c.live.timerAt.IsZero() && !at.Before(c.live.timerAt) {
		return // the armed timer fires first and re-arms
	}
	c.live.timerAt = at
	d := max(at.Sub(now), 0)
	if c.live.timer == nil {
		c.live.timer = time.AfterFunc(d, c.onTimer)
	} else {
		c.live.timer.Reset(d)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
