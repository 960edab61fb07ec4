package udt

import (
	"sync/atomic"

	"github.com/udt-go/udt/internal/pktbuf"
)

// rxBlock is one datagram buffer of the receive worker's batch (see
// batchIO), which the receive windows of connections may keep slices of
// rather than copies: a GRO run of a stream's packets then reaches the
// reader with no copy between the kernel's and Read's.
//
// The worker holds one reference while the block is in its batch; each
// slice a receive window keeps (a view) holds another. After the worker has
// handed a read's packets over it drops its reference (see recycle): a
// block no view holds is read into again; one that views hold is left to
// them, and the last to go gives it back.
type rxBlock struct {
	buf  *[]byte // maxDatagram bytes, from rxBufs
	refs atomic.Int32
	// Set by the receive worker while it holds the block alone or hands
	// out views; read by the holders of views under their connection's
	// lock, which the worker held when it made them.
	n     int                // views taken since the block was last read into
	share int64              // receive memory each view counts for
	views [rxViewsMax][]byte // the views' payloads
}

// rxViewsMax is the most views one block hands out: a GRO run holds up to
// 64 segments. The rest of a longer run is copied.
const rxViewsMax = 64

// rxViewMin is the fewest segments a GRO run needs for its packets to be
// kept as views: a view keeps the whole block, whose memory its
// connection's receive memory counts a share of (see Conn.holdViewLocked),
// and a block kept for a datagram or two would hold 64 KB for a few
// packets. Shorter runs are copied.
const rxViewMin = 8

// rxBufs holds the datagram buffers of blocks not in use.
var rxBufs = pktbuf.PoolFor(maxDatagram)

// rxBlocks holds blocks not in use, without their buffers.
var rxBlocks = freeList[rxBlock]{max: 1024, new: func() *rxBlock { return new(rxBlock) }}

// newRxBlock returns a block with a buffer, held by the receive worker.
func newRxBlock() *rxBlock {
	b := rxBlocks.get()
	b.buf = rxBufs.Get()
	b.refs.Store(1)
	return b
}

// view returns a view of p, a slice of the block, and takes a reference
// for it; nil if the block has handed out all it can.
func (b *rxBlock) view(p []byte) *[]byte {
	if b.n == len(b.views) {
		return nil
	}
	b.refs.Add(1)
	v := &b.views[b.n]
	*v = p
	b.n++
	return v
}

// release drops a reference; the last gives the block back.
func (b *rxBlock) release() {
	if b.refs.Add(-1) == 0 {
		b.free()
	}
}

// free gives the block's buffer back to rxBufs and the block to rxBlocks.
func (b *rxBlock) free() {
	clear(b.views[:b.n])
	b.n, b.share = 0, 0
	rxBufs.Put(b.buf)
	b.buf = nil
	rxBlocks.put(b)
}

// recycle drops the receive worker's reference after a read's packets were
// handed over, and reports whether the worker may read into the block
// again (no view holds it); if not, the views' holders give it back.
func (b *rxBlock) recycle() bool {
	if b.n == 0 {
		return true // no view was taken: the worker's reference is the only one
	}
	if b.refs.Add(-1) == 0 {
		clear(b.views[:b.n])
		b.n = 0
		b.refs.Store(1)
		return true
	}
	return false
}
