package udt

import (
	"container/heap"
	"sync"
	"time"
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
}

func newSendQueue(m *multiplexer) *sendQueue {
	return &sendQueue{m: m, wake: make(chan struct{}, 1)}
}

// schedule puts c in the queue at time at, or moves it earlier if it is
// already queued for later.
func (q *sendQueue) schedule(c *Conn, at time.Time) {
	q.mu.Lock()
	first := false
	if c.sqIndex < 0 {
		c.sqAt = at
		heap.Push(&q.h, c)
		first = c.sqIndex == 0
	} else if at.Before(c.sqAt) {
		c.sqAt = at
		heap.Fix(&q.h, c.sqIndex)
		first = c.sqIndex == 0
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
	if c.sqIndex >= 0 {
		heap.Remove(&q.h, c.sqIndex)
	}
	q.mu.Unlock()
}

// spinWindow is how close to its due time a packet is sent without
// sleeping: timers are not precise below it.
const spinWindow = 50 * time.Microsecond

func (q *sendQueue) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 0, maxDatagram)
	for {
		q.mu.Lock()
		if len(q.h) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.m.closed:
				return
			}
		}
		c := q.h[0]
		now := time.Now()
		if wait := c.sqAt.Sub(now); wait > spinWindow {
			q.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-q.wake:
				timer.Stop()
			case <-q.m.closed:
				return
			}
			continue
		}
		heap.Pop(&q.h)
		q.mu.Unlock()

		var next time.Time
		var ok bool
		buf, next, ok = c.packData(buf[:0], now)
		if len(buf) > 0 {
			q.m.writeTo(buf, c.peer)
		}
		if ok {
			q.schedule(c, next)
		}
	}
}

// connHeap orders connections by sqAt.
type connHeap []*Conn

func (h connHeap) Len() int           { return len(h) }
func (h connHeap) Less(i, j int) bool { return h[i].sqAt.Before(h[j].sqAt) }
func (h connHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].sqIndex = i
	h[j].sqIndex = j
}
func (h *connHeap) Push(x any) {
	c := x.(*Conn)
	c.sqIndex = len(*h)
	*h = append(*h, c)
}
func (h *connHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.sqIndex = -1
	*h = old[:len(old)-1]
	return c
}
