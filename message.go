package udt

import (
	"os"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

// Message mode (Config.Type = TypeMessage; docs/protocol.md §14).
//
// The sender numbers each message and marks its packets first, middle,
// last or solo; the receive window keeps those marks per slot. A message
// is read when all its packets are in: in order (its in-order flag set)
// once everything before it has arrived, otherwise at once. A message
// whose time to live runs out before it is acknowledged is dropped by the
// sender with a drop request naming its number and sequence range; the
// receiver marks its slots dropped and never delivers any of it.

// rcvPkt is one slot of the receive window.
type rcvPkt struct {
	buf *[]byte // payload, while state is slotData
	// blk is the receive worker's block that buf is a view of; nil where
	// buf is a copy of the connection's own (see Conn.holdViewLocked).
	blk *rxBlock
	msg seq.Msg
	// run is, in message mode, at either end of a run of received packets
	// (see continuesRun), the run's length; elsewhere it is stale.
	run     int32
	pos     msgPos
	inOrder bool
	state   slotState
}

// slotState is what a receive-window slot holds.
type slotState uint8

const (
	slotEmpty   slotState = iota // not received
	slotData                     // received, not yet read
	slotRead                     // message mode: read ahead of order
	slotDropped                  // message mode: of a message the sender dropped
)

// dropExact marks, in a drop request's additional-info word, a range that
// ends at the message's last packet. 4.11 names one packet past it (§7.3)
// and reads only the low 29 bits, the message number, so it ignores the
// mark; a request without it is read as 4.11 means it.
const dropExact = 1 << 31

// isMessage reports whether c carries messages (Config.Type, fixed for its
// life).
func (c *Conn) isMessage() bool { return c.cfg.Type == TypeMessage }

// MaxMessageSize returns the largest message the connection can send: the
// send buffer (Config.SendBuffer packets) and the peer's receive buffer,
// as it announced in the handshake, each less one packet. It is 0 before
// the connection is established.
func (c *Conn) MaxMessageSize() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxMessageLocked()
}

func (c *Conn) maxMessageLocked() int {
	if c.snd.buf == nil {
		return 0
	}
	return max(min(c.cfg.SendBuffer, c.snd.peerWindow-1), 1) * c.payload
}

// WriteMessage sends b as one message. ttl > 0 is its time to live: if
// it is not delivered within ttl of this call, the sender drops it whole
// and the peer never reads any of it; ttl ≤ 0 means it never expires.
// With inOrder, the peer reads it after every in-order message sent
// before it; otherwise as soon as it has arrived complete.
//
// WriteMessage blocks until the whole message fits in the send buffer. An
// empty b sends nothing. Only a message connection (Config.Type =
// TypeMessage) takes messages; a stream connection returns an error
// wrapping [ErrNotMessageMode].
func (c *Conn) WriteMessage(b []byte, ttl time.Duration, inOrder bool) (int, error) {
	if !c.isMessage() {
		return 0, c.opError("write", ErrNotMessageMode)
	}
	return c.writeMessage(b, ttl, inOrder)
}

func (c *Conn) writeMessage(b []byte, ttl time.Duration, inOrder bool) (int, error) {
	for {
		c.mu.Lock()
		if err := c.writeErrLocked(); err != nil {
			c.mu.Unlock()
			c.sig.wakeWriter() // the end is for every blocked writer, not one
			return 0, err
		}
		if c.sig.wdl.Passed() {
			// As Write: a passed deadline fails before anything is queued.
			c.mu.Unlock()
			return 0, c.opError("write", os.ErrDeadlineExceeded)
		}
		if len(b) == 0 {
			c.mu.Unlock()
			return 0, nil
		}
		if limit := c.maxMessageLocked(); len(b) > limit {
			c.mu.Unlock()
			return 0, c.opError("write", &MessageTooLargeError{Size: len(b), Max: limit})
		}
		n := (len(b) + c.payload - 1) / c.payload
		if c.snd.buf.Limit()-c.snd.buf.Len() >= n {
			now := time.Now()
			if c.snd.buf.Len() == 0 {
				c.live.lastHeard = now // the send path was idle: the EXP clock restarts
			}
			var expire int64
			if ttl > 0 {
				expire = now.Add(ttl).Sub(c.start).Nanoseconds()
			}
			total, rest := len(b), b
			for len(rest) > 0 {
				buf := c.snd.bufs.Get()
				k := copy(*buf, rest)
				*buf = (*buf)[:k]
				rest = rest[k:]
				c.snd.buf.Push(sndPkt{buf: buf, msg: c.snd.msgNo, pos: c.msgPos(total, len(rest), k), inOrder: inOrder, expire: expire})
			}
			c.snd.msgNo = c.snd.msgNo.Next()
			c.kickLocked(now)
			room := !c.snd.buf.Full()
			c.mu.Unlock()
			if room {
				c.sig.wakeWriter() // as Write: pass the space on to the next writer
			}
			return total, nil
		}
		c.mu.Unlock()
		if err := c.waitWriteRoom(); err != nil {
			return 0, err
		}
	}
}

// ReadMessage reads the next message into b and returns its length. If b
// is shorter than the message, it returns a [*MessageSizeError] and the
// message stays queued. It returns io.EOF once the peer has shut the
// connection down and every message it sent has been read or dropped.
// A stream connection returns an error wrapping [ErrNotMessageMode].
func (c *Conn) ReadMessage(b []byte) (int, error) {
	if !c.isMessage() {
		return 0, c.opError("read", ErrNotMessageMode)
	}
	return c.readMessage(b)
}

func (c *Conn) readMessage(b []byte) (int, error) {
	return c.readLoop(func() (int, error, bool) {
		if c.rcv.buf == nil {
			return 0, nil, false
		}
		off, slots, size, ok := c.nextMessageLocked()
		switch {
		case !ok:
			return 0, nil, false
		case len(b) < size:
			return 0, c.opError("read", &MessageSizeError{Size: size, Buf: len(b)}), true
		}
		c.takeMessageLocked(b, off, slots)
		return size, nil, true
	})
}

// onMessageDataLocked records the packet stored at off in its run (see
// continuesRun) and wakes a reader when the packet moved the in-order point
// from oldContig, or completed an out-of-order message. Receive worker; it
// takes constant time, whatever the message's size and wherever its gaps
// (it walked back to the message's head, or a gap, for every packet of an
// out-of-order message: quadratic in the message's size).
func (c *Conn) onMessageDataLocked(off int, oldContig seq.Num) {
	start, end := c.rcv.joinRun(off)
	if c.rcv.contig() != oldContig {
		c.sig.wakeReader()
		return
	}
	if c.rcv.buf.Ptr(off).inOrder {
		return // read when the in-order point passes it
	}
	if head := c.rcv.buf.Ptr(start).pos; (head == posFirst || head == posSolo) && c.rcv.endsMessage(end) {
		c.sig.wakeReader()
	}
}

// A run is a span of slots, as long as it can be, that hold received
// packets of one message (same number and order flag) with no message
// boundary inside: no first or solo packet but at its start, no last or
// solo packet but at its end. A message is complete when one run holds
// it, from its first packet to its last. Both end slots of a run hold its
// length; a run only ever grows by a packet filling the empty slot next to
// it (possibly joining the run beyond), and leaves whole (read, or
// discarded with its message), or from its start on (a drop request, see
// receiver.remeasureRun), so the ends stay true. The reader does not rely on
// runs: it walks the slots (receiver.messageAt), once per message it reads.
//
// continuesRun reports whether b, in the slot after a, continues a's run.
func continuesRun(a, b *rcvPkt) bool {
	return a.state == slotData && b.state == slotData && a.msg == b.msg && a.inOrder == b.inOrder &&
		a.pos != posLast && a.pos != posSolo && b.pos != posFirst && b.pos != posSolo
}

// joinRun adds the data slot at off, empty until now, to the runs:
// it joins the run that ends in the slot before and the one that starts in
// the slot after, as it continues them. It returns the offsets of the
// first and last slots of its run.
func (r *receiver) joinRun(off int) (start, end int) {
	p := r.buf.Ptr(off)
	start, end = off, off
	if off > 0 {
		if prev := r.buf.Ptr(off - 1); continuesRun(prev, p) {
			start = off - int(prev.run)
		}
	}
	if off+1 < r.buf.Len() {
		if next := r.buf.Ptr(off + 1); continuesRun(p, next) {
			end = off + int(next.run)
		}
	}
	n := int32(end - start + 1)
	p.run = n
	r.buf.Ptr(start).run = n
	r.buf.Ptr(end).run = n
	return start, end
}

// remeasureRun sets the length of the run that starts at off, whose
// first slot may have been inside a longer run until the slots before were
// dropped: a drop request drops a message's packets up to the end of its
// range, and packets of the message beyond it stay.
func (r *receiver) remeasureRun(off int) {
	if off <= 0 || off >= r.buf.Len() || r.buf.Ptr(off).state != slotData {
		return
	}
	end := off
	for end+1 < r.buf.Len() && continuesRun(r.buf.Ptr(end), r.buf.Ptr(end+1)) {
		end++
	}
	n := int32(end - off + 1)
	r.buf.Ptr(off).run = n
	r.buf.Ptr(end).run = n
}

// endsMessage reports whether the slot at off holds a message's last
// packet.
func (r *receiver) endsMessage(off int) bool {
	pos := r.buf.Ptr(off).pos
	return pos == posLast || pos == posSolo
}

// messageAt checks the message whose first packet is at offset off: it
// returns its packet count and byte size, and whether it is all present.
func (r *receiver) messageAt(off int) (slots, size int, ok bool) {
	head := r.buf.At(off)
	for i := off; i < r.buf.Len(); i++ {
		s := r.buf.At(i)
		if s.state != slotData || s.msg != head.msg || (i > off && (s.pos == posFirst || s.pos == posSolo)) {
			return 0, 0, false
		}
		size += len(*s.buf)
		if s.pos == posLast || s.pos == posSolo {
			return i - off + 1, size, true
		}
	}
	return 0, 0, false
}

// nextMessageLocked finds the next message to read: the first complete
// one that is out of order or lies wholly before the in-order point. It
// first discards, at the front, slots already read or dropped and the
// packets of messages that can no longer complete (a slot of theirs was
// dropped).
func (c *Conn) nextMessageLocked() (off, slots, size int, ok bool) {
	contig := seq.Off(c.rcv.readSeq, c.rcv.contig())
	contig -= c.rcv.popSettled(contig)
	end := contig
	if c.rcv.unordered > 0 {
		end = c.rcv.buf.Len()
	}
	for i := 0; i < end; {
		s := c.rcv.buf.At(i)
		if s.state != slotData {
			i++
			continue
		}
		if s.pos != posFirst && s.pos != posSolo {
			// Not a message's head: the rest of an incomplete message
			// (skipped below), or a tail whose head is gone, dropped or
			// read, which can never be read.
			if i < contig && c.rcv.orphanAt(i) {
				c.discardMessageLocked(i)
			}
			i++
			continue
		}
		n, sz, complete := c.rcv.messageAt(i)
		if complete {
			if !s.inOrder || i+n <= contig {
				return i, n, sz, true
			}
			i += n
			continue
		}
		if c.rcv.brokenAt(i) {
			c.discardMessageLocked(i)
		}
		i++
	}
	return 0, 0, 0, false
}

// orphanAt reports whether the packet at off, not a message's head, has
// lost its head: the slot before it is settled or of another message.
func (r *receiver) orphanAt(off int) bool {
	if off == 0 {
		return true // the slots before were read or dropped
	}
	prev, s := r.buf.At(off-1), r.buf.At(off)
	switch prev.state {
	case slotEmpty:
		return false
	case slotData:
		return prev.msg != s.msg || prev.pos == posLast || prev.pos == posSolo
	}
	return true
}

// brokenAt reports whether the incomplete message starting at off can no
// longer complete: before its last packet comes a slot that is not of it
// and will not be filled.
func (r *receiver) brokenAt(off int) bool {
	head := r.buf.At(off)
	for i := off + 1; i < r.buf.Len(); i++ {
		s := r.buf.At(i)
		switch {
		case s.state == slotEmpty:
			return false // may still arrive
		case s.state != slotData || s.msg != head.msg || s.pos == posFirst || s.pos == posSolo:
			return true
		case s.pos == posLast:
			return false
		}
	}
	return false
}

// discardMessageLocked drops the received packets of the message whose
// packet is at off, from there on.
func (c *Conn) discardMessageLocked(off int) {
	msg := c.rcv.buf.At(off).msg
	for i := off; i < c.rcv.buf.Len(); i++ {
		s := c.rcv.buf.At(i)
		if s.state != slotData || s.msg != msg {
			return
		}
		c.settleSlotLocked(i, slotDropped)
		if s.pos == posLast || s.pos == posSolo {
			return
		}
	}
}

// settleSlotLocked frees the payload of the data slot at off and marks it
// read or dropped.
func (c *Conn) settleSlotLocked(off int, state slotState) {
	s := c.rcv.buf.At(off)
	c.freeRcvBufLocked(s)
	if s.state == slotData && !s.inOrder && c.isMessage() {
		c.rcv.unordered-- // counted in message mode only (see onDataLocked)
	}
	c.rcv.buf.Set(off, rcvPkt{state: state})
}

// popSettled moves the read point past the slots at the front, up
// to contig, that were read or dropped, and returns how many it passed.
func (r *receiver) popSettled(contig int) int {
	n := 0
	for n < contig && r.buf.Len() > 0 {
		st := r.buf.At(0).state
		if st != slotRead && st != slotDropped {
			break
		}
		r.buf.PopFront()
		r.readSeq = r.readSeq.Inc()
		n++
	}
	return n
}

// takeMessageLocked copies the message of slots packets at off into b and
// frees them.
func (c *Conn) takeMessageLocked(b []byte, off, slots int) {
	n := 0
	for i := off; i < off+slots; i++ {
		n += copy(b[n:], *c.rcv.buf.At(i).buf)
		c.settleSlotLocked(i, slotRead)
	}
	c.rcv.popSettled(seq.Off(c.rcv.readSeq, c.rcv.contig()))
}

// onDropRequestLocked skips a message the sender gave up on (its TTL ran out):
// the request names the message and a sequence range, first to last.
// Received packets of the message are dropped, and missing ones in the
// range are recorded as dropped and leave the loss list. From 4.11, the
// range ends one packet past the message (§7.3), at the next message's
// first packet: that one is left alone, to be asked for and delivered. A
// stream connection ignores drop requests.
func (c *Conn) onDropRequestLocked(p *packet, now time.Time) {
	d, err := parseDrop(p.body)
	if err != nil || !c.isMessage() || seq.Cmp(d.first, d.last) > 0 ||
		seq.Cmp(d.last, c.rcv.lastSeq.Add(c.rcv.buf.Limit())) > 0 {
		c.stats.dropped++
		return
	}
	c.stats.dropRecv++
	msg := seq.Msg(p.info) & seq.MsgMax
	if c.tr.t != nil {
		c.traceControlEventLocked(TraceControl{Time: now, Type: "drop", Seq: uint32(d.first), Last: uint32(d.last), Msg: uint32(msg)}, false)
	}
	last := d.last
	if p.info&dropExact == 0 {
		if d.first == d.last {
			return // 4.11 names no packet of the message then
		}
		last = last.Dec()
	}
	// Received packets of the message before the range (4.11's range
	// starts at the packet it was retransmitting) are dropped as well.
	// Those after the range stay: the run they are part of (see
	// continuesRun) is measured again from the last slot dropped on.
	dropped := -1
	defer func() { c.rcv.remeasureRun(dropped + 1) }()
	for i := range min(seq.Off(c.rcv.readSeq, d.first), c.rcv.buf.Len()) {
		if s := c.rcv.buf.At(i); s.state == slotData && s.msg == msg {
			c.settleSlotLocked(i, slotDropped)
			dropped = i
		}
	}
	first := d.first
	if seq.Cmp(first, c.rcv.readSeq) < 0 {
		first = c.rcv.readSeq
	}
	// The range is clipped to the receive window: a sender cannot have
	// sent beyond it.
	if limit := c.rcv.readSeq.Add(c.rcv.buf.Limit() - 2); seq.Cmp(last, limit) > 0 {
		last = limit
	}
	if seq.Cmp(first, last) > 0 {
		return
	}
	dropped = max(dropped, c.dropRangeLocked(first, last, msg))
	c.skipDroppedLocked(first, last, now)
	c.sig.wakeReader()
}

// dropRangeLocked drops the packets of message msg from first to last,
// received or not, and returns the offset of the last slot it dropped a
// received packet from, or -1.
func (c *Conn) dropRangeLocked(first, last seq.Num, msg seq.Msg) (dropped int) {
	dropped = -1
	for s := first; seq.Cmp(s, last) <= 0; s = s.Inc() {
		off := seq.Off(c.rcv.readSeq, s)
		switch slot := c.rcv.buf.At(off); {
		case slot.state == slotData && slot.msg == msg:
			c.settleSlotLocked(off, slotDropped)
			dropped = off
		case slot.state == slotEmpty:
			c.rcv.buf.Set(off, rcvPkt{state: slotDropped})
			c.rcv.loss.Remove(s)
		}
	}
	return dropped
}

// skipDroppedLocked moves the highest-received point past a dropped range
// from first to last, so that no gap reports its packets lost. Those
// between that point and the range, sent before it and not here, are lost
// (4.11 leaves the point where it is then, and reports the dropped packets
// lost when the next one arrives).
func (c *Conn) skipDroppedLocked(first, last seq.Num, now time.Time) {
	if seq.Cmp(last, c.rcv.lastSeq) <= 0 {
		return
	}
	if next := c.rcv.lastSeq.Inc(); seq.Cmp(first, next) > 0 {
		if c.rcv.loss.Len() == 0 {
			c.rcv.nextNAK, c.rcv.nakThrough = now.Add(c.nakIntervalLocked()), first.Dec()
		}
		c.stats.pktRcvLoss += uint64(c.rcv.loss.Insert(next, first.Dec()))
	}
	c.rcv.lastSeq = last
}

// abandonLosses gives up the packets still missing when the peer
// has shut down (4.11 also shuts down with the two sequence numbers it
// skips when it drops a message it had not sent all of still owed): their
// slots are marked dropped, so that the messages after them can be read.
func (r *receiver) abandonLosses() {
	limit := r.buf.Limit() - 1
	for _, lost := range r.loss.Ranges() {
		for s := lost.First; seq.Cmp(s, lost.Last) <= 0; s = s.Inc() {
			off := seq.Off(r.readSeq, s)
			if off >= limit {
				break
			}
			if off >= 0 && r.buf.At(off).state == slotEmpty {
				r.buf.Set(off, rcvPkt{state: slotDropped})
			}
		}
	}
	r.loss.Clear()
}

// dropMessageLocked gives up the message of the packet at offset off of
// the send buffer, whose TTL ran out: it appends to b a drop request for
// the message's packets still buffered (the exact range, marked so; 4.11
// names one more), takes them off the loss list and skips those never
// sent. Asked again for a packet of it (the request was lost), it sends
// the request again.
func (c *Conn) dropMessageLocked(b []byte, off int) []byte {
	pk := c.snd.buf.At(off)
	a, z := off, off
	for a > 0 && pk.pos != posFirst && pk.pos != posSolo {
		prev := c.snd.buf.At(a - 1)
		if prev.msg != pk.msg {
			break
		}
		a--
		pk = prev
	}
	for z+1 < c.snd.buf.Len() {
		if p := c.snd.buf.At(z); p.pos == posLast || p.pos == posSolo {
			break
		}
		z++
	}
	first, last := c.snd.lastAck.Add(a), c.snd.lastAck.Add(z)
	c.snd.loss.RemoveRange(first, last)
	if seq.Cmp(c.snd.currSeq, last) < 0 {
		c.snd.currSeq = last
	}
	c.stats.dropSent++
	if c.tr.t != nil {
		c.traceControlEventLocked(TraceControl{Time: time.Now(), Type: "drop", Seq: uint32(first), Last: uint32(last), Msg: uint32(pk.msg)}, true)
	}
	d := dropBody{first: first, last: last}
	return appendControl(b, ctrlDropReq, uint32(pk.msg)|dropExact, c.peerID, d.append(c.scratch[:0]))
}
