package pktbuf

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRingDeque(t *testing.T) {
	r := New[int](100)
	for i := range 100 {
		require.True(t, r.Push(i))
	}
	require.False(t, r.Push(100))
	require.True(t, r.Full())
	for i := range 50 {
		require.Equal(t, i, r.PopFront())
	}
	for i := range 50 {
		require.True(t, r.Push(100+i))
	}
	for i := range 100 {
		require.Equal(t, 50+i, r.At(i))
	}
	require.Equal(t, 0, r.At(100))
}

func TestRingSparse(t *testing.T) {
	r := New[*int](1000)
	v := 7
	require.True(t, r.Set(500, &v))
	require.Equal(t, 501, r.Len())
	require.Nil(t, r.At(3))
	require.False(t, r.Set(1000, &v))
	for range 500 {
		require.Nil(t, r.PopFront())
	}
	require.Equal(t, &v, r.PopFront())
	require.Equal(t, 0, r.Len())
	r.Release()
	require.True(t, r.Set(3, &v))
	require.Equal(t, &v, r.At(3))
}

func TestPool(t *testing.T) {
	p := PoolFor(1456)
	require.Same(t, p, PoolFor(1456))
	b := p.Get()
	require.Len(t, *b, 1456)
	*b = (*b)[:10]
	p.Put(b)
	require.Len(t, *p.Get(), 1456)
}

// A cached buffer comes back at full length whatever length it went in
// with, and the pool lets go of buffers left unused for a trim interval.
func TestCache(t *testing.T) {
	c := NewCache(100)
	b := c.Get()
	require.Len(t, *b, 100)
	*b = (*b)[:5]
	c.Put(b)
	b2 := c.Get()
	require.Same(t, b, b2)
	require.Len(t, *b2, 100)

	// Refills double: a little use holds a little.
	c2 := NewCache(101)
	c2.Get()
	require.Empty(t, c2.bufs)
	c2.Get() // refills 2
	require.Len(t, c2.bufs, 1)

	// Put past twice the batch hands the excess to the pool.
	p := PoolFor(102)
	c3 := NewCache(102)
	var held []*[]byte
	for range 3 * CacheBatch {
		held = append(held, p.Get())
	}
	for _, h := range held {
		c3.Put(h)
	}
	require.Less(t, len(c3.bufs), 2*CacheBatch)
	require.Equal(t, 3*CacheBatch-len(c3.bufs), p.Free())
	c3.Flush()
	require.Equal(t, 3*CacheBatch, p.Free())
	require.Eventually(t, func() bool { return p.Free() == 0 }, 5*TrimInterval, 50*time.Millisecond)
}

func TestRingPtr(t *testing.T) {
	r := New[int](64)
	for i := range 40 {
		r.Push(i)
	}
	for range 30 {
		r.PopFront() // the head moves, the slots wrap
	}
	for i := range 20 {
		r.Push(100 + i)
	}
	*r.Ptr(25) = -1
	require.Equal(t, -1, r.At(25))
	// Offsets 0-9 hold 30-39, then 100-119: offset 25 was 115.
	require.Equal(t, 100+14, r.At(24))
	require.Equal(t, 100+16, r.At(26))
}
