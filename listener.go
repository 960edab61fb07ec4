package udt

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt/internal/deadline"
	"github.com/udt-go/udt/internal/seq"
)

// Listener is a UDT listener. It implements [net.Listener]; its methods are
// safe for concurrent use. Closing it leaves accepted connections open.
type Listener struct {
	m       *multiplexer
	cfg     Config
	addr    *net.UDPAddr
	cookies *cookieJar
	logs    logQueue // records for cfg.Logger, handed over off the worker

	// The handshakes answered (see hsKey), guarded by tabMu: the receive
	// worker looks them up and adds them, closing connections retire
	// theirs, and a timer expires the retired ones.
	tabMu   sync.Mutex
	known   map[hsKey]*hsEntry // answers by handshake
	peak    int                // the most entries known held since it was last made anew
	retired []retiredKey       // closed entries, oldest first from retiredHead
	// retiredHead is the first entry of retired not yet expired.
	retiredHead int
	expiry      *time.Timer // runs expireOnTimer while entries are retired

	mu       sync.Mutex
	closing  bool       // guarded by mu
	accept   chan *Conn // handshaken, not yet accepted
	closed   chan struct{}
	deadline *deadline.Deadline
	refused  uint64 // guarded by mu

	// What the receive worker handled: handshakes that reached the
	// listener, and conclusions among them dropped for a bad or expired
	// cookie.
	handshakes, badCookieDrops atomic.Uint64

	// Logging the bad cookies (see noteBadCookie): badCookieDrops when
	// last logged, the last sender, and the timer that logs.
	badMu       sync.Mutex
	badReported uint64
	badFrom     netip.AddrPort
	badTimer    *time.Timer
}

// hsKey identifies a client's handshake: a repeated request with the same
// key is answered from the connection it created.
type hsKey struct {
	addr netip.AddrPort
	id   uint32
	isn  uint32
}

// ListenUDT announces a listener like Listen and returns the concrete type.
func (lc *ListenConfig) ListenUDT(ctx context.Context, network, address string) (*Listener, error) {
	cfg, err := lc.Config.withDefaults()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udt", Err: err}
	}
	laddr, err := resolveUDP(ctx, network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udt", Err: err}
	}
	m, err := acquireMux(network, laddr, &cfg)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "udt", Addr: laddr, Err: err}
	}
	l, err := listenOn(m, cfg)
	if err != nil {
		m.release()
		return nil, &net.OpError{Op: "listen", Net: "udt", Addr: laddr, Err: err}
	}
	return l, nil
}

// listenOn makes a listener on m, taking over the caller's reference.
func listenOn(m *multiplexer, cfg Config) (*Listener, error) {
	registry.mu.Lock()
	taken, rdv := m.hasListener, len(m.rdvPeers) > 0
	if !taken && !rdv {
		m.hasListener = true
	}
	registry.mu.Unlock()
	if taken {
		return nil, errListenerExists
	}
	if rdv {
		return nil, errRendezvousPending
	}
	l := &Listener{
		m:        m,
		cfg:      cfg,
		addr:     net.UDPAddrFromAddrPort(m.laddr),
		cookies:  newCookieJar(time.Now()),
		known:    make(map[hsKey]*hsEntry),
		accept:   make(chan *Conn, cfg.Backlog),
		closed:   make(chan struct{}),
		deadline: deadline.New(),
	}
	m.apply(func() { m.listener = l })
	return l, nil
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptUDT()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptUDT waits for the next connection and returns the concrete type.
func (l *Listener) AcceptUDT() (*Conn, error) {
	select {
	case <-l.closed:
		return nil, l.opError("accept", net.ErrClosed)
	default:
	}
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.closed:
		return nil, l.opError("accept", net.ErrClosed)
	case <-l.deadline.Wait():
		return nil, l.opError("accept", os.ErrDeadlineExceeded)
	case <-l.m.failed:
		return nil, l.opError("accept", l.m.failErr)
	}
}

// SetDeadline sets the deadline of Accept calls, pending ones included.
func (l *Listener) SetDeadline(t time.Time) error {
	select {
	case <-l.closed:
		return l.opError("set", net.ErrClosed)
	default:
	}
	l.deadline.Set(t)
	return nil
}

// Close stops listening. Connections not yet accepted are closed; accepted
// ones stay open.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return l.opError("close", net.ErrClosed)
	}
	l.closing = true
	close(l.closed)
	l.deadline.Stop()
	l.tabMu.Lock()
	if l.expiry != nil {
		l.expiry.Stop()
	}
	l.known, l.retired, l.retiredHead, l.expiry = nil, nil, 0, nil
	l.tabMu.Unlock()
	l.badMu.Lock()
	if l.badTimer != nil && l.badTimer.Stop() {
		l.badTimer = nil
		defer l.reportBadCookies() // what was counted, logged now
	}
	l.badMu.Unlock()
	var pending []*Conn
	for len(l.accept) > 0 {
		pending = append(pending, <-l.accept)
	}
	l.mu.Unlock()
	m := l.m
	m.apply(func() {
		if m.listener == l {
			m.listener = nil
		}
	})
	registry.mu.Lock()
	m.hasListener = false
	registry.mu.Unlock()
	for _, c := range pending {
		_ = c.Close()
	}
	m.release()
	return nil
}

// Addr returns the listener's UDP address.
func (l *Listener) Addr() net.Addr { return l.addr }

// opError wraps err as *net.TCPListener does: Op is "accept", "set" or
// "close", Addr the listening address, no Source.
func (l *Listener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udt", Addr: l.addr, Err: err}
}

// handle answers a connection request (destination ID 0); receive worker only.
func (l *Listener) handle(p *packet, from netip.AddrPort) {
	switch {
	case !p.control || p.typ != ctrlHandshake:
		l.m.ctr.drop(dropUnroutable) // destination 0 is for handshakes only
		return
	case len(p.body) != hsBodySize:
		l.m.ctr.drop(dropMalformed)
		return
	}
	l.handshakes.Add(1)
	h, _ := parseHandshake(p.body)
	l.mu.Lock()
	closing := l.closing
	l.mu.Unlock()
	if closing {
		l.m.ctr.drop(dropUnroutable) // as it will be once the listener is gone
		return
	}
	ob := &l.m.rcvOut
	defer ob.writeTo(l.m, from)
	now := time.Now()
	switch h.reqType {
	case reqInduction:
		// The cookie reply: the request echoed with the cookie filled in.
		// Nothing is remembered.
		reply := h
		reply.cookie = l.cookies.issue(from, now)
		ob.add(appendHandshakePacket(ob.next(), h.socketID, &reply))
		l.m.ctr.inductions.Add(1)
	case reqConclusion:
		l.conclude(ob, &h, from, now)
	default:
		l.m.ctr.drop(dropMalformed)
	}
}

// conclude answers a conclusion request h from from: with the answer given
// before if it repeats one, a refusal, or a new connection's answer. It
// drops one whose cookie or fields are bad. Receive worker.
func (l *Listener) conclude(ob *outbox, h *handshake, from netip.AddrPort, now time.Time) {
	if !l.cookies.check(from, h.cookie, now) {
		l.m.ctr.cookiesBad.Add(1)
		l.badCookieDrops.Add(1)
		l.noteBadCookie(from)
		return
	}
	if h.socketID == 0 || h.socketID&0x80000000 != 0 {
		l.m.ctr.drop(dropMalformed)
		return
	}
	if why := l.mismatch(h); why != refusedNone {
		l.refuse(ob, h, why)
		l.logRefused(from, fmt.Sprintf("version %d, socket type %d; this listener: version %d, type %d (%v)",
			h.version, h.sockType, udtVersion, l.cfg.Type.wire(), l.cfg.Type))
		return
	}
	key := hsKey{from, h.socketID, h.isn}
	if e := l.answered(key, now); e != nil {
		// A repeat of a request already answered (its answer was lost, or
		// a C++ client sent it twice): the same answer again, even when
		// the connection has closed since.
		ob.add(appendHandshakePacket(ob.next(), h.socketID, &e.resp))
		return
	}
	if h.mss < minMSS || h.mss > maxMSS || h.window == 0 || h.isn > uint32(seq.Max) {
		l.m.ctr.drop(dropMalformed)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if why := l.admitLocked(); why != refusedNone {
		l.refused++
		l.refuse(ob, h, why)
		l.logRefused(from, why.reason(&l.cfg))
		return
	}
	resp := l.acceptLocked(h, key, from, now)
	ob.add(appendHandshakePacket(ob.next(), h.socketID, &resp))
}

// answered returns the entry of a handshake already answered, if key's
// is one, expiring the retired entries whose time is up.
func (l *Listener) answered(key hsKey, now time.Time) *hsEntry {
	l.tabMu.Lock()
	defer l.tabMu.Unlock()
	l.expireRetired(now)
	return l.known[key]
}

// mismatch says whether conclusion h asks for what this listener does
// not speak: another UDT version, or another socket type.
func (l *Listener) mismatch(h *handshake) refusal {
	switch {
	case h.version != udtVersion:
		return refusedVersion
	case h.sockType != l.cfg.Type.wire():
		return refusedSocketType
	}
	return refusedNone
}

// admitLocked reserves room for a new connection, or says why there is
// none. l.mu held.
func (l *Listener) admitLocked() refusal {
	switch {
	case l.closing:
		return refusedClosing
	case len(l.accept) >= cap(l.accept):
		return refusedBacklog
	case !l.m.reserveConn(l.cfg.MaxConns):
		return refusedMaxConns
	}
	return refusedNone
}

// acceptLocked makes the connection that conclusion h from from asks
// for, established, registered and queued for Accept, and returns its
// answer. The room was reserved (admitLocked). l.mu held.
func (l *Listener) acceptLocked(h *handshake, key hsKey, from netip.AddrPort, now time.Time) handshake {
	registry.mu.Lock()
	l.m.refs++
	registry.mu.Unlock()
	c := newConn(l.m, l.cfg, from)
	c.ln, c.lnKey = l, key
	c.startTrace(RoleServer)
	mss := min(int(h.mss), l.cfg.MSS)
	c.hs.ours = handshake{
		version:  udtVersion,
		sockType: l.cfg.Type.wire(),
		isn:      h.isn,
		mss:      uint32(mss),
		window:   uint32(min(l.cfg.ReceiveBuffer, l.cfg.FlowWindow)),
		reqType:  reqConclusion,
		socketID: c.id,
		cookie:   h.cookie,
	}
	putPeerIP(&c.hs.ours.peerIP, from.Addr())
	c.hs.peer = *h
	c.mu.Lock()
	if c.tr.t != nil {
		c.traceHandshakeLocked(now, h, false)
		c.traceHandshakeLocked(now, &c.hs.ours, true)
	}
	isn := seq.Num(h.isn)
	c.establishLocked(now, h.socketID, mss, int(min(h.window, 1<<30)), isn, isn)
	resp := c.hs.ours
	c.mu.Unlock()
	l.m.socks[c.id] = c
	l.m.ctr.accepted.Add(1)
	l.tabMu.Lock()
	l.known[key] = &hsEntry{resp: resp}
	l.peak = max(l.peak, len(l.known))
	l.tabMu.Unlock()
	l.accept <- c // cannot block: only this worker sends, and there is room
	return resp
}

// hsEntry is the answer given to one client handshake.
type hsEntry struct {
	resp handshake
}

// retiredKey is a closed connection's handshake, kept for retireAfter so
// late repeats of its request are not taken for new connections.
type retiredKey struct {
	key     hsKey
	entry   *hsEntry
	expires time.Time
}

const retireAfter = 5 * time.Second

// retire marks key's connection closed; any goroutine.
func (l *Listener) retire(key hsKey, now time.Time) {
	l.tabMu.Lock()
	defer l.tabMu.Unlock()
	if e := l.known[key]; e != nil {
		l.retired = append(l.retired, retiredKey{key, e, now.Add(retireAfter)})
		if l.expiry == nil && l.known != nil {
			l.expiry = time.AfterFunc(retireAfter+expirySlack, l.expireOnTimer)
		}
	}
}

// expirySlack is how late after an entry's expiry the timer runs, so that
// it finds the entries retired together with it expired too.
const expirySlack = 100 * time.Millisecond

// expireOnTimer expires retired entries when no handshake comes to do it,
// and runs again while entries are left: a listener that went quiet after
// a burst of connections gives their memory back.
func (l *Listener) expireOnTimer() {
	l.tabMu.Lock()
	defer l.tabMu.Unlock()
	if l.known == nil {
		return // closed
	}
	now := time.Now()
	l.expireRetired(now)
	if l.retiredHead < len(l.retired) {
		l.expiry.Reset(l.retired[l.retiredHead].expires.Sub(now) + expirySlack)
		return
	}
	l.expiry = nil
}

// expireRetired forgets handshakes of connections closed long enough ago.
// The entries left move to the front only once the expired ones are half
// of them, so each handshake costs O(1) however many connections closed
// in the last retireAfter. Once most of what the tables held is gone,
// they are made anew, at the size they need: neither a slice nor a map
// gives back what it grew to. Called with tabMu held.
func (l *Listener) expireRetired(now time.Time) {
	i := l.retiredHead
	for ; i < len(l.retired) && now.After(l.retired[i].expires); i++ {
		r := l.retired[i]
		if l.known[r.key] == r.entry {
			delete(l.known, r.key)
		}
		l.retired[i] = retiredKey{}
	}
	l.retiredHead = i
	switch {
	case i == len(l.retired):
		l.retired, l.retiredHead = nil, 0
	case i > 0 && i >= len(l.retired)/2:
		n := copy(l.retired, l.retired[i:])
		clear(l.retired[n:])
		l.retired = l.retired[:n]
		l.retiredHead = 0
	}
	if l.known != nil && l.peak > minKnownRebuild && len(l.known) < l.peak/4 {
		known := make(map[hsKey]*hsEntry, len(l.known))
		for k, e := range l.known {
			known[k] = e
		}
		l.known, l.peak = known, len(known)
	}
}

// minKnownRebuild is the least peak of the handshake table for which
// expireRetired makes it anew.
const minKnownRebuild = 64

// refuse answers h with the 1002 rejection, the request echoed, and
// counts it as why says.
func (l *Listener) refuse(ob *outbox, h *handshake, why refusal) {
	l.m.ctr.refused[why].Add(1)
	r := *h
	r.reqType = reqRefused
	ob.add(appendHandshakePacket(ob.next(), h.socketID, &r))
}
