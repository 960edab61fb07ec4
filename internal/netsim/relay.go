package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// relayBuffer is the socket buffer size the relay asks for (the kernel may
// cap it, on Linux at net.core.rmem_max and wmem_max).
const relayBuffer = 8 << 20

// Relay is a UDP forwarder on loopback that passes datagrams between its
// clients and one target through two emulated links. Each client address
// gets its own upstream socket connected to the target, so the target sees
// one peer per client and its replies return to the right client. All
// clients share the two links, as they would share a bottleneck. Clients
// are remembered until Close. A Relay is safe for concurrent use.
type Relay struct {
	ln       *net.UDPConn
	addr     *net.UDPAddr
	target   *net.UDPAddr
	upstream string // network for upstream sockets
	up, down outlet

	mu       sync.Mutex
	sessions map[netip.AddrPort]*session // guarded by mu
	done     bool                        // guarded by mu

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{}
	wg        sync.WaitGroup
}

// session is one client of a relay.
type session struct {
	client netip.AddrPort
	conn   *net.UDPConn // connected to the target
}

// NewRelay starts a relay to target listening on 127.0.0.1 (on ::1 when
// target is IPv6) at a free port. Datagrams from clients pass through a
// link configured by toTarget, replies through one configured by
// fromTarget; the links draw from generators seeded with seed and seed+1.
// An unspecified target address means loopback.
func NewRelay(target *net.UDPAddr, toTarget, fromTarget LinkConfig, seed uint64) (*Relay, error) {
	if target == nil || target.Port == 0 {
		return nil, fmt.Errorf("netsim: relay target %v has no port", target)
	}
	t := *target
	v6 := t.IP != nil && t.IP.To4() == nil
	network, lo := "udp4", net.IPv4(127, 0, 0, 1)
	if v6 {
		network, lo = "udp6", net.IPv6loopback
	}
	if t.IP == nil || t.IP.IsUnspecified() {
		t.IP = lo
	}
	ln, err := net.ListenUDP(network, &net.UDPAddr{IP: lo})
	if err != nil {
		return nil, fmt.Errorf("netsim: relay: %w", err)
	}
	setBuffers(ln)
	r := &Relay{
		ln:       ln,
		addr:     ln.LocalAddr().(*net.UDPAddr),
		target:   &t,
		upstream: network,
		sessions: make(map[netip.AddrPort]*session),
		closed:   make(chan struct{}),
	}
	r.up = outlet{link: New(toTarget, seed), wake: make(chan struct{}, 1), write: func(pk *packet) error {
		_, err := pk.dst.session.conn.Write(pk.b)
		return err
	}}
	r.down = outlet{link: New(fromTarget, seed+1), wake: make(chan struct{}, 1), write: func(pk *packet) error {
		_, err := r.ln.WriteToUDPAddrPort(pk.b, pk.dst.session.client)
		return err
	}}
	r.wg.Go(r.readClients)
	r.wg.Go(func() { r.up.run(r.closed) })
	r.wg.Go(func() { r.down.run(r.closed) })
	return r, nil
}

func setBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(relayBuffer)
	_ = c.SetWriteBuffer(relayBuffer)
}

// Addr returns the address clients send to.
func (r *Relay) Addr() *net.UDPAddr {
	a := *r.addr
	return &a
}

// SetConfig reconfigures both directions; see [Link.SetConfig].
func (r *Relay) SetConfig(toTarget, fromTarget LinkConfig) {
	r.up.link.SetConfig(toTarget)
	r.down.link.SetConfig(fromTarget)
	r.up.poke()
	r.down.poke()
}

// Links returns the links towards and from the target, to reconfigure one
// direction or read its counters.
func (r *Relay) Links() (toTarget, fromTarget *Link) {
	return r.up.link, r.down.link
}

// Stats returns the counters of both directions.
func (r *Relay) Stats() (toTarget, fromTarget LinkStats) {
	return r.up.link.Stats(), r.down.link.Stats()
}

// Close stops the relay: it closes its sockets, waits for its goroutines and
// discards datagrams in flight. Later calls return the first result.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.closeErr = r.ln.Close()
		r.mu.Lock()
		r.done = true
		ss := r.sessions
		r.sessions = nil
		r.mu.Unlock()
		for _, s := range ss {
			_ = s.conn.Close()
		}
		r.wg.Wait()
		r.up.link.drain()
		r.down.link.drain()
	})
	return r.closeErr
}

// readClients reads datagrams from clients and sends them towards the target.
func (r *Relay) readClients() {
	buf := make([]byte, 1<<16)
	var last *session
	for {
		n, from, err := r.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		s := last
		if s == nil || s.client != from {
			if s = r.session(from); s == nil {
				continue
			}
			last = s
		}
		r.forward(&r.up, buf[:n], s)
	}
}

// session returns the session of client, creating it and its upstream
// socket on first use; nil when that fails or the relay is closed.
func (r *Relay) session(client netip.AddrPort) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	if s := r.sessions[client]; s != nil {
		return s
	}
	c, err := net.DialUDP(r.upstream, nil, r.target)
	if err != nil {
		return nil
	}
	setBuffers(c)
	s := &session{client: client, conn: c}
	r.sessions[client] = s
	r.wg.Go(func() { r.readTarget(s) })
	return s
}

// readTarget reads the target's replies to one client.
func (r *Relay) readTarget(s *session) {
	buf := make([]byte, 1<<16)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			// A connected socket reports ICMP port unreachable as an
			// error; only closing ends the loop.
			if r.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r.forward(&r.down, buf[:n], s)
	}
}

// forward offers p to d's link and writes it at once if it is already due;
// otherwise d's goroutine writes it later.
func (r *Relay) forward(d *outlet, p []byte, s *session) {
	now := time.Now()
	if !d.link.send(now, p, dest{session: s}) {
		return
	}
	if next, ok := d.link.Next(); ok && !next.After(now) {
		d.deliver(now)
		return
	}
	d.poke()
}

func (r *Relay) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}
