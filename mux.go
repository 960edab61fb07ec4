package udt

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// multiplexer owns one UDP socket. Its receive worker (rcvqueue.go) reads
// every datagram and dispatches it to the listener, a connecting socket or
// an established one; its send queue (sndqueue.go) paces all of them. A
// listener and any number of connections share it; it closes the socket
// when its last user leaves.
type multiplexer struct {
	conn  *net.UDPConn
	laddr netip.AddrPort
	key   string // registry key; "" when not shared
	start time.Time

	sndq *sendQueue

	// Dispatch tables, owned by the receive worker. Other goroutines change
	// them through queued closures (apply).
	socks      map[uint32]*Conn // established and closing sockets by ID
	connectors map[uint32]*Conn // dials in progress by ID
	listener   *Listener
	rcvOut     outbox // control replies built while dispatching

	pendingMu  sync.Mutex
	pending    []func() // guarded by pendingMu
	hasPending atomic.Bool

	idMu sync.Mutex
	ids  map[uint32]struct{} // socket IDs in use, guarded by idMu

	refs        int  // users; guarded by registry.mu
	hasListener bool // guarded by registry.mu
	closed      chan struct{}
	wg          sync.WaitGroup

	dropped atomic.Uint64 // malformed or unroutable datagrams
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
		key = network + "|" + laddr.String()
		if m := registry.muxes[key]; m != nil {
			m.refs++
			return m, nil
		}
	}
	uc, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	_ = uc.SetReadBuffer(cfg.UDPReceiveBuffer)
	_ = uc.SetWriteBuffer(cfg.UDPSendBuffer)
	m := &multiplexer{
		conn:       uc,
		laddr:      uc.LocalAddr().(*net.UDPAddr).AddrPort(),
		start:      time.Now(),
		socks:      make(map[uint32]*Conn),
		connectors: make(map[uint32]*Conn),
		ids:        make(map[uint32]struct{}),
		refs:       1,
		closed:     make(chan struct{}),
	}
	m.sndq = newSendQueue(m)
	if key == "" {
		// Register under the bound address so later dials and listens
		// naming it share this socket.
		key = network + "|" + uc.LocalAddr().String()
	}
	if registry.muxes == nil {
		registry.muxes = make(map[string]*multiplexer)
	}
	if registry.muxes[key] == nil {
		m.key = key
		registry.muxes[key] = m
	}
	m.wg.Go(m.receiveLoop)
	m.wg.Go(m.sndq.loop)
	return m, nil
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
	registry.mu.Unlock()
	if !last {
		return
	}
	close(m.closed)
	_ = m.conn.Close()
	m.wg.Wait()
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

// writeTo sends one datagram. Errors are transient for UDP (a full kernel
// buffer, an unreachable peer) and are left to retransmission.
func (m *multiplexer) writeTo(b []byte, to netip.AddrPort) {
	_, err := m.conn.WriteToUDPAddrPort(b, to)
	if err != nil && errors.Is(err, net.ErrClosed) {
		return
	}
}

// now returns the multiplexer's clock; a variable for tests.
func (m *multiplexer) now() time.Time { return time.Now() }
