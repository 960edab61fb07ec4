package udt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/udt-go/udt/internal/deadline"
	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/pktbuf"
	"github.com/udt-go/udt/internal/seq"
	"github.com/udt-go/udt/internal/window"
)

// connState is where a connection is in its life.
type connState uint8

const (
	stateConnecting connState = iota
	stateConnected
	stateClosed
)

// Conn is a UDT connection. It implements [net.Conn]; all its methods are
// safe for concurrent use.
//
// Protocol state is guarded by mu and touched by the multiplexer's receive
// worker (arriving packets), its send worker (packing data), the
// connection's timer (ACK, NAK and EXP) and the application's calls.
// None of them holds mu across a socket write.
type Conn struct {
	m      *multiplexer
	cfg    Config
	id     uint32         // our socket ID
	peer   netip.AddrPort // immutable once registered
	laddr  *net.UDPAddr
	raddr  *net.UDPAddr
	start  time.Time
	ln     *Listener // accepting listener, nil for a dialed conn
	lnKey  hsKey     // the listener's key for duplicate handshakes
	isDial bool

	// rendezvous marks a rendezvous connection (DialRendezvous); fixed
	// before it is registered.
	rendezvous bool

	sq  sqSlot  // the send queue's place for it; guarded by m.sndq.mu
	sig signals // wake-ups and deadlines of the blocking calls; channels

	mu    sync.Mutex
	state connState // guarded by mu
	err   error     // guarded by mu: why the connection failed (broken, refused)

	// Negotiated in the handshake; guarded by mu, fixed once connected.
	peerID  uint32
	mss     int
	payload int

	hs   handshakeState // the handshake's messages; guarded by mu
	snd  sender         // guarded by mu
	rcv  receiver       // guarded by mu
	cc   ccState        // the congestion controller and the path's estimates; guarded by mu
	live liveness       // timers, progress and shutdown; guarded by mu

	stats   connStats // guarded by mu
	logs    logQueue  // records for cfg.Logger, handed over off the locks and workers
	tr      connTrace // cfg.Tracer's hooks; guarded by mu
	scratch [64]byte  // control bodies being built; guarded by mu
}

// sqSlot is a connection's place in the send queue's heap; guarded by
// the send queue's lock.
type sqSlot struct {
	index int       // in the heap; -1 when not in it
	at    time.Time // when the connection is due
}

// signals wake a connection's blocking calls, and bound them.
type signals struct {
	readReady  chan struct{} // data, EOF or error for Read; capacity 1
	writeReady chan struct{} // send-buffer space or an error for Write/Close; capacity 1
	writeSem   chan struct{} // held by the stream Write in progress; capacity 1
	closed     chan struct{} // closed when Close begins, waking blocked calls
	connected  chan struct{} // closed when the handshake completes or fails (dials)
	rdl, wdl   *deadline.Deadline
}

// handshakeState is what a connection keeps of its handshake; guarded by
// Conn.mu.
type handshakeState struct {
	ours handshake // our last handshake: request (dial) or response (accept)
	peer handshake // the peer's handshake we completed with
	// conclusionAt is, while a dial waits for the answer to its
	// conclusion, when it first sent it.
	conclusionAt time.Time
	answeredAt   time.Time // the last answer to a handshake while connected
	// strayFrom is, for a rendezvous in progress, the last address of
	// the peer's host but another port that sent to this socket.
	strayFrom netip.AddrPort
}

// firstDataHold is how long an accepted connection holds its first data
// packet while it has not heard from the client.
const firstDataHold = 10 * time.Millisecond

// newConn makes a connection on m to peer; the caller registers it.
func newConn(m *multiplexer, cfg Config, peer netip.AddrPort) *Conn {
	now := time.Now()
	c := &Conn{
		m:     m,
		cfg:   cfg,
		id:    m.newSocketID(),
		peer:  peer,
		laddr: net.UDPAddrFromAddrPort(m.laddr),
		raddr: net.UDPAddrFromAddrPort(peer),
		start: now,
		sq:    sqSlot{index: -1},
		sig: signals{
			readReady:  make(chan struct{}, 1),
			writeReady: make(chan struct{}, 1),
			writeSem:   make(chan struct{}, 1),
			closed:     make(chan struct{}),
			connected:  make(chan struct{}),
			rdl:        deadline.New(),
			wdl:        deadline.New(),
		},
		cc: ccState{
			rtt:       window.NewRTT(),
			rate:      16,
			bandwidth: 1,
		},
		live: liveness{
			lastHeard:  now,
			lastPacket: now,
		},
	}
	return c
}

// establishLocked sets up the data path once the handshake has settled the
// peer's socket ID, the MSS, the peer's window and both ISNs.
func (c *Conn) establishLocked(now time.Time, peerID uint32, mss, peerWindow int, sndISN, rcvISN seq.Num) {
	c.state = stateConnected
	c.peerID = peerID
	c.mss = mss
	c.payload = payloadSize(mss)
	c.rcv.maxPayload = c.payload
	c.snd.bufs, c.rcv.bufs = pktbuf.NewCache(c.payload), pktbuf.NewCache(c.rcv.maxPayload)
	c.snd.flowWindow = peerWindow
	c.snd.peerWindow = peerWindow
	c.snd.buf = pktbuf.New[sndPkt](c.cfg.SendBuffer)
	c.snd.lastAck = sndISN
	c.snd.dataAck = sndISN
	c.snd.currSeq = sndISN.Dec()
	c.snd.loss = lossl.New(c.flowWindowCapLocked())
	c.rcv.buf = pktbuf.New[rcvPkt](c.cfg.ReceiveBuffer)
	c.rcv.readSeq = rcvISN
	c.rcv.lastSeq = rcvISN.Dec()
	c.rcv.lastAck = rcvISN
	c.rcv.lastAck2 = rcvISN
	c.rcv.loss = lossl.New(c.cfg.FlowWindow)
	c.rcv.advertised = c.cfg.ReceiveBuffer
	c.rcv.arrivals = window.NewArrivals()
	c.snd.msgNo = 1
	c.cc.isn = sndISN
	c.cc.ctl = c.newController()
	_, builtin := c.cc.ctl.(*builtinCC)
	c.cc.perPkt = !builtin
	c.cc.ctl.Init(now, c.ccInputsLocked())
	c.ccUpdateLocked()
	c.snd.target = now
	c.live.heard(now)
	c.live.lastProgress = now
	c.stats.start = now
	if !c.isDial {
		// A C++ 4.11 client drops what reaches it in the first few ms
		// after its connect returns (its socket is not routed yet). Data
		// waits that long, or until the client is heard from.
		c.snd.holdUntil = now.Add(firstDataHold)
	}
	c.armTimerLocked(now)
	c.logConnectedLocked()
	if c.ln == nil {
		c.m.ctr.dialed.Add(1) // the listener counts its own (acceptLocked)
	}
	c.tracePhaseLocked(now, PhaseConnected)
	c.traceMetricsLocked(now)
}

// flowWindowCapLocked bounds the sender's loss list: twice the largest window.
func (c *Conn) flowWindowCapLocked() int { return 2 * max(c.cfg.FlowWindow, c.snd.flowWindow, 32) }

// Read reads stream data. It returns io.EOF once the peer has shut the
// connection down and all it sent has been read. On a message connection
// it reads one whole message, like [Conn.ReadMessage].
func (c *Conn) Read(b []byte) (int, error) {
	if c.isMessage() {
		return c.readMessage(b)
	}
	return c.readLoop(func() (int, error, bool) {
		n := c.readLocked(b)
		return n, nil, n > 0 || len(b) == 0
	})
}

// readLoop runs a read: take, called with mu held, returns done with the
// result once it has one. Until then readLoop returns the connection's end
// (its error, or io.EOF after the peer's shutdown), or waits for more data
// or the read deadline. A read that took data announces the space it freed
// to the peer if it was short, and wakes the next reader.
func (c *Conn) readLoop(take func() (n int, err error, done bool)) (int, error) {
	for {
		c.mu.Lock()
		if c.live.closing {
			c.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		}
		if c.sig.rdl.Passed() {
			// A passed deadline fails the read even with data buffered,
			// as for a net.TCPConn (nettest's PastTimeout).
			c.mu.Unlock()
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if n, err, done := take(); done {
			var ob *outbox
			if err == nil {
				ob = c.windowUpdateLocked()
			}
			c.mu.Unlock()
			c.flush(ob)
			putOutbox(ob)
			if n > 0 {
				c.sig.wakeReader() // for other readers, if data is left
			}
			return n, err
		}
		switch {
		case c.err != nil:
			err := c.err
			c.mu.Unlock()
			c.sig.wakeReader() // the end is for every blocked reader, not one
			return 0, c.opError("read", err)
		case c.live.peerClosed:
			c.mu.Unlock()
			c.sig.wakeReader()
			return 0, io.EOF
		}
		c.mu.Unlock()
		select {
		case <-c.sig.readReady:
		case <-c.sig.rdl.Wait():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case <-c.sig.closed:
		}
	}
}

// readLocked copies readable bytes into b.
func (c *Conn) readLocked(b []byte) int {
	if c.state != stateConnected && c.rcv.buf == nil {
		return 0
	}
	contig := seq.Off(c.rcv.readSeq, c.rcv.contig())
	n := 0
	for n < len(b) && contig > 0 {
		s := c.rcv.buf.At(0)
		if s.buf == nil {
			break
		}
		k := copy(b[n:], (*s.buf)[c.rcv.readOff:])
		n += k
		c.rcv.readOff += k
		if c.rcv.readOff == len(*s.buf) {
			c.rcv.buf.PopFront()
			c.freeRcvBufLocked(s)
			c.rcv.readSeq = c.rcv.readSeq.Inc()
			c.rcv.readOff = 0
			contig--
		}
	}
	return n
}

// readableLocked reports whether Read would return data now (in message
// mode, whether a message may be: see onMessageDataLocked).
func (c *Conn) readableLocked() bool {
	return c.rcv.buf != nil && c.rcv.readSeq != c.rcv.contig()
}

// Write writes stream data. It blocks while the send buffer is full and
// returns once all of b is in the send buffer. On a message connection it
// sends b as one in-order message with Config.MessageTTL, like
// [Conn.WriteMessage].
func (c *Conn) Write(b []byte) (int, error) {
	if c.isMessage() {
		return c.writeMessage(b, c.cfg.MessageTTL, true)
	}
	c.mu.Lock()
	if c.state == stateConnected && c.snd.buf != nil {
		// Nothing queued: the send path was idle, so the EXP clock restarts.
		if c.snd.buf.Len() == 0 {
			c.live.lastHeard = time.Now()
		}
	}
	c.mu.Unlock()
	if len(b) == 0 {
		return 0, c.writeNothing()
	}
	// One Write at a time, as on a *net.TCPConn: concurrent Writes each
	// stay whole in the stream, never interleaved.
	if err := c.lockWriter(); err != nil {
		return 0, err
	}
	defer c.unlockWriter()
	total := len(b)
	for len(b) > 0 {
		var err error
		if b, err = c.writeSome(b, total); err != nil {
			return total - len(b), err
		}
	}
	return total, nil
}

// writeNothing is an empty Write: it reports the error a Write would
// meet, or none.
func (c *Conn) writeNothing() error {
	if err := c.writeErr(); err != nil {
		return err
	}
	if c.sig.wdl.Passed() {
		return c.opError("write", os.ErrDeadlineExceeded)
	}
	return nil
}

// writeSome queues as much of b, the rest of a Write of total bytes, as
// the send buffer takes, up to writeChunk packets and no further than
// writeAhead packets ahead of the sender, or waits for room; it returns
// what is left of b.
//
// The payload is copied into the packets' buffers off the connection's
// lock, which is taken only to find the room and to queue them: the
// workers that handle ACKs and send the connection's packets wait for a
// Write no longer than a chunk's queueing. (Copied under the lock, a
// 1 MiB Write held it over 720 copies, and it was half of the lock's
// contention on a loopback stream.) The room found cannot shrink while the
// lock is not held: on a stream connection only Write queues packets,
// and Write holds writeSem.
func (c *Conn) writeSome(b []byte, total int) ([]byte, error) {
	room, payload, err := c.writeRoom()
	if room == 0 || err != nil {
		return b, err
	}
	pool := pktbuf.PoolFor(payload)
	var arr [writeChunk]*[]byte
	bufs := pool.GetN(arr[:0], min(room, (len(b)+payload-1)/payload))
	rest := b
	for _, buf := range bufs {
		k := copy(*buf, rest)
		*buf = (*buf)[:k]
		rest = rest[k:]
	}
	if err := c.queueChunk(pool, bufs, total, len(rest)); err != nil {
		return b, err
	}
	return rest, nil
}

// lockWriter takes the one stream write at a time (see Write), waiting
// for it within the write deadline; unlockWriter gives it back.
func (c *Conn) lockWriter() error {
	select {
	case c.sig.writeSem <- struct{}{}:
		return nil
	case <-c.sig.wdl.Wait():
		return c.opError("write", os.ErrDeadlineExceeded)
	case <-c.sig.closed:
		return c.opError("write", net.ErrClosed)
	}
}

func (c *Conn) unlockWriter() { <-c.sig.writeSem }

// writeRoom finds how many packets, up to writeChunk, a stream write may
// fill and queue (see writeSome), and the payload size. It returns 0 and
// no error once it has waited for room (the caller asks again), and the
// connection's error, or that of a passed write deadline, if any.
func (c *Conn) writeRoom() (room, payload int, err error) {
	c.mu.Lock()
	if err := c.writeErrLocked(); err != nil {
		c.mu.Unlock()
		c.sig.wakeWriter() // the end is for every blocked writer, not one
		return 0, 0, err
	}
	if c.sig.wdl.Passed() {
		// A passed deadline fails the write before it queues
		// anything, as for a net.TCPConn (nettest's PastTimeout).
		c.mu.Unlock()
		return 0, 0, c.opError("write", os.ErrDeadlineExceeded)
	}
	room = min(c.snd.buf.Limit()-c.snd.buf.Len(), writeAhead-c.snd.unsentLocked(), writeChunk)
	if room <= 0 {
		c.snd.writerAhead = !c.snd.buf.Full()
		c.mu.Unlock()
		return 0, 0, c.waitWriteRoom()
	}
	payload = c.payload
	c.mu.Unlock()
	return room, payload, nil
}

// waitWriteRoom waits, the lock not held, for an ACK to make room in the
// send buffer, the write deadline or the connection's close.
func (c *Conn) waitWriteRoom() error {
	select {
	case <-c.sig.writeReady:
	case <-c.sig.wdl.Wait():
		return c.opError("write", os.ErrDeadlineExceeded)
	case <-c.sig.closed:
	}
	return nil
}

// queueChunk queues bufs, filled by a stream write of total bytes after
// which left bytes remain to queue, and sends them on; the write's
// message number moves on with its last chunk. On a connection that failed
// meanwhile it gives bufs back to pool and returns the error.
func (c *Conn) queueChunk(pool *pktbuf.Pool, bufs []*[]byte, total, left int) error {
	c.mu.Lock()
	if err := c.writeErrLocked(); err != nil {
		c.mu.Unlock()
		pool.PutN(bufs)
		c.sig.wakeWriter()
		return err
	}
	rest := left
	for _, buf := range bufs {
		rest += len(*buf)
	}
	for _, buf := range bufs {
		k := len(*buf)
		rest -= k
		c.snd.buf.Push(sndPkt{buf: buf, msg: c.snd.msgNo, pos: c.msgPos(total, rest, k)})
	}
	if left == 0 {
		c.snd.msgNo = c.snd.msgNo.Next()
	}
	c.kickLocked(time.Now())
	more := !c.snd.buf.Full()
	c.mu.Unlock()
	if left == 0 && more {
		// An ACK wakes one writer; pass the space it left on to the
		// next, or a writer could wait on an idle connection.
		c.sig.wakeWriter()
	}
	return nil
}

// writeChunk is the most packets writeSome copies and queues at once.
const writeChunk = 64

// writeAhead is the most packets a stream Write keeps queued that the
// sender has not sent yet. The send buffer still holds up to
// Config.SendBuffer packets, the rest of them sent and unacknowledged;
// what bounds the ones not yet sent is the cache: a Write that ran up to
// 8,192 packets (12 MB) ahead left the sender to copy payload gone cold
// into its datagrams, the costliest copy on a loopback stream. Held to
// 1,024 (1.5 MB), BenchmarkLoopbackStream moved 8.2-8.9 Gbit/s at
// 2,380-2,630 CPU-ns a packet against 6.8-7.7 at 2,720-2,960 (four runs
// of each, alternated; 7.0-9.4 against 5.9-8.4 in four more on a busier
// host), and udtperf's sender spent 1.08-1.28 CPU-s a GB against
// 1.20-1.36. A Write that waits on it is woken by the sender once
// writeRefill packets have gone (see wakeWriterBehindLocked).
const writeAhead = 1024

// writeRefill is how many packets the sender sends past a Write waiting
// on writeAhead before it wakes the Write: two of its chunks.
const writeRefill = 2 * writeChunk

// msgPos returns the FF bits of the packet that took k bytes, leaving
// left bytes of a write of total bytes.
func (c *Conn) msgPos(total, left, k int) msgPos {
	first := left+k == total
	last := left == 0
	switch {
	case first && last:
		return posSolo
	case first:
		return posFirst
	case last:
		return posLast
	}
	return posMiddle
}

func (c *Conn) writeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeErrLocked()
}

func (c *Conn) writeErrLocked() error {
	switch {
	case c.live.closing:
		return c.opError("write", net.ErrClosed)
	case c.live.peerClosed:
		return c.opError("write", ErrPeerClosed)
	case c.err != nil:
		return c.opError("write", c.err)
	case c.state != stateConnected:
		return c.opError("write", net.ErrClosed)
	}
	return nil
}

// Close flushes what was written, waiting for the peer to acknowledge it,
// then shuts the connection down. It lingers up to Config.Linger, less if
// the peer makes no progress for Config.LingerStall with its window
// closed, and not at all if the write deadline had passed well before
// Close (the writes were failing already; see linger). Blocked
// Read and Write calls return at once, before the linger, with an error
// wrapping [net.ErrClosed]. If written data was still unacknowledged at
// the shutdown, Close returns an [*UnacknowledgedError] saying how much,
// and why the linger ended; and so it does when the connection had ended
// first, before Close or during its linger, with written data
// unacknowledged: lost ([ErrConnLost]), its socket failed, or the peer
// shut it down ([ErrPeerClosed]). The error then matches the one that
// ended the connection, as Write reported it, with errors.Is. Close
// returns nil when all that was written was acknowledged, however the
// connection ended. A second Close returns an error wrapping
// [net.ErrClosed].
//
// Before its shutdown, Close acknowledges all the data that arrived, even
// if that repeats an ACK the peer may not have had yet, so that the
// peer's Close does not report it as lost; should that ACK be lost and
// the shutdown arrive, the peer's Close reports data that arrived. A 4.11
// peer sends no such ACK: toward one that closes as soon as it has read,
// Close may report the last packets written though they arrived.
func (c *Conn) Close() error { return c.CloseContext(context.Background()) }

// CloseContext is Close, lingering no longer than ctx allows either: a
// program that must not wait for a peer can bound the linger per call.
func (c *Conn) CloseContext(ctx context.Context) error {
	c.mu.Lock()
	if c.live.closing {
		c.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.live.closing = true
	if c.state == stateConnected && c.err == nil && !c.live.peerClosed {
		c.tracePhaseLocked(time.Now(), PhaseClosing)
	}
	c.mu.Unlock()
	c.m.releaseConn()
	// Blocked Read and Write calls return now, not after the linger.
	close(c.sig.closed)
	c.sig.rdl.Stop()
	why := c.linger(ctx)
	c.sig.wdl.Stop()

	c.mu.Lock()
	e := c.closeLocked()
	c.mu.Unlock()
	c.flush(&e.ob)
	c.afterClose(&e)
	switch {
	case e.unacked == 0:
		return nil
	case e.ended != nil:
		return c.opError("close", &UnacknowledgedError{Bytes: e.unacked, Reason: e.ended.Error(), Err: e.ended})
	}
	return c.opError("close", &UnacknowledgedError{Bytes: e.unacked, Reason: why})
}

// closeEnd is what closeLocked decided, for afterClose to carry out once
// the lock is released.
type closeEnd struct {
	ob            outbox        // the shutdowns to send now
	wasConnecting bool          // the handshake had not completed
	sentShutdown  bool          // we end the connection: repeat the shutdown, then wait (closeWait)
	hold          time.Duration // the first shutdown waits this long (see closeLocked)
	repeatAfter   time.Duration // the first repeat's delay
	// Written bytes the peer has not acknowledged (the linger ran out, or
	// is negative, or the connection ended before): lost with the
	// connection, which Close reports.
	unacked int
	ended   error // why the connection ended before this Close, if it did
}

// closeLocked ends the connection after the linger: it builds the
// shutdown, logs the close and lets the buffers go. c.mu held.
func (c *Conn) closeLocked() (e closeEnd) {
	// live: the connection ends here, by this Close, not by the peer or
	// an error.
	live := c.state == stateConnected && !c.live.peerClosed && c.err == nil
	if c.state == stateConnected && c.snd.buf != nil {
		// What is left unacknowledged is lost whoever ended the
		// connection: a connection that failed, or whose peer shut
		// down, keeps its send buffer until now (ACKs that come after
		// the end still free what they cover), and the application,
		// whose Writes took those bytes without an error, learns of
		// the loss here or not at all.
		for i := range c.snd.buf.Len() {
			e.unacked += len(*c.snd.buf.At(i).buf)
		}
		if !live {
			e.ended = c.live.ended // set by failLocked and onShutdownLocked
		}
	}
	switch {
	case c.state != stateConnected || c.err != nil:
	case live:
		// A second copy guards against a single loss (the peer ignores
		// the repeat); the closed socket answers later packets from the
		// peer with more (see closeWait). An accepted connection that
		// has not heard from its client holds its shutdown as it holds
		// data (see firstDataHold): a 4.11 client whose socket is routed
		// but whose connect call has not yet returned takes the shutdown
		// as a close during setup, and its connect fails ("Connection
		// setup failure") though our side accepted.
		if e.hold = time.Until(c.snd.holdUntil); e.hold <= 0 {
			// Acknowledge all that arrived first: a reader that closes
			// as soon as it has read the last packets, before its ACK
			// timer or before the peer has its last ACK, would make the
			// peer's Close report data that arrived (see
			// ackBeforeShutdownLocked). 4.11 sends no ACK here.
			c.ackBeforeShutdownLocked(time.Now(), &e.ob)
			for range 2 {
				e.ob.add(appendControl(e.ob.next(), ctrlShutdown, 0, c.peerID, nil))
			}
		}
		e.sentShutdown = true
		c.logClosedLocked(slog.LevelInfo, "local", nil)
		c.traceControlLocked(time.Now(), ctrlShutdown, 0, true)
	default:
		// The peer shut down first and waits out closeWait for our
		// shutdown: this answer lets it go at once (4.11 sends none
		// here; its socket ignores one after its own).
		e.ob.add(appendControl(e.ob.next(), ctrlShutdown, 0, c.peerID, nil))
	}
	e.wasConnecting = c.state == stateConnecting
	e.repeatAfter = max(c.cc.rtt.RTT, synInterval)
	c.traceClosedLocked("local", nil)
	c.state = stateClosed
	if c.live.timer != nil {
		c.live.timer.Stop()
	}
	c.releaseBuffersLocked()
	return e
}

// afterClose repeats the shutdown and unregisters the connection, at
// once or after closeWait, as closeLocked decided.
func (c *Conn) afterClose(e *closeEnd) {
	switch {
	case e.wasConnecting:
	case e.sentShutdown:
		c.mu.Lock()
		if !c.live.unregistered { // the peer's shutdown may have come already
			c.live.waitTimer = time.AfterFunc(closeWait, c.unregister)
		}
		c.mu.Unlock()
		if e.hold > 0 {
			// The held shutdown counts as the first repeat.
			c.repeatShutdown(e.hold, shutdownRepeats+1)
		} else {
			c.repeatShutdown(e.repeatAfter, shutdownRepeats)
		}
	default:
		c.unregister()
	}
}

// linger waits, for Close, until the peer has acknowledged all that was
// written (by a full or short ACK: a 4.11 receiver lets its application
// read only what those covered, and takes a shutdown that follows a light
// ACK of the last packets as the end, with them unread) or the connection
// ends. It gives up when Config.Linger runs out, when the peer has made no
// progress for Config.LingerStall (nothing acknowledged, its window closed:
// a peer that does not read would hold a handler's Close, and its
// buffers, for the whole linger), or when ctx ends, and returns why. It
// does not wait at all when the write deadline had passed well before
// Close (staleDeadline): the writes were already failing, and the
// application knows they were not all sent.
//
// A write deadline that passes during the linger, or at Close, does not
// end it: crypto/tls sets the write deadline to the present just before
// it closes the connection under it, and a TLS server's last response,
// written but not yet acknowledged, would be lost to every client that
// reads it slowly.
func (c *Conn) linger(ctx context.Context) string {
	if c.cfg.Linger <= 0 {
		return "Config.Linger is negative"
	}
	start := time.Now()
	if wd := c.sig.wdl.When(); !wd.IsZero() && start.Sub(wd) > staleDeadline {
		return fmt.Sprintf("the write deadline had passed %v before Close", start.Sub(wd).Round(time.Millisecond))
	}
	end := time.NewTimer(c.cfg.Linger)
	defer end.Stop()
	var stall *time.Timer
	var stallC <-chan time.Time
	if c.cfg.LingerStall > 0 {
		stall = time.NewTimer(c.cfg.LingerStall)
		defer stall.Stop()
		stallC = stall.C
	}
	for {
		c.mu.Lock()
		drained := c.snd.buf.Len() == 0 && c.snd.dataAck == c.snd.lastAck
		done := c.state != stateConnected || c.live.peerClosed || c.err != nil || drained
		c.mu.Unlock()
		if done {
			return ""
		}
		select {
		case <-c.sig.writeReady:
		case <-end.C:
			return fmt.Sprintf("Config.Linger (%v) ran out", c.cfg.Linger)
		case <-stallC:
			// Progress is an ACK that moved since the linger began, or
			// the peer's window open: a sender with room sends, and if
			// the peer is gone its silence ends the connection.
			c.mu.Lock()
			since := start
			if c.live.ackAdvanced.After(since) {
				since = c.live.ackAdvanced
			}
			open := c.snd.flowWindow > minAdvertisedWindow
			c.mu.Unlock()
			left := c.cfg.LingerStall - time.Since(since)
			if !open && left <= 0 {
				return fmt.Sprintf("the peer acknowledged nothing for %v with its receive window closed (Config.LingerStall)", c.cfg.LingerStall)
			}
			if open || left <= 0 {
				left = c.cfg.LingerStall
			}
			stall.Reset(left)
		case <-ctx.Done():
			return "the context ended: " + context.Cause(ctx).Error()
		}
	}
}

// staleDeadline is how long before Close the write deadline must have
// passed for Close not to linger (see linger).
const staleDeadline = 100 * time.Millisecond

// closeWait is how long a closed connection stays registered after sending
// its shutdown, answering the peer's packets with another shutdown, so a
// lost one does not leave the peer waiting for the broken-connection
// timeout. It ends early when the peer's own shutdown arrives.
const closeWait = 3 * time.Second

// shutdownRepeats is how many more copies of the shutdown a closed
// connection sends, at one, two, four, ... round trips after closing: on a
// lossy path, the first two and the answers to the peer's packets (see
// closeWait) may all be lost, and the peer would then wait out the
// broken-connection timeout.
const shutdownRepeats = 4

// repeatShutdown sends another shutdown after d, and so on n times with
// doubling delays, within closeWait.
func (c *Conn) repeatShutdown(d time.Duration, n int) {
	if n <= 0 || d >= closeWait {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live.unregistered {
		return
	}
	c.live.repeatTimer = time.AfterFunc(d, func() {
		c.mu.Lock()
		done := c.live.unregistered
		c.mu.Unlock()
		if done {
			return
		}
		var ob outbox
		ob.add(appendControl(ob.next(), ctrlShutdown, 0, c.peerID, nil))
		c.flush(&ob)
		c.repeatShutdown(2*d, n-1)
	})
}

// answerClosedLocked replies to a packet reaching a closed connection.
func (c *Conn) answerClosedLocked(p *packet, now time.Time, ob *outbox) (unregister bool) {
	if p.control && p.typ == ctrlShutdown {
		return true
	}
	if now.Sub(c.live.lastShutdown) >= synInterval {
		c.live.lastShutdown = now
		ob.add(appendControl(ob.next(), ctrlShutdown, 0, c.peerID, nil))
	}
	return false
}

// unregister takes c out of the multiplexer and drops its reference; it
// runs once.
func (c *Conn) unregister() { c.live.unregOnce.Do(c.doUnregister) }

func (c *Conn) doUnregister() {
	c.mu.Lock()
	c.live.unregistered = true
	for _, t := range []*time.Timer{c.live.waitTimer, c.live.repeatTimer} {
		if t != nil {
			t.Stop()
		}
	}
	c.mu.Unlock()
	c.m.sndq.remove(c)
	m, id, ln, key := c.m, c.id, c.ln, c.lnKey
	m.apply(func() {
		if m.socks[id] == c {
			delete(m.socks, id)
		}
		if m.connectors[id] == c {
			delete(m.connectors, id)
		}
		if m.rendezvous[c.peer] == c {
			delete(m.rendezvous, c.peer)
		}
	})
	if ln != nil {
		ln.retire(key, time.Now())
	}
	m.freeSocketID(id)
	m.release()
}

func (c *Conn) releaseBuffersLocked() {
	if c.snd.buf != nil {
		// While a batch of the send queue may still hold payloads of the
		// buffer (see sender.freeBuf), those and the ones kept aside are
		// left to the collector, not handed to the shared pool.
		pinned := c.snd.pinned > c.m.sndq.flushed.Load()
		for c.snd.buf.Len() > 0 {
			if b := c.snd.buf.PopFront().buf; !pinned {
				c.snd.bufs.Put(b)
			}
		}
		if !pinned {
			for _, b := range c.snd.deferred {
				c.snd.bufs.Put(b)
			}
		}
		c.snd.deferred = nil
		c.snd.bufs.Flush()
	}
	if c.rcv.buf != nil {
		for c.rcv.buf.Len() > 0 {
			c.freeRcvBufLocked(c.rcv.buf.PopFront())
		}
		c.rcv.bufs.Flush()
	}
}

// LocalAddr returns the local UDP address.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.closedErr("set"); err != nil {
		return err
	}
	c.sig.rdl.Set(t)
	c.sig.wdl.Set(t)
	return nil
}

// SetReadDeadline sets the deadline for Read calls, pending ones included.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.closedErr("set"); err != nil {
		return err
	}
	c.sig.rdl.Set(t)
	return nil
}

// SetWriteDeadline sets the deadline for Write calls, pending ones included.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if err := c.closedErr("set"); err != nil {
		return err
	}
	c.sig.wdl.Set(t)
	return nil
}

func (c *Conn) closedErr(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live.closing {
		// Shaped as *net.TCPConn's: the local address, and no source.
		return &net.OpError{Op: op, Net: "udt", Addr: c.laddr, Err: net.ErrClosed}
	}
	return nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udt", Source: c.laddr, Addr: c.raddr, Err: err}
}

// wakeReader wakes a Read waiting for data, EOF or an error, or the next
// one to wait.
func (s *signals) wakeReader() {
	select {
	case s.readReady <- struct{}{}:
	default:
	}
}

// wakeWriter wakes a Write or Close waiting for send-buffer space or an
// error, or the next one to wait.
func (s *signals) wakeWriter() {
	select {
	case s.writeReady <- struct{}{}:
	default:
	}
}

// failLocked marks the connection broken with err and wakes every waiter.
func (c *Conn) failLocked(err error) {
	if c.err == nil {
		c.err = err
		c.live.end(err)
		c.logClosedLocked(slog.LevelWarn, "error", err)
		c.traceClosedLocked("error", err)
	}
	if c.live.timer != nil {
		c.live.timer.Stop()
	}
	c.sig.wakeReader()
	c.sig.wakeWriter()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// flush writes the collected datagrams to the peer.
func (c *Conn) flush(o *outbox) {
	if o != nil {
		o.writeTo(c.m, c.peer)
	}
}
