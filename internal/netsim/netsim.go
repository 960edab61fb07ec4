// Package netsim emulates an impaired network path for tests: one seeded
// link model ([Link]: rate limit with a drop-tail queue, delay, jitter,
// Bernoulli and Gilbert–Elliott loss, reordering, duplication, corruption,
// targeted drops) and three front-ends that push datagrams through it.
//
//   - [NewPacketPipe] returns two connected in-memory [net.PacketConn]s. It
//     uses only channels and timers, so inside a [testing/synctest] bubble
//     delays and rate limits cost no wall time. [SharePipe] adds more pairs
//     of ends whose datagrams cross the same two links.
//   - [NewRelay] forwards real UDP datagrams on loopback between clients and
//     a target, for peers that need a socket (another process, the C++
//     library).
//   - [NewTunPath] (Linux, root) joins two network namespaces through TUN
//     devices, so any IP traffic, the kernel's TCP included, crosses the
//     link model beside a UDT flow.
//
// [StartTCP] runs a reference bulk TCP flow (CUBIC, NewReno or BBR v1,
// SACK, in virtual time over a pipe) on any pair of PacketConns, so that a
// UDT connection over one pair of pipe ends and TCP over another, from
// SharePipe, compete for one bottleneck queue; TestTCPCalibration and
// TestTCPBBRCalibration hold its goodput to the kernel's TCP cubic and BBR
// on the same link.
//
// Randomness comes from math/rand/v2 PCG seeded by the caller: the same seed
// and the same sequence of datagrams give the same losses, so a failing case
// replays.
package netsim

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// MaxInFlight is the most payload bytes one [Link] holds at a time (queued
// at the bottleneck or propagating). Datagrams beyond it are dropped and
// counted in [LinkStats].QueueDrops, so a fast sender on a long unlimited
// link cannot exhaust memory.
const MaxInFlight = 64 << 20

// DefaultReorderDelay is the extra delay of a reordered datagram when
// [LinkConfig].ReorderDelay is zero.
const DefaultReorderDelay = time.Millisecond

// minQueueBytes is the smallest default bottleneck queue.
const minQueueBytes = 64 << 10

// GilbertElliott is a two-state Markov loss model for bursty loss. Before
// each datagram that gets past Drop, Blackhole and Loss, the link moves from
// the good to the bad state with probability PGoodToBad, or back with
// PBadToGood; the datagram is then lost with probability LossGood or LossBad
// of the current state. With
// LossGood = 0 and LossBad = 1 the mean loss burst is 1/PBadToGood datagrams
// and the long-run loss rate PGoodToBad/(PGoodToBad+PBadToGood).
type GilbertElliott struct {
	PGoodToBad float64
	PBadToGood float64
	LossGood   float64
	LossBad    float64
}

// LinkConfig describes one direction of a path. The zero value is a
// perfect link: no delay, no rate limit, no loss. Probabilities are in
// [0, 1]; values outside act as the nearest bound. Negative durations act
// as zero.
//
// A datagram offered to the link goes through, in order: the Drop hook,
// Blackhole, Loss, Burst, the bottleneck (Rate and QueueBytes), then Delay,
// Jitter and Reorder decide when it comes out; Duplicate and Corrupt act on
// what comes out.
type LinkConfig struct {
	// Rate is the bottleneck rate in bits per second of UDP payload. If
	// zero, the link has no bottleneck and adds no serialization delay.
	Rate int64
	// QueueBytes is the drop-tail queue limit at the bottleneck in payload
	// bytes: a datagram that would make the backlog exceed it is dropped.
	// If zero, one bandwidth-delay product, Rate×2×Delay/8, but at least
	// 64 KiB. It does not apply when Rate is zero; the link then holds at
	// most [MaxInFlight] bytes.
	QueueBytes int
	// Delay is the one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to each datagram.
	// Datagrams reorder when Jitter exceeds the gap between them.
	Jitter time.Duration
	// Loss is the probability that a datagram is lost.
	Loss float64
	// Burst, if not nil, adds bursty loss on top of Loss. The link keeps its
	// own copy.
	Burst *GilbertElliott
	// Reorder is the probability that a datagram is held back by
	// ReorderDelay, letting later ones overtake it.
	Reorder float64
	// ReorderDelay is the extra delay of a reordered datagram. If zero,
	// [DefaultReorderDelay].
	ReorderDelay time.Duration
	// Duplicate is the probability that a datagram is delivered twice; the
	// copy gets its own jitter.
	Duplicate float64
	// Corrupt is the probability that one random byte of a datagram is
	// changed (the duplicate, if any, stays intact). The change happens
	// past the point where UDP's checksum would catch it, so the receiver
	// gets the corrupted datagram, unless ChecksumCovered is set.
	Corrupt float64
	// ChecksumCovered models corruption on the wire, where the receiving
	// host's UDP checksum catches it: a corrupted datagram still crosses
	// the bottleneck, then is dropped on arrival (counted in Corrupted
	// and Dropped).
	ChecksumCovered bool
	// Drop, if not nil, is called with each datagram and its 1-based index
	// among all datagrams offered to this link; returning true drops it.
	// It is called with the link's lock held, one call at a time, and must
	// not call back into the link or keep p.
	Drop func(p []byte, n int) bool
	// Blackhole drops every datagram.
	Blackhole bool
}

// queueLimit returns the bottleneck queue limit in bytes.
func (c *LinkConfig) queueLimit() int {
	if c.QueueBytes > 0 {
		return c.QueueBytes
	}
	bdp := float64(c.Rate) * 2 * max(c.Delay, 0).Seconds() / 8
	if bdp > MaxInFlight {
		return MaxInFlight
	}
	return max(int(bdp), minQueueBytes)
}

// LinkStats counts what one [Link] did with the datagrams offered to it.
type LinkStats struct {
	Sent       uint64 // datagrams offered
	SentBytes  uint64 // payload bytes offered
	Delivered  uint64 // datagrams handed to the receiver, duplicates included
	Bytes      uint64 // payload bytes delivered
	Dropped    uint64 // lost to Loss, Burst, Drop or Blackhole
	QueueDrops uint64 // dropped at the full bottleneck queue or beyond MaxInFlight
	Overflow   uint64 // dropped on the way out: receiver buffer full or closed (pipe), write failed (relay), discarded at Close
	Duplicated uint64 // extra copies made
	Corrupted  uint64 // datagrams with a byte changed
	Reordered  uint64 // datagrams held back by ReorderDelay
}

// Link is one direction of an emulated path: datagrams go in with [Link.Send]
// and come out when due with [Link.Receive]. The front-ends drive their links
// themselves; use a Link directly to test a model with synthetic time. It is
// safe for concurrent use; the configuration may change at any time and
// applies to datagrams offered afterwards.
type Link struct {
	mu       sync.Mutex
	hasBurst bool           // guarded by mu; cfg had a Burst
	cfg      LinkConfig     // guarded by mu
	burst    GilbertElliott // guarded by mu; copy of the configured Burst
	rng      *rand.Rand     // guarded by mu
	bad      bool           // guarded by mu; Gilbert–Elliott state
	n        int            // guarded by mu; datagrams offered
	busy     time.Time      // guarded by mu; when the bottleneck finishes its backlog
	seq      uint64         // guarded by mu; tie-break for equal release times
	held     int            // guarded by mu; payload bytes in q
	q        pktHeap        // guarded by mu
	stats    linkCounters   // any goroutine
}

type linkCounters struct {
	sent, sentBytes, delivered, bytes, dropped, queueDrops atomic.Uint64
	overflow, duplicated, corrupted, reordered             atomic.Uint64
}

// New returns a link with configuration cfg whose random choices are drawn
// from a PCG generator seeded with seed.
func New(cfg LinkConfig, seed uint64) *Link {
	l := &Link{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	l.SetConfig(cfg)
	return l
}

// SetConfig replaces the configuration. Datagrams already in the link keep
// their release times; the bottleneck backlog carries over.
func (l *Link) SetConfig(cfg LinkConfig) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hasBurst = cfg.Burst != nil
	if l.hasBurst {
		l.burst = *cfg.Burst
		cfg.Burst = nil
	} else {
		l.bad = false
	}
	l.cfg = cfg
}

// Config returns the current configuration; its Burst, if any, is a copy.
func (l *Link) Config() LinkConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg := l.cfg
	if l.hasBurst {
		b := l.burst
		cfg.Burst = &b
	}
	return cfg
}

// Stats returns the link's counters.
func (l *Link) Stats() LinkStats {
	c := &l.stats
	return LinkStats{
		Sent:       c.sent.Load(),
		SentBytes:  c.sentBytes.Load(),
		Delivered:  c.delivered.Load(),
		Bytes:      c.bytes.Load(),
		Dropped:    c.dropped.Load(),
		QueueDrops: c.queueDrops.Load(),
		Overflow:   c.overflow.Load(),
		Duplicated: c.duplicated.Load(),
		Corrupted:  c.corrupted.Load(),
		Reordered:  c.reordered.Load(),
	}
}

// Send offers datagram p to the link at time now. The link keeps a copy.
func (l *Link) Send(now time.Time, p []byte) {
	l.send(now, p, dest{})
}

// Next returns the release time of the earliest datagram in the link, and
// false when the link is empty.
func (l *Link) Next() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nextLocked()
}

// Receive takes the earliest datagram due at or before now, copies it into b
// (truncating like a UDP read) and returns the number of bytes copied. It
// returns false when no datagram is due.
func (l *Link) Receive(now time.Time, b []byte) (int, bool) {
	p := l.pop(now)
	if p == nil {
		return 0, false
	}
	n := copy(b, p.b)
	l.delivered(len(p.b))
	putPacket(p)
	return n, true
}

// chance draws a Bernoulli trial with probability p; p ≤ 0 draws nothing,
// so a disabled impairment does not perturb the random sequence.
func (l *Link) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	return l.rng.Float64() < p
}

// send runs p through the link model and queues what survives for dst. It
// reports whether a queued datagram became the earliest in the link.
func (l *Link) send(now time.Time, p []byte, dst dest) (head bool) {
	l.stats.sent.Add(1)
	l.stats.sentBytes.Add(uint64(len(p)))
	l.mu.Lock()
	defer l.mu.Unlock()
	cfg := &l.cfg
	l.n++
	if cfg.Drop != nil && cfg.Drop(p, l.n) || cfg.Blackhole || l.chance(cfg.Loss) || l.burstLossLocked() {
		l.stats.dropped.Add(1)
		return false
	}
	depart, ok := l.departLocked(now, len(p))
	if !ok {
		l.stats.queueDrops.Add(1)
		return false
	}
	copies := 1
	if l.chance(cfg.Duplicate) {
		copies = 2
		l.stats.duplicated.Add(1)
	}
	for i := range copies {
		if l.enqueueLocked(depart, p, dst, i == 0) {
			head = true
		}
	}
	return head
}

// burstLossLocked steps the burst-loss model, if the link has one, and
// reports whether it loses the packet.
func (l *Link) burstLossLocked() bool {
	if !l.hasBurst {
		return false
	}
	b := &l.burst
	if l.bad {
		l.bad = !l.chance(b.PBadToGood)
	} else {
		l.bad = l.chance(b.PGoodToBad)
	}
	loss := b.LossGood
	if l.bad {
		loss = b.LossBad
	}
	return l.chance(loss)
}

// departLocked is when a packet of size bytes sent now leaves the far end
// of the link, through its rate limit, queue and delay; false if the
// queue or the in-flight bound has no room for it.
func (l *Link) departLocked(now time.Time, size int) (time.Time, bool) {
	cfg := &l.cfg
	if l.held+size > MaxInFlight {
		return time.Time{}, false
	}
	depart := now
	if cfg.Rate > 0 {
		if l.busy.Before(now) {
			l.busy = now
		}
		backlog := float64(l.busy.Sub(now)) * float64(cfg.Rate) / 8e9
		if int(backlog)+size > cfg.queueLimit() {
			return time.Time{}, false
		}
		l.busy = l.busy.Add(time.Duration(int64(size) * 8e9 / cfg.Rate))
		depart = l.busy
	}
	return depart.Add(max(cfg.Delay, 0)), true
}

// enqueueLocked queues a copy of p due at depart, with the link's jitter,
// reordering and (on the first copy) corruption applied, and reports
// whether it is now the first due.
func (l *Link) enqueueLocked(depart time.Time, p []byte, dst dest, first bool) bool {
	cfg := &l.cfg
	due := depart
	if cfg.Jitter > 0 {
		due = due.Add(time.Duration(l.rng.Int64N(int64(cfg.Jitter))))
	}
	if l.chance(cfg.Reorder) {
		d := cfg.ReorderDelay
		if d <= 0 {
			d = DefaultReorderDelay
		}
		due = due.Add(d)
		l.stats.reordered.Add(1)
	}
	pk := getPacket(len(p))
	copy(pk.b, p)
	if first && len(p) > 0 && l.chance(cfg.Corrupt) {
		pk.b[l.rng.IntN(len(p))] ^= byte(1 + l.rng.IntN(255))
		pk.bad = cfg.ChecksumCovered
		l.stats.corrupted.Add(1)
	}
	pk.due, pk.seq, pk.dst = due, l.seq, dst
	l.seq++
	l.held += len(p)
	heap.Push(&l.q, pk)
	return l.q[0] == pk
}

func (l *Link) nextLocked() (time.Time, bool) {
	if len(l.q) == 0 {
		return time.Time{}, false
	}
	return l.q[0].due, true
}

// pop removes and returns the earliest datagram due at or before now, or nil.
// The caller counts it with delivered or overflowed and returns it to the pool.
func (l *Link) pop(now time.Time) *packet {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.q) > 0 && !l.q[0].due.After(now) {
		p := heap.Pop(&l.q).(*packet)
		l.held -= len(p.b)
		if !p.bad {
			return p
		}
		// Caught by the receiving host's UDP checksum.
		l.stats.dropped.Add(1)
		putPacket(p)
	}
	return nil
}

// drain empties the link, counting what it held as overflow.
func (l *Link) drain() {
	l.mu.Lock()
	q := l.q
	l.q = nil
	l.held = 0
	l.mu.Unlock()
	for _, p := range q {
		l.stats.overflow.Add(1)
		putPacket(p)
	}
}

// drainTo removes the datagrams addressed to pipe end c, counting them as
// overflow, and returns the release time of the earliest datagram left, or
// false when the link is empty.
func (l *Link) drainTo(c *PipeConn) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.q[:0]
	for _, p := range l.q {
		if p.dst.pipe != c {
			kept = append(kept, p)
			continue
		}
		l.held -= len(p.b)
		l.stats.overflow.Add(1)
		putPacket(p)
	}
	clear(l.q[len(kept):])
	l.q = kept
	heap.Init(&l.q)
	return l.nextLocked()
}

func (l *Link) delivered(n int) {
	l.stats.delivered.Add(1)
	l.stats.bytes.Add(uint64(n))
}

// dest is where a link delivers a datagram: to a relay's client, to a pipe
// end, or (zero) wherever its front-end sends everything.
type dest struct {
	session *session  // relay client it belongs to
	pipe    *PipeConn // pipe end it is addressed to
}

// packet is one datagram held by a link.
type packet struct {
	b   []byte    // payload; capacity from its pool class
	due time.Time // release time
	seq uint64    // order of entry, for equal due times
	dst dest      // where it goes
	bad bool      // corrupted, and to be dropped on arrival (ChecksumCovered)
}

const smallPacket = 2048

var (
	smallPool = sync.Pool{New: func() any { return &packet{b: make([]byte, 0, smallPacket)} }}
	largePool = sync.Pool{New: func() any { return &packet{b: make([]byte, 0, 1<<16)} }}
)

func getPacket(n int) *packet {
	var p *packet
	switch {
	case n <= smallPacket:
		p = smallPool.Get().(*packet)
	case n <= 1<<16:
		p = largePool.Get().(*packet)
	default:
		p = &packet{b: make([]byte, 0, n)}
	}
	p.b = p.b[:n]
	return p
}

func putPacket(p *packet) {
	p.dst, p.bad = dest{}, false
	switch cap(p.b) {
	case smallPacket:
		smallPool.Put(p)
	case 1 << 16:
		largePool.Put(p)
	}
}

// pktHeap orders packets by release time, then by entry.
type pktHeap []*packet

func (h pktHeap) Len() int { return len(h) }
func (h pktHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h pktHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)   { *h = append(*h, x.(*packet)) }
func (h *pktHeap) Pop() any {
	old := *h
	n := len(old) - 1
	p := old[n]
	old[n] = nil
	*h = old[:n]
	return p
}
