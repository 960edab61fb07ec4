package udt

import (
	"fmt"
	"time"

	"github.com/udt-go/udt/internal/cc"
	"github.com/udt-go/udt/internal/seq"
)

// CongestionController is a pluggable congestion controller, the Go form of
// the C++ library's customizable controller CCC. The connection reports
// events to it (establishment, ACKs, loss reports, timeouts, each data
// packet sent and received) and, after each, reads back its
// [CongestionParams]: the congestion window and the packet period the
// sender runs by, and the ACK timing the receiver runs by.
//
// A controller serves one connection: [Config.NewController] makes one per
// connection. The built-in controllers are [NewModelBased] (the default,
// [CongestionModel]), [NewDAIMD] (the C++ library's), [NewFixedRate] and
// [NewTCPLike]; a custom controller may wrap one of them to observe or
// adjust it.
//
// A connection calls its controller's methods one at a time, never
// concurrently, and with the connection's lock held, from whichever
// goroutine handles the event: the multiplexer's receive worker (Init,
// OnACK, OnLoss, OnPktReceived), its send worker (OnPktSent) or the
// connection's timer (OnTimeout). The methods must return quickly and must
// not block or call methods of the [Conn]. The receive and send workers
// serve every connection on the UDP port: a slow controller slows every
// connection of the port, not its own alone, and one that blocks stalls
// them all. (Unlike Config.Logger's handler, which the library calls off
// its workers, a controller runs in the packet path and cannot be moved
// off it.) A controller whose state is read by other goroutines guards it
// itself.
//
// Sequence numbers are UDT's 31-bit numbers: they wrap from 2³¹−1 to 0.
type CongestionController interface {
	// Init is called once, when the connection is established, before
	// any other method.
	Init(now time.Time, info CongestionInfo)

	// OnACK is called for each full ACK that advances the acknowledged
	// point; ack is the first sequence number the peer has not received.
	// info already holds the ACK's RTT and rate figures.
	OnACK(now time.Time, ack uint32, info CongestionInfo)

	// OnLoss is called for each loss report (NAK) naming packets not yet
	// acknowledged, before they are queued for retransmission. lost holds
	// them as ranges in the order of the report, at least one; the slice
	// is valid only during the call.
	OnLoss(now time.Time, lost []LossRange, info CongestionInfo)

	// OnTimeout is called when the retransmission timer (EXP) expires
	// with data unacknowledged; all of it is then queued for
	// retransmission.
	OnTimeout(now time.Time, info CongestionInfo)

	// OnPktSent is called for each data packet sent, retransmissions
	// included.
	OnPktSent(now time.Time, p CongestionPacket)

	// OnPktReceived is called for each data packet that arrives,
	// duplicates included.
	OnPktReceived(now time.Time, p CongestionPacket)

	// Params returns the controller's current settings. The connection
	// reads them after every call above.
	Params() CongestionParams
}

// CongestionParams are the settings a [CongestionController] runs a
// connection by. The zero value means no congestion window, no pacing and
// the default ACK timing.
type CongestionParams struct {
	// Window is the congestion window in packets: the sender keeps at
	// most the smaller of Window and the peer's flow window
	// unacknowledged. If zero or negative, only the flow window limits.
	Window int

	// Period is the interval between two data packets sent. If zero or
	// negative, packets go out as fast as the windows allow.
	// Config.MaxBandwidth, if set, raises it to its floor.
	Period time.Duration

	// ACKEvery, if positive, makes the receiver send a full ACK every
	// ACKEvery data packets besides those its timer sends (CCC's
	// setACKInterval).
	ACKEvery int

	// ACKPeriod is the receiver's full-ACK timer (CCC's setACKTimer). If
	// zero, 10 ms (UDT's SYN interval); otherwise it is kept within
	// [MinACKPeriod, MaxACKPeriod]. Received data is readable on
	// arrival; a longer period delays the sender's release of its buffer
	// and the rate and RTT figures the ACKs carry.
	ACKPeriod time.Duration
}

// Bounds of [CongestionParams.ACKPeriod]. The C++ library caps its ACK
// timer at 10 ms; a longer one interoperates.
const (
	MinACKPeriod = 100 * time.Microsecond
	MaxACKPeriod = time.Second
)

// CongestionInfo is what the connection has measured, as passed to a
// [CongestionController]'s methods. It is a copy: changing it changes
// nothing.
type CongestionInfo struct {
	SocketID uint32 // this connection's UDT socket ID
	MSS      int    // negotiated packet size in bytes, IP and UDP headers included
	ISN      uint32 // first sequence number this side sends

	// FlowWindow is what the peer can take, in packets: the window of its
	// handshake, then the free buffer its latest ACK announced.
	FlowWindow int
	LastSent   uint32 // highest sequence number sent so far; ISN−1 before the first
	LastACK    uint32 // first sequence number not acknowledged by the peer
	InFlight   int    // packets sent and not yet acknowledged

	RTT    time.Duration // smoothed round-trip time, from ACKs and ACK2s
	RTTVar time.Duration // its variation
	// RTTSample is the RTT the peer reported in its latest ACK.
	RTTSample time.Duration
	// SenderRTT is the time from the sending of the newest packet the
	// latest full ACK acknowledged to that ACK's arrival, if the packet
	// was sent once and the ACKs since the previous full one released no
	// retransmitted packet (they waited at its hole); zero otherwise. It
	// includes the receiver's ACK delay.
	SenderRTT time.Duration
	// LossRTT, in OnLoss only, is the time from the sending of the packet
	// whose arrival showed the peer the newest loss the report lists (the
	// one after it) to the report's arrival, if that packet was sent once
	// and the report is the loss's first; zero otherwise. A receiver
	// reports a loss at once: unlike SenderRTT it holds no ACK delay, and
	// it comes while the ACK point waits at a hole and ACKs do not.
	LossRTT time.Duration
	// ArrivedRTT, in OnACK and OnLoss, is the time from the sending of
	// the newest packet that Arrived counts (the newest acknowledged, or
	// the newest a loss report showed arrived) to now, if that packet was
	// sent once; 0 otherwise. Arrived over the span between two reports,
	// their ArrivedRTT taken off their times, is a delivery rate.
	ArrivedRTT time.Duration

	// RecvRate is the average of the arrival rates the peer reported in
	// its ACKs, packets/s (1/8 weight per ACK; 16 before the first).
	RecvRate int
	// RateSample is the arrival rate in the latest full ACK, packets/s; 0
	// if it carried none.
	RateSample int
	// AppLimited reports that RateSample measured, at least in part,
	// packets sent while the application gave the sender nothing more to
	// send: a lower bound of the path's rate, not an estimate.
	AppLimited bool
	// WindowLimited reports that RateSample measured, at least in part,
	// packets sent while the congestion or flow window held back new data
	// waiting to go: the window, not the path, may have set their rate.
	WindowLimited bool
	// Bandwidth is the average of the peer's link-capacity estimates,
	// packets/s (1/8 weight per ACK; 1 before the first).
	Bandwidth int

	Delivered uint64 // packets acknowledged since the start
	// Arrived counts the packets known to have reached the peer: those
	// acknowledged, and those past the acknowledged point that a loss
	// report has shown arrived (the packet after each gap it lists, and
	// every packet before that one that no report names). Unlike
	// Delivered it does not wait at a hole for its repair: a receiver
	// that reports each loss once and as it finds it, as 4.11 does, lets
	// a sender count its arrivals as a TCP sender with SACK can.
	Arrived uint64
	// Lost counts the packets the peer reported lost since the start. What
	// a timeout queues again is not counted: a 4.11 receiver falls silent
	// while it waits at a hole, and its silence says nothing of the path.
	Lost uint64
	Sent uint64 // data packets sent since the start, retransmissions included
}

// LossRange is a run of lost packets, First to Last inclusive.
type LossRange struct {
	First, Last uint32 // sequence numbers, 31 bits
}

// CongestionPacket describes one data packet sent or received.
type CongestionPacket struct {
	Seq            uint32 // sequence number
	Size           int    // payload bytes
	Retransmission bool   // sent before; OnPktSent only
}

// NewDAIMD returns UDT's native controller, the C++ library's CUDTCC
// ([CongestionDAIMD]): slow start, then a rate-based additive
// increase scaled by the estimated link capacity and a 1/9 decrease on
// loss.
func NewDAIMD() CongestionController {
	// Seeded by the socket ID, as the connection always seeded it.
	return &builtinCC{make: func(info *CongestionInfo) cc.Controller { return cc.NewDAIMD(uint64(info.SocketID)) }}
}

// NewModelBased returns the loss-tolerant, model-based controller of
// [CongestionModel].
func NewModelBased() CongestionController {
	return &builtinCC{make: func(*CongestionInfo) cc.Controller { return cc.NewModel() }}
}

// NewFixedRate returns a controller that sends at bytesPerSecond whatever
// happens, like the C++ example CUDPBlast: a constant packet period of
// MSS/bytesPerSecond (whole packets, IP and UDP headers included, as
// Config.MaxBandwidth counts), a window as large as the flow window, and
// no reaction to loss or timeouts. Retransmissions take their share of the
// rate. It suits reserved or private links; on a shared path it takes
// what it asks for. NewFixedRate panics if bytesPerSecond is not positive.
func NewFixedRate(bytesPerSecond int64) CongestionController {
	if bytesPerSecond <= 0 {
		panic(fmt.Sprintf("udt: NewFixedRate rate %d is not positive", bytesPerSecond))
	}
	return &builtinCC{make: func(*CongestionInfo) cc.Controller { return cc.NewFixedRate(bytesPerSecond) }}
}

// NewTCPLike returns a window-based controller in the manner of TCP
// NewReno and the C++ example CTCP: no pacing, slow start from 2 packets
// (one more per packet acknowledged), then one more per window
// acknowledged; the window halves once per loss event (a NAK for a packet
// sent after the last decrease) and restarts from 2 after a timeout. It
// uses the default ACK timing.
func NewTCPLike() CongestionController {
	return &builtinCC{make: func(*CongestionInfo) cc.Controller { return cc.NewTCPLike() }}
}

// builtinCC presents a controller of internal/cc as a
// CongestionController. The controller is made at Init, when the socket
// ID is known.
type builtinCC struct {
	make func(*CongestionInfo) cc.Controller
	c    cc.Controller
}

func (b *builtinCC) Init(now time.Time, info CongestionInfo) {
	b.c = b.make(&info)
	b.c.Init(now, info.inputs())
}

func (b *builtinCC) OnACK(now time.Time, ack uint32, info CongestionInfo) {
	b.c.OnACK(now, seq.Num(ack), info.inputs())
}

func (b *builtinCC) OnLoss(now time.Time, lost []LossRange, info CongestionInfo) {
	if len(lost) > 0 {
		b.c.OnLoss(now, seq.Num(lost[0].First), info.inputs())
	}
}

func (b *builtinCC) OnTimeout(now time.Time, info CongestionInfo) { b.c.OnTimeout(now, info.inputs()) }

func (b *builtinCC) OnPktSent(time.Time, CongestionPacket)     {}
func (b *builtinCC) OnPktReceived(time.Time, CongestionPacket) {}

func (b *builtinCC) Params() CongestionParams {
	if b.c == nil {
		return CongestionParams{}
	}
	return CongestionParams{Window: b.c.Window(), Period: b.c.PacketPeriod()}
}

// inputs converts info to what internal/cc's controllers take.
func (info *CongestionInfo) inputs() cc.Inputs {
	return cc.Inputs{
		MSS:           info.MSS,
		MaxWindow:     info.FlowWindow,
		SndCurrSeq:    seq.Num(info.LastSent),
		RTT:           info.RTT,
		RecvRate:      info.RecvRate,
		Bandwidth:     info.Bandwidth,
		RTTSample:     info.RTTSample,
		RateSample:    info.RateSample,
		AppLimited:    info.AppLimited,
		WindowLimited: info.WindowLimited,
		Delivered:     info.Delivered,
		Arrived:       info.Arrived,
		AckRTT:        info.SenderRTT,
		LossRTT:       info.LossRTT,
		ArrivedRTT:    info.ArrivedRTT,
		Lost:          info.Lost,
		Sent:          info.Sent,
		InFlight:      info.InFlight,
	}
}
