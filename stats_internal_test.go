package udt

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
)

// wireCount counts, on one direction of an emulated link, the datagrams
// offered and those let through, by kind; it drops data packets at random
// itself, so that it knows which ones arrived.
type wireCount struct {
	mu                    sync.Mutex
	rng                   *rand.Rand
	loss                  float64
	seen                  map[uint32]bool
	data, dataLost, dupes int
	acks, naks            int // control packets of those types offered
}

func newWireCount(loss float64, seed uint64) *wireCount {
	return &wireCount{rng: rand.New(rand.NewPCG(seed, 7)), loss: loss, seen: make(map[uint32]bool)}
}

func (w *wireCount) hook(p []byte, _ int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) < 16 {
		return false
	}
	w0 := binary.BigEndian.Uint32(p)
	if w0&controlBit != 0 {
		switch ctrlType(w0 >> 16 & 0x7FFF) {
		case ctrlACK:
			w.acks++
		case ctrlNAK:
			w.naks++
		}
		return false
	}
	w.data++
	if w.seen[w0] {
		w.dupes++
	}
	w.seen[w0] = true
	if w.rng.Float64() < w.loss {
		w.dataLost++
		return true
	}
	return false
}

// TestStatsMatchWire checks Stats against what the link carried: data
// packets sent, retransmitted and received, ACKs and NAKs each way.
func TestStatsMatchWire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fwd, back := newWireCount(0.02, 1), newWireCount(0, 2)
		// A queue deep enough for the whole transfer: the hook's random
		// drops are then the only losses, and the wire count says which
		// packets the receiver got.
		a2b := netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond, Drop: fwd.hook, QueueBytes: 32 << 20}
		b2a := netsim.LinkConfig{Rate: 50e6, Delay: 10 * time.Millisecond, Drop: back.hook}
		c, s, _, _ := simPair(t, a2b, b2a, Config{MSS: 1400}, 21)
		require.Equal(t, 1400, c.Stats().MSS, "the MSS settled on")
		require.Equal(t, 1400, s.Stats().MSS, "the MSS settled on")
		transfer(t, c, s, 8<<20)
		time.Sleep(time.Second) // the last ACKs and ACK2s settle
		cs, ss := c.Stats().Total, s.Stats().Total
		fwd.mu.Lock()
		back.mu.Lock()
		defer fwd.mu.Unlock()
		defer back.mu.Unlock()
		t.Logf("wire: %d data packets, %d of them repeats, %d lost; %d ACKs and %d NAKs back", fwd.data, fwd.dupes, fwd.dataLost, back.acks, back.naks)
		t.Logf("sender: %d sent, %d retransmitted, %d ACKs and %d NAKs received; receiver: %d received, %d ACKs and %d NAKs sent",
			cs.PktSent, cs.PktRetrans, cs.ACKRecv, cs.NAKRecv, ss.PktRecv, ss.ACKSent, ss.NAKSent)
		require.Positive(t, fwd.dataLost)
		require.Equal(t, uint64(fwd.data), cs.PktSent, "data packets sent")
		require.Equal(t, uint64(fwd.dupes), cs.PktRetrans, "retransmissions")
		require.Equal(t, uint64(fwd.data-fwd.dataLost), ss.PktRecv, "data packets received")
		// Control packets: the receiver's ACKs and NAKs all cross the
		// lossless way back; a closing sender may leave the last few
		// unread.
		require.Equal(t, uint64(back.acks), ss.ACKSent, "ACKs sent")
		require.Equal(t, uint64(back.naks), ss.NAKSent, "NAKs sent")
		require.InDelta(t, ss.ACKSent, cs.ACKRecv, 3, "ACKs received")
		require.InDelta(t, ss.NAKSent, cs.NAKRecv, 3, "NAKs received")
	})
}
