package udt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRxBlockLifecycle: a block whose packets no receive window kept is
// read into again; one that views hold is left to them, keeps their bytes
// while the worker reads into a new one, and goes back to the pool with
// the last view.
func TestRxBlockLifecycle(t *testing.T) {
	b := newRxBlock()
	require.True(t, b.recycle(), "no view taken")
	require.EqualValues(t, 1, b.refs.Load())

	buf := *b.buf
	copy(buf, "abcdefgh")
	v1, v2 := b.view(buf[0:4]), b.view(buf[4:8])
	require.NotNil(t, v1)
	require.NotNil(t, v2)
	require.False(t, b.recycle(), "views hold the block")
	require.Equal(t, "abcd", string(*v1))
	b.release() // v1's holder
	require.NotNil(t, b.buf, "a view still holds it")
	require.Equal(t, "efgh", string(*v2))
	require.EqualValues(t, 1, b.refs.Load(), "the last view's reference alone")
	b.release() // the last view: back to the pool (not to be touched now)

	// Views released before the worker's recycle: read into again.
	b = newRxBlock()
	v := b.view((*b.buf)[:10])
	require.NotNil(t, v)
	b.release()
	require.True(t, b.recycle())
	require.EqualValues(t, 1, b.refs.Load())
	require.Zero(t, b.n)

	// A run longer than rxViewsMax: the rest is copied.
	for range rxViewsMax {
		require.NotNil(t, b.view((*b.buf)[:1]))
	}
	require.Nil(t, b.view((*b.buf)[:1]))
	require.False(t, b.recycle())
	require.EqualValues(t, rxViewsMax, b.refs.Load())
	for range rxViewsMax {
		b.release()
	}
}

// TestReceiveViewsCountMemory: a payload kept as a view counts for its
// block's share of the socket's receive memory until it is read.
func TestReceiveViewsCountMemory(t *testing.T) {
	c, _ := internalPair(t, Config{})
	c.mu.Lock()
	defer c.mu.Unlock()
	held, total := c.rcv.held, c.m.rcvHeld.Load()
	b := newRxBlock()
	b.share = 4096
	v := c.holdViewLocked(b, (*b.buf)[:100])
	require.NotNil(t, v)
	require.Equal(t, held+4096, c.rcv.held)
	require.Equal(t, total+4096, c.m.rcvHeld.Load())
	require.False(t, b.recycle(), "the view holds the block")
	require.EqualValues(t, 1, b.refs.Load())
	c.freeRcvBufLocked(rcvPkt{buf: v, blk: b, state: slotData}) // the last reference
	require.Equal(t, held, c.rcv.held)
	require.Equal(t, total, c.m.rcvHeld.Load())
}
