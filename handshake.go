package udt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

const (
	// handshakeResend is the C++ library's request retransmission period.
	handshakeResend = 250 * time.Millisecond
	// conclusionRetries is how many unanswered type −1 requests a dial sends
	// before it starts over with a fresh type 1 request (a C++ listener
	// silently drops a cookie issued in the previous minute).
	conclusionRetries = 4
)

// randomISN returns a random initial sequence number.
func randomISN() seq.Num {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return seq.Num(binary.BigEndian.Uint32(b[:])) & seq.Max
}

// DialUDT connects like DialContext and returns the concrete *Conn.
func (d *Dialer) DialUDT(ctx context.Context, network, address string) (*Conn, error) {
	cfg, err := d.Config.withDefaults()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Err: err}
	}
	raddr, err := resolveUDP(ctx, network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Err: err}
	}
	if raddr.Port == 0 {
		return nil, &net.OpError{Op: "dial", Net: "udt", Addr: raddr, Err: errPortZero(address)}
	}
	peer := raddr.AddrPort()
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	muxNet := network
	if d.LocalAddr == nil {
		if peer.Addr().Is4() {
			muxNet = "udp4"
		} else {
			muxNet = "udp6"
		}
	}
	m, err := acquireMux(muxNet, d.LocalAddr, &cfg)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Addr: raddr, Err: err}
	}
	c, err := dialOn(ctx, m, cfg, peer)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "udt", Source: net.UDPAddrFromAddrPort(m.laddr), Addr: raddr, Err: err}
	}
	return c, nil
}

// dialOn runs a caller handshake to peer on m, taking over the caller's
// reference to m (released on failure).
func dialOn(ctx context.Context, m *multiplexer, cfg Config, peer netip.AddrPort) (*Conn, error) {
	if !m.reserveConn(cfg.MaxConns) {
		m.release()
		return nil, ErrTooManyConns
	}
	c := newDialingConn(m, cfg, peer, reqInduction)
	c.isDial = true
	c.startTrace(RoleClient)
	m.apply(func() { m.connectors[c.id] = c })

	if err := c.handshake(ctx); err != nil {
		c.abandon(err)
		return nil, err
	}
	return c, nil
}

// abandon closes and unregisters a dial whose handshake failed with err.
func (c *Conn) abandon(err error) {
	c.m.releaseConn()
	c.mu.Lock()
	c.traceClosedLocked("dial", err)
	c.state = stateClosed
	c.live.closing = true
	c.mu.Unlock()
	close(c.sig.closed)
	c.unregister()
}

// abortDial ends c's handshake in progress with err.
func (c *Conn) abortDial(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !isClosed(c.sig.connected) {
		c.failDialLocked(err)
	}
}

// failDialLocked ends the handshake, which is still in progress, with err.
func (c *Conn) failDialLocked(err error) {
	c.err = err
	close(c.sig.connected)
}

// newDialingConn makes a connection on m that dials peer, with its first
// handshake request, of type reqType, in c.hs.
func newDialingConn(m *multiplexer, cfg Config, peer netip.AddrPort, reqType int32) *Conn {
	c := newConn(m, cfg, peer)
	if m.laddr.Addr().IsUnspecified() {
		c.laddr = routeSource(net.UDPAddrFromAddrPort(peer), m.laddr.Port())
	}
	c.hs.ours = handshake{
		version:  udtVersion,
		sockType: cfg.Type.wire(),
		isn:      uint32(randomISN()),
		mss:      uint32(cfg.MSS),
		window:   uint32(min(cfg.ReceiveBuffer, cfg.FlowWindow)),
		reqType:  reqType,
		socketID: c.id,
	}
	if cfg.isn != 0 {
		c.hs.ours.isn = (cfg.isn - 1) & uint32(seq.Max)
	}
	putPeerIP(&c.hs.ours.peerIP, peer.Addr())
	return c
}

// routeSource returns the local address the system would send from to
// reach raddr, with the given port: what an unbound socket's LocalAddr
// should report. Nothing is sent.
func routeSource(raddr *net.UDPAddr, port uint16) *net.UDPAddr {
	probe, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return &net.UDPAddr{Port: int(port)}
	}
	defer probe.Close()
	ap := probe.LocalAddr().(*net.UDPAddr).AddrPort()
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), port))
}

// handshake sends the caller's requests until the exchange completes, the
// listener refuses, or the timeout or ctx ends it.
func (c *Conn) handshake(ctx context.Context) error {
	timeout := time.NewTimer(c.cfg.ConnectTimeout)
	defer timeout.Stop()
	resend := time.NewTicker(handshakeResend)
	defer resend.Stop()
	conclusions := 0
	var buf []byte
	for {
		c.mu.Lock()
		dst := uint32(0)
		if c.rendezvous {
			// Addressed to the peer once we have its socket ID (§8).
			dst = c.hs.peer.socketID
		} else if c.hs.ours.reqType == reqConclusion {
			conclusions++
			if conclusions > conclusionRetries {
				c.hs.ours.reqType, c.hs.ours.cookie = reqInduction, 0
				c.hs.conclusionAt = time.Time{}
				conclusions = 0
			}
		} else {
			conclusions = 0
		}
		buf = appendHandshakePacket(buf[:0], dst, &c.hs.ours)
		if c.tr.t != nil {
			c.traceHandshakeLocked(time.Now(), &c.hs.ours, true)
		}
		c.mu.Unlock()
		c.m.writeTo(buf, c.peer)
		select {
		case <-c.sig.connected:
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return err
		case <-resend.C:
		case <-c.m.failed:
			return c.m.failErr
		case <-timeout.C:
			return c.handshakeTimeout(nil)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return c.handshakeTimeout(ctx.Err())
			}
			return ctx.Err()
		}
	}
}

// handshakeTimeout is the error of a handshake that ran out of time
// (ctxErr: the context's deadline, if that ended it): for a rendezvous,
// with what the socket saw of the peer's host.
func (c *Conn) handshakeTimeout(ctxErr error) error {
	if !c.rendezvous {
		if ctxErr == nil {
			return ErrHandshakeTimeout
		}
		return &handshakeTimeoutError{ctxErr: ctxErr}
	}
	c.mu.Lock()
	heard, stray := c.hs.peer.socketID != 0, c.hs.strayFrom
	c.mu.Unlock()
	var detail string
	switch {
	case heard:
		detail = fmt.Sprintf("the rendezvous with %v did not complete", c.peer)
	case stray.IsValid():
		detail = fmt.Sprintf("no answer from %v, but its host sent from port %d: a NAT "+
			"that maps each destination to a port of its own (symmetric) stands between the peers", c.peer, stray.Port())
	default:
		detail = fmt.Sprintf("no answer from %v (behind NATs, both peers must dial at about the same "+
			"time, each to the address and port the other's NAT maps it to, as a server both talk to sees them)", c.peer)
	}
	return &handshakeTimeoutError{detail: detail, ctxErr: ctxErr}
}

// handleConnecting processes a datagram for a dial in progress; receive
// worker only. It reports whether the connection is now established.
func (c *Conn) handleConnecting(p *packet) bool {
	if c.rendezvous {
		return c.handleRendezvous(p)
	}
	if !p.control || p.typ != ctrlHandshake {
		return false
	}
	h, err := parseHandshake(p.body)
	if err != nil {
		return false
	}
	ob := &c.m.rcvOut
	c.mu.Lock()
	defer func() {
		c.mu.Unlock()
		c.flush(ob)
	}()
	if c.state != stateConnecting || isClosed(c.sig.connected) {
		return false
	}
	if c.tr.t != nil {
		c.traceHandshakeLocked(time.Now(), &h, false)
	}
	switch h.reqType {
	case reqInduction:
		// The cookie reply: our request echoed with the cookie set.
		if h.socketID != c.id || c.hs.ours.reqType != reqInduction {
			return false
		}
		c.hs.ours.reqType, c.hs.ours.cookie = reqConclusion, h.cookie
		ob.add(appendHandshakePacket(ob.next(), 0, &c.hs.ours))
		if c.tr.t != nil {
			c.traceHandshakeLocked(time.Now(), &c.hs.ours, true)
		}
		if c.hs.conclusionAt.IsZero() {
			c.hs.conclusionAt = time.Now()
		}
		return false
	case reqConclusion:
		return c.concludeDialLocked(&h)
	case reqRefused:
		c.logf(slog.LevelInfo, "udt: dial refused")
		c.failDialLocked(ErrConnRefused)
	}
	return false
}

// concludeDialLocked completes a dial with the listener's answer h to our
// conclusion, or fails it if h does not echo our ISN; it reports whether
// the connection is established.
func (c *Conn) concludeDialLocked(h *handshake) bool {
	if h.isn != c.hs.ours.isn {
		c.failDialLocked(ErrHandshakeRejected)
		return false
	}
	if h.socketID == 0 || h.socketID&0x80000000 != 0 || h.mss < minMSS || h.window == 0 {
		return false
	}
	mss := min(int(h.mss), c.cfg.MSS)
	c.hs.peer = *h
	isn := seq.Num(h.isn)
	now := time.Now()
	if !c.hs.conclusionAt.IsZero() {
		// The conclusion's round trip is the first RTT measured:
		// samples from ACKs are smoothed against it, rather than the
		// first of them replacing the initial guess. It counts from
		// the first conclusion: a path longer than handshakeResend
		// has it sent again before any answer can come, and the
		// first answer is the first conclusion's unless that was
		// lost (then the seed runs long by the resends, which only
		// lengthens the timers until the samples bring it down).
		c.cc.rtt.Seed(min(now.Sub(c.hs.conclusionAt), maxRTT))
	}
	c.establishLocked(now, h.socketID, mss, int(min(h.window, 1<<30)), isn, isn)
	close(c.sig.connected)
	return true
}
