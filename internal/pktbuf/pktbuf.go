// Package pktbuf holds the packet-indexed buffers of a UDT connection: a
// growable ring addressed by offset from its head, used as the send queue
// (a deque of packets) and as the receive window (sparse slots), and a pool
// of payload buffers.
package pktbuf

import (
	"sync"
	"time"
)

// Ring is a window of slots addressed by offset from the oldest slot. It
// grows by powers of two up to the limit given to New, so an idle
// connection holds only a small ring. The zero value is not usable.
type Ring[T any] struct {
	buf   []T
	head  int // index in buf of offset 0
	n     int // slots in use: offsets 0 … n−1
	limit int
}

// New returns a ring that grows to at most limit slots.
func New[T any](limit int) *Ring[T] {
	return &Ring[T]{limit: limit}
}

// Len returns the number of slots in use (one past the highest set offset,
// or the number pushed).
func (r *Ring[T]) Len() int { return r.n }

// Limit returns the most slots the ring holds.
func (r *Ring[T]) Limit() int { return r.limit }

// Full reports whether no slot can be added.
func (r *Ring[T]) Full() bool { return r.n >= r.limit }

// At returns the slot at offset i, or the zero value beyond Len.
func (r *Ring[T]) At(i int) T {
	if i < 0 || i >= r.n {
		var zero T
		return zero
	}
	return r.buf[(r.head+i)&(len(r.buf)-1)]
}

// Ptr returns a pointer to the slot at offset i, which must be below Len,
// for updating it in place; it is valid until the ring next changes size.
func (r *Ring[T]) Ptr(i int) *T {
	return &r.buf[(r.head+i)&(len(r.buf)-1)]
}

// Set stores v at offset i, extending the ring; it reports false when i is
// at or beyond the limit.
func (r *Ring[T]) Set(i int, v T) bool {
	if i < 0 || i >= r.limit {
		return false
	}
	if i >= len(r.buf) {
		r.grow(i + 1)
	}
	r.buf[(r.head+i)&(len(r.buf)-1)] = v
	if i >= r.n {
		r.n = i + 1
	}
	return true
}

// Push appends v after the last slot; it reports false when full.
func (r *Ring[T]) Push(v T) bool { return r.Set(r.n, v) }

// PopFront removes and returns the slot at offset 0.
func (r *Ring[T]) PopFront() T {
	var zero T
	if r.n == 0 {
		return zero
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	if r.n == 0 {
		r.head = 0
	}
	return v
}

// Release drops the storage of an empty ring so an idle connection holds
// none; it does nothing when slots are in use.
func (r *Ring[T]) Release() {
	if r.n == 0 {
		r.buf, r.head = nil, 0
	}
}

func (r *Ring[T]) grow(need int) {
	size := max(len(r.buf), 16)
	for size < need {
		size *= 2
	}
	nb := make([]T, size)
	if len(r.buf) > 0 {
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
	}
	r.buf, r.head = nb, 0
}

// Pool hands out payload buffers of one size, shared by every connection.
//
// Unlike a sync.Pool, which the garbage collector empties, it keeps its
// free buffers until they have gone unused for a whole trim interval: a
// steady flow reuses the same buffers, allocating nothing, and a process
// gone idle gives them back within two intervals. Its methods are safe for
// concurrent use; the batch forms (GetN, PutN, and Cache on top of them)
// take its lock once for many buffers.
type Pool struct {
	size int

	mu    sync.Mutex
	free  []*[]byte // guarded by mu
	low   int       // the fewest free buffers since the last trim; guarded by mu
	armed bool      // a trim is due; guarded by mu
}

// TrimInterval is how long a free buffer may go unused before the pool
// lets the garbage collector have it.
const TrimInterval = time.Second

var pools sync.Map // size → *Pool

// PoolFor returns the shared pool of buffers of the given size.
func PoolFor(size int) *Pool {
	if p, ok := pools.Load(size); ok {
		return p.(*Pool)
	}
	p, _ := pools.LoadOrStore(size, &Pool{size: size})
	return p.(*Pool)
}

// Get returns a buffer of length Size.
func (p *Pool) Get() *[]byte {
	p.mu.Lock()
	var b *[]byte
	if n := len(p.free); n > 0 {
		b = p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.low = min(p.low, n-1)
	}
	p.mu.Unlock()
	if b == nil {
		return p.alloc()
	}
	*b = (*b)[:p.size]
	return b
}

func (p *Pool) alloc() *[]byte {
	b := make([]byte, p.size)
	return &b
}

// GetN appends n buffers of length Size to dst.
func (p *Pool) GetN(dst []*[]byte, n int) []*[]byte {
	p.mu.Lock()
	k := min(n, len(p.free))
	from := len(p.free) - k
	for _, b := range p.free[from:] {
		*b = (*b)[:p.size]
		dst = append(dst, b)
	}
	clear(p.free[from:])
	p.free = p.free[:from]
	p.low = min(p.low, from)
	p.mu.Unlock()
	for range n - k {
		dst = append(dst, p.alloc())
	}
	return dst
}

// Put returns b to the pool.
func (p *Pool) Put(b *[]byte) {
	if b == nil || cap(*b) < p.size {
		return
	}
	p.mu.Lock()
	p.free = append(p.free, b)
	p.armLocked()
	p.mu.Unlock()
}

// PutN returns every buffer in bs to the pool.
func (p *Pool) PutN(bs []*[]byte) {
	if len(bs) == 0 {
		return
	}
	p.mu.Lock()
	for _, b := range bs {
		if b != nil && cap(*b) >= p.size {
			p.free = append(p.free, b)
		}
	}
	p.armLocked()
	p.mu.Unlock()
}

func (p *Pool) armLocked() {
	if !p.armed {
		p.armed = true
		p.low = len(p.free)
		time.AfterFunc(TrimInterval, p.trim)
	}
}

// trim releases the free buffers no Get needed since the last trim: the
// oldest ones, at the bottom of the stack.
func (p *Pool) trim() {
	p.mu.Lock()
	defer p.mu.Unlock()
	drop := min(p.low, len(p.free))
	n := copy(p.free, p.free[drop:])
	clear(p.free[n:])
	p.free = p.free[:n]
	if cap(p.free) > 2*n+64 {
		p.free = append([]*[]byte(nil), p.free...) // let a shrunk stack go too
	}
	p.low = n
	if n == 0 {
		p.armed = false
		return
	}
	time.AfterFunc(TrimInterval, p.trim)
}

// Free reports how many free buffers the pool holds.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}

// Cache is a few of a Pool's buffers kept at hand for one owner that
// serializes its calls (a connection, under its lock): Get and Put touch
// the pool only once per CacheBatch buffers. Flush hands everything back.
// The zero Cache has no pool and must be made with NewCache.
type Cache struct {
	pool   *Pool
	bufs   []*[]byte
	refill int // how many the next refill takes: doubles up to CacheBatch
}

// CacheBatch is the most buffers a Cache moves to or from its pool at once;
// it holds at most twice as many. Its first refills take fewer (1, 2,
// 4, ...), so that a connection that sends a little holds a little.
const CacheBatch = 32

// NewCache returns an empty cache of buffers of the given size.
func NewCache(size int) Cache { return Cache{pool: PoolFor(size)} }

// Get returns a buffer of the cache's size.
func (c *Cache) Get() *[]byte {
	if len(c.bufs) == 0 {
		c.refill = min(max(2*c.refill, 1), CacheBatch)
		c.bufs = c.pool.GetN(c.bufs, c.refill)
	}
	n := len(c.bufs) - 1
	b := c.bufs[n]
	c.bufs[n] = nil
	c.bufs = c.bufs[:n]
	*b = (*b)[:c.pool.size]
	return b
}

// Put keeps b for a later Get, or returns it to the pool.
func (c *Cache) Put(b *[]byte) {
	if b == nil || cap(*b) < c.pool.size {
		return
	}
	c.bufs = append(c.bufs, b)
	if len(c.bufs) >= 2*CacheBatch {
		c.pool.PutN(c.bufs[CacheBatch:])
		clear(c.bufs[CacheBatch:])
		c.bufs = c.bufs[:CacheBatch]
	}
}

// Flush returns every buffer the cache holds to its pool.
func (c *Cache) Flush() {
	if len(c.bufs) == 0 {
		return
	}
	c.pool.PutN(c.bufs)
	clear(c.bufs)
	c.bufs, c.refill = c.bufs[:0], 0
}

// Size returns the length of the cache's buffers.
func (c *Cache) Size() int { return c.pool.size }

// Size returns the length of the pool's buffers.
func (p *Pool) Size() int { return p.size }
