package udt

import (
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/udt-go/udt/internal/pktbuf"

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
	check := checkSurvivesGC
	t.Run("send batch", func(t *testing.T) {
		f := freeList[txBatch]{max: 4, new: txFree.new}
		check(t, func() any { return f.get() }, func(v any) { f.put(v.(*txBatch)) })
	})
	t.Run("outbox", func(t *testing.T) {
		f := freeList[outbox]{max: 4, new: outboxes.new}
		check(t, func() any { return f.get() }, func(v any) { f.put(v.(*outbox)) })
	})
}

// checkSurvivesGC puts a value from get back with put, collects garbage
// twice, and checks get returns that very value, five times.
func checkSurvivesGC(t *testing.T, get func() any, put func(any)) {
	v := get()
	for range 5 {
		put(v)
		runtime.GC()
		runtime.GC()
		require.Same(t, v, get(), "the value kept was lost to the collections")
	}
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

// A free list lets go of what no get needed for a trim interval, oldest
// first, and keeps what a steady user keeps taking (virtual time).
func TestFreeListTrims(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := freeList[int]{max: 8, new: func() *int { return new(int) }}
		vs := make([]*int, 6)
		for i := range vs {
			vs[i] = f.get()
		}
		for _, v := range vs {
			f.put(v)
		}
		// A user that takes and returns two at a time for two intervals
		// (values put since the last trim count as used: an idle value
		// goes within two intervals): the four below them go.
		time.Sleep(time.Millisecond)
		for range 8 {
			a, b := f.get(), f.get()
			f.put(b)
			f.put(a)
			time.Sleep(pktbuf.TrimInterval / 4)
		}
		synctest.Wait()
		f.mu.Lock()
		require.ElementsMatch(t, []*int{vs[5], vs[4]}, f.list, "the two in use stay, the four idle ones go")
		f.mu.Unlock()
		// Nobody takes any for two more intervals: all go, and the list
		// stops arming timers.
		time.Sleep(2 * pktbuf.TrimInterval)
		synctest.Wait()
		f.mu.Lock()
		require.Empty(t, f.list)
		require.Nil(t, f.list, "the emptied list lets its array go too")
		require.False(t, f.armed)
		f.mu.Unlock()
	})
}
