package udt

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFreeListsSurviveGC: the send queue's batch, the write headers and
// the control packets' outboxes come back from their free lists after
// garbage collections without an allocation (a sync.Pool loses them to
// the collector, and to other processors' private slots). The read side
// has TestReadBatchesSurviveGC.
func TestFreeListsSurviveGC(t *testing.T) {
	cases := map[string]func(){
		"send batch": func() { putTxBatch(getTxBatch()) },
		"write headers": func() {
			m := txMsgsFree.get()
			txMsgsFree.put(m)
		},
		"outbox": func() {
			o := getOutbox()
			o.add(append(o.next(), make([]byte, 64)...))
			putOutbox(o)
		},
	}
	for name, cycle := range cases {
		t.Run(name, func(t *testing.T) {
			cycle()
			allocs := testing.AllocsPerRun(20, func() {
				runtime.GC()
				runtime.GC()
				cycle()
			})
			require.Zero(t, allocs)
		})
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
