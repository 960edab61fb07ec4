package udt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// receivePath is a multiplexer with a listener and an established
// connection whose receive worker is the fuzzer: it is not started, and
// the fuzzer calls dispatch itself. What the library sends goes into a
// pipe nobody reads.
type receivePath struct {
	m     *multiplexer
	ln    *Listener
	c     *Conn
	peer  netip.AddrPort
	other netip.AddrPort
	sent  map[seq.Num][][]byte // every body the fuzzer sent the connection, by sequence number
	runs  int
}

var (
	fuzzPathOnce sync.Once
	fuzzPath     *receivePath
)

func newReceivePath() *receivePath {
	a, _ := netsim.NewPacketPipe(netsim.LinkConfig{}, netsim.LinkConfig{}, 1)
	m := newMultiplexer(netPacketConn{c: a})
	cfg, err := Config{ReceiveBuffer: 256, FlowWindow: 256, Backlog: 4}.withDefaults()
	if err != nil {
		panic(err)
	}
	ln, err := listenOn(m, cfg)
	if err != nil {
		panic(err)
	}
	r := &receivePath{
		m: m, ln: ln,
		peer:  netip.MustParseAddrPort("127.0.0.1:7000"),
		other: netip.MustParseAddrPort("127.0.0.1:7001"),
		sent:  make(map[seq.Num][][]byte),
	}
	r.c = newConn(m, cfg, r.peer)
	r.c.mu.Lock()
	r.c.establishLocked(time.Now(), 77, DefaultMSS, 256, 1000, seq.Max-50)
	r.c.mu.Unlock()
	m.socks[r.c.id] = r.c
	m.runPending() // the listener's registration
	if m.listener != ln {
		panic("listener not registered")
	}
	return r
}

// FuzzReceivePath feeds arbitrary datagrams to a multiplexer as its
// receive worker would: each input is a run of datagrams, each a
// selector byte (bit 0: from the connection's peer or a stranger; bits
// 1-2: destination rewritten to the connection, to 0 for the listener, or
// left as fuzzed; bit 3: a handshake's cookie field set to the one the
// listener issues the sender, so that fuzzed conclusions get past it; bit
// 4: the datagram comes in a receive block, as a GRO run's packets do, and
// its payload may be kept as a view of it; bit 5: it is read in a batch
// with the datagrams before it that had the bit, its data packets handed
// over and its ACKs owed sent when the batch ends), a
// length byte and the bytes. After each it checks that every packet the
// connection holds is one the fuzzer sent it at that sequence number,
// that what it delivers is made of those, that its loss list stays within
// its window, and that the listener creates no more connections, nor
// remembers more handshakes, than its backlog admits (nothing accepts).
func FuzzReceivePath(f *testing.F) {
	for _, vf := range loadVectors(f) {
		for _, vp := range vf.Packets {
			b, err := hex.DecodeString(vp.Hex)
			if err != nil {
				f.Fatal(err)
			}
			if len(b) < 256 {
				f.Add(append([]byte{0x03, byte(len(b))}, b...))
				f.Add(append([]byte{0x04, byte(len(b))}, b...))
			}
		}
	}
	data := packet{seq: seq.Max - 50, msg: 1, pos: posSolo, body: []byte("hello")}
	f.Add(append([]byte{0x03, byte(headerSize + 5)}, append(data.appendHeader(nil), data.body...)...))
	f.Add(append([]byte{0x13, byte(headerSize + 5)}, append(data.appendHeader(nil), data.body...)...))
	// Data packets read in one batch: an ACK owed, sent after it.
	var batch []byte
	for i := range 70 {
		d := packet{seq: (seq.Max - 50).Add(i), msg: 1, pos: posSolo, body: make([]byte, 200)}
		batch = append(batch, 0x23, byte(headerSize+200))
		batch = append(append(batch, d.appendHeader(nil)...), d.body...)
	}
	f.Add(batch)
	// A conclusion to the listener, its cookie made valid (selector bit 3).
	conclusion := handshake{version: udtVersion, sockType: TypeStream.wire(), isn: 1234, mss: DefaultMSS, window: 256,
		reqType: reqConclusion, socketID: 4321}
	hs := appendHandshakePacket(nil, 0, &conclusion)
	f.Add(append([]byte{0x0c, byte(len(hs))}, hs...))
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzPathOnce.Do(func() { fuzzPath = newReceivePath() })
		r := fuzzPath
		for len(in) >= 2 {
			sel, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			b := bytes.Clone(in[:n])
			in = in[n:]
			from := r.other
			if sel&1 == 1 {
				from = r.peer
			}
			if len(b) >= headerSize {
				switch sel >> 1 & 3 {
				case 1:
					binary.BigEndian.PutUint32(b[12:], r.c.id)
				case 2:
					binary.BigEndian.PutUint32(b[12:], 0)
				}
			}
			if sel&8 != 0 && len(b) >= headerSize+32 {
				binary.BigEndian.PutUint32(b[headerSize+28:], r.ln.cookies.issue(from, time.Now()))
			}
			if p, err := parsePacket(b); err == nil && !p.control && p.dst == r.c.id && from == r.peer {
				r.sent[p.seq] = append(r.sent[p.seq], bytes.Clone(p.body))
			}
			if sel&32 == 0 {
				r.endBatch() // the datagram is a read of its own
			}
			r.m.batching = sel&32 != 0
			r.m.runPending() // as the worker does before each read
			if sel&16 == 0 {
				r.m.dispatch(b, from, time.Time{}, nil)
			} else {
				// As a GRO run's packet: the connection may keep it as
				// a view of the block, which the next datagram's block,
				// if this one were given back too soon, would overwrite.
				blk := newRxBlock()
				blk.share = maxDatagram / rxViewMin
				r.m.dispatch((*blk.buf)[:copy(*blk.buf, b)], from, time.Time{}, blk)
				r.m.flushRun()
				if blk.recycle() {
					blk.release()
				}
			}
			r.check(t)
		}
		r.endBatch()
		if len(r.m.acksOwed) != 0 {
			t.Fatalf("%d ACKs still owed after the batch", len(r.m.acksOwed))
		}
		r.check(t)
	})
}

// endBatch ends a batch read as the receive worker does: the queued data
// packets are handed over, then the ACKs owed are sent.
func (r *receivePath) endBatch() {
	r.m.flushRun()
	r.m.sendOwedACKs()
	r.m.batching = false
}

func (r *receivePath) check(t *testing.T) {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateConnected || c.rcv.buf == nil {
		return // a fuzzed shutdown ended it; nothing more to check
	}
	if c.rcv.loss.Len() > c.cfg.FlowWindow {
		t.Fatalf("loss list of %d packets, window %d", c.rcv.loss.Len(), c.cfg.FlowWindow)
	}
	for i := range c.rcv.buf.Len() {
		sl := c.rcv.buf.At(i)
		if sl.buf == nil {
			continue
		}
		s := c.rcv.readSeq.Add(i)
		found := false
		for _, body := range r.sent[s] {
			if bytes.Equal(body, *sl.buf) {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("packet %d holds %q, never sent as that packet", s, *sl.buf)
		}
	}
	// Deliver what is readable, as the application would.
	buf := make([]byte, 1<<16)
	for c.readLocked(buf) > 0 {
	}
	r.ln.tabMu.Lock()
	known := len(r.ln.known)
	r.ln.tabMu.Unlock()
	if backlog := cap(r.ln.accept); len(r.m.socks) > 1+backlog || known > backlog {
		t.Fatalf("%d connections and %d handshakes remembered, with a backlog of %d and nothing accepted",
			len(r.m.socks)-1, known, backlog)
	}
	// Forget what can no longer be stored: behind the read point, or
	// beyond the window.
	if r.runs++; r.runs%1024 == 0 {
		for s := range r.sent {
			if off := seq.Off(c.rcv.readSeq, s); off < 0 || off >= c.rcv.buf.Limit() {
				delete(r.sent, s)
			}
		}
	}
}
