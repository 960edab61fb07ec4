package udt

import (
	"encoding/binary"
	"net"
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
// ackPath is a multiplexer whose receive worker is the test, with one
// established connection, its peer the pipe's other end, which the test
// reads to see the ACKs the connection sends.
type ackPath struct {
	t    *testing.T
	m    *multiplexer
	c    *Conn
	peer netip.AddrPort
	b    net.PacketConn
	next seq.Num // the next data packet's sequence number
}

func newACKPath(t *testing.T) *ackPath {
	a, b := netsim.NewPacketPipe(netsim.LinkConfig{}, netsim.LinkConfig{}, 1)
	t.Cleanup(func() { a.Close(); b.Close() })
	m := newMultiplexer(netPacketConn{c: a})
	cfg, err := Config{ReceiveBuffer: 4096, FlowWindow: 4096}.withDefaults()
	require.NoError(t, err)
	peer := netip.MustParseAddrPort(b.LocalAddr().String())
	c := newConn(m, cfg, peer)
	const isn = seq.Num(1000)
	c.mu.Lock()
	c.establishLocked(time.Now(), 77, DefaultMSS, 4096, 1000, isn)
	// No full ACK on the timer: only those the data asks for.
	c.cc.ackPeriod = time.Hour
	c.rcv.nextACK = time.Now().Add(time.Hour)
	c.mu.Unlock()
	m.socks[c.id] = c
	m.runPending()
	return &ackPath{t: t, m: m, c: c, peer: peer, b: b, next: isn}
}

// deliver dispatches n data packets of size bytes as the receive worker
// would: in one batch read if batch, else one read each.
func (p *ackPath) deliver(n, size int, batch bool) {
	p.m.batching = batch
	body := make([]byte, size)
	for range n {
		d := packet{seq: p.next, msg: 1, pos: posSolo, dst: p.c.id, body: body}
		p.next = p.next.Inc()
		p.m.dispatch(append(d.appendHeader(nil), body...), p.peer, time.Time{}, nil)
		if !batch {
			p.m.flushRun()
		}
	}
	p.m.flushRun()
	p.m.sendOwedACKs()
}

// acks reads what the connection sent and counts the light and the full
// (or short) ACKs, and returns the last ACK number.
func (p *ackPath) acks() (light, full int, last seq.Num) {
	buf := make([]byte, maxDatagram)
	for {
		require.NoError(p.t, p.b.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		k, _, err := p.b.ReadFrom(buf)
		if err != nil {
			return light, full, last
		}
		pk, err := parsePacket(buf[:k])
		require.NoError(p.t, err)
		if !pk.control || pk.typ != ctrlACK {
			continue
		}
		if len(pk.body) == 4 {
			light++
		} else {
			full++
		}
		last = seq.Num(binary.BigEndian.Uint32(pk.body))
	}
}

func TestLightACKOncePerBatch(t *testing.T) {
	p := newACKPath(t)
	m, c := p.m, p.c
	lightACKs := func() (int, seq.Num) {
		light, full, last := p.acks()
		require.Zero(t, full)
		return light, last
	}
	deliver := func(n int, batch bool) { p.deliver(n, c.payload, batch) }

	deliver(10*lightACKEvery, false)
	n, last := lightACKs()
	require.Equal(t, 10, n, "one light ACK each %d packets read one at a time", lightACKEvery)
	require.Equal(t, p.next, last)

	deliver(10*lightACKEvery+5, true)
	n, last = lightACKs()
	require.Equal(t, 1, n, "one light ACK for a batch of %d packets", 10*lightACKEvery+5)
	require.Equal(t, p.next, last, "the light ACK after the batch acknowledges all of it")
	require.Empty(t, m.acksOwed)

	// A batch under the count owes nothing; the count goes on across
	// batches, as it does across single reads.
	deliver(lightACKEvery-10, true)
	n, _ = lightACKs()
	require.Zero(t, n)
	deliver(20, true)
	n, last = lightACKs()
	require.Equal(t, 1, n)
	require.Equal(t, p.next, last)

	// A full ACK sent during the batch settles what the batch owed.
	m.batching = true
	body := make([]byte, c.payload)
	for range 2 * lightACKEvery {
		d := packet{seq: p.next, msg: 1, pos: posSolo, dst: c.id, body: body}
		p.next = p.next.Inc()
		m.dispatch(append(d.appendHeader(nil), body...), p.peer, time.Time{}, nil)
	}
	m.flushRun()
	c.mu.Lock()
	c.sendACKLocked(time.Now(), &m.rcvOut)
	c.mu.Unlock()
	c.flush(&m.rcvOut)
	m.sendOwedACKs()
	light, full, _ := p.acks()
	require.Zero(t, light, "no light ACK after the full ACK")
	require.Equal(t, 1, full)
}

// TestShortPacketACKOncePerBatch: a short data packet (a message's end)
// asks for an ACK at once; read one at a time each gets its own, read in
// one batch they get one, after it.
func TestShortPacketACKOncePerBatch(t *testing.T) {
	p := newACKPath(t)
	const n = 3 * runMax
	p.deliver(10, 1024, false)
	light, full, last := p.acks()
	require.Zero(t, light)
	require.Equal(t, 10, full, "an ACK for each short packet read alone")
	require.Equal(t, p.next, last)

	p.deliver(n, 1024, true)
	light, full, last = p.acks()
	require.Zero(t, light, "the full ACK stands for the light ones")
	require.Equal(t, 1, full, "one ACK for %d short packets read in one batch", n)
	require.Equal(t, p.next, last)
	require.Empty(t, p.m.acksOwed)
}
