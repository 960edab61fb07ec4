// Package trace writes the events a [udt.ConnTracer] sees to a file of
// JSON lines, one object per event, and reads such files back.
//
// # Usage
//
// A [Dir] writes one file per connection; its Tracer method is a
// [udt.Config] Tracer:
//
//	dir, err := trace.NewDir("traces", trace.Options{})
//	...
//	d := udt.Dialer{Config: udt.Config{Tracer: dir.Tracer}}
//	c, err := d.DialUDT(ctx, "udp", addr)
//	...
//	c.Close()
//	err = dir.Close() // flushes the files of connections still open
//
// A [Writer] writes one connection's events to any [io.Writer]. [Read],
// [ReadFile] and [NewReader] read a file back. The command
// examples/udttrace charts files as an HTML page; examples/udtperf
// -trace writes them for both ends of its tests.
//
// # Format
//
// The file is UTF-8 text, one JSON object per line (JSON Lines). The first
// line is the header:
//
//	{"format":"udt-trace/1","role":"client","socket_id":123,"local":"127.0.0.1:9000","remote":"127.0.0.1:5201","start":"2026-01-02T15:04:05.123456789Z"}
//
// format is always "udt-trace/1" (see [Format]); role is "client",
// "server" or "rendezvous"; socket_id is the connection's own socket ID;
// local and remote are its addresses; start is when the connection was
// made, in RFC 3339 with nanoseconds. "no_packets":true says the writer
// left out the packet_sent and packet_received events ([Options]).
//
// Every later line is an event:
//
//	{"t":1520,"ev":"packet_sent","seq":8812,"msg":3,"size":1456,"retransmit":true}
//
// t is the time of the event in microseconds since the header's start (an
// integer; negative if the event came before it), ev its name, then the
// event's fields. Fields whose value is zero, false or empty are left out,
// except those marked "always" below. Durations are integer microseconds,
// truncated; rates are packets a second; sequence, message and ACK
// numbers are as on the wire. The events and their fields, after the
// hooks of [udt.ConnTracer] that see them:
//
//	handshake_sent, handshake_received  version, socket_type ("stream" or "message", always),
//	                                    isn, mss, flow_window, req_type, socket_id, cookie
//	phase                               from, to (always): "connecting", "connected", "closing", "closed"
//	packet_sent, packet_received        seq, msg, size (payload bytes), retransmit (true),
//	                                    discarded ("duplicate", "memory")
//	packets_lost                        first, last (inclusive), reason ("nak", "timeout", "stall", "gap")
//	control_sent, control_received      type ("ack", "light-ack", "ack2", "nak", "drop", "keep-alive",
//	                                    "shutdown"), ack_no, seq, last, msg, rtt, rtt_var, window,
//	                                    recv_rate, bandwidth, loss (a NAK's ranges: [[first,last],...])
//	metrics                             rtt, rtt_var, period, window, flow_window, in_flight,
//	                                    recv_rate, bandwidth
//	timeout                             count, unacked
//	closed                              by ("local", "peer", "error", "dial"), error, unacked
//
// A reader ignores keys it does not know, so fields can be added to the
// format; an event name it does not know, or a changed meaning, takes a
// new format name. docs/trace-format.md has the field descriptions.
//
// # Cost
//
// The hooks run on the socket's workers (see [udt.ConnTracer]), so a
// Writer encodes each event by appending to a buffer with strconv,
// without reflection or allocation (tens of nanoseconds an event), and
// leaves the file to a goroutine of its own: a full buffer (64 KiB by
// default) is handed over and the hook goes on with a second one. The
// hook waits only when the file takes longer to write one buffer than the
// connection takes to fill the other (docs/trace-format.md has the
// figures). A data packet's line is about 70 bytes: at 100,000 packets a
// second each way, 7 MB a second per end; [Options].NoPackets leaves
// those lines out.
//
// A quiet connection costs little: its Writer holds one buffer of at
// most 4 KiB and no goroutine, about 5 KB in all (TestWriterIdleCost:
// 4.7 KB; a [Dir] adds the open file). The buffer grows, up to
// [Options].BufferSize, only while it fills within a second; the
// goroutine starts when a buffer is handed over, and once a second
// passes without another it writes the rest out and ends, letting its
// buffers go. A busy connection holds two buffers of up to BufferSize
// plus 4 KiB each (136 KiB by default) and the goroutine.
package trace

import (
	"time"

	"github.com/udt-go/udt"
)

// Format is the name of the file format, the header's "format".
const Format = "udt-trace/1"

// Options are a [Writer]'s or a [Dir]'s settings. The zero value writes
// every event through 64 KiB buffers.
type Options struct {
	// NoPackets leaves out the packet_sent and packet_received events:
	// for long or fast runs, whose data packets make most of a file.
	// Everything else is kept.
	NoPackets bool
	// BufferSize is how full a buffer is handed over to be written, in
	// bytes. If zero, 64 KiB. A buffer starts at 4 KiB and grows to
	// this (plus 4 KiB for the line that crosses it) only while it fills
	// within a second; a busy writer has two.
	BufferSize int
}

// defaultBufferSize is Options.BufferSize's default.
const defaultBufferSize = 64 << 10

// Kind is the kind of an event, its "ev".
type Kind uint8

// The kinds of event, one for each [udt.ConnTracer] hook.
const (
	HandshakeSent     Kind = iota + 1 // handshake_sent
	HandshakeReceived                 // handshake_received
	Phase                             // phase
	PacketSent                        // packet_sent
	PacketReceived                    // packet_received
	PacketsLost                       // packets_lost
	ControlSent                       // control_sent
	ControlReceived                   // control_received
	Metrics                           // metrics
	Timeout                           // timeout
	Closed                            // closed
)

var kindNames = [...]string{
	HandshakeSent:     "handshake_sent",
	HandshakeReceived: "handshake_received",
	Phase:             "phase",
	PacketSent:        "packet_sent",
	PacketReceived:    "packet_received",
	PacketsLost:       "packets_lost",
	ControlSent:       "control_sent",
	ControlReceived:   "control_received",
	Metrics:           "metrics",
	Timeout:           "timeout",
	Closed:            "closed",
}

// String returns the event's name in a file, such as "packet_sent".
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "unknown"
}

// kindOf returns the Kind named name, or false.
func kindOf(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n != "" && n == name {
			return Kind(k), true
		}
	}
	return 0, false
}

// Header is a file's first line: which connection it traces.
type Header struct {
	Format    string // always Format in a file Read accepts
	Role      udt.TraceRole
	SocketID  uint32 // the connection's own
	Local     string // address
	Remote    string // address
	Start     time.Time
	NoPackets bool // the packet_sent and packet_received events were left out
}

// Event is one event of a trace: the union of the fields of every kind.
// Fields a kind does not carry are zero; the comment of each names the
// kinds that carry it (handshake: HandshakeSent and HandshakeReceived;
// packet: PacketSent and PacketReceived; control: ControlSent and
// ControlReceived).
type Event struct {
	T    time.Duration // since Header.Start, in whole microseconds
	Kind Kind

	Version    uint32         // handshake
	SocketType udt.SocketType // handshake
	ISN        uint32         // handshake: initial sequence number
	MSS        int            // handshake
	FlowWindow int            // handshake; Metrics: the peer's free buffer, packets
	ReqType    int32          // handshake: request type (see udt.TraceHandshake)
	SocketID   uint32         // handshake: the sender's
	Cookie     uint32         // handshake

	From, To udt.ConnPhase // Phase

	Seq        uint32 // packet; control: an ACK's point, a drop request's first
	Msg        uint32 // packet, control (drop): message number
	Size       int    // packet: payload bytes
	Retransmit bool   // packet
	Discarded  string // packet received: why it was not taken ("" if it was)

	First  uint32 // PacketsLost
	Last   uint32 // PacketsLost; control (drop)
	Reason string // PacketsLost

	Type      string          // control: "ack", "nak", ...
	AckNo     uint32          // control
	RTT       time.Duration   // control (a full ACK), Metrics
	RTTVar    time.Duration   // control (a full ACK), Metrics
	Window    int             // control: the receiver's free buffer; Metrics: the controller's window
	RecvRate  int             // control, Metrics: packets a second
	Bandwidth int             // control, Metrics: packets a second
	Loss      []udt.LossRange // control (nak)

	Period   time.Duration // Metrics: between two data packets
	InFlight int           // Metrics

	Count   int // Timeout: expiries in a row
	Unacked int // Timeout, Closed: packets not acknowledged

	By    string // Closed: "local", "peer", "error" or "dial"
	Error string // Closed: the error that ended it, if any
}

// Trace is a whole file: its header and its events in file order.
type Trace struct {
	Header Header
	Events []Event
}
