package udt

import (
	"time"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/pktbuf"
	"github.com/udt-go/udt/internal/seq"
)

// sender is the sending half of a connection: the send buffer, the
// packets the peer reported lost, the windows and the pacing. Guarded by
// Conn.mu; its methods run with it held.
type sender struct {
	buf     *pktbuf.Ring[sndPkt] // offset 0 holds lastAck
	lastAck seq.Num              // oldest unacknowledged
	dataAck seq.Num              // last full/short ACK processed
	currSeq seq.Num              // highest sent
	loss    *lossl.List          // reported lost, to be sent again
	// Payload buffers at hand, of Conn.payload bytes; each goes back to
	// the shared pool when the buffer empties.
	bufs       pktbuf.Cache
	flowWindow int // the peer's flow window, packets
	// appLimited: the application left the sender idle with the windows
	// open. windowLimited: a window held back new data waiting to go.
	appLimited, windowLimited heldMark
	target                    time.Time // pacing: when the packet being sent was due
	probeNext                 bool      // a probe start went last: its partner goes next
	peerWindow                int       // the peer's receive buffer, packets, from the handshake
	scheduled                 bool      // in the send queue, or being served by it
	holdUntil                 time.Time // accepted conns: no data before this (see establishLocked)
	msgNo                     seq.Msg
	nakScratch                []lossl.Range // a NAK's ranges, parsed
	writerAhead               bool          // a Write waits for the sender to catch up (see writeAhead)
	// pinned is the send queue's batch (see sendQueue.flushed) that last
	// took payloads of this send buffer: until it is written, a payload
	// freed goes to deferred, not back to bufs, where a Write of this
	// connection, or through the shared pool of another, would fill it
	// while the kernel reads it. A retransmission in the batch may be of
	// a packet acknowledged meanwhile.
	pinned   uint64
	deferred []*[]byte
}

// freeBuf gives the payload buffer b back, or keeps it aside while the
// send queue's batch that may hold it is not written; flushed is
// sendQueue.flushed.
func (s *sender) freeBuf(b *[]byte, flushed uint64) {
	if s.pinned > flushed {
		s.deferred = append(s.deferred, b)
		return
	}
	s.bufs.Put(b)
}

// releaseDeferred gives back the buffers kept aside once the batch that
// pinned them is written.
func (s *sender) releaseDeferred(flushed uint64) {
	if len(s.deferred) == 0 || s.pinned > flushed {
		return
	}
	for i, b := range s.deferred {
		s.bufs.Put(b)
		s.deferred[i] = nil
	}
	s.deferred = s.deferred[:0]
}

// inFlightLocked is how many packets were sent and not yet acknowledged.
// Guarded by Conn.mu, as the sender is.
func (s *sender) inFlightLocked() int {
	return seq.Off(s.lastAck, s.currSeq) + 1
}

// unsentLocked is how many packets of the send buffer were never sent.
func (s *sender) unsentLocked() int {
	return s.buf.Len() - s.inFlightLocked()
}

// sndPkt is one packet's payload in the send buffer.
type sndPkt struct {
	buf     *[]byte
	msg     seq.Msg
	pos     msgPos
	inOrder bool
	// reported: a loss report named it (see ccState.holes).
	reported bool
	// sentAt is when it was sent, in ns since c.start, if it was sent
	// once; once retransmitted, -1 less the time of its latest
	// retransmission (Karn: an ACK then answers no one transmission, and
	// takes no RTT sample; see stallDueLocked); 0 before it is sent.
	sentAt int64
	// expire is when its message's time to live ends, in ns since
	// c.start; 0 if it has none.
	expire int64
}

// resentAt returns when p was last retransmitted, as time since the
// connection's start, and false if it was sent once only (sentAt's sign
// tells; see appendDataLocked).
func (p *sndPkt) resentAt() (time.Duration, bool) {
	if p.sentAt >= 0 {
		return 0, false
	}
	return time.Duration(-p.sentAt - 1), true
}

// overdueLocked reports whether the packet at offset i of the send buffer
// was retransmitted at or before due (time since the connection's start).
func (c *Conn) overdueLocked(i int, due time.Duration) bool {
	at, resent := c.snd.buf.Ptr(i).resentAt()
	return resent && at <= due
}

// peerBufferFull reports whether the peer's receive buffer is full
// as far as its ACKs say: they offer the floor window of 2 packets, which
// we have sent. The peer then drops those probes and its ACK cannot move
// until its application reads: a slow reader, not a lost peer, and not
// congestion.
func (s *sender) peerBufferFull() bool {
	return s.flowWindow <= minAdvertisedWindow && seq.Off(s.lastAck, s.currSeq)+1 >= s.flowWindow
}

// heldMark marks the packets that the peer's arrival-rate reports measure
// while something besides the path held the sender back: set at each time
// it does, with the newest packet sent then, and clear once an ACK has
// passed that packet by the span the reports cover.
type heldMark struct {
	on bool
	to seq.Num // the newest packet sent when last set
}

// set marks what is sent up to s.
func (h *heldMark) set(s seq.Num) { h.on, h.to = true, s }

// clearPast clears the mark once ack has passed its packets by rateReportSpan:
// the peer's arrival rate is a median over its last rateReportSpan arrivals,
// the sender's own while any of them was sent held back.
func (h *heldMark) clearPast(ack seq.Num) {
	if h.on && seq.Cmp(ack, h.to.Add(rateReportSpan)) > 0 {
		h.on = false
	}
}

// rateReportSpan is how many arrivals the peer's rate reports span.
const rateReportSpan = 16
