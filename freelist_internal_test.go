package udt

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFreeListsSurviveGC: what a free list keeps survives garbage
// collections (a sync.Pool's does not): get returns it, not a new one.
// Private lists of the shapes the workers keep (send batches, write
// headers, outboxes), so that no other goroutine of the test process takes
// from them meanwhile (and identity, not an allocation count, which is
// the whole process's). The read side, through a real socket, is
// TestReadBatchesSurviveGC.
func TestFreeListsSurviveGC(t *testing.T) {
	check := func(t *testing.T, get func() any, put func(any)) {
		v := get()
		for range 5 {
			put(v)
			runtime.GC()
			runtime.GC()
			require.Same(t, v, get(), "the value kept was lost to the collections")
		}
	}
	t.Run("send batch", func(t *testing.T) {
		f := freeList[txBatch]{max: 4, new: txFree.new}
		check(t, func() any { return f.get() }, func(v any) { f.put(v.(*txBatch)) })
	})
	t.Run("write headers", func(t *testing.T) {
		f := freeList[txMsgs]{max: 4, new: txMsgsFree.new}
		check(t, func() any { return f.get() }, func(v any) { f.put(v.(*txMsgs)) })
	})
	t.Run("outbox", func(t *testing.T) {
		f := freeList[outbox]{max: 4, new: outboxes.new}
		check(t, func() any { return f.get() }, func(v any) { f.put(v.(*outbox)) })
	})
}

// A free list keeps at most its max, and hands back what it kept, last
// in first out.
func TestFreeListBounded(t *testing.T) {
	made := 0
	f := freeList[int]{max: 2, new: func() *int { made++; return new(int) }}
	a, b, c := f.get(), f.get(), f.get()
	require.Equal(t, 3, made)
	f.put(a)
	f.put(b)
	f.put(c) // over max: let go
	require.Len(t, f.list, 2)
	require.Same(t, b, f.get())
	require.Same(t, a, f.get())
	f.get()
	require.Equal(t, 4, made)
}
