package udt

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/udt-go/udt/internal/netsim"
	"github.com/udt-go/udt/internal/seq"
)

// TestLightACKOncePerBatch: the receive worker sends a light ACK every
// lightACKEvery full packets, but packets read in one batch (a recvmmsg of
// GRO runs) draw one light ACK, after the batch, however many times they
// cross the count; a full ACK sent meanwhile makes it moot.
func TestLightACKOncePerBatch(t *testing.T) {
	a, b := netsim.NewPacketPipe(netsim.LinkConfig{}, netsim.LinkConfig{}, 1)
	defer b.Close()
	m := newMultiplexer(netPacketConn{c: a})
	defer a.Close()
	cfg, err := Config{ReceiveBuffer: 4096, FlowWindow: 4096}.withDefaults()
	require.NoError(t, err)
	peer := netip.MustParseAddrPort(b.LocalAddr().String())
	c := newConn(m, cfg, peer)
	const isn = seq.Num(1000)
	c.mu.Lock()
	c.establishLocked(time.Now(), 77, DefaultMSS, 4096, 1000, isn)
	// No full ACK on the timer: light ACKs are counted here.
	c.cc.ackPeriod = time.Hour
	c.rcv.nextACK = time.Now().Add(time.Hour)
	c.mu.Unlock()
	m.socks[c.id] = c
	m.runPending()

	next := isn
	// deliver dispatches n full data packets as the receive worker would,
	// in one batch if batch, else one read each.
	deliver := func(n int, batch bool) {
		m.batching = batch
		body := make([]byte, c.payload)
		for range n {
			p := packet{seq: next, msg: 1, pos: posSolo, dst: c.id, body: body}
			next = next.Inc()
			m.dispatch(append(p.appendHeader(nil), body...), peer, time.Time{}, nil)
			if !batch {
				m.flushRun()
			}
		}
		m.flushRun()
		m.sendLightACKs()
	}
	// lightACKs reads what the connection sent and counts the light ACKs.
	lightACKs := func() (n int, last seq.Num) {
		buf := make([]byte, maxDatagram)
		for {
			require.NoError(t, b.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
			k, _, err := b.ReadFrom(buf)
			if err != nil {
				return n, last
			}
			p, err := parsePacket(buf[:k])
			require.NoError(t, err)
			if p.control && p.typ == ctrlACK && len(p.body) == 4 {
				n++
				last = seq.Num(uint32(p.body[0])<<24 | uint32(p.body[1])<<16 | uint32(p.body[2])<<8 | uint32(p.body[3]))
			}
		}
	}

	deliver(10*lightACKEvery, false)
	n, last := lightACKs()
	require.Equal(t, 10, n, "one light ACK each %d packets read one at a time", lightACKEvery)
	require.Equal(t, next, last)

	deliver(10*lightACKEvery+5, true)
	n, last = lightACKs()
	require.Equal(t, 1, n, "one light ACK for a batch of %d packets", 10*lightACKEvery+5)
	require.Equal(t, next, last, "the light ACK after the batch acknowledges all of it")
	require.Empty(t, m.lightOwed)

	// A batch under the count owes nothing; the count goes on across
	// batches, as it does across single reads.
	deliver(lightACKEvery-10, true)
	n, _ = lightACKs()
	require.Zero(t, n)
	deliver(20, true)
	n, last = lightACKs()
	require.Equal(t, 1, n)
	require.Equal(t, next, last)

	// A full ACK sent during the batch settles what the batch owed.
	m.batching = true
	body := make([]byte, c.payload)
	for range 2 * lightACKEvery {
		p := packet{seq: next, msg: 1, pos: posSolo, dst: c.id, body: body}
		next = next.Inc()
		m.dispatch(append(p.appendHeader(nil), body...), peer, time.Time{}, nil)
	}
	m.flushRun()
	c.mu.Lock()
	c.sendACKLocked(time.Now(), &m.rcvOut)
	c.mu.Unlock()
	c.flush(&m.rcvOut)
	m.sendLightACKs()
	n, _ = lightACKs()
	require.Zero(t, n, "no light ACK after the full ACK")
}
