package udt

import (
	"container/heap"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/udt-go/udt/internal/pktbuf"
)

// sendQueue paces the data packets of every connection on a multiplexer:
// a heap of connections ordered by the time their next packet is due. The
// worker pops the earliest due connection, asks it for one packet and puts
// it back at the time its congestion controller allows the next. Control
// packets do not pass through here; they are written at once.
type sendQueue struct {
	m    *multiplexer
	mu   sync.Mutex
	h    connHeap // guarded by mu
	wake chan struct{}
	// flushed counts the batches written (or given up): the batch being
	// filled is flushed+1, and the payloads it gathers from the send
	// buffers (see txBatch) are free to reuse once flushed has passed it.
	flushed atomic.Uint64
}

func newSendQueue(m *multiplexer) *sendQueue {
	return &sendQueue{m: m, wake: make(chan struct{}, 1)}
}

// schedule puts c in the queue at time at, or moves it earlier if it is
// already queued for later.
func (q *sendQueue) schedule(c *Conn, at time.Time) {
	q.mu.Lock()
	first := false
	if c.sq.index < 0 {
		c.sq.at = at
		heap.Push(&q.h, c)
		first = c.sq.index == 0
	} else if at.Before(c.sq.at) {
		c.sq.at = at
		heap.Fix(&q.h, c.sq.index)
		first = c.sq.index == 0
	}
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// remove takes c out of the queue.
func (q *sendQueue) remove(c *Conn) {
	q.mu.Lock()
	if c.sq.index >= 0 {
		heap.Remove(&q.h, c.sq.index)
	}
	q.mu.Unlock()
}

// batchWindow is how close to its due time a packet is sent without
// sleeping: the queue gathers the packets due within it, of every
// connection, and writes them together, in one system call where the
// socket allows it; a batch waits up to as long for the packets that fall
// due meanwhile (see waitUntil). A connection's packets leave in bursts of
// at most twice this long (its rate times 400 µs: under 5 packets at
// 100 Mbit/s, 35 at 1 Gbit/s); longer gaps are slept, and timers are not
// precise below it.
const batchWindow = 200 * time.Microsecond

// txBatch is the data packets the send queue gathered for one write. A
// data packet's payload is not copied into it: pay holds the payload's
// buffer in the sender's send buffer, and buf the header, which the
// datagram is gathered from (an iovec each, see batchIO.writeBatch). A
// packet sent whole from buf (a drop request) has no pay. The send
// buffer's payloads stay in place until the batch is written (see
// sender.freeBuf).
type txBatch struct {
	buf   []byte           // each packet's bytes but its payload, one after another
	ends  []int            // where each packet's part ends in buf
	pay   [][]byte         // each packet's payload, or nil
	to    []netip.AddrPort // each packet's destination
	bytes int              // the packets' bytes, payloads included
	bufp  *[]byte          // buf's memory, from txBufs
	// scratch gathers one packet for a path that writes it from a
	// single buffer (see packet).
	scratch []byte
}

// txBatchMax is the most packets the send queue gathers before it writes
// them.
const txBatchMax = 128

// txBatchBytes bounds a batch's bytes: one more packet may go over it.
const txBatchBytes = 256 << 10

// txPartMax is room enough for a packet's part in a batch's buf: a data
// packet's header or a whole drop request.
const txPartMax = 64

func (t *txBatch) full() bool { return len(t.ends) >= txBatchMax || t.bytes >= txBatchBytes }

func (t *txBatch) reset() {
	clear(t.pay) // the send buffers' payloads are not held past the write
	t.buf, t.ends, t.pay, t.to, t.bytes = t.buf[:0], t.ends[:0], t.pay[:0], t.to[:0], 0
}

// add ends a packet whose part in buf ends at len(buf), with payload pay
// (nil if none) for to.
func (t *txBatch) add(pay []byte, to netip.AddrPort) {
	t.bytes += len(t.buf) - t.start(len(t.ends)) + len(pay)
	t.ends = append(t.ends, len(t.buf))
	t.pay = append(t.pay, pay)
	t.to = append(t.to, to)
}

// start is where packet i's part begins in buf.
func (t *txBatch) start(i int) int {
	if i == 0 {
		return 0
	}
	return t.ends[i-1]
}

// size is packet i's length on the wire.
func (t *txBatch) size(i int) int { return t.ends[i] - t.start(i) + len(t.pay[i]) }

// packet returns packet i in one buffer: its part of buf, or, if it has a
// payload, the two gathered in scratch (valid until the next call).
func (t *txBatch) packet(i int) []byte {
	b := t.buf[t.start(i):t.ends[i]]
	if t.pay[i] == nil {
		return b
	}
	t.scratch = append(append(t.scratch[:0], b...), t.pay[i]...)
	return t.scratch
}

// room is how many more packets the batch takes.
func (t *txBatch) room() int { return txBatchMax - len(t.ends) }

// txBufs holds the packet buffers of batches not in use, txFree the
// batches without them (see freeList): a send queue takes a batch while
// packets flow and gives it back when it goes idle.
var (
	txBufs = pktbuf.PoolFor(txBatchMax * txPartMax)
	txFree = freeList[txBatch]{max: 64, new: func() *txBatch {
		return &txBatch{
			ends: make([]int, 0, txBatchMax),
			pay:  make([][]byte, 0, txBatchMax),
			to:   make([]netip.AddrPort, 0, txBatchMax),
		}
	}}
)

func getTxBatch() *txBatch {
	t := txFree.get()
	t.bufp = txBufs.Get()
	t.buf = (*t.bufp)[:0]
	return t
}

func putTxBatch(t *txBatch) {
	t.reset()
	txBufs.Put(t.bufp)
	t.buf, t.bufp = nil, nil
	txFree.put(t)
}

func (q *sendQueue) loop() {
	w := sendWorker{q: q, timer: time.NewTimer(time.Hour)}
	defer w.stop()
	for w.step() {
	}
}

// sendWorker is the send queue's goroutine's own state.
type sendWorker struct {
	q     *sendQueue
	timer *time.Timer
	// The batch is taken from the free list while packets flow and
	// handed back when the queue goes idle.
	tx *txBatch
	// held is when the batch took its first packet (see waitUntil).
	held time.Time
	// depth is how many connections the queue held at the last step,
	// published as SocketMetrics.SendQueueDepth at each flush.
	depth int
}

// flush writes the batch's packets.
func (w *sendWorker) flush() {
	w.q.m.ctr.sendDepth.Store(int64(w.depth))
	if w.tx != nil && len(w.tx.ends) > 0 {
		w.q.m.writeBatch(w.tx)
		w.tx.reset()
		w.q.flushed.Add(1)
	}
}

func (w *sendWorker) stop() {
	w.timer.Stop()
	w.q.m.ctr.sendDepth.Store(0)
	if w.tx != nil {
		putTxBatch(w.tx)
		w.q.flushed.Add(1) // given up: its payloads are not read
	}
}

// step packs the packets of the connection due first, or waits for one to
// be due; it reports false when the socket has closed.
func (w *sendWorker) step() bool {
	q := w.q
	q.mu.Lock()
	w.depth = len(q.h)
	if len(q.h) == 0 {
		q.mu.Unlock()
		return w.idle()
	}
	c := q.h[0]
	now := time.Now()
	if at := c.sq.at; at.Sub(now) > batchWindow {
		q.mu.Unlock()
		return w.waitUntil(at)
	}
	heap.Pop(&q.h)
	// The connection's packets go into the batch up to the next
	// one's due time, so that the batch holds every connection's
	// packets in the order they are due. Packed one connection's
	// window at a time, a flow with a packet due at once (the
	// fastest) led every batch, and where a queue downstream took
	// only a batch's first packets the slower flows lost several
	// times its share: eight flows through one send queue into a
	// 500 Mbit/s link with a 4 ms queue lost 1.2 % of the fastest
	// flow's packets and 13-14 % of the slowest ones'.
	horizon := now.Add(batchWindow)
	if len(q.h) > 0 && q.h[0].sq.at.Before(horizon) {
		horizon = q.h[0].sq.at
	}
	q.mu.Unlock()

	if w.tx == nil {
		w.tx = getTxBatch()
	}
	if len(w.tx.ends) == 0 {
		w.held = now
	}
	next, ok := c.packBatch(w.tx, now, horizon)
	if ok {
		q.schedule(c, next)
	}
	if w.tx.full() {
		w.flush()
	}
	return true
}

// idle writes what is batched, lets the batch go and waits for a
// connection to schedule.
func (w *sendWorker) idle() bool {
	w.flush()
	if w.tx != nil {
		putTxBatch(w.tx)
		w.tx = nil
	}
	select {
	case <-w.q.wake:
		return true
	case <-w.q.m.closed:
		return false
	}
}

// waitUntil writes what is batched and waits until at, when the first
// connection is due, or until another is scheduled.
//
// A batch younger than batchWindow is not written yet: it waits for the
// packets that fall due meanwhile, until it is full or batchWindow old.
// Written whenever the next packet was not yet due, a stream's batches
// held what fell due while the last one was being written: one loopback
// stream at 7-8 Gbit/s wrote 12-18 packets a sendmmsg, in GSO runs of 11-15
// (its pace kept the next packet about batchWindow ahead, and each write
// took the time of the packets it had). Held, they fill: 128 packets a
// call in runs of 40, and BenchmarkLoopbackStream moved 8.5-8.7 Gbit/s at
// 2,070-2,120 CPU-ns a packet against 7.0-7.3 Gbit/s at 2,490-2,630 in
// three runs side by side. A packet then leaves up to batchWindow after
// it fell due, as it could leave up to batchWindow before, and a burst
// spans up to twice batchWindow of a connection's pace.
func (w *sendWorker) waitUntil(at time.Time) bool {
	if w.tx != nil && len(w.tx.ends) > 0 && !w.tx.full() {
		now := time.Now()
		if flushAt := w.held.Add(batchWindow); now.Before(flushAt) {
			// Wake when the next packet is within batchWindow of due,
			// or when the batch must go.
			if d := min(at.Sub(now)-batchWindow, flushAt.Sub(now)); d > 0 {
				return w.sleep(d)
			}
			return true
		}
	}
	w.flush()
	wait := time.Until(at)
	if wait <= batchWindow {
		return true // the write took that long
	}
	return w.sleep(wait)
}

// sleep waits d, or until a connection is scheduled; it reports false
// when the socket has closed.
func (w *sendWorker) sleep(d time.Duration) bool {
	w.timer.Reset(d)
	select {
	case <-w.timer.C:
	case <-w.q.wake:
		w.timer.Stop()
	case <-w.q.m.closed:
		return false
	}
	return true
}

// connHeap orders connections by sqAt.
type connHeap []*Conn

func (h connHeap) Len() int           { return len(h) }
func (h connHeap) Less(i, j int) bool { return h[i].sq.at.Before(h[j].sq.at) }
func (h connHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].sq.index = i
	h[j].sq.index = j
}
func (h *connHeap) Push(x any) {
	c := x.(*Conn)
	c.sq.index = len(*h)
	*h = append(*h, c)
}
func (h *connHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.sq.index = -1
	*h = old[:len(old)-1]
	return c
}
