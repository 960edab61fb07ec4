package udt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// A Transport carries UDT on a UDP socket the caller owns: any number of
// dials and rendezvous dials, and one listener, share it, and the
// caller's own datagrams (STUN, for instance) pass beside them. It is the
// multiplexer the package-level Dial, Listen and DialRendezvous make for
// themselves, on a socket the caller made, shares, or received from
// elsewhere (socket activation).
//
// A datagram that arrives on the socket goes, in this order:
//   - to the connection whose socket ID is its destination (bytes 12-15),
//     if it talks with the sender (from another address it is dropped);
//   - to a dial in progress, if it names the dial's socket ID and comes
//     from its peer;
//   - with destination 0, to the listener (which drops what is not a
//     handshake), or else to a rendezvous dial with its sender;
//   - otherwise, unless it is a UDT handshake (control type 0, which is
//     dropped), to ReadNonUDTPacket: shorter than UDT's 16-byte header,
//     or naming no connection or dial of this Transport. STUN messages are
//     such datagrams unless their transaction ID happens to name one of
//     this Transport's socket IDs (random 31-bit numbers).
//
// Closing a Listener or a Conn never closes the caller's socket; nor does
// Close, which ends every connection of the Transport and stops reading
// from the socket.
type Transport struct {
	m      *multiplexer
	pc     net.PacketConn
	rdDone <-chan struct{} // closed when the receive worker has stopped

	mu     sync.Mutex
	closed bool // guarded by mu

	nonUDT chan nonUDTPacket
	done   chan struct{} // closed by Close
}

// nonUDTPacket is a datagram for ReadNonUDTPacket.
type nonUDTPacket struct {
	b    []byte
	from netip.AddrPort
}

// NonUDTQueue is how many datagrams for ReadNonUDTPacket a Transport
// holds; more are dropped (and counted, see NonUDTDropped) until it reads.
const NonUDTQueue = 256

// NewTransport makes a Transport on pc, which must carry UDP (its
// addresses are *net.UDPAddr). On a *net.UDPConn it reads and writes in
// batches, with UDP GSO and GRO where the kernel has them, as the
// package-level functions do; any other net.PacketConn is read and written
// one datagram at a time. The Transport reads from pc until Close. Each
// Listen and Dial raises a *net.UDPConn's socket buffers to its Config's
// UDPReceiveBuffer and UDPSendBuffer (never lowering them), as the
// package-level functions size their own sockets'.
func NewTransport(pc net.PacketConn) (*Transport, error) {
	if pc == nil {
		return nil, errors.New("udt: NewTransport: nil net.PacketConn")
	}
	if _, ok := pc.LocalAddr().(*net.UDPAddr); !ok {
		return nil, fmt.Errorf("udt: NewTransport: local address %v is not a UDP address", pc.LocalAddr())
	}
	var conn packetConn
	if uc, ok := pc.(*net.UDPConn); ok {
		conn = newUDPConn(uc, true)
	} else {
		conn = netPacketConn{c: pc, borrowed: true}
	}
	t := &Transport{pc: pc, nonUDT: make(chan nonUDTPacket, NonUDTQueue), done: make(chan struct{})}
	t.m = newMultiplexer(conn)
	t.m.nonUDT = t.queueNonUDT
	t.rdDone = t.m.startWorkers()
	return t, nil
}

// LocalAddr returns the socket's local address.
func (t *Transport) LocalAddr() net.Addr { return t.pc.LocalAddr() }

// acquire takes a reference to the multiplexer for a new listener or
// dial with cfg, unless t is closed, and grows the socket's buffers to
// what cfg asks.
func (t *Transport) acquire(cfg *Config) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrTransportClosed
	}
	registry.mu.Lock()
	t.m.refs++
	t.m.growBuffersLocked(cfg)
	registry.mu.Unlock()
	return nil
}

// Listen announces a listener on the Transport's socket with cfg. A
// Transport has one listener at a time, and none while a rendezvous dial
// is in progress on it (requests with destination 0 go to the listener).
func (t *Transport) Listen(cfg Config) (*Listener, error) {
	addr := t.pc.LocalAddr()
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udt", Addr: addr, Err: err}
	}
	if err := t.acquire(&cfg); err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udt", Addr: addr, Err: err}
	}
	l, err := listenOn(t.m, cfg)
	if err != nil {
		t.m.release()
		return nil, &net.OpError{Op: "listen", Net: "udt", Addr: addr, Err: err}
	}
	return l, nil
}

// Dial connects to the UDT listener at raddr from the Transport's socket,
// with cfg; ctx bounds the handshake.
func (t *Transport) Dial(ctx context.Context, raddr net.Addr, cfg Config) (*Conn, error) {
	src := t.pc.LocalAddr()
	peer, err := udpAddrPort(raddr)
	if err == nil && peer.Port() == 0 {
		err = errPortZero(raddr.String())
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: err}
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: err}
	}
	if err := t.acquire(&cfg); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: err}
	}
	c, err := dialOn(ctx, t.m, cfg, peer)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: t.closedErr(err)}
	}
	return c, nil
}

// DialRendezvous connects to raddr in rendezvous mode from the
// Transport's socket (see the package-level DialRendezvous): the peer
// dials back at about the same time. With Config.ConnectTimeout zero the
// handshake waits up to DefaultRendezvousTimeout.
func (t *Transport) DialRendezvous(ctx context.Context, raddr net.Addr, cfg Config) (*Conn, error) {
	src := t.pc.LocalAddr()
	peer, err := udpAddrPort(raddr)
	if err == nil && (peer.Port() == 0 || peer.Addr().IsUnspecified()) {
		err = fmt.Errorf("udt: DialRendezvous raddr %v names no peer host and port", raddr)
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: err}
	}
	timeout := cfg.ConnectTimeout
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: err}
	}
	if timeout == 0 {
		cfg.ConnectTimeout = DefaultRendezvousTimeout
	}
	if err := t.acquire(&cfg); err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: err}
	}
	c, err := dialRendezvousOn(ctx, t.m, cfg, peer)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: raddr, Err: t.closedErr(err)}
	}
	return c, nil
}

// closedErr is err, or ErrTransportClosed if t was closed meanwhile.
func (t *Transport) closedErr(err error) error {
	select {
	case <-t.done:
		return ErrTransportClosed
	default:
		return err
	}
}

// udpAddrPort returns a's UDP address and port, IPv4 unmapped.
func udpAddrPort(a net.Addr) (netip.AddrPort, error) {
	ua, ok := a.(*net.UDPAddr)
	if !ok || ua == nil {
		return netip.AddrPort{}, fmt.Errorf("udt: address %v is not a *net.UDPAddr", a)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// queueNonUDT keeps a copy of datagram b for ReadNonUDTPacket, or drops
// it if the queue is full; receive worker.
func (t *Transport) queueNonUDT(b []byte, from netip.AddrPort) {
	select {
	case t.nonUDT <- nonUDTPacket{append([]byte(nil), b...), from}:
		t.m.ctr.nonUDT.Add(1)
	default:
		t.m.ctr.drop(dropNonUDTFull)
	}
}

// ReadNonUDTPacket waits for the next datagram that is not UDT's (see
// Transport) and copies it into b, truncated if b is shorter; it returns
// its length as copied and its sender. It returns ctx's error when ctx
// ends first, and ErrTransportClosed after Close.
func (t *Transport) ReadNonUDTPacket(ctx context.Context, b []byte) (int, net.Addr, error) {
	select {
	case p := <-t.nonUDT:
		return copy(b, p.b), net.UDPAddrFromAddrPort(p.from), nil
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-t.done:
		return 0, nil, ErrTransportClosed
	}
}

// NonUDTDropped reports how many datagrams for ReadNonUDTPacket were
// dropped because NonUDTQueue of them were waiting.
func (t *Transport) NonUDTDropped() uint64 { return t.m.ctr.dropped[dropNonUDTFull].Load() }

// WriteTo sends datagram b to addr on the Transport's socket, beside the
// UDT traffic.
func (t *Transport) WriteTo(b []byte, addr net.Addr) (int, error) {
	to, err := udpAddrPort(addr)
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: t.pc.LocalAddr(), Addr: addr, Err: err}
	}
	select {
	case <-t.done:
		return 0, &net.OpError{Op: "write", Net: "udp", Source: t.pc.LocalAddr(), Addr: addr, Err: ErrTransportClosed}
	default:
	}
	t.m.ctr.wrote(1, len(b))
	if err := t.m.conn.WriteTo(b, to); err != nil {
		t.m.ctr.sendErrors.Add(1)
		return 0, &net.OpError{Op: "write", Net: "udp", Source: t.pc.LocalAddr(), Addr: addr, Err: err}
	}
	return len(b), nil
}

// Close ends every connection, dial and the listener of the Transport
// with ErrTransportClosed, and stops reading from the socket; it returns
// once the Transport's receive worker no longer uses the socket, leaving
// it open (its read deadline cleared) for the caller. Calls to a closed
// Transport fail with ErrTransportClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	t.mu.Unlock()
	// The receive worker, blocked reading, wakes to a passed deadline and
	// finds the multiplexer detached: it ends every user with the error.
	t.m.detached.Store(true)
	_ = t.pc.SetReadDeadline(time.Unix(1, 0))
	<-t.rdDone
	_ = t.pc.SetReadDeadline(time.Time{})
	t.m.detach()
	return nil
}
