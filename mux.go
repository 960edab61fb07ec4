package udt

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
)

// multiplexer owns one UDP socket. Its receive worker (rcvqueue.go) reads
// every datagram and dispatches it to the listener, a connecting socket or
// an established one; its send queue (sndqueue.go) paces all of them. A
// listener and any number of connections share it; it closes the socket
// when its last user leaves.
type multiplexer struct {
	conn  packetConn
	laddr netip.AddrPort
	key   string // registry key; "" when not shared

	sndq *sendQueue

	// Dispatch tables, owned by the receive worker. Other goroutines change
	// them through queued closures (apply).
	socks      map[uint32]*Conn // established and closing sockets by ID
	connectors map[uint32]*Conn // dials in progress by ID
	listener   *Listener
	rcvOut     outbox // control replies built while dispatching

	// Data packets for one connection, read in one batch, are handed
	// over together (see queueData); receive worker only.
	batching bool
	run      []packet
	runConn  *Conn
	// Connections owed an ACK at the end of the batch being dispatched
	// (see ackDataLocked); receive worker only.
	acksOwed []*Conn

	// rendezvous holds rendezvous dials in progress by peer address, for
	// their peer's requests to destination 0; owned by the receive worker.
	rendezvous map[netip.AddrPort]*Conn

	pendingMu  sync.Mutex
	pending    []func() // guarded by pendingMu
	hasPending atomic.Bool

	idMu sync.Mutex
	ids  map[uint32]struct{} // socket IDs in use, guarded by idMu

	// failed closes when the socket fails for good (see receiveLoop);
	// failErr, set before, says why.
	failed  chan struct{}
	failErr error

	refs        int  // users; guarded by registry.mu
	hasListener bool // guarded by registry.mu
	closed      chan struct{}
	wg          sync.WaitGroup

	// rdvPeers are the peers of rendezvous dials in progress; guarded by
	// registry.mu. A port has a listener or rendezvous dials, never both.
	rdvPeers map[netip.AddrPort]struct{}

	ctr socketCounters // behind SocketMetrics (metrics.go)

	// nonUDT, if set (a Transport's), takes the datagrams that are not
	// UDT's instead of their being dropped (see Transport); receive worker.
	nonUDT func(b []byte, from netip.AddrPort)
	// detached is set when the socket's owner takes it back (Transport
	// Close): the receive worker ends every user and stops.
	detached atomic.Bool

	// bufs are the socket buffer sizes last set here (see
	// growBuffersLocked); guarded by registry.mu.
	bufs bufferSizes

	open atomic.Int64 // connections counted against Config.MaxConns
	// rcvHeld is the received data its connections hold, in bytes, counted
	// against Config.ReceiveMemory (see Conn.holdRcvBufLocked).
	rcvHeld atomic.Int64
}

// registry maps local addresses to shared multiplexers.
var registry struct {
	mu    sync.Mutex
	muxes map[string]*multiplexer
}

// acquireMux returns the multiplexer bound to laddr, creating it if needed.
// A nil or port-0 laddr always gets a new, unshared multiplexer.
func acquireMux(network string, laddr *net.UDPAddr, cfg *Config) (*multiplexer, error) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	key := ""
	if laddr != nil && laddr.Port != 0 {
		key = muxKey(network, laddr)
		if m := registry.muxes[key]; m != nil {
			m.refs++
			m.growBuffersLocked(cfg)
			return m, nil
		}
	}
	uc, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	// A socket of our own gets the buffers cfg asks, larger or smaller
	// than the system's defaults; a shared one only grows (above).
	_ = uc.SetReadBuffer(cfg.UDPReceiveBuffer)
	_ = uc.SetWriteBuffer(cfg.UDPSendBuffer)
	m := newMultiplexer(newUDPConn(uc, false))
	m.bufs = bufferSizes{rcv: cfg.UDPReceiveBuffer, snd: cfg.UDPSendBuffer}
	if key == "" {
		// Register under the bound address so later dials and listens
		// naming it share this socket.
		key = muxKey(network, uc.LocalAddr().(*net.UDPAddr))
	}
	if registry.muxes == nil {
		registry.muxes = make(map[string]*multiplexer)
	}
	if registry.muxes[key] == nil {
		m.key = key
		registry.muxes[key] = m
	}
	m.start()
	return m, nil
}

// muxKey names a local address in the registry. A specific IP names one
// socket whatever the network ("udp" or "udp4" for 127.0.0.1); an
// unspecified one needs the network too: "udp" binds both families,
// "udp4" and "udp6" one.
func muxKey(network string, laddr *net.UDPAddr) string {
	if laddr.IP != nil && !laddr.IP.IsUnspecified() {
		return laddr.String()
	}
	return network + "|" + laddr.String()
}

// newMultiplexer makes a multiplexer on pc; start runs its workers.
func newMultiplexer(pc packetConn) *multiplexer {
	m := &multiplexer{
		conn:       pc,
		laddr:      pc.LocalAddrPort(),
		socks:      make(map[uint32]*Conn),
		connectors: make(map[uint32]*Conn),
		rendezvous: make(map[netip.AddrPort]*Conn),
		ids:        make(map[uint32]struct{}),
		refs:       1,
		closed:     make(chan struct{}),
		failed:     make(chan struct{}),
	}
	m.sndq = newSendQueue(m)
	return m
}

func (m *multiplexer) start() { m.startWorkers() }

// startWorkers runs the receive worker and the send queue; the channel it
// returns closes when the receive worker has stopped.
func (m *multiplexer) startWorkers() <-chan struct{} {
	done := make(chan struct{})
	m.wg.Go(func() {
		defer close(done)
		m.receiveLoop()
	})
	m.wg.Go(m.sndq.loop)
	return done
}

// release drops one reference; the last one closes the socket and waits for
// the workers.
func (m *multiplexer) release() {
	registry.mu.Lock()
	m.refs--
	last := m.refs == 0
	if last && m.key != "" && registry.muxes[m.key] == m {
		delete(registry.muxes, m.key)
	}
	if last {
		// Closed before the address leaves the lock, so that a Listen or
		// Dial of it that misses this multiplexer finds the port free.
		close(m.closed)
		_ = m.conn.Close()
	}
	registry.mu.Unlock()
	if last {
		m.wg.Wait()
	}
}

// apply queues f to run on the receive worker before its next dispatch.
func (m *multiplexer) apply(f func()) {
	m.pendingMu.Lock()
	m.pending = append(m.pending, f)
	m.hasPending.Store(true)
	m.pendingMu.Unlock()
}

// runPending runs queued table changes; receive worker only.
func (m *multiplexer) runPending() {
	if !m.hasPending.Load() {
		return
	}
	m.pendingMu.Lock()
	fs := m.pending
	m.pending = nil
	m.hasPending.Store(false)
	m.pendingMu.Unlock()
	for _, f := range fs {
		f()
	}
}

// fail ends every connection, dial and the listener on m with err, the
// socket's failure, and takes m out of the registry, so that later dials
// and listens on its address get a new socket; receive worker only. The
// users still hold their references and release them as they close.
func (m *multiplexer) fail(err error) {
	m.failErr = &SocketError{Err: err}
	registry.mu.Lock()
	if m.key != "" && registry.muxes[m.key] == m {
		delete(registry.muxes, m.key)
	}
	m.key = ""
	registry.mu.Unlock()
	m.runPending()
	close(m.failed)
	for _, c := range m.socks {
		c.mu.Lock()
		if c.state == stateConnected {
			c.failLocked(m.failErr)
		}
		c.mu.Unlock()
	}
	for _, c := range m.connectors { // rendezvous dials included
		c.abortDial(m.failErr)
	}
}

// reserveConn counts a new connection on m unless limit (Config.MaxConns;
// zero for none) is reached. Close, or the dial's failure, gives it back
// (releaseConn).
func (m *multiplexer) reserveConn(limit int) bool {
	for {
		n := m.open.Load()
		if limit > 0 && n >= int64(limit) {
			return false
		}
		if m.open.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (m *multiplexer) releaseConn() { m.open.Add(-1) }

// newSocketID returns a random positive 31-bit ID unused on this multiplexer.
func (m *multiplexer) newSocketID() uint32 {
	m.idMu.Lock()
	defer m.idMu.Unlock()
	var b [4]byte
	for {
		_, _ = rand.Read(b[:])
		id := binary.BigEndian.Uint32(b[:]) & 0x7FFFFFFF
		if _, used := m.ids[id]; id != 0 && !used {
			m.ids[id] = struct{}{}
			return id
		}
	}
}

func (m *multiplexer) freeSocketID(id uint32) {
	m.idMu.Lock()
	delete(m.ids, id)
	m.idMu.Unlock()
}

// writeBatch sends the data packets the send queue gathered: in batches
// where the socket allows it, else one by one; send queue worker only.
func (m *multiplexer) writeBatch(t *txBatch) {
	if m.detached.Load() {
		return // the socket is its owner's again
	}
	m.ctr.wrote(len(t.ends), t.bytes)
	m.ctr.wroteBatch(len(t.ends))
	if u, ok := m.conn.(udpConn); ok && u.io != nil {
		if failed := u.io.writeBatch(t, m.send); failed > 0 {
			m.ctr.sendErrors.Add(uint64(failed))
		}
		return
	}
	for i := range t.ends {
		m.send(t.packet(i), t.to[i])
	}
}

// writeTo sends one datagram, counted (see send).
func (m *multiplexer) writeTo(b []byte, to netip.AddrPort) {
	if m.detached.Load() {
		return // the socket is its owner's again
	}
	m.ctr.wrote(1, len(b))
	m.send(b, to)
}

// send writes one datagram, counted by the caller. Errors are transient
// for UDP (a full kernel buffer, an unreachable peer) and are left to
// retransmission; they are counted.
func (m *multiplexer) send(b []byte, to netip.AddrPort) {
	if err := m.conn.WriteTo(b, to); err != nil {
		m.ctr.sendErrors.Add(1)
	}
}

// detach stops both workers at once, whatever references are left, when
// a Transport's owner takes its socket back (Transport.Close; the receive
// worker has ended every user already): the users still holding a
// reference release it as they close, and none is the last.
func (m *multiplexer) detach() {
	registry.mu.Lock()
	m.refs -= 1 << 30
	if !isClosed(m.closed) {
		close(m.closed)
	}
	registry.mu.Unlock()
	m.wg.Wait()
}

// packetConn is the datagram socket under a multiplexer: a UDP socket, or
// in tests an emulated link.
type packetConn interface {
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	WriteTo(b []byte, to netip.AddrPort) error
	LocalAddrPort() netip.AddrPort
	Close() error
}

// udpConn is a packetConn on a real UDP socket.
type udpConn struct {
	c        *net.UDPConn
	stamped  bool     // the kernel timestamps arriving datagrams (see stamp_linux.go)
	io       *batchIO // batch reads and writes, or nil (see batchio_linux.go)
	borrowed bool     // the caller's socket (a Transport's): Close leaves it open
}

// newUDPConn wraps uc for a multiplexer: batch I/O, with GSO and GRO,
// where the system has them (see socketIO), and the kernel's arrival
// times where it gives them. borrowed: the socket is the caller's (a
// Transport's), which Close leaves open.
func newUDPConn(uc *net.UDPConn, borrowed bool) udpConn {
	return udpConn{c: uc, stamped: enableStamps(uc), io: newSocketIO(uc), borrowed: borrowed}
}

// socketIO says how multiplexers do their I/O: "batch" (the default: batch
// system calls, with GSO and GRO where the kernel has them), "nooffload"
// (batches without GSO and GRO) or "plain" (a system call per datagram).
// Tests set it to cover each path; UDT_SOCKET_IO sets it for a process.
var socketIO = os.Getenv("UDT_SOCKET_IO")

func newSocketIO(uc *net.UDPConn) *batchIO {
	switch socketIO {
	case "plain":
		return nil
	case "nooffload":
		return newBatchIO(uc, true)
	}
	return newBatchIO(uc, false)
}

func (u udpConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	return u.c.ReadFromUDPAddrPort(b)
}

func (u udpConn) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, to)
	return err
}

func (u udpConn) LocalAddrPort() netip.AddrPort {
	return u.c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (u udpConn) Close() error {
	if u.borrowed {
		return nil
	}
	return u.c.Close()
}

// netPacketConn adapts any net.PacketConn whose addresses are *net.UDPAddr.
type netPacketConn struct {
	c        net.PacketConn
	borrowed bool // the caller's socket (a Transport's): Close leaves it open
}

func (p netPacketConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		n, a, err := p.c.ReadFrom(b)
		if err != nil {
			return n, netip.AddrPort{}, err
		}
		if ua, ok := a.(*net.UDPAddr); ok {
			return n, ua.AddrPort(), nil
		}
	}
}

func (p netPacketConn) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := p.c.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (p netPacketConn) LocalAddrPort() netip.AddrPort {
	if ua, ok := p.c.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	return netip.AddrPort{}
}

func (p netPacketConn) Close() error {
	if p.borrowed {
		return nil
	}
	return p.c.Close()
}
