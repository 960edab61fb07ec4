package udt

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// maxDatagram is the largest UDP payload the receive worker reads.
const maxDatagram = 65536

// failAfter is how long reads may keep failing, with errors not known to
// pass, before the socket is taken for dead.
const failAfter = time.Second

var passingErrnos = [...]syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH,
	syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENETDOWN, syscall.ENOBUFS, syscall.ENOMEM,
	syscall.EAGAIN, syscall.EINTR, syscall.EMSGSIZE, syscall.ETIMEDOUT}

// transientReadError reports whether a read error is one a UDP socket
// recovers from: ICMP reports of an earlier send, a full buffer or
// memory shortage, an interrupted call.
func transientReadError(err error) bool {
	for _, e := range passingErrnos {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// receiveLoop is the multiplexer's receive worker: it reads each datagram,
// decodes its header and routes it by destination socket ID.
func (m *multiplexer) receiveLoop() {
	if u, ok := m.conn.(udpConn); ok && u.io != nil {
		m.receiveBatches(u.io)
		return
	}
	buf := make([]byte, maxDatagram)
	// A real socket with kernel timestamps reports arrival times.
	u, stamped := m.conn.(udpConn)
	stamped = stamped && u.stamped
	oob := make([]byte, stampOOB)
	var failing time.Time // the first of the read errors since the last datagram
	for {
		var (
			n       int
			from    netip.AddrPort
			arrival time.Time
			err     error
		)
		if stamped {
			n, from, arrival, err = u.readStamped(buf, oob)
		} else {
			n, from, err = m.conn.ReadFrom(buf)
		}
		if err != nil {
			if m.readFailed(err, &failing) {
				return
			}
			continue
		}
		failing = time.Time{}
		m.ctr.pktsIn.Add(1) // a system call per datagram: the atomic is small beside it
		m.ctr.bytesIn.Add(uint64(n))
		m.runPending()
		m.dispatch(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), arrival, nil)
	}
}

// receiveBatches is receiveLoop on a socket with batch reads.
func (m *multiplexer) receiveBatches(b *batchIO) {
	dispatch := m.dispatch
	m.batching = true
	var failing time.Time
	defer b.release()
	for {
		if err := b.read(); err != nil {
			if m.readFailed(err, &failing) {
				return
			}
			continue
		}
		failing = time.Time{}
		m.runPending()
		m.ctr.read(b.each(dispatch))
		m.flushRun() // before the next read reuses the buffers the run points into
		m.sendOwedACKs()
		b.recycle()
	}
}

// runMax bounds a run of data packets handed to a connection at once.
const runMax = 64

// queueData adds a data packet for c to the run the receive worker hands
// over in one call (under one lock), after handing over the run before if
// it is another connection's; receive worker only. The packet's body stays
// in the read buffer until flushRun.
func (m *multiplexer) queueData(c *Conn, p *packet) {
	if m.runConn != c || len(m.run) == runMax {
		m.flushRun()
		m.runConn = c
	}
	m.run = append(m.run, *p)
}

// flushRun hands the queued data packets to their connection.
func (m *multiplexer) flushRun() {
	if len(m.run) == 0 {
		return
	}
	m.runConn.handleData(m.run)
	clear(m.run) // drop the references to the read buffer
	m.run, m.runConn = m.run[:0], nil
}

// sendOwedACKs sends the ACKs the batch just dispatched owes, one per
// connection: a full ACK if a short packet (a message's end) asked for
// one, else a light ACK if the packets crossed lightACKEvery, however
// many times. A read brings up to rxBatchMax GRO runs of up to 64 KB, and
// an ACK per 64 packets of it, or per run of short ones, cost a system
// call each way (sendto here, a read and the ACK's handling at the
// sender; a full ACK's ACK2 besides) for news microseconds apart.
// Receive worker only.
func (m *multiplexer) sendOwedACKs() {
	for i, c := range m.acksOwed {
		m.acksOwed[i] = nil
		ob := &m.rcvOut
		c.mu.Lock()
		full, light := c.rcv.ackOwed, c.rcv.lightOwed
		c.rcv.ackOwed, c.rcv.lightOwed = false, false
		if c.state == stateConnected {
			switch {
			case full:
				c.sendACKLocked(time.Now(), ob)
			case light:
				c.sendLightACKLocked(time.Now(), ob)
			}
		}
		c.mu.Unlock()
		c.flush(ob)
	}
	m.acksOwed = m.acksOwed[:0]
}

// readFailed handles a read error and reports whether the receive worker
// must stop: the multiplexer is closing, or the socket is dead (closed
// from outside, or failing with errors not known to pass since failing).
// A passing error (an ICMP report, a full buffer) waits a millisecond, so
// that a repeating one does not spin.
func (m *multiplexer) readFailed(err error, failing *time.Time) bool {
	if isClosed(m.closed) {
		m.runPending()
		return true
	}
	if m.detached.Load() {
		m.fail(ErrTransportClosed)
		return true
	}
	if failing.IsZero() {
		*failing = time.Now()
	}
	if errors.Is(err, net.ErrClosed) || !transientReadError(err) && time.Since(*failing) >= failAfter {
		m.fail(err)
		return true
	}
	select {
	case <-m.closed:
		m.runPending()
		return true
	case <-time.After(time.Millisecond):
	}
	return false
}

// dispatch routes one datagram; receive worker only. blk, if not nil, is
// the read's block that b is a slice of, of which a connection may keep a
// data packet's payload as a view (see rxBlock).
func (m *multiplexer) dispatch(b []byte, from netip.AddrPort, arrival time.Time, blk *rxBlock) {
	p, err := parsePacket(b)
	if err != nil {
		m.unroutable(b, from, nil, dropMalformed)
		return
	}
	p.arrival, p.blk = arrival, blk
	if p.dst == 0 || p.control {
		m.flushRun() // in order with the data before it
	}
	switch {
	case p.dst == 0:
		if m.listener != nil {
			m.listener.handle(&p, from)
			return
		}
		if c := m.rendezvous[from]; c != nil {
			m.connecting(c, &p)
			return
		}
		m.strayRendezvous(from)
		m.unroutable(b, from, &p, dropUnroutable)
	case p.dst&0x80000000 != 0:
		m.unroutable(b, from, &p, dropUnroutable)
	default:
		if c := m.socks[p.dst]; c != nil {
			if c.peer != from {
				m.ctr.drop(dropForeign)
				c.countForeign()
				return
			}
			if !p.control && m.batching {
				m.queueData(c, &p)
				return
			}
			c.handlePacket(&p) // a control packet flushed the run above
			return
		}
		if c := m.connectors[p.dst]; c != nil && c.peer == from {
			m.connecting(c, &p)
			return
		}
		m.unroutable(b, from, &p, dropUnroutable)
	}
}

// unroutable takes datagram b, which no connection, dial or listener
// takes (p is its header, nil if it has none): a Transport's caller reads
// it, unless it is a UDT handshake; otherwise it is dropped and counted
// as why says.
func (m *multiplexer) unroutable(b []byte, from netip.AddrPort, p *packet, why dropReason) {
	if m.nonUDT != nil && (p == nil || !p.control || p.typ != ctrlHandshake) {
		m.nonUDT(b, from)
		return
	}
	m.ctr.drop(why)
}

// connecting hands p to a dial in progress; receive worker only.
func (m *multiplexer) connecting(c *Conn, p *packet) {
	if !c.handleConnecting(p) {
		return
	}
	// Established: move it to the socket table before the next datagram,
	// so the peer's first data packet finds it.
	delete(m.connectors, c.id)
	if m.rendezvous[c.peer] == c {
		delete(m.rendezvous, c.peer)
	}
	m.socks[c.id] = c
	if !p.control || p.typ == ctrlKeepAlive {
		// A rendezvous completed by the peer's data or keep-alive: that
		// packet is the connection's first.
		c.handlePacket(p)
	}
}
