// Package pktbuf holds the packet-indexed buffers of a UDT connection: a
// growable ring addressed by offset from its head, used as the send queue
// (a deque of packets) and as the receive window (sparse slots), and a pool
// of payload buffers.
package pktbuf

import "sync"

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

// Pool hands out payload buffers of one size.
type Pool struct {
	size int
	p    sync.Pool
}

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
	if b, ok := p.p.Get().(*[]byte); ok {
		*b = (*b)[:p.size]
		return b
	}
	b := make([]byte, p.size)
	return &b
}

// Put returns b to the pool.
func (p *Pool) Put(b *[]byte) {
	if b != nil && cap(*b) >= p.size {
		p.p.Put(b)
	}
}

// Size returns the length of the pool's buffers.
func (p *Pool) Size() int { return p.size }
