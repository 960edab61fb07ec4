package netsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// A reference TCP flow: one bulk sender and its receiver, each on its own
// net.PacketConn, with TCP's congestion control and loss recovery but none
// of its byte stream, handshake or flow control. It uses only goroutines,
// channels, timers and time.Now, so over a pipe (NewPacketPipe, SharePipe)
// in a testing/synctest bubble it runs in virtual time beside a UDT flow.
//
//	sender goroutine (tcp_send.go)                   receiver goroutine (tcp_recv.go)
//	  cwnd, scoreboard, RTO     -- data segments -->   in-order delivery, out-of-order store
//	  ReadFrom(ACK) / deadline  <-- ACK + SACK -----   ReadFrom(data) / delayed-ACK deadline
//
// Each side owns its state and its PacketConn; the read deadline is its
// one timer, which on the sender also paces a BBR flow. Congestion control
// is in tcp_cc.go (CUBIC, NewReno, HyStart++) and tcp_bbr.go (BBR v1).

// Defaults of [TCPConfig].
const (
	DefaultTCPSegment       = 1472 // UDP payload bytes, as a full UDT packet with MSS 1500
	DefaultTCPHeader        = 52   // IPv4 and TCP headers with the timestamp option
	DefaultTCPInitialWindow = 10
	DefaultTCPMinRTO        = 200 * time.Millisecond
	DefaultTCPMaxWindow     = 1 << 16
	DefaultTCPDelayedACK    = 40 * time.Millisecond
)

// tcpMaxRTO caps the backed-off retransmission timeout.
const tcpMaxRTO = 60 * time.Second

// TCPConfig configures a flow from [StartTCP]. The zero value is a CUBIC
// flow with the defaults below, calibrated against Linux (see
// TestTCPCalibration).
type TCPConfig struct {
	// CC is the congestion control: "cubic" (RFC 9438), "reno" (NewReno,
	// RFC 5681) or "bbr" (BBR v1 as Linux's tcp_bbr.c, which paces its
	// segments and does not take loss as a signal to slow down; it needs
	// SACK). If empty, "cubic".
	CC string
	// Segment is the size of each data segment's datagram in bytes. If
	// zero, [DefaultTCPSegment], the same on the wire as a full UDT packet
	// with MSS 1500 (and, over a [TunPath], as a 1500-byte TCP packet).
	Segment int
	// Header is the part of each data segment that stands for TCP/IP
	// headers and is not counted as delivered payload. If zero,
	// [DefaultTCPHeader]; it must be at least 24 bytes, the flow's own
	// header, and leave at least 8 bytes of payload.
	Header int
	// InitialWindow is the initial congestion window in segments. If zero,
	// [DefaultTCPInitialWindow].
	InitialWindow int
	// MinRTO is the least retransmission timeout. If zero,
	// [DefaultTCPMinRTO], Linux's.
	MinRTO time.Duration
	// MaxWindow is the receive window in segments, the most the sender
	// keeps outstanding. If zero, [DefaultTCPMaxWindow], more than a
	// netsim link holds, so it never binds; it bounds the memory of both
	// ends.
	MaxWindow int
	// DelayedACK is how long the receiver may hold back the ACK of a
	// single in-order segment; it acknowledges every second one at once,
	// and at once anything out of order, a duplicate, a segment that
	// fills a hole, and (as Linux does) each of the first 16 segments. If
	// zero, [DefaultTCPDelayedACK]; negative acknowledges every segment
	// at once.
	DelayedACK time.Duration
	// NoSACK turns selective acknowledgments off: the sender recovers as
	// NewReno does (RFC 6582), one hole per round trip, with the timeout
	// left running from the first partial ACK (the Impatient variant) to
	// resend the rest of a large loss. With SACK (the default) the
	// receiver reports up to three blocks, and the sender keeps a
	// scoreboard, marks a segment lost once three segments above it are
	// SACKed or, in recovery, once a segment sent after it is (RACK, RFC
	// 8985, without a reordering window: reordering passes for loss),
	// retransmits holes before new data and paces recovery by PRR (RFC
	// 6937), as Linux does.
	NoSACK bool
	// NoHyStart turns off HyStart++ (RFC 9406) in the initial slow start
	// of a cubic flow. A reno or bbr flow never uses it.
	NoHyStart bool
	// Seed seeds the flow's random choices, which only BBR makes: the
	// phase its gain cycle starts from each time it enters PROBE_BW. Two
	// flows with the same seed choose alike; the zero value is a seed.
	Seed uint64
}

// withDefaults returns c with its zero fields set, or an error naming a
// bad field.
func (c TCPConfig) withDefaults() (TCPConfig, error) {
	switch c.CC {
	case "":
		c.CC = "cubic"
	case "cubic", "reno":
	case "bbr":
		if c.NoSACK {
			return c, fmt.Errorf("netsim: TCPConfig.NoSACK is not supported with CC %q", c.CC)
		}
	default:
		return c, fmt.Errorf("netsim: TCPConfig.CC %q is not cubic, reno or bbr", c.CC)
	}
	if c.Segment == 0 {
		c.Segment = DefaultTCPSegment
	}
	if c.Header == 0 {
		c.Header = DefaultTCPHeader
	}
	if c.InitialWindow == 0 {
		c.InitialWindow = DefaultTCPInitialWindow
	}
	if c.MinRTO == 0 {
		c.MinRTO = DefaultTCPMinRTO
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = DefaultTCPMaxWindow
	}
	if c.DelayedACK == 0 {
		c.DelayedACK = DefaultTCPDelayedACK
	}
	switch {
	case c.Segment < 0 || c.Segment > maxDatagram:
		return c, fmt.Errorf("netsim: TCPConfig.Segment %d is outside [1, %d]", c.Segment, maxDatagram)
	case c.Header < tcpHeaderLen || c.Header > c.Segment-8:
		return c, fmt.Errorf("netsim: TCPConfig.Header %d is outside [%d, Segment %d − 8]", c.Header, tcpHeaderLen, c.Segment)
	case c.InitialWindow < 1:
		return c, fmt.Errorf("netsim: TCPConfig.InitialWindow %d is below 1", c.InitialWindow)
	case c.MinRTO < 0:
		return c, fmt.Errorf("netsim: TCPConfig.MinRTO %v is negative", c.MinRTO)
	case c.MaxWindow < 2 || c.MaxWindow > 1<<24:
		return c, fmt.Errorf("netsim: TCPConfig.MaxWindow %d is outside [2, %d]", c.MaxWindow, 1<<24)
	}
	return c, nil
}

// payload is the number of payload bytes in each data segment.
func (c *TCPConfig) payload() int { return c.Segment - c.Header }

// TCPStats counts what a [TCPFlow] did since it started, and its sender's
// state at the time.
type TCPStats struct {
	Sent           uint64 // data segments sent, retransmissions included
	Retransmitted  uint64 // data segments sent again
	FastRecoveries uint64 // loss recoveries entered on duplicate ACKs or SACKs
	Timeouts       uint64 // retransmission timeouts
	ACKs           uint64 // ACKs the receiver sent
	Delivered      int64  // payload bytes delivered in order to the receiving application
	BadPayload     uint64 // delivered segments whose payload was not the expected stream (always 0 unless broken)

	Cwnd     float64       // congestion window in segments
	Ssthresh float64       // slow start threshold in segments; +Inf until the first loss or HyStart++ exit (bbr: until STARTUP ends)
	InFlight int           // segments the sender counts in the network
	SRTT     time.Duration // smoothed round-trip time
	MinRTT   time.Duration // least round-trip time seen
	RTO      time.Duration // retransmission timeout, backoff included

	// BBR only; zero for cubic and reno.
	PacingRate float64 // segments per second the sender paces at
	Bandwidth  float64 // bottleneck bandwidth estimate in segments per second
	BBRMode    string  // "startup", "drain", "probe_bw" or "probe_rtt"
	ProbeRTTs  uint64  // times it entered PROBE_RTT
}

// TCPFlow is a bulk TCP-like flow from [StartTCP]. Its methods are safe for
// concurrent use.
type TCPFlow struct {
	snd *tcpSender
	rcv *tcpReceiver

	wg        sync.WaitGroup
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // guarded by errMu; first failure of a side
}

// StartTCP starts a bulk flow that sends from snd to rcv's address
// (rcv.LocalAddr(), which snd must be able to reach) without end, until
// [TCPFlow.Close]; the receiver acknowledges to the address the data came
// from. The flow takes over snd and rcv: it reads from both, and Close
// closes them. Datagrams that are not this flow's segments or ACKs (a
// flow has a random identifier, and every datagram a checksum) are
// ignored.
//
// Over ends of [NewPacketPipe] or [SharePipe] created in a
// [testing/synctest] bubble, the flow runs in the bubble's virtual time;
// it must then be started and closed inside the bubble.
func StartTCP(snd, rcv net.PacketConn, cfg TCPConfig) (*TCPFlow, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	id := rand.Uint32()
	f := &TCPFlow{
		snd: newTCPSender(snd, rcv.LocalAddr(), id, cfg),
		rcv: newTCPReceiver(rcv, id, cfg),
	}
	f.wg.Go(func() { f.fail(f.snd.run()) })
	f.wg.Go(func() { f.fail(f.rcv.run()) })
	return f, nil
}

func (f *TCPFlow) fail(err error) {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return
	}
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// Delivered returns the payload bytes delivered so far in order to the
// receiving application.
func (f *TCPFlow) Delivered() int64 { return f.rcv.delivered.Load() }

// Stats returns the flow's counters and its sender's state.
func (f *TCPFlow) Stats() TCPStats {
	st := f.snd.snapshot()
	st.ACKs = f.rcv.acks.Load()
	st.Delivered = f.rcv.delivered.Load()
	st.BadPayload = f.rcv.bad.Load()
	return st
}

// Close stops the flow: it closes both PacketConns and returns once the
// sender and receiver have ended, with the error that stopped either
// early, if any. Later calls return the same.
func (f *TCPFlow) Close() error {
	f.closeOnce.Do(func() {
		f.fail(f.snd.conn.Close())
		f.fail(f.rcv.conn.Close())
		f.wg.Wait()
	})
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return f.err
}

// Wire format. Every datagram starts with the same 24 bytes:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       magic "nTCP"                            |
//	+---------------+---------------+-------------------------------+
//	|  kind (1, 2)  | SACK blocks   |            zero               |
//	+---------------+---------------+-------------------------------+
//	|                        flow identifier                        |
//	+---------------------------------------------------------------+
//	|          CRC-32C of the datagram but these four bytes         |
//	+---------------------------------------------------------------+
//	|        sequence number (data) or cumulative ACK (ACK)         |
//	|                          (64 bits)                            |
//	+---------------------------------------------------------------+
//
// A data segment (kind 1) is Segment bytes: the header, zeros up to
// Header, then payload: the stream's bytes from offset sequence×payload,
// which start with that offset (see streamFill). An ACK (kind 2) names the next segment expected, then
// up to tcpMaxSACK blocks, each the 64-bit first and one-past-last
// sequence numbers of a run of segments received above it, the block with
// the latest arrival first (RFC 2018). Sequence numbers count segments.
const (
	tcpHeaderLen = 24
	tcpMagic     = 0x6e544350 // "nTCP"
	tcpKindData  = 1
	tcpKindACK   = 2
	tcpMaxSACK   = 3 // as many as fit beside TCP timestamps
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// tcpSum returns the checksum of datagram b, skipping its checksum field.
func tcpSum(b []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, b[:12]), castagnoli, b[16:])
}

// putTCPHeader writes the common header into b and returns b.
func putTCPHeader(b []byte, kind, blocks byte, id uint32, n uint64) {
	binary.BigEndian.PutUint32(b, tcpMagic)
	b[4], b[5], b[6], b[7] = kind, blocks, 0, 0
	binary.BigEndian.PutUint32(b[8:], id)
	binary.BigEndian.PutUint64(b[16:], n)
}

// sealTCP sets the checksum of datagram b.
func sealTCP(b []byte) { binary.BigEndian.PutUint32(b[12:], tcpSum(b)) }

// parseTCP checks the common header of datagram b for flow id and returns
// its kind and number, or false if b is not one of the flow's datagrams.
func parseTCP(b []byte, id uint32) (kind, blocks byte, n uint64, ok bool) {
	if len(b) < tcpHeaderLen || binary.BigEndian.Uint32(b) != tcpMagic ||
		binary.BigEndian.Uint32(b[8:]) != id || binary.BigEndian.Uint32(b[12:]) != tcpSum(b) {
		return 0, 0, 0, false
	}
	return b[4], b[5], binary.BigEndian.Uint64(b[16:]), true
}

// sackBlock is a run [start, end) of segments received out of order.
type sackBlock struct{ start, end uint64 }

// tcpACK is a parsed ACK.
type tcpACK struct {
	ack    uint64 // next segment expected
	n      int    // blocks used
	blocks [tcpMaxSACK]sackBlock
}

// appendACK appends the encoding of a to b, for flow id.
func (a *tcpACK) append(b []byte, id uint32) []byte {
	start := len(b)
	b = append(b, make([]byte, tcpHeaderLen+16*a.n)...)
	d := b[start:]
	putTCPHeader(d, tcpKindACK, byte(a.n), id, a.ack)
	for i, blk := range a.blocks[:a.n] {
		binary.BigEndian.PutUint64(d[tcpHeaderLen+16*i:], blk.start)
		binary.BigEndian.PutUint64(d[tcpHeaderLen+16*i+8:], blk.end)
	}
	sealTCP(d)
	return b
}

// parseACK decodes an ACK of flow id, or returns false.
func parseACK(b []byte, id uint32) (tcpACK, bool) {
	var a tcpACK
	kind, n, ack, ok := parseTCP(b, id)
	if !ok || kind != tcpKindACK || int(n) > tcpMaxSACK || len(b) != tcpHeaderLen+16*int(n) {
		return a, false
	}
	a.ack, a.n = ack, int(n)
	for i := range a.n {
		s := binary.BigEndian.Uint64(b[tcpHeaderLen+16*i:])
		e := binary.BigEndian.Uint64(b[tcpHeaderLen+16*i+8:])
		if s <= ack || e <= s {
			return a, false
		}
		a.blocks[i] = sackBlock{s, e}
	}
	return a, true
}

// streamPeriod is the period of the stream's filler, a prime, so that
// segments of any size fall on it at shifting phases.
const streamPeriod = 65521

// streamFiller returns two periods of the stream's filler bytes, so that
// any run of up to streamPeriod bytes from any phase is one slice.
var streamFiller = sync.OnceValue(func() []byte {
	b := make([]byte, 2*streamPeriod)
	x := uint32(2463534242)
	for i := range streamPeriod {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x >> 24)
	}
	copy(b[streamPeriod:], b[:streamPeriod])
	return b
})

// streamFill writes into payload p the stream's bytes from offset off: the
// offset itself (8 bytes, big-endian), then the filler from phase off+8.
// p holds at least 8 bytes.
func streamFill(p []byte, off uint64) {
	binary.BigEndian.PutUint64(p, off)
	fill := streamFiller()
	for i, ph := 8, int((off+8)%streamPeriod); i < len(p); {
		n := copy(p[i:], fill[ph:ph+streamPeriod])
		i, ph = i+n, 0
	}
}

// streamCheck reports whether p holds the stream's bytes from offset off.
func streamCheck(p []byte, off uint64) bool {
	if len(p) < 8 || binary.BigEndian.Uint64(p) != off {
		return false
	}
	fill := streamFiller()
	for i, ph := 8, int((off+8)%streamPeriod); i < len(p); {
		n := min(len(p)-i, streamPeriod)
		if !bytes.Equal(p[i:i+n], fill[ph:ph+n]) {
			return false
		}
		i, ph = i+n, 0
	}
	return true
}

// tcpTimer is a side's one timer: the read deadline of its PacketConn,
// moved only when the wanted time is earlier than the one set, and
// re-armed when it passes early.
type tcpTimer struct {
	conn net.PacketConn
	set  time.Time // deadline set on conn; zero if none or passed
}

// arm makes sure a read returns by at; a zero at wants no wake-up.
func (t *tcpTimer) arm(at time.Time) error {
	if at.IsZero() || !t.set.IsZero() && !at.Before(t.set) {
		return nil
	}
	t.set = at
	return t.conn.SetReadDeadline(at)
}

// read reads the next datagram into b. It returns timeout true, and no
// error, when the deadline passed; the deadline is then cleared.
func (t *tcpTimer) read(b []byte) (n int, from net.Addr, timeout bool, err error) {
	n, from, err = t.conn.ReadFrom(b)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.set = time.Time{}
		return 0, nil, true, t.conn.SetReadDeadline(time.Time{})
	}
	return n, from, false, err
}
