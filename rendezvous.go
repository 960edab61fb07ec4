package udt

// Rendezvous connection set-up (docs/protocol.md §8): both peers dial
// each other from bound ports; neither listens.
//
//	A                                             B
//	| type 0, dst 0, every 250 ms ----------->    |  (B not up yet: lost)
//	|    <----------------------------------- type 0, dst 0
//	| type −1, dst B's ID (at once) --------->    |
//	|    <------------------------ type −1, dst A's ID (at once)
//	|  A: own −1, got −1: connected               |
//	| keep-alive (or data) ------------------>    |  B: completes on it
//	|    <---------- B's −1 again (if A's packets were lost)
//	| type −2, dst B's ID ------------------->    |  B: completes on it
//
// Each side keeps its own ISN: it sends from the ISN in its own handshakes
// and receives from the one in its peer's. No cookie.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/udt-go/udt/internal/pktbuf"
	"github.com/udt-go/udt/internal/seq"
)

// DefaultRendezvousTimeout bounds a rendezvous handshake when
// Config.ConnectTimeout is zero: the C++ library's 30 s (ten times its
// regular connect timeout).
const DefaultRendezvousTimeout = 30 * time.Second

// DialRendezvous connects to raddr in rendezvous mode (the C++ library's
// UDT_RENDEZVOUS): the peer, which does not listen, dials back to laddr at
// about the same time, and the two handshakes meet. Either may start first;
// the handshake waits up to 30 s ([DefaultRendezvousTimeout]) or until ctx
// ends.
//
// laddr must name a specific port (the C++ library's ERDVUNBOUND otherwise).
// The port is shared with other dials from it, but not with a [Listener]:
// requests to a listening port go to the listener, as in the C++ library,
// so DialRendezvous fails while one is open there (and Listen fails while a
// rendezvous dial is in progress).
func DialRendezvous(ctx context.Context, network, laddr, raddr string) (*Conn, error) {
	var d Dialer
	return d.DialRendezvous(ctx, network, laddr, raddr)
}

// DialRendezvous connects like the package-level DialRendezvous, with d's
// Config; d.LocalAddr is not used. If Config.ConnectTimeout is zero the
// handshake waits up to [DefaultRendezvousTimeout], not the 3 s of a
// regular dial.
func (d *Dialer) DialRendezvous(ctx context.Context, network, laddr, raddr string) (*Conn, error) {
	opErr := func(src, dst net.Addr, err error) error {
		return &net.OpError{Op: "dial", Net: "udt", Source: src, Addr: dst, Err: err}
	}
	cfg, err := d.Config.withDefaults()
	if err != nil {
		return nil, opErr(nil, nil, err)
	}
	if d.Config.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultRendezvousTimeout
	}
	if _, port, err := net.SplitHostPort(laddr); err != nil || port == "" || port == "0" {
		return nil, opErr(nil, nil, fmt.Errorf("udt: DialRendezvous laddr %q is not a bound port: a rendezvous needs a specific local port (the C++ library's ERDVUNBOUND)", laddr))
	}
	la, err := resolveUDP(ctx, network, laddr)
	if err != nil {
		return nil, opErr(nil, nil, err)
	}
	if la.Port == 0 {
		return nil, opErr(nil, nil, fmt.Errorf("udt: DialRendezvous laddr %q is not a bound port (ERDVUNBOUND)", laddr))
	}
	ra, err := resolveUDP(ctx, network, raddr)
	if err != nil {
		return nil, opErr(la, nil, err)
	}
	peer := netip.AddrPortFrom(ra.AddrPort().Addr().Unmap(), ra.AddrPort().Port())
	if peer.Port() == 0 || peer.Addr().IsUnspecified() {
		return nil, opErr(la, ra, fmt.Errorf("udt: DialRendezvous raddr %q names no peer host and port", raddr))
	}
	m, err := acquireMux(network, la, &cfg)
	if err != nil {
		return nil, opErr(la, ra, err)
	}
	c, err := dialRendezvousOn(ctx, m, cfg, peer)
	if err != nil {
		return nil, opErr(net.UDPAddrFromAddrPort(m.laddr), ra, err)
	}
	return c, nil
}

// dialRendezvousOn runs a rendezvous handshake with peer on m, taking over
// the caller's reference to m (released on failure).
func dialRendezvousOn(ctx context.Context, m *multiplexer, cfg Config, peer netip.AddrPort) (*Conn, error) {
	registry.mu.Lock()
	var err error
	switch _, dup := m.rdvPeers[peer]; {
	case m.hasListener:
		err = errRendezvousListener
	case dup:
		err = errRendezvousTwice
	default:
		if m.rdvPeers == nil {
			m.rdvPeers = make(map[netip.AddrPort]struct{})
		}
		m.rdvPeers[peer] = struct{}{}
	}
	registry.mu.Unlock()
	if err != nil {
		m.release()
		return nil, err
	}
	defer func() {
		registry.mu.Lock()
		delete(m.rdvPeers, peer)
		registry.mu.Unlock()
	}()

	if !m.reserveConn(cfg.MaxConns) {
		m.release()
		return nil, ErrTooManyConns
	}
	c := newDialingConn(m, cfg, peer, reqRendezvous)
	c.rendezvous = true
	c.startTrace(RoleRendezvous)
	m.apply(func() {
		m.connectors[c.id] = c
		m.rendezvous[peer] = c
	})
	if err := c.handshake(ctx); err != nil {
		c.abandon(err)
		return nil, err
	}
	return c, nil
}

// strayRendezvous notes, on the rendezvous dials in progress with from's
// host, that it sent from another port than theirs: a symmetric NAT's
// sign, which their timeout error names; receive worker only.
func (m *multiplexer) strayRendezvous(from netip.AddrPort) {
	for peer, c := range m.rendezvous {
		if peer.Addr() == from.Addr() {
			c.mu.Lock()
			c.hs.strayFrom = from
			c.mu.Unlock()
		}
	}
}

// handleRendezvous processes a datagram for a rendezvous in progress (§8);
// receive worker only. It reports whether the connection is now
// established.
func (c *Conn) handleRendezvous(p *packet) bool {
	ob := &c.m.rcvOut
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		c.flush(ob)
	}()
	if c.state != stateConnecting || isClosed(c.sig.connected) {
		return false
	}
	if !p.control || p.typ == ctrlKeepAlive {
		// The peer is connected and sends data or keep-alives to our ID:
		// complete with the last handshake it sent (§8 step 4).
		if p.dst != c.id || c.hs.peer.socketID == 0 {
			return false
		}
		c.establishRendezvousLocked(false, ob)
		return true
	}
	if p.typ != ctrlHandshake {
		return false
	}
	h, err := parseHandshake(p.body)
	if err != nil || !c.acceptableRendezvousLocked(&h) {
		return false
	}
	if c.tr.t != nil {
		c.traceHandshakeLocked(time.Now(), &h, false)
	}
	c.hs.peer = h
	if c.hs.ours.reqType == reqRendezvous || h.reqType == reqRendezvous {
		// §8 step 2: answer at once with −1, addressed to the peer. It
		// announces the smaller MSS, which a C++ peer adopts.
		c.hs.ours.reqType = reqConclusion
		c.hs.ours.mss = uint32(min(c.cfg.MSS, int(h.mss)))
		ob.add(appendHandshakePacket(ob.next(), h.socketID, &c.hs.ours))
		if c.tr.t != nil {
			c.traceHandshakeLocked(time.Now(), &c.hs.ours, true)
		}
		return false
	}
	// Ours is −1 and the peer's −1 or −2 (§8 steps 3 and 5). After a −1 the
	// peer may still be waiting for ours: a keep-alive completes it, as the
	// C++ library's first EXP check after a slow rendezvous does.
	c.establishRendezvousLocked(h.reqType == reqConclusion, ob)
	return true
}

// acceptableRendezvousLocked reports whether h can be the peer's rendezvous
// handshake. Types 0 and −1 must match our version and socket type; the
// −2 reply of a connected C++ socket carries zeros there. Anything else,
// type 1 (a regular dial) included, is ignored.
func (c *Conn) acceptableRendezvousLocked(h *handshake) bool {
	switch h.reqType {
	case reqRendezvous, reqConclusion:
		if h.version != udtVersion || h.sockType != c.hs.ours.sockType {
			return false
		}
	case reqAgreement:
	default:
		return false
	}
	return h.socketID != 0 && h.socketID&0x80000000 == 0 &&
		h.mss >= minMSS && h.mss <= maxMSS && h.window != 0 && h.isn <= uint32(seq.Max)
}

// establishRendezvousLocked connects with the peer's last handshake: we
// send from our ISN and receive from the peer's, each with the smaller MSS
// (a C++ peer takes ours verbatim, so we accept packets as large as our
// own MSS allows).
func (c *Conn) establishRendezvousLocked(keepAlive bool, ob *outbox) {
	h := c.hs.peer
	mss := min(c.cfg.MSS, int(h.mss))
	c.hs.ours.mss = uint32(mss)
	c.establishLocked(time.Now(), h.socketID, mss, int(min(h.window, 1<<30)), seq.Num(c.hs.ours.isn), seq.Num(h.isn))
	c.rcv.maxPayload = payloadSize(c.cfg.MSS)
	c.rcv.bufs = pktbuf.NewCache(c.rcv.maxPayload)
	if keepAlive {
		ob.add(appendControl(ob.next(), ctrlKeepAlive, 0, h.socketID, nil))
		c.traceControlLocked(time.Now(), ctrlKeepAlive, 0, true)
	}
	close(c.sig.connected)
}

// answerRendezvousLocked answers a handshake reaching a connected
// rendezvous socket, which means the peer has not seen it connect: any
// type but −2 gets the −2 reply (§8 step 5; the caller checks). Like the
// C++ library's it carries only ISN, MSS, flow window, type and socket ID;
// the window is what our requests announced, where the C++ library puts
// its FC option.
func (c *Conn) answerRendezvousLocked(ob *outbox) {
	r := handshake{
		isn:      c.hs.ours.isn,
		mss:      uint32(c.mss),
		window:   c.hs.ours.window,
		reqType:  reqAgreement,
		socketID: c.id,
	}
	ob.add(appendHandshakePacket(ob.next(), c.peerID, &r))
	if c.tr.t != nil {
		c.traceHandshakeLocked(time.Now(), &r, true)
	}
}
