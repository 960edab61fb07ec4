package udt

import (
	"net"
	"time"

	"github.com/udt-go/udt/internal/lossl"
	"github.com/udt-go/udt/internal/seq"
)

// A ConnTracer observes one connection: its handshake, every packet it
// sends and receives, the losses it finds, the estimates and controller
// settings it works with, and how it ends. [Config.Tracer] makes one for
// each connection; the package trace writes one as a file of JSON lines.
//
// Any hook may be nil. A connection without a tracer builds no event and
// pays one pointer test per packet.
//
// Hooks run synchronously with the connection's lock held (a lock no other
// connection takes), on whichever goroutine the event happens: the UDP
// socket's receive worker (packets arriving), its send worker (packets
// leaving), the connection's timer (ACK, NAK and EXP timers), or the
// application's goroutine in Dial, Write or Close. The hooks of one
// connection are therefore never called concurrently, and see its events
// in the order they happen. A hook must return quickly and must not call
// the connection's methods (that deadlocks): the socket's workers serve
// every connection on the socket, so a slow hook slows them all. The
// hooks of different connections may run concurrently.
//
// Slices in an event (TraceControl.Loss) are valid only during the call.
type ConnTracer struct {
	// HandshakeSent and HandshakeReceived see the connection's handshake
	// packets: a dial's requests and the answers it takes, an accepted
	// connection's conclusion and response (from the listener's
	// stateless first exchange on, only the request that made it), a
	// rendezvous' exchange, and the answers to a peer's repeats.
	HandshakeSent     func(TraceHandshake)
	HandshakeReceived func(TraceHandshake)

	// PhaseChanged sees the connection move from one phase to the next:
	// connecting, connected, closing (Close lingers for written data),
	// closed.
	PhaseChanged func(TracePhase)

	// PacketSent sees each data packet sent, new or retransmitted.
	// PacketReceived sees each data packet that arrives, taken or not.
	PacketSent     func(TracePacket)
	PacketReceived func(TracePacket)

	// PacketsLost sees packets declared lost: by the sender, on the
	// peer's loss report, on a timeout, or when the peer's ACK stalls
	// at a retransmitted packet; by the receiver, on a gap in the
	// sequence.
	PacketsLost func(TraceLoss)

	// ControlSent and ControlReceived see the control packets other
	// than handshakes: ACK, ACK2, NAK, drop requests, keep-alives,
	// shutdowns.
	ControlSent     func(TraceControl)
	ControlReceived func(TraceControl)

	// MetricsUpdated sees the estimates and settings after each change:
	// the RTT, the peer's rates, the controller's window and period, the
	// windows and what is in flight.
	MetricsUpdated func(TraceMetrics)

	// TimedOut sees each expiry of the EXP timer: the peer was silent
	// for a timeout interval.
	TimedOut func(TraceTimeout)

	// Closed sees the end of the connection, and why. It is the last
	// event.
	Closed func(TraceClose)
}

// TraceInfo identifies the connection a tracer is made for.
type TraceInfo struct {
	Role       TraceRole
	SocketID   uint32 // ours
	LocalAddr  net.Addr
	RemoteAddr net.Addr
	// Start is when the connection was made: its first event comes
	// after it, and the timestamps of its data packets count from it.
	Start time.Time
}

// TraceRole is the side a traced connection is on.
type TraceRole uint8

const (
	RoleClient     TraceRole = iota + 1 // made by Dial
	RoleServer                          // accepted by a Listener
	RoleRendezvous                      // made by DialRendezvous
)

func (r TraceRole) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	case RoleRendezvous:
		return "rendezvous"
	}
	return "unknown"
}

// TracePhase is a change of a connection's phase.
type TracePhase struct {
	Time     time.Time
	From, To ConnPhase
}

// ConnPhase is where a connection is in its life.
type ConnPhase uint8

const (
	PhaseConnecting ConnPhase = iota // the handshake is under way
	PhaseConnected                   // established
	PhaseClosing                     // Close waits for written data to be acknowledged
	PhaseClosed                      // ended, locally, by the peer or by an error
)

func (p ConnPhase) String() string {
	switch p {
	case PhaseConnecting:
		return "connecting"
	case PhaseConnected:
		return "connected"
	case PhaseClosing:
		return "closing"
	case PhaseClosed:
		return "closed"
	}
	return "unknown"
}

// TraceHandshake is a handshake packet, as on the wire (docs/protocol.md
// §4).
type TraceHandshake struct {
	Time       time.Time
	Version    uint32
	Type       SocketType
	ISN        uint32 // initial sequence number
	MSS        int
	FlowWindow int
	// ReqType is the request type: 1 a request (induction), -1 a
	// conclusion or response, 0 a rendezvous request, -2 an agreement;
	// 1002 a refusal.
	ReqType  int32
	SocketID uint32 // the sender's
	Cookie   uint32
}

// TracePacket is a data packet sent or received.
type TracePacket struct {
	Time time.Time
	Seq  uint32
	Msg  uint32 // message number
	Size int    // payload bytes
	// Retransmit marks, on a packet sent, a retransmission; on a packet
	// received, one that fills a gap (the repair of a loss, or a packet
	// the network reordered).
	Retransmit bool
	// Discarded says, on a packet received, why it was not taken:
	// "duplicate" (received already, or out of the window), "memory"
	// (the socket's ReceiveMemory is full); "" when it was taken.
	Discarded string
}

// TraceLoss is a range of packets declared lost.
type TraceLoss struct {
	Time        time.Time
	First, Last uint32 // sequence numbers, inclusive
	// Reason is "nak" (the peer reported them, sender side), "timeout"
	// (the EXP timer expired: all unacknowledged, sender side), "stall"
	// (the peer's ACK waits at them though their repair is overdue,
	// sender side) or "gap" (missing from the sequence, receiver side).
	Reason string
}

// TraceControl is a control packet sent or received. Fields a type does
// not carry are zero.
type TraceControl struct {
	Time time.Time
	// Type is "ack", "light-ack" (one word: the ACK point), "ack2", "nak",
	// "drop", "keep-alive" or "shutdown".
	Type string
	// AckNo is the number of an ACK, or of the ACK an ACK2 answers.
	AckNo uint32
	// Seq is an ACK's point (the next packet expected), or the first
	// sequence number a drop request covers.
	Seq uint32
	// Last and Msg are the last sequence number and the message number
	// of a drop request.
	Last, Msg uint32
	// RTT, RTTVar, Window, RecvRate and Bandwidth are a full ACK's words:
	// the receiver's RTT estimate, its free buffer in packets, and its
	// arrival rate and link capacity estimates in packets a second (0
	// in an ACK without them).
	RTT, RTTVar         time.Duration
	Window              int
	RecvRate, Bandwidth int
	// Loss is a NAK's list of ranges, as on the wire (at most 1024 of
	// them); valid only during the call.
	Loss []LossRange
}

// TraceMetrics are a connection's estimates and settings.
type TraceMetrics struct {
	Time   time.Time
	RTT    time.Duration // smoothed round-trip time
	RTTVar time.Duration
	// Period is the time between two data packets the controller asks
	// for (with MaxBandwidth's floor); Window its window in packets (0:
	// none).
	Period time.Duration
	Window int
	// FlowWindow is the free buffer the peer last reported, in packets;
	// InFlight the packets sent and not acknowledged.
	FlowWindow int
	InFlight   int
	// RecvRate and Bandwidth are the averages of the peer's arrival rate
	// and link capacity reports, packets a second.
	RecvRate  int
	Bandwidth int
}

// TraceTimeout is an expiry of the EXP timer.
type TraceTimeout struct {
	Time time.Time
	// Count is the expiries in a row, this one included.
	Count int
	// Unacked is the number of packets sent and not acknowledged, all of
	// them queued to go again.
	Unacked int
}

// TraceClose is the end of a connection.
type TraceClose struct {
	Time time.Time
	// By is "local" (Close), "peer" (the peer's shutdown), "error" (Err
	// ended it) or "dial" (the handshake did not complete: Err says why).
	By  string
	Err error
	// Unacked is the number of packets written and not acknowledged
	// when it ended.
	Unacked int
}

// connTrace is a connection's tracer and what it last reported; guarded
// by Conn.mu.
type connTrace struct {
	t     *ConnTracer  // nil: not traced
	phase ConnPhase    // the phase last reported
	loss  []LossRange  // a NAK's ranges, reused
	last  TraceMetrics // the metrics MetricsUpdated saw last, Time zeroed
}

// startTrace asks Config.Tracer for c's tracer, before c sends or
// registers anything. The hooks it leaves nil become no-ops, so that call
// sites test only for the tracer.
func (c *Conn) startTrace(role TraceRole) {
	if c.cfg.Tracer == nil {
		return
	}
	t := c.cfg.Tracer(TraceInfo{Role: role, SocketID: c.id, LocalAddr: c.laddr, RemoteAddr: c.raddr, Start: c.start})
	if t == nil {
		return
	}
	c.tr.t = &ConnTracer{
		HandshakeSent:     orNoop(t.HandshakeSent),
		HandshakeReceived: orNoop(t.HandshakeReceived),
		PhaseChanged:      orNoop(t.PhaseChanged),
		PacketSent:        orNoop(t.PacketSent),
		PacketReceived:    orNoop(t.PacketReceived),
		PacketsLost:       orNoop(t.PacketsLost),
		ControlSent:       orNoop(t.ControlSent),
		ControlReceived:   orNoop(t.ControlReceived),
		MetricsUpdated:    orNoop(t.MetricsUpdated),
		TimedOut:          orNoop(t.TimedOut),
		Closed:            orNoop(t.Closed),
	}
}

func orNoop[E any](f func(E)) func(E) {
	if f == nil {
		return func(E) {}
	}
	return f
}

// traceHandshakeLocked reports handshake h, sent or received.
func (c *Conn) traceHandshakeLocked(now time.Time, h *handshake, sent bool) {
	e := TraceHandshake{
		Time: now, Version: h.version, Type: socketTypeOf(h.sockType), ISN: h.isn,
		MSS: int(h.mss), FlowWindow: int(h.window), ReqType: h.reqType, SocketID: h.socketID, Cookie: h.cookie,
	}
	if sent {
		c.tr.t.HandshakeSent(e)
	} else {
		c.tr.t.HandshakeReceived(e)
	}
}

// tracePhaseLocked reports a change of phase, to to.
func (c *Conn) tracePhaseLocked(now time.Time, to ConnPhase) {
	if c.tr.t != nil && c.tr.phase != to {
		c.tr.t.PhaseChanged(TracePhase{Time: now, From: c.tr.phase, To: to})
		c.tr.phase = to
	}
}

// traceLossLocked reports the packets first..last declared lost.
func (c *Conn) traceLossLocked(now time.Time, first, last seq.Num, reason string) {
	if c.tr.t != nil {
		c.tr.t.PacketsLost(TraceLoss{Time: now, First: uint32(first), Last: uint32(last), Reason: reason})
	}
}

// traceControlLocked reports a control packet without a body worth
// decoding (keep-alive, shutdown), or an ACK2 (info: its ACK number).
func (c *Conn) traceControlLocked(now time.Time, typ ctrlType, info uint32, sent bool) {
	if c.tr.t == nil {
		return
	}
	e := TraceControl{Time: now, Type: traceCtrlName(typ)}
	if typ == ctrlACK2 {
		e.AckNo = info
	}
	c.traceControlEventLocked(e, sent)
}

func (c *Conn) traceControlEventLocked(e TraceControl, sent bool) {
	if sent {
		c.tr.t.ControlSent(e)
	} else {
		c.tr.t.ControlReceived(e)
	}
}

// traceACKLocked reports ACK a, number no.
func (c *Conn) traceACKLocked(now time.Time, no uint32, a *ackBody, sent bool) {
	if c.tr.t == nil {
		return
	}
	e := TraceControl{Time: now, Type: "ack", AckNo: no, Seq: uint32(a.ack)}
	if a.words == 1 {
		e.Type = "light-ack"
	}
	if a.words >= 4 {
		e.RTT = time.Duration(a.rtt) * time.Microsecond
		e.RTTVar = time.Duration(a.rttVar) * time.Microsecond
		e.Window = int(min(a.avail, 1<<30))
	}
	if a.words >= 6 {
		e.RecvRate, e.Bandwidth = int(min(a.rate, 1<<30)), int(min(a.bandwidth, 1<<30))
	}
	c.traceControlEventLocked(e, sent)
}

// traceNAKLocked reports a NAK with the given body (its ranges of a
// malformed body, up to where it breaks).
func (c *Conn) traceNAKLocked(now time.Time, body []byte, sent bool) {
	if c.tr.t == nil {
		return
	}
	c.tr.loss = c.tr.loss[:0]
	lossl.ParseNAK(body, func(r lossl.Range) bool {
		c.tr.loss = append(c.tr.loss, LossRange{First: uint32(r.First), Last: uint32(r.Last)})
		return len(c.tr.loss) < maxNAKRanges
	})
	c.traceControlEventLocked(TraceControl{Time: now, Type: "nak", Loss: c.tr.loss}, sent)
}

// traceMetricsLocked reports the estimates and settings if they changed
// since they were last reported.
func (c *Conn) traceMetricsLocked(now time.Time) {
	if c.tr.t == nil || c.state != stateConnected {
		return
	}
	m := TraceMetrics{
		RTT: c.cc.rtt.RTT, RTTVar: c.cc.rtt.Var, Period: c.cc.period, Window: max(c.cc.window, 0),
		FlowWindow: c.snd.flowWindow, InFlight: c.snd.inFlightLocked(),
		RecvRate: c.cc.rate, Bandwidth: c.cc.bandwidth,
	}
	if m == c.tr.last {
		return
	}
	c.tr.last = m
	m.Time = now
	c.tr.t.MetricsUpdated(m)
}

// traceClosedLocked reports the end of the connection, by whom ("local",
// "peer", "error", "dial") and why: the last event.
func (c *Conn) traceClosedLocked(by string, err error) {
	t := c.tr.t
	if t == nil {
		return
	}
	now := time.Now()
	unacked := 0
	if c.snd.buf != nil {
		unacked = c.snd.buf.Len()
	}
	c.tracePhaseLocked(now, PhaseClosed)
	t.Closed(TraceClose{Time: now, By: by, Err: err, Unacked: unacked})
	c.tr.t = nil
}

// traceCtrlName names control packet types in trace events.
func traceCtrlName(t ctrlType) string {
	switch t {
	case ctrlACK:
		return "ack"
	case ctrlACK2:
		return "ack2"
	case ctrlNAK:
		return "nak"
	case ctrlDropReq:
		return "drop"
	case ctrlKeepAlive:
		return "keep-alive"
	case ctrlShutdown:
		return "shutdown"
	}
	return t.String()
}
