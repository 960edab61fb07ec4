package pktbuf

import (
	"testing"

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
