package udt

import "sync"

// freeList keeps up to max values not in use, for reuse by any goroutine.
//
// The buffers and batches of the socket workers are kept here rather than
// in sync.Pools: a sync.Pool's fast slot belongs to one processor, so a
// worker that wakes on another processor than the one it parked on misses
// it, and the garbage collector empties sync.Pools besides. Either way a
// quiet socket's every wake-up allocated its batches anew (on a machine
// with many processors, most of them). A free list has neither loss; max
// bounds what it keeps, however many sockets went idle.
type freeList[T any] struct {
	mu   sync.Mutex
	list []*T
	max  int
	new  func() *T
}

// get returns a value from the list, or a new one.
func (f *freeList[T]) get() *T {
	f.mu.Lock()
	var v *T
	if n := len(f.list); n > 0 {
		v = f.list[n-1]
		f.list[n-1] = nil
		f.list = f.list[:n-1]
	}
	f.mu.Unlock()
	if v == nil {
		v = f.new()
	}
	return v
}

// put keeps v for reuse, unless the list is full.
func (f *freeList[T]) put(v *T) {
	f.mu.Lock()
	if len(f.list) < f.max {
		f.list = append(f.list, v)
	}
	f.mu.Unlock()
}
