package integrationtests

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// seqMeter counts, from the IPv4 packets a TUN path delivers in one
// direction, the payload bytes of new data: TCP bytes and UDT data packets
// beyond the highest sequence number their flow delivered before, so that
// retransmissions and duplicates do not count, but data that overtook a
// loss does; a UDT packet's sequence jump counts the packets it skipped as
// full ones. It tells TCP from UDT (over UDP) and follows each flow on its
// own: a TCP flow by its addresses and ports, a UDT flow by those and the
// destination socket ID. Every connection starts from a random initial
// number (libudt's anywhere in 0…2³¹−1, wrapping to 0 after 2³¹−1), so one
// flow's numbers say nothing about another's.
//
// A UDT data packet more than udtMaxJump ahead of its flow's highest
// number, or behind it, is a stray: it counts nothing and moves nothing. If
// udtRelearn strays come in a row, each within udtMaxJump of the highest
// before it, the number learnt was the stray one (a first packet far ahead
// of the flow, say) and the flow is learnt again from them; of that run
// only the last packet counts. UDT control packets, TCP packets without
// data, IP fragments and other protocols count nothing.
//
// A seqMeter is safe for concurrent use; the zero value is ready to use.
type seqMeter struct {
	tcp, udt atomic.Uint64 // new payload bytes; any goroutine

	mu    sync.Mutex
	flows map[meterKey]*meterFlow // guarded by mu
	order []*meterFlow            // the flows in the order first seen; guarded by mu
	total meterCounts             // every packet; guarded by mu
}

// udtHeader is the size of a UDT packet header; ipProtoTCP and ipProtoUDP
// are the IPv4 protocol numbers.
const (
	udtHeader  = 16
	ipProtoTCP = 6
	ipProtoUDP = 17
)

// udtMaxJump is the farthest a UDT data packet can lie ahead of or behind
// its flow's highest number and still be of the flow: a sender has at most
// its flow window of packets unacknowledged, at most 25,600 by default in
// libudt and in ours, so a jump (the packets lost before it) or a
// retransmission lies within that; 2¹⁶ leaves room. A stray within it
// cannot be told from the flow's own packets. udtRelearn is how many strays in a row
// make the meter learn the flow again.
const (
	udtMaxJump = 1 << 16
	udtRelearn = 16
)

// meterFirst is how many of a flow's first sequence numbers the meter keeps
// to describe it.
const meterFirst = 4

// meterKey tells flows apart.
type meterKey struct {
	proto    byte
	src, dst netip.AddrPort
	socket   uint32 // UDT destination socket ID; 0 for TCP
}

// meterCounts counts packets by what the meter made of them.
type meterCounts struct {
	fresh   uint64 // carried new data
	old     uint64 // carried data delivered before: retransmissions, duplicates
	stray   uint64 // UDT data too far from its flow's highest number (see seqMeter)
	control uint64 // UDT control packets and TCP packets without data
	other   uint64 // fragments, truncated packets, other protocols
}

func (c meterCounts) add(d meterCounts) meterCounts {
	return meterCounts{c.fresh + d.fresh, c.old + d.old, c.stray + d.stray, c.control + d.control, c.other + d.other}
}

func (c meterCounts) sub(d meterCounts) meterCounts {
	return meterCounts{c.fresh - d.fresh, c.old - d.old, c.stray - d.stray, c.control - d.control, c.other - d.other}
}

func (c meterCounts) String() string {
	return fmt.Sprintf("%d new, %d old, %d stray, %d control, %d other packets", c.fresh, c.old, c.stray, c.control, c.other)
}

// meterFlow is what the meter learnt of one flow; its meter's mu guards it.
type meterFlow struct {
	key      meterKey
	first    []uint32    // its first sequence numbers (TCP: ends of data), up to meterFirst
	high     uint32      // the highest sequence number (TCP: end of data) delivered
	last     uint32      // the latest one
	full     int         // the largest UDT payload
	counts   meterCounts // its packets; control and other are always 0
	relearnt int         // times learnt again from strays
	run      int         // strays in a row, each near the highest before it
	runHigh  uint32      // the highest of that run
}

// observe is the path's Observe function.
func (m *seqMeter) observe(pkt []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total = m.total.add(m.observeLocked(pkt))
}

// observeLocked counts one packet and returns what it made of it.
func (m *seqMeter) observeLocked(pkt []byte) meterCounts {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return meterCounts{other: 1}
	}
	ihl, total := int(pkt[0]&15)*4, int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < 20 || total < ihl || total > len(pkt) {
		return meterCounts{other: 1}
	}
	if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
		// A fragment (more fragments, or an offset): its bytes past the
		// IP header need not be a transport header.
		return meterCounts{other: 1}
	}
	src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	body := pkt[ihl:total]
	port := func(i int) uint16 { return binary.BigEndian.Uint16(body[i:]) }
	switch pkt[9] {
	case ipProtoTCP:
		if len(body) < 20 {
			return meterCounts{other: 1}
		}
		off := int(body[12]>>4) * 4
		if off < 20 || off > len(body) {
			return meterCounts{other: 1}
		}
		n := len(body) - off
		if n == 0 {
			return meterCounts{control: 1}
		}
		f := m.flowLocked(meterKey{proto: ipProtoTCP, src: netip.AddrPortFrom(src, port(0)), dst: netip.AddrPortFrom(dst, port(2))})
		b, c := f.tcpData(binary.BigEndian.Uint32(body[4:])+uint32(n), n)
		m.tcp.Add(b)
		return c
	case ipProtoUDP:
		if len(body) < 8+udtHeader || int(port(4)) != len(body) {
			return meterCounts{other: 1}
		}
		h := binary.BigEndian.Uint32(body[8:])
		if h>>31 != 0 {
			return meterCounts{control: 1}
		}
		f := m.flowLocked(meterKey{proto: ipProtoUDP, src: netip.AddrPortFrom(src, port(0)), dst: netip.AddrPortFrom(dst, port(2)),
			socket: binary.BigEndian.Uint32(body[8+12:])})
		b, c := f.udtData(h, len(body)-8-udtHeader)
		m.udt.Add(b)
		return c
	}
	return meterCounts{other: 1}
}

// flowLocked returns the flow of key, new if it has none.
func (m *seqMeter) flowLocked(key meterKey) *meterFlow {
	if f := m.flows[key]; f != nil {
		return f
	}
	if m.flows == nil {
		m.flows = map[meterKey]*meterFlow{}
	}
	f := &meterFlow{key: key}
	m.flows[key] = f
	m.order = append(m.order, f)
	return f
}

// see records seq as the flow's latest sequence number and returns whether
// it is the flow's first.
func (f *meterFlow) see(seq uint32) (first bool) {
	first = len(f.first) == 0
	if len(f.first) < meterFirst {
		f.first = append(f.first, seq)
	}
	f.last = seq
	return first
}

// tcpData counts a TCP segment of n payload bytes ending at end and returns
// the new bytes it carried.
func (f *meterFlow) tcpData(end uint32, n int) (uint64, meterCounts) {
	if f.see(end) {
		f.high = end
		f.counts.fresh++
		return uint64(n), meterCounts{fresh: 1}
	}
	if d := int32(end - f.high); d > 0 {
		f.high = end
		f.counts.fresh++
		return uint64(d), meterCounts{fresh: 1}
	}
	f.counts.old++
	return 0, meterCounts{old: 1}
}

// seqDist is the distance from b to a in 31-bit sequence numbers, across
// wrap: positive if a is ahead of b.
func seqDist(a, b uint32) int32 { return int32((a-b)<<1) >> 1 }

// udtData counts a UDT data packet with sequence number seq and n payload
// bytes, and returns the new bytes it carried.
func (f *meterFlow) udtData(seq uint32, n int) (uint64, meterCounts) {
	f.full = max(f.full, n)
	if f.see(seq) {
		f.high = seq
		f.counts.fresh++
		return uint64(n), meterCounts{fresh: 1}
	}
	d := seqDist(seq, f.high)
	if d > udtMaxJump || d < -udtMaxJump {
		if r := seqDist(seq, f.runHigh); f.run > 0 && r <= udtMaxJump && r >= -udtMaxJump {
			f.run++
			if r > 0 {
				f.runHigh = seq
			}
		} else {
			f.run, f.runHigh = 1, seq
		}
		if f.run < udtRelearn {
			f.counts.stray++
			return 0, meterCounts{stray: 1}
		}
		f.high, f.run = f.runHigh, 0
		f.relearnt++
		f.counts.fresh++
		return uint64(n), meterCounts{fresh: 1}
	}
	f.run = 0
	if d > 0 {
		f.high = seq
		f.counts.fresh++
		return uint64(d-1)*uint64(f.full) + uint64(n), meterCounts{fresh: 1}
	}
	f.counts.old++
	return 0, meterCounts{old: 1}
}

// counts returns the counts of every packet observed so far.
func (m *seqMeter) counts() meterCounts {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// String describes every packet observed so far and, flow by flow, its
// first sequence numbers, highest and latest, and its packets.
func (m *seqMeter) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%v in all, %d flows", m.total, len(m.order))
	const most = 8
	for i, f := range m.order {
		if i == most {
			fmt.Fprintf(&b, "; %d more flows", len(m.order)-most)
			break
		}
		proto := "TCP"
		if f.key.proto == ipProtoUDP {
			proto = fmt.Sprintf("UDT to socket %d", f.key.socket)
		}
		fmt.Fprintf(&b, "; %s %v → %v: first %v, highest %d, latest %d, %d new, %d old, %d stray",
			proto, f.key.src, f.key.dst, f.first, f.high, f.last, f.counts.fresh, f.counts.old, f.counts.stray)
		if f.relearnt > 0 {
			fmt.Fprintf(&b, ", learnt again %d times", f.relearnt)
		}
	}
	return b.String()
}

// meterPackets builds the IPv4 packets of TestSeqMeter.
type meterPackets struct{}

// ip returns an IPv4 packet from 10.0.0.1 to 10.0.0.2 carrying body, with
// bytes past its length (which the meter ignores).
func (meterPackets) ip(proto byte, body []byte) []byte {
	p := make([]byte, 20, 20+len(body)+4)
	p[0], p[9] = 0x45, proto
	binary.BigEndian.PutUint16(p[2:], uint16(20+len(body)))
	copy(p[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	return append(append(p, body...), 0, 0, 0, 0)
}

// tcp returns a segment of port 1000 to 2000 whose n payload bytes start at
// seq; port moves the source port, making another flow.
func (mp meterPackets) tcp(seq uint32, n int, port uint16) []byte {
	b := make([]byte, 32+n) // a 32-byte header: timestamps
	binary.BigEndian.PutUint16(b[0:], 1000+port)
	binary.BigEndian.PutUint16(b[2:], 2000)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 8 << 4
	return mp.ip(ipProtoTCP, b)
}

// udp returns a datagram of port 1000+port to 2000 carrying payload.
func (mp meterPackets) udp(port uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], 1000+port)
	binary.BigEndian.PutUint16(b[2:], 2000)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return mp.ip(ipProtoUDP, append(b, payload...))
}

// data returns a UDT data packet of port 1000+port to socket with
// sequence number seq and n payload bytes.
func (mp meterPackets) data(port uint16, socket, seq uint32, n int) []byte {
	b := make([]byte, udtHeader+n)
	binary.BigEndian.PutUint32(b[0:], seq)
	binary.BigEndian.PutUint32(b[12:], socket)
	return mp.udp(port, b)
}

// TestSeqMeter: new data counts once, retransmissions and duplicates not,
// data past a hole counts the hole, across sequence wrap; UDT control
// packets, fragments and other protocols count nothing.
func TestSeqMeter(t *testing.T) {
	var mp meterPackets
	ctrl := mp.udp(0, []byte{0x80, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 4})
	fragment := mp.data(0, 7, 5, 1000)
	binary.BigEndian.PutUint16(fragment[6:], 0x2000) // more fragments
	const full = 1456
	m := &seqMeter{}
	for _, c := range []struct {
		name     string
		pkt      []byte
		tcp, udt uint64 // counts after the packet
	}{
		{"tcp first", mp.tcp(1<<32-150, 100, 0), 100, 0},
		{"tcp next, across the wrap", mp.tcp(1<<32-50, 100, 0), 200, 0},
		{"tcp retransmission", mp.tcp(1<<32-150, 100, 0), 200, 0},
		{"tcp pure ACK", mp.tcp(50, 0, 0), 200, 0},
		{"tcp past a hole", mp.tcp(150, 100, 0), 400, 0},
		{"tcp hole filled", mp.tcp(50, 100, 0), 400, 0},
		{"tcp retransmission with new data", mp.tcp(200, 100, 0), 450, 0},
		{"udt first", mp.data(0, 7, 1<<31-2, full), 450, full},
		{"udt next", mp.data(0, 7, 1<<31-1, full), 450, 2 * full},
		{"udt control", ctrl, 450, 2 * full},
		{"udt duplicate", mp.data(0, 7, 1<<31-1, full), 450, 2 * full},
		{"udt past a hole of two, across the wrap", mp.data(0, 7, 2, 1000), 450, 4*full + 1000},
		{"udt hole filled", mp.data(0, 7, 0, full), 450, 4*full + 1000},
		{"udt old", mp.data(0, 7, 1<<31-2, full), 450, 4*full + 1000},
		{"udt fragment", fragment, 450, 4*full + 1000},
		{"icmp", mp.ip(1, make([]byte, 64)), 450, 4*full + 1000},
		{"truncated", mp.tcp(400, 100, 0)[:30], 450, 4*full + 1000},
	} {
		m.observe(c.pkt)
		require.Equal(t, c.tcp, m.tcp.Load(), "%s: TCP bytes", c.name)
		require.Equal(t, c.udt, m.udt.Load(), "%s: UDT bytes", c.name)
	}
	require.Equal(t, meterCounts{fresh: 7, old: 5, control: 2, other: 3}, m.counts(), "%v", m)
}

// TestSeqMeterCountsEveryFlow: whatever comes first or alongside, a flow
// that sends new data is counted, packet by packet, once it has been
// learnt; each case failed on the meter that judged every UDT packet
// against one highest number and read fragments as headers.
func TestSeqMeterCountsEveryFlow(t *testing.T) {
	var mp meterPackets
	const full = 1456
	// flow returns k packets of socket 7 from seq on.
	flow := func(seq uint32, k int) [][]byte {
		var ps [][]byte
		for i := range k {
			ps = append(ps, mp.data(0, 7, (seq+uint32(i))&(1<<31-1), full))
		}
		return ps
	}
	fragmentAhead := mp.data(0, 7, 1<<30-1000, full) // what a non-first fragment's payload might read as
	binary.BigEndian.PutUint16(fragmentAhead[6:], 185)
	for _, c := range []struct {
		name   string
		before [][]byte // packets before the flow's
		isn    uint32   // the flow's first sequence number
		learn  int      // of the flow's packets, how many may count nothing
	}{
		{"initial number 0", nil, 0, 0},
		{"initial number 2^31-1, wrapping at once", nil, 1<<31 - 1, 0},
		{"initial number 2^31-100, wrapping", nil, 1<<31 - 100, 0},
		{"initial number 2^30, half the range", nil, 1 << 30, 0},
		{"a stray first packet far ahead", [][]byte{mp.data(0, 7, 1<<30-5, full)}, 1000, udtRelearn - 1},
		{"a stray first packet far ahead, across the wrap", [][]byte{mp.data(0, 7, 1<<29-50, full)}, 1<<31 - 50, udtRelearn - 1},
		{"a stray first packet just under half the range ahead", [][]byte{mp.data(0, 7, 1000+1<<30-1, full)}, 1000, udtRelearn - 1},
		{"a stray first packet far behind", [][]byte{mp.data(0, 7, 1<<31+1000-1<<20, full)}, 1000, udtRelearn - 1},
		{"an earlier connection's data on the same path, ahead", [][]byte{mp.data(0, 9, 5000, full), mp.data(0, 9, 5001, full)}, 1000, 0},
		{"an earlier connection's data from another port, ahead", [][]byte{mp.data(1, 7, 1<<30, full)}, 1<<30 - 7000, 0},
		{"a fragment reading as a number far ahead", [][]byte{fragmentAhead}, 1000, 0},
		{"control packets first", [][]byte{mp.udp(0, []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})}, 1000, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &seqMeter{}
			for _, p := range c.before {
				m.observe(p)
			}
			ps := flow(c.isn, 100)
			for i, p := range ps {
				b := m.udt.Load()
				m.observe(p)
				if i >= c.learn {
					require.Greater(t, m.udt.Load(), b, "packet %d of the flow (%d) counted nothing; %v", i, (c.isn+uint32(i))&(1<<31-1), m)
				}
			}
			require.LessOrEqual(t, m.udt.Load(), uint64(len(c.before)+len(ps))*full, "more than was sent; %v", m)
			// Then a retransmission of each: nothing new.
			b := m.udt.Load()
			for _, p := range ps {
				m.observe(p)
			}
			require.Equal(t, b, m.udt.Load(), "retransmissions counted; %v", m)
		})
	}
}

// TestSeqMeterTCPFlowsApart: two TCP connections, each from its own
// initial number, are each counted.
func TestSeqMeterTCPFlowsApart(t *testing.T) {
	var mp meterPackets
	m := &seqMeter{}
	m.observe(mp.tcp(1<<31, 1000, 0))
	for i := range uint32(10) {
		m.observe(mp.tcp(1000+1000*i, 1000, 1)) // 2^31 behind the first: old to one shared number
		m.observe(mp.tcp(1<<31+1000+1000*i, 1000, 0))
	}
	require.Equal(t, uint64(21000), m.tcp.Load(), "%v", m)
}
