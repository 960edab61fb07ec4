package udt

import (
	"sync"
	"time"

	"github.com/udt-go/udt/internal/pktbuf"
)

// freeList keeps up to max values not in use, for reuse by any goroutine.
//
// The buffers and batches of the socket workers are kept here rather than
// in sync.Pools: a sync.Pool's fast slot belongs to one processor, so a
// worker that wakes on another processor than the one it parked on misses
// it, and the garbage collector empties sync.Pools besides. Either way a
// quiet socket's every wake-up allocated its batches anew (on a machine
// with many processors, most of them). A free list has neither loss; max
// bounds what it keeps, however many sockets went idle, and values no get
// needed for a whole trim interval (pktbuf.TrimInterval) go back to the
// garbage collector, as the payload pools' buffers do: a burst of
// connections does not leave its batches held for the life of the process.
type freeList[T any] struct {
	max int
	new func() *T

	mu    sync.Mutex
	list  []*T // guarded by mu
	low   int  // the shortest the list was since the last trim; guarded by mu
	armed bool // a trim is due; guarded by mu
}

// get returns a value from the list, or a new one.
func (f *freeList[T]) get() *T {
	f.mu.Lock()
	var v *T
	if n := len(f.list); n > 0 {
		v = f.list[n-1]
		f.list[n-1] = nil
		f.list = f.list[:n-1]
		f.low = min(f.low, n-1)
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
		if !f.armed {
			f.armed = true
			f.low = len(f.list)
			time.AfterFunc(pktbuf.TrimInterval, f.trim)
		}
	}
	f.mu.Unlock()
}

// trim lets go of the values no get needed since the last trim: the
// oldest ones, at the bottom of the list.
func (f *freeList[T]) trim() {
	f.mu.Lock()
	defer f.mu.Unlock()
	drop := min(f.low, len(f.list))
	n := copy(f.list, f.list[drop:])
	clear(f.list[n:])
	f.list = f.list[:n]
	f.low = n
	if n == 0 {
		f.list = nil // and the backing array
		f.armed = false
		return
	}
	time.AfterFunc(pktbuf.TrimInterval, f.trim)
}
