package udt

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/pktbuf"
)

// TestFreedPayloadWaitsForTheBatch: a payload freed while the send
// queue's batch that took it is not written (an acknowledged packet whose
// retransmission is in the batch) is kept aside, not handed to the next
// Write, and goes back once that batch is written.
func TestFreedPayloadWaitsForTheBatch(t *testing.T) {
	s := sender{bufs: pktbuf.NewCache(1456)}
	b := s.bufs.Get()
	copy(*b, "payload")
	s.pinned = 5 // taken by batch 5; batches 1-4 written
	s.freeBuf(b, 4)
	require.Equal(t, []*[]byte{b}, s.deferred)
	other := s.bufs.Get() // the next Write's buffer
	require.NotSame(t, b, other, "a payload still to be written was reused")
	s.releaseDeferred(4)
	require.Len(t, s.deferred, 1, "released before its batch was written")
	s.releaseDeferred(5)
	require.Empty(t, s.deferred)
	require.Same(t, b, s.bufs.Get(), "not given back once written")
	// Not pinned by a batch still to be written: straight back.
	c := s.bufs.Get()
	s.freeBuf(c, 5)
	require.Empty(t, s.deferred)
	require.Same(t, c, s.bufs.Get())
}

// TestTxBatchGathers: a batch keeps each data packet's header in buf and
// its payload where it lies, and gives each packet whole where a path
// writes it from one buffer.
func TestTxBatchGathers(t *testing.T) {
	tb := getTxBatch()
	defer putTxBatch(tb)
	to := netip.MustParseAddrPort("127.0.0.1:9")
	pay := []byte("0123456789")
	tb.buf = append(tb.buf, "HDR1"...)
	tb.add(pay, to)
	tb.buf = append(tb.buf, "DROPREQUEST"...)
	tb.add(nil, to)
	tb.buf = append(tb.buf, "HDR3"...)
	tb.add(pay[:3], to)
	require.Equal(t, 4+10+11+4+3, tb.bytes)
	require.Equal(t, []int{14, 11, 7}, []int{tb.size(0), tb.size(1), tb.size(2)})
	require.Equal(t, "HDR10123456789", string(tb.packet(0)))
	require.Equal(t, "DROPREQUEST", string(tb.packet(1)))
	require.Equal(t, "HDR3012", string(tb.packet(2)))
	tb.reset()
	require.Zero(t, tb.bytes)
	require.Empty(t, tb.ends)
	require.Nil(t, tb.pay[:1][0], "a written batch holds no payload")
}
