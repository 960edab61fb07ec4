package netsim

import (
	"errors"
	"net"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// tcpQuickACKs is how many segments at the start of a flow the receiver
// acknowledges one by one, as Linux does while it learns the sender's
// pace.
const tcpQuickACKs = 16

// tcpRecent is how many of the latest out-of-order arrivals the receiver
// remembers, to report the runs that hold them: more than fit in an ACK,
// since runs merge.
const tcpRecent = 2 * tcpMaxSACK

// tcpReceiver is the receiving side of a flow. Everything but the atomic
// counters is owned by its goroutine (run).
type tcpReceiver struct {
	conn  net.PacketConn
	id    uint32
	cfg   TCPConfig
	timer tcpTimer

	peer    net.Addr    // where ACKs go: the source of the latest segment
	nxt     uint64      // next segment expected in order
	spans   []sackBlock // runs received above nxt, in order, apart
	recent  []uint64    // latest out-of-order arrivals in distinct runs, latest first, at most tcpRecent
	store   [][]byte    // ring: payload of segment q at q&(len-1) for q in (nxt, nxt+len)
	free    [][]byte    // payload buffers to reuse
	off     uint64      // stream offset of the next byte to deliver
	pending int         // in-order segments not yet acknowledged
	ackAt   time.Time   // delayed ACK due; zero if none pending
	quick   int         // segments still to acknowledge at once
	ackBuf  []byte

	delivered atomic.Int64  // any goroutine
	acks      atomic.Uint64 // any goroutine
	bad       atomic.Uint64 // any goroutine
}

func newTCPReceiver(conn net.PacketConn, id uint32, cfg TCPConfig) *tcpReceiver {
	return &tcpReceiver{
		conn:   conn,
		id:     id,
		cfg:    cfg,
		timer:  tcpTimer{conn: conn},
		recent: make([]uint64, 0, tcpRecent),
		store:  make([][]byte, 64),
		quick:  tcpQuickACKs,
		ackBuf: make([]byte, 0, tcpHeaderLen+16*tcpMaxSACK),
	}
}

// run reads segments and acknowledges them until the connection is closed
// or fails.
func (r *tcpReceiver) run() error {
	buf := make([]byte, r.cfg.Segment+1)
	for {
		if err := r.timer.arm(r.ackAt); err != nil {
			return err
		}
		n, from, timeout, err := r.timer.read(buf)
		if err != nil {
			return err
		}
		now := time.Now()
		if timeout {
			if !r.ackAt.IsZero() && !now.Before(r.ackAt) {
				if err := r.ack(); err != nil {
					return err
				}
			}
			continue
		}
		kind, _, q, ok := parseTCP(buf[:n], r.id)
		if !ok || kind != tcpKindData || n != r.cfg.Segment {
			continue
		}
		r.peer = from
		if r.onData(now, q, buf[r.cfg.Header:n]) {
			if err := r.ack(); err != nil {
				return err
			}
		}
	}
}

// onData takes in segment q with payload p and reports whether to
// acknowledge at once.
func (r *tcpReceiver) onData(now time.Time, q uint64, p []byte) bool {
	switch {
	case q < r.nxt || q-r.nxt >= uint64(r.cfg.MaxWindow):
		return true // a duplicate, or beyond the window
	case q > r.nxt:
		return r.onOutOfOrder(q, p)
	}
	r.deliver(p)
	r.nxt++
	if len(r.spans) == 0 {
		switch {
		case r.quick > 0:
			r.quick--
			return true
		case r.cfg.DelayedACK < 0:
			return true
		}
		r.pending++
		if r.pending >= 2 {
			return true
		}
		if r.ackAt.IsZero() {
			r.ackAt = now.Add(r.cfg.DelayedACK)
		}
		return false
	}
	// Data is waiting above: hand over the run that q completes, if any,
	// and acknowledge at once (RFC 5681 §4.2).
	if b := r.spans[0]; b.start == r.nxt {
		for ; r.nxt < b.end; r.nxt++ {
			i := r.nxt & uint64(len(r.store)-1)
			r.deliver(r.store[i])
			r.free = append(r.free, r.store[i])
			r.store[i] = nil
		}
		r.spans = slices.Delete(r.spans, 0, 1)
	}
	return true
}

// onOutOfOrder keeps segment q, above a hole, and reports whether to
// acknowledge at once: always.
func (r *tcpReceiver) onOutOfOrder(q uint64, p []byte) bool {
	for q-r.nxt >= uint64(len(r.store)) {
		r.growStore()
	}
	i := q & uint64(len(r.store)-1)
	if r.store[i] != nil {
		return true // a duplicate
	}
	var b []byte
	if n := len(r.free); n > 0 {
		b, r.free = r.free[n-1][:0], r.free[:n-1]
	}
	r.store[i] = append(b, p...)
	r.addSpan(q)
	// q's run comes first in the next ACK, then the runs of the latest
	// arrivals before it (RFC 2018 §4).
	var kept [tcpRecent]uint64
	kept[0] = q
	n, iq := 1, r.spanOf(q)
	for _, x := range r.recent {
		if n < tcpRecent && x > r.nxt && r.spanOf(x) != iq {
			kept[n] = x
			n++
		}
	}
	r.recent = append(r.recent[:0], kept[:n]...)
	return true
}

// growStore doubles the out-of-order ring.
func (r *tcpReceiver) growStore() {
	store := make([][]byte, 2*len(r.store))
	for q := r.nxt; q < r.nxt+uint64(len(r.store)); q++ {
		store[q&uint64(len(store)-1)] = r.store[q&uint64(len(r.store)-1)]
	}
	r.store = store
}

// addSpan adds segment q, above nxt and not yet received, to the runs.
func (r *tcpReceiver) addSpan(q uint64) {
	sp := r.spans
	i := sort.Search(len(sp), func(j int) bool { return sp[j].end >= q })
	if i < len(sp) {
		b := &sp[i]
		switch {
		case b.end == q:
			b.end++
			if i+1 < len(sp) && sp[i+1].start == b.end {
				b.end = sp[i+1].end
				r.spans = slices.Delete(sp, i+1, i+2)
			}
			return
		case b.start == q+1:
			b.start = q
			return
		}
	}
	r.spans = slices.Insert(sp, i, sackBlock{q, q + 1})
}

// spanOf returns the index of the run holding q, or -1.
func (r *tcpReceiver) spanOf(q uint64) int {
	i := sort.Search(len(r.spans), func(j int) bool { return r.spans[j].end > q })
	if i < len(r.spans) && r.spans[i].start <= q {
		return i
	}
	return -1
}

// deliver hands payload p to the application, which checks that it is the
// stream's next bytes.
func (r *tcpReceiver) deliver(p []byte) {
	if !streamCheck(p, r.off) {
		r.bad.Add(1)
	}
	r.off += uint64(len(p))
	r.delivered.Add(int64(len(p)))
}

// ack sends an ACK of everything in order, with the SACK blocks of the
// latest out-of-order arrivals.
func (r *tcpReceiver) ack() error {
	a := tcpACK{ack: r.nxt}
	if !r.cfg.NoSACK {
		var seen [tcpMaxSACK]int
		for _, x := range r.recent {
			if a.n == tcpMaxSACK {
				break
			}
			i := -1
			if x > r.nxt {
				i = r.spanOf(x)
			}
			if i < 0 || slices.Contains(seen[:a.n], i) {
				continue
			}
			seen[a.n] = i
			a.blocks[a.n] = r.spans[i]
			a.n++
		}
	}
	r.ackBuf = a.append(r.ackBuf[:0], r.id)
	r.pending, r.ackAt = 0, time.Time{}
	r.acks.Add(1)
	if _, err := r.conn.WriteTo(r.ackBuf, r.peer); errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}
