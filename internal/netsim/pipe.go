package netsim

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/udt-go/udt/internal/deadline"
)

// Addresses of the two ends of every pipe from [NewPacketPipe].
var (
	PipeAddrA = netip.MustParseAddrPort("127.0.0.1:10001")
	PipeAddrB = netip.MustParseAddrPort("127.0.0.1:10002")
)

// DefaultPipeReadBuffer is the receive buffer of a [PipeConn] in payload
// bytes until [PipeConn.SetReadBuffer] changes it. Datagrams that arrive
// while it is full are dropped and counted in [LinkStats].Overflow.
const DefaultPipeReadBuffer = 4 << 20

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// NewPacketPipe returns the two ends of an in-memory datagram path: what a
// writes to b's address goes through a link configured by a2b and is read
// from b, and the other way through b2a. a is at [PipeAddrA] and b at
// [PipeAddrB]. The links draw from generators seeded with seed and seed+1.
// [SharePipe] adds more pairs of ends across the same links.
//
// Both ends are [*PipeConn]; use [PipeConn.Link] to reconfigure a direction
// or read its counters. The pipe uses only channels and timers, so when it
// is created inside a [testing/synctest] bubble its delays pass instantly.
func NewPacketPipe(a2b, b2a LinkConfig, seed uint64) (a, b net.PacketConn) {
	ca := newPipeConn(PipeAddrA)
	cb := newPipeConn(PipeAddrB)
	ca.peer, cb.peer = cb, ca
	ca.out = &pipeLink{link: New(a2b, seed)}
	cb.out = &pipeLink{link: New(b2a, seed+1)}
	ca.ports = &pipePorts{used: map[netip.AddrPort]bool{PipeAddrA: true, PipeAddrB: true}}
	cb.ports = ca.ports
	return ca, cb
}

// SharePipe returns two more connected ends of the path between a and b:
// a2 at a's IP address and port portA, b2 at b's address and portB. What
// a2 writes to b2 goes through the same link as what a writes to b, and
// the other way through the same link as from b to a, so the two pairs
// (and any others shared from them) queue at one bottleneck, share its
// drop-tail limit, draw from one generator and count in one [LinkStats].
// Each datagram still reaches only the end it was written to. Closing an
// end discards only what is on the way to it (counted as Overflow; later
// datagrams to it are not sent), so closing one pair leaves the others'
// traffic alone.
//
// a and b must be open peers, and neither port may be zero or taken by an
// open end on its side.
func SharePipe(a, b *PipeConn, portA, portB uint16) (a2, b2 *PipeConn, err error) {
	if a.peer != b || b.peer != a {
		return nil, nil, fmt.Errorf("netsim: share pipe: %v and %v are not peers", a.local, b.local)
	}
	if a.isClosed() || b.isClosed() {
		return nil, nil, fmt.Errorf("netsim: share pipe %v–%v: %w", a.local, b.local, net.ErrClosed)
	}
	apA := netip.AddrPortFrom(a.ap.Addr(), portA)
	apB := netip.AddrPortFrom(b.ap.Addr(), portB)
	ports := a.ports
	ports.mu.Lock()
	defer ports.mu.Unlock()
	for _, ap := range []netip.AddrPort{apA, apB} {
		if ap.Port() == 0 || ports.used[ap] {
			return nil, nil, fmt.Errorf("netsim: share pipe: address %v: %w", ap, syscall.EADDRINUSE)
		}
	}
	if apA == apB {
		return nil, nil, fmt.Errorf("netsim: share pipe: address %v: %w", apA, syscall.EADDRINUSE)
	}
	ports.used[apA], ports.used[apB] = true, true
	a2, b2 = newPipeConn(apA), newPipeConn(apB)
	a2.peer, b2.peer = b2, a2
	a2.out, b2.out = a.out, b.out
	a2.ports, b2.ports = ports, ports
	return a2, b2, nil
}

// PipeConn is one end of a pipe from [NewPacketPipe]. It behaves like an
// unconnected [net.UDPConn]: writes never block, datagrams to an address
// other than the peer's vanish, reads truncate to the buffer given. It is
// safe for concurrent use.
type PipeConn struct {
	local *net.UDPAddr
	ap    netip.AddrPort // local as a value
	peer  *PipeConn
	out   *pipeLink  // to peer; shared by the ends of SharePipe
	ports *pipePorts // addresses in use on the path

	inMu    sync.Mutex
	inbox   []*packet     // guarded by inMu; from inHead on
	inHead  int           // guarded by inMu
	inBytes int           // guarded by inMu; payload bytes in inbox
	rbuf    int           // guarded by inMu; limit on inBytes
	done    bool          // guarded by inMu; closed
	ready   chan struct{} // capacity 1; signalled when inbox gains datagrams

	rd, wd    *deadline.Deadline
	closeOnce sync.Once
	closed    chan struct{}
}

func newPipeConn(addr netip.AddrPort) *PipeConn {
	return &PipeConn{
		local:  net.UDPAddrFromAddrPort(addr),
		ap:     addr,
		rbuf:   DefaultPipeReadBuffer,
		ready:  make(chan struct{}, 1),
		rd:     deadline.New(),
		wd:     deadline.New(),
		closed: make(chan struct{}),
	}
}

// Link returns the link carrying datagrams from c to its peer, shared with
// the ends on c's side from [SharePipe].
func (c *PipeConn) Link() *Link { return c.out.link }

// LocalAddr returns c's address, a [*net.UDPAddr].
func (c *PipeConn) LocalAddr() net.Addr { return c.local }

// SetReadBuffer sets the receive buffer in payload bytes, like
// [net.UDPConn.SetReadBuffer].
func (c *PipeConn) SetReadBuffer(bytes int) error {
	if bytes <= 0 {
		return &net.OpError{Op: "set", Net: "udp", Source: c.local, Err: syscall.EINVAL}
	}
	c.inMu.Lock()
	c.rbuf = bytes
	c.inMu.Unlock()
	return nil
}

// SetWriteBuffer accepts any positive size and does nothing: writes never
// block or queue at the sender.
func (c *PipeConn) SetWriteBuffer(bytes int) error {
	if bytes <= 0 {
		return &net.OpError{Op: "set", Net: "udp", Source: c.local, Err: syscall.EINVAL}
	}
	return nil
}

// ReadFrom reads the next datagram into p and returns its length (at most
// len(p); the rest is discarded) and the peer's address.
func (c *PipeConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		select {
		case <-c.closed:
			return 0, nil, c.opError("read", nil, net.ErrClosed)
		case <-c.rd.Wait():
			return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
		default:
		}
		if pk := c.take(); pk != nil {
			n := copy(p, pk.b)
			putPacket(pk)
			return n, c.peer.local, nil
		}
		select {
		case <-c.ready:
		case <-c.closed:
		case <-c.rd.Wait():
		}
	}
}

// take removes the oldest datagram from the inbox, or returns nil.
func (c *PipeConn) take() *packet {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	if c.inHead == len(c.inbox) {
		return nil
	}
	pk := c.inbox[c.inHead]
	c.inbox[c.inHead] = nil
	c.inHead++
	c.inBytes -= len(pk.b)
	switch {
	case c.inHead == len(c.inbox):
		c.inbox, c.inHead = c.inbox[:0], 0
	case c.inHead > 64 && c.inHead > len(c.inbox)/2:
		n := copy(c.inbox, c.inbox[c.inHead:])
		clear(c.inbox[n:])
		c.inbox, c.inHead = c.inbox[:n], 0
	}
	if c.inHead < len(c.inbox) {
		// Pass the turn to another waiting reader.
		select {
		case c.ready <- struct{}{}:
		default:
		}
	}
	return pk
}

// enqueue appends pk to the inbox, or drops it when the buffer is full or c
// is closed. It takes ownership of pk.
func (c *PipeConn) enqueue(l *Link, pk *packet) {
	c.inMu.Lock()
	if c.done || c.inBytes+len(pk.b) > c.rbuf {
		c.inMu.Unlock()
		l.stats.overflow.Add(1)
		putPacket(pk)
		return
	}
	n := len(pk.b)
	c.inbox = append(c.inbox, pk)
	c.inBytes += n
	c.inMu.Unlock()
	// pk belongs to the reader now: count it by its length taken above.
	l.delivered(n)
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// WriteTo sends p to addr through c's link. It never blocks. addr must be a
// [*net.UDPAddr]; datagrams to any address but the peer's are discarded.
func (c *PipeConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, c.opError("write", addr, net.ErrClosed)
	case <-c.wd.Wait():
		return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
	default:
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, c.opError("write", addr, syscall.EINVAL)
	}
	if len(p) > maxDatagram {
		return 0, c.opError("write", addr, syscall.EMSGSIZE)
	}
	if ap := ua.AddrPort(); netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) != c.peer.ap {
		return len(p), nil
	}
	c.out.send(time.Now(), p, c.peer)
	return len(p), nil
}

// Close closes c. Blocked and later reads and writes fail with
// [net.ErrClosed]; datagrams already sent from c still reach the peer,
// those on the way to c are discarded (counted as Overflow), and later
// ones to c are not sent. c's address is free for [SharePipe] again.
// Close always returns nil.
func (c *PipeConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.inMu.Lock()
		c.done = true
		in := c.inbox[c.inHead:]
		c.inbox, c.inHead, c.inBytes = nil, 0, 0
		c.inMu.Unlock()
		for _, pk := range in {
			putPacket(pk)
		}
		c.peer.out.stop(c)
		c.ports.mu.Lock()
		delete(c.ports.used, c.ap)
		c.ports.mu.Unlock()
		c.rd.Set(time.Time{})
		c.wd.Set(time.Time{})
	})
	return nil
}

// SetDeadline sets the read and write deadlines.
func (c *PipeConn) SetDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", nil, net.ErrClosed)
	}
	c.rd.Set(t)
	c.wd.Set(t)
	return nil
}

// SetReadDeadline sets the read deadline; it applies to a blocked ReadFrom.
func (c *PipeConn) SetReadDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", nil, net.ErrClosed)
	}
	c.rd.Set(t)
	return nil
}

// SetWriteDeadline sets the write deadline.
func (c *PipeConn) SetWriteDeadline(t time.Time) error {
	if c.isClosed() {
		return c.opError("set", nil, net.ErrClosed)
	}
	c.wd.Set(t)
	return nil
}

func (c *PipeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *PipeConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.local, Addr: addr, Err: err}
}

// pipePorts is the set of addresses of the open ends of one path, the
// pair from NewPacketPipe and those SharePipe added.
type pipePorts struct {
	mu   sync.Mutex
	used map[netip.AddrPort]bool // guarded by mu
}

// pipeLink moves datagrams from one link into the inboxes of the ends they
// are addressed to when they fall due, with one timer armed for the
// earliest. Every end that sends through the link holds the same pipeLink,
// so one lock orders the link's sends and deliveries, whichever pair they
// belong to: mu, then the link's lock or a receiving end's inMu, never
// another pipeLink's.
type pipeLink struct {
	link *Link

	mu    sync.Mutex
	timer *time.Timer // guarded by mu; nil until first needed
	armed time.Time   // guarded by mu; when timer fires, zero if not armed
}

// send offers p for end to to the link, unless to is closed. Close marks
// an end closed before it takes mu to remove what is on the way to it, so
// nothing queued for it after that stays in the link.
func (d *pipeLink) send(now time.Time, p []byte, to *PipeConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if to.isClosed() {
		return
	}
	d.link.send(now, p, dest{pipe: to})
	d.flushLocked(now)
}

// flushLocked delivers what is due and arms the timer for the rest.
func (d *pipeLink) flushLocked(now time.Time) {
	for {
		pk := d.link.pop(now)
		if pk == nil {
			break
		}
		pk.dst.pipe.enqueue(d.link, pk)
	}
	next, ok := d.link.Next()
	d.armLocked(now, next, ok)
}

// armLocked makes the timer fire at next, if that is earlier than it is
// armed for; ok false means the link is empty.
func (d *pipeLink) armLocked(now, next time.Time, ok bool) {
	if !ok || !d.armed.IsZero() && !next.Before(d.armed) {
		return
	}
	d.armed = next
	if d.timer == nil {
		d.timer = time.AfterFunc(next.Sub(now), d.fire)
	} else {
		d.timer.Reset(next.Sub(now))
	}
}

func (d *pipeLink) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.armed = time.Time{}
	d.flushLocked(time.Now())
}

// stop discards what is on the way to the closed end c, and disarms the
// timer when nothing is left for the other ends.
func (d *pipeLink) stop(c *PipeConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.link.drainTo(c); !ok && d.timer != nil {
		d.timer.Stop()
		d.armed = time.Time{}
	}
}
