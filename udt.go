// Package udt implements UDT4, the UDP-based Data Transfer protocol, as a
// drop-in replacement for TCP behind the standard [net.Conn] and
// [net.Listener] interfaces. It is wire-compatible with the C++ reference
// library (UDT 4.11).
//
// # Usage
//
//	ln, err := udt.Listen("udp", ":9000")
//	...
//	c, err := ln.Accept()                     // a net.Conn
//
//	c, err := udt.Dial("udp", "127.0.0.1:9000") // a net.Conn
//
// A [Dialer] carries a [Config] and dials with a context; [DialContext] is the
// shorthand for the zero Dialer.
//
// Two peers that cannot listen for each other (each behind a NAT, say) meet
// in rendezvous mode: each dials the other from a bound port.
//
//	c, err := udt.DialRendezvous(ctx, "udp", ":9000", "203.0.113.7:9000") // on one host
//	c, err := udt.DialRendezvous(ctx, "udp", ":9000", "198.51.100.4:9000") // on the other
//
// # Multiplexing
//
// Every UDP port is owned by one multiplexer: a listener and any number of
// connections share it. Connections accepted by a listener use the
// listener's port; dials from [Dialer.LocalAddr] share that port too, and
// dials without a local address get a fresh ephemeral port each. A
// rendezvous dial shares its port with other dials, but not with a
// listener: as in the C++ library, a listening port hands every connection
// request to the listener, so [DialRendezvous] refuses such a port.
//
// # Configuration
//
// [Config] holds every option; its zero value means the C++ library's
// defaults. Invalid values are reported by Dial and Listen with an error
// naming the option.
//
// Congestion control is pluggable: [Config.Congestion] picks a built-in
// controller, [Config.NewController] supplies one per connection that
// implements [CongestionController], like the C++ library's CCC. Besides
// the native [NewDAIMD] and [NewModelBased], the package ships
// [NewFixedRate] (a constant rate, as the C++ example CUDPBlast) and
// [NewTCPLike] (a TCP-like window, as the example CTCP).
//
// # Message mode
//
// With Config.Type set to [TypeMessage] on both peers, a connection keeps
// message boundaries: [Conn.WriteMessage] sends one message with a time to
// live and an in-order flag, [Conn.ReadMessage] reads one whole message,
// and Read and Write do the same. A message that outlives its TTL is
// dropped whole and never partly delivered.
//
// # Statistics and logging
//
// [Conn.Stats] returns the C++ library's performance-monitor figures:
// packet, byte, loss, retransmission, ACK and NAK counts (totals and since
// the previous call), rates, RTT, bandwidth estimate, windows and buffer
// occupancy. Config.Logger, a [*slog.Logger], receives connection events:
// established and closed, refused dials and why, retransmission bursts,
// lost peers (Config.Logger lists them with their levels). With no
// logger, nothing is built.
//
// [Listener.Metrics], [Transport.Metrics] and [Conn.SocketMetrics] return
// the figures of a whole UDP socket ([SocketMetrics]): connections open,
// handshakes accepted and refused by reason, datagrams and bytes in and
// out, datagrams dropped by reason, the send queue's depth. They are
// counted as the socket works, so a call costs the same with 10 or 10,000
// connections open. examples/prometheus exports them to Prometheus.
//
// # Errors
//
// Methods of [Conn] and [Listener] return [*net.OpError] values. A passed
// deadline wraps [os.ErrDeadlineExceeded]; use after Close wraps
// [net.ErrClosed]; Read returns [io.EOF] once the peer has shut the
// connection down and everything it sent has been read. The UDT-specific
// failures match with [errors.Is]:
//
//   - [ErrConnLost]: the peer fell silent or stopped making progress.
//   - [ErrConnRefused]: a listener refused the dial.
//   - [ErrHandshakeTimeout]: no answer in time (a dial whose context's
//     deadline ended it matches [context.DeadlineExceeded] too).
//   - [ErrHandshakeRejected]: the listener's answer did not echo ours.
//   - [ErrPeerClosed]: Write after the peer shut the connection down.
//   - [ErrPeerAborted]: Read of a stream the peer ended with data missing.
//   - [ErrTooManyConns]: the socket carries Config.MaxConns connections.
//   - [ErrNotMessageMode]: a message call on a stream connection.
//   - [ErrUnacknowledged] ([*UnacknowledgedError]): Close left written
//     data unacknowledged at the shutdown, or the connection had ended
//     with some unacknowledged (the error matches what ended it too).
//   - [ErrTransportClosed]: the [Transport] under the connection closed.
//   - [*SocketError]: the UDP socket failed for good.
//   - [*MessageSizeError] and [*MessageTooLargeError]: a message that does
//     not fit the buffer given, or the buffers of the connection.
//
// # Limitations
//
// UDT has no checksum of its own: payload integrity rests on the UDP
// checksum. There is no half-close: Close sends a shutdown that ends both
// directions. A port with a [Listener] cannot rendezvous (see Multiplexing).
//
// # Compatibility
//
// The wire format, handshake (the SYN-cookie exchange and rendezvous), ACK, ACK2,
// NAK, keep-alive and shutdown follow the C++ 4.11 library byte for byte.
// Deliberate differences, all interoperable: SYN cookies are an HMAC with a
// rotating secret instead of an unkeyed MD5; lost NAKs are re-reported
// periodically; the receiver ignores ACKs and NAKs for packets never sent
// instead of breaking the connection; a shutdown read after all data is a
// clean [io.EOF]; in rendezvous both sides use the smaller of the two MSS
// values (4.11 adopts the peer's, so each direction uses the packet size its
// receiver announced), and we accept packets up to our own MSS from a 4.11
// peer that took ours; the data packet that completes a waiting rendezvous
// is delivered (4.11 consumes it and waits for the retransmission); message
// drop requests name the exact range, marked in bit 31 of the info word
// (4.11 names one packet more, which we keep), and also drop messages whose
// TTL ran out before they were sent; a stalled ACK point has the oldest
// packet resent, since a 4.11 receiver reports a loss only once.
package udt

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults of the C++ 4.11 library, used where a Config field is zero.
const (
	DefaultMSS            = 1500
	DefaultFlowWindow     = 25600
	DefaultSendBuffer     = 8192 // packets
	DefaultReceiveBuffer  = 8192 // packets
	DefaultUDPSendBuffer  = 65536
	DefaultLinger         = 180 * time.Second
	DefaultLingerStall    = 5 * time.Second
	DefaultConnectTimeout = 3 * time.Second
	DefaultBacklog        = 1024
	// DefaultReceiveMemory is the default of Config.ReceiveMemory: 256
	// MiB, the receive buffers of about twenty connections filled at
	// their defaults.
	DefaultReceiveMemory = 256 << 20
	minMSS               = 76
	maxMSS               = 65536

	// maxWindow caps the flow window and the buffers, in packets: 1.5 GB
	// of 1500-byte packets, a second at 12 Gbit/s.
	maxWindow  = 1 << 20
	maxBacklog = 1 << 16
)

// Config holds the options of a connection or a listener. The zero value
// uses the defaults of the C++ library. A Config is copied by Dial and
// Listen and never modified by the library.
type Config struct {
	// MSS is the maximum packet size in bytes, IP and UDP headers included
	// (UDT_MSS). If zero, 1500. The handshake settles on the smaller of the
	// two peers' values. At least 76.
	MSS int

	// FlowWindow is the largest number of unacknowledged packets in flight
	// (UDT_FC). If zero, 25600. Values up to 32 become 32; at most 2^20.
	FlowWindow int

	// SendBuffer is the send buffer size in packets (UDT_SNDBUF). If zero,
	// 8192; at most 2^20. Write blocks while it is full.
	SendBuffer int

	// ReceiveBuffer is the receive buffer size in packets (UDT_RCVBUF). If
	// zero, 8192. At least 32, at most 2^20; capped at FlowWindow.
	ReceiveBuffer int

	// ReceiveMemory bounds the received data, in bytes, that the
	// connections on the UDP socket hold between them (each packet
	// counted at the payload size of its connection), whatever Config
	// made each. Each offers its peer a window no larger than what is
	// left of it, or of its fair share (an equal part among the socket's
	// connections), whichever is more, down to the 2-packet floor a sender
	// probes with; once the connections hold it all, one holding its
	// share or more drops new data (but repairs of a gap) until readers
	// catch up. A socket serving many peers, each of which could fill its
	// connection's receive buffer (and hold it filled behind a gap, up to
	// PeerIdleTimeout), then holds no more than this and, while some
	// connections stay below their share, at most twice it, and readers
	// that stall cannot starve the others. If zero, 256 MiB; negative: no
	// bound.
	ReceiveMemory int64

	// UDPSendBuffer and UDPReceiveBuffer size the UDP socket's kernel
	// buffers in bytes (UDP_SNDBUF, UDP_RCVBUF). If zero, 65536 and
	// ReceiveBuffer×MSS; the kernel may cap them.
	UDPSendBuffer    int
	UDPReceiveBuffer int

	// Linger is how long Close waits for written data to be acknowledged
	// before it sends the shutdown anyway (UDT_LINGER). If zero, 180 s; a
	// negative value does not wait.
	Linger time.Duration

	// LingerStall ends the linger early when the peer makes no progress:
	// for this long nothing written was acknowledged and the peer's
	// receive window stayed closed (its application is not reading). If
	// zero, 5 s; a negative value lingers for all of Linger, as the C++
	// library does. A peer that reads, however slowly, keeps Close
	// waiting until everything is acknowledged or Linger runs out.
	LingerStall time.Duration

	// ConnectTimeout bounds the handshake of a Dial (the C++ library's
	// fixed 3 s). If zero, 3 s, and 30 s for DialRendezvous (the C++
	// library's fixed rendezvous timeout, [DefaultRendezvousTimeout]). A
	// context deadline that comes sooner wins.
	ConnectTimeout time.Duration

	// Backlog is the number of handshaken connections a Listener queues
	// for Accept; requests beyond it are refused. If zero, 1024; at most
	// 65536.
	Backlog int

	// MaxConns caps the connections open at once on the UDP socket:
	// dialed, accepted, and queued for Accept, each counted until it is
	// closed (or its dial fails). A Listener refuses handshakes beyond it
	// (the dialer gets [ErrConnRefused]); a Dial from a shared local
	// address fails with [ErrTooManyConns]. The count covers every
	// connection on the socket, whatever Config made it. If zero, no cap.
	MaxConns int

	// PeerIdleTimeout is how long the peer may stay silent before the
	// connection is declared lost ([ErrConnLost]). If zero, the C++
	// library's rule: the 17th consecutive EXP expiry, about 46 s. The
	// same bound (46 s if zero) applies to a peer heard but making no
	// progress: one whose ACK does not advance, nor a NAK come, while our
	// data is outstanding, and one that leaves a gap in its data
	// unrepaired though we report it lost again and again (everything
	// received behind the gap is freed then).
	PeerIdleTimeout time.Duration

	// Congestion selects a built-in congestion controller. If zero (and
	// NewController is nil), CongestionModel. CongestionDAIMD is the C++
	// library's native controller (UDT_CC's default, CUDTCC), for a sender
	// that must behave as 4.11's does. The choice is the sender's alone:
	// either talks to any peer.
	Congestion CongestionControl

	// NewController, if not nil, makes each connection's congestion
	// controller (UDT_CC): a Dialer calls it once per connection it
	// dials, a Listener once per connection it accepts, when the
	// connection is established. Each call must return a new controller.
	// It runs like the controller's Init (see [CongestionController]):
	// on the multiplexer's receive worker, with the connection's lock
	// held, so it must not block. If it returns nil, the connection uses
	// the default. Setting both NewController and Congestion is an error.
	NewController func() CongestionController

	// isn, when set by the package's tests, replaces the random initial
	// sequence number of a dial (1 + the wanted value, so zero means random).
	isn uint32

	// MaxBandwidth caps the sending rate in bytes per second (UDT_MAXBW).
	// If zero or negative, no cap.
	MaxBandwidth int64

	// Type is the socket type: TypeStream (the zero value; the C++
	// library's SOCK_STREAM), a byte stream, or TypeMessage
	// (SOCK_DGRAM), which keeps message boundaries. Both peers must use
	// the same; a listener refuses a dial of the other type.
	Type SocketType

	// Logger, if set, receives the connection's events; if nil, nothing
	// is logged and no event is built. Each record's message starts with
	// "udt:"; a connection's records carry its socket ID and both
	// addresses:
	//
	//   - Info "udt: connected" (role, peer ID, MSS, type, flow window) and
	//     "udt: closed" (by local or peer, duration, packet counts).
	//   - Info "udt: dial refused"; on a listener, "udt: handshake refused"
	//     with the reason (backlog full, closing, version or socket type).
	//   - Warn "udt: connection lost", with the error.
	//   - Info "udt: retransmission burst": a timeout, or a loss report of
	//     64 packets or more; at most one a second per connection.
	//   - Debug "udt: handshakes dropped": conclusions with a bad or
	//     expired cookie (a SYN flood shows here), counted, at most one
	//     record a second.
	//
	// Records are made where the event happens and handed to the
	// handler on a goroutine of the connection's (or the listener's) own,
	// in order, shortly after: never with a lock of the library held and
	// never on the UDP socket's workers, so a slow or blocking handler
	// holds up only the records of its connection. Past 256 records
	// waiting, more are dropped, and a Warn "udt: log records dropped"
	// says how many once the handler catches up.
	Logger *slog.Logger

	// Tracer, if set, is called once for each connection the Config
	// makes, before its first packet, and returns the hooks that observe
	// it (nil: that one is not traced); see [ConnTracer]. It runs on the
	// goroutine making the connection: the caller of Dial, or, for a
	// connection a Listener accepts, the UDP socket's receive worker with
	// the listener's lock held, so it must be quick (opening a file is
	// fine; waiting on the network is not). The package trace provides
	// one that writes each connection's events to a file.
	Tracer func(TraceInfo) *ConnTracer

	// MessageTTL is the time to live of the messages Write sends on a
	// message connection: one not delivered within it is dropped whole.
	// If zero, messages never expire. [Conn.WriteMessage] takes its own.
	// The C++ library has no such option (UDT_MSGTTL exists in its header
	// but is refused); its sendmsg takes the TTL per call.
	MessageTTL time.Duration
}

// SocketType is the kind of data a connection carries.
type SocketType int

const (
	// TypeStream is a reliable, ordered byte stream, like TCP.
	TypeStream SocketType = iota
	// TypeMessage carries whole messages, each optionally with a time to
	// live and delivered in order or as soon as complete.
	TypeMessage
)

// String returns "stream" or "message".
func (t SocketType) String() string {
	switch t {
	case TypeStream:
		return "stream"
	case TypeMessage:
		return "message"
	}
	return fmt.Sprintf("SocketType(%d)", int(t))
}

// wire returns the handshake's socket-type word.
func (t SocketType) wire() uint32 {
	if t == TypeMessage {
		return sockDgram
	}
	return sockStream
}

// socketTypeOf returns the socket type of a handshake's word; a word of
// neither type gives a SocketType that is neither.
func socketTypeOf(w uint32) SocketType {
	switch w {
	case sockStream:
		return TypeStream
	case sockDgram:
		return TypeMessage
	}
	return SocketType(-1)
}

// CongestionControl names a built-in congestion controller.
type CongestionControl int

const (
	// CongestionDefault selects the library's default controller.
	CongestionDefault CongestionControl = iota
	// CongestionDAIMD is UDT's native rate-based controller, as the C++
	// library's CUDTCC: slow start, then additive increase scaled by the
	// estimated link capacity and a 1/9 decrease on each loss event.
	CongestionDAIMD
	// CongestionModel is a loss-tolerant, model-based controller: it paces
	// at the measured bottleneck bandwidth and keeps about two
	// bandwidth-delay products in flight, so random loss alone does not cut
	// the rate.
	CongestionModel
)

// String returns the controller's name.
func (cc CongestionControl) String() string {
	switch cc {
	case CongestionDefault:
		return "default"
	case CongestionDAIMD:
		return "DAIMD"
	case CongestionModel:
		return "model"
	}
	return fmt.Sprintf("CongestionControl(%d)", int(cc))
}

// validate checks c and returns a copy with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	for _, step := range []func(*Config) error{(*Config).sizes, (*Config).buffers, (*Config).times, (*Config).kinds, (*Config).limits} {
		if err := step(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// sizes fills in and checks the packet size and the flow window.
func (c *Config) sizes() error {
	if c.MSS == 0 {
		c.MSS = DefaultMSS
	}
	if c.MSS < minMSS || c.MSS > maxMSS {
		return fmt.Errorf("udt: Config.MSS %d is outside %d…%d", c.MSS, minMSS, maxMSS)
	}
	if c.FlowWindow == 0 {
		c.FlowWindow = DefaultFlowWindow
	}
	if c.FlowWindow < 0 || c.FlowWindow > maxWindow {
		return fmt.Errorf("udt: Config.FlowWindow %d is outside 0…%d", c.FlowWindow, maxWindow)
	}
	c.FlowWindow = max(c.FlowWindow, 32)
	return nil
}

// buffers fills in and checks the connection's and the socket's buffers.
func (c *Config) buffers() error {
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	if c.SendBuffer < 2 || c.SendBuffer > maxWindow {
		return fmt.Errorf("udt: Config.SendBuffer %d is outside 2…%d", c.SendBuffer, maxWindow)
	}
	if c.ReceiveBuffer == 0 {
		c.ReceiveBuffer = DefaultReceiveBuffer
	}
	if c.ReceiveBuffer < 0 || c.ReceiveBuffer > maxWindow {
		return fmt.Errorf("udt: Config.ReceiveBuffer %d is outside 0…%d", c.ReceiveBuffer, maxWindow)
	}
	c.ReceiveBuffer = min(max(c.ReceiveBuffer, 32), c.FlowWindow)
	if c.UDPSendBuffer == 0 {
		c.UDPSendBuffer = DefaultUDPSendBuffer
	}
	if c.UDPSendBuffer < c.MSS {
		return fmt.Errorf("udt: Config.UDPSendBuffer %d is below the MSS %d", c.UDPSendBuffer, c.MSS)
	}
	if c.UDPReceiveBuffer == 0 {
		c.UDPReceiveBuffer = c.ReceiveBuffer * c.MSS
	}
	if c.UDPReceiveBuffer < c.MSS {
		return fmt.Errorf("udt: Config.UDPReceiveBuffer %d is below the MSS %d", c.UDPReceiveBuffer, c.MSS)
	}
	if c.ReceiveMemory == 0 {
		c.ReceiveMemory = DefaultReceiveMemory
	}
	return nil
}

// times fills in and checks the durations.
func (c *Config) times() error {
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.LingerStall == 0 {
		c.LingerStall = DefaultLingerStall
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("udt: Config.ConnectTimeout %v is negative", c.ConnectTimeout)
	}
	if c.PeerIdleTimeout < 0 {
		return fmt.Errorf("udt: Config.PeerIdleTimeout %v is negative", c.PeerIdleTimeout)
	}
	if c.MessageTTL < 0 {
		return fmt.Errorf("udt: Config.MessageTTL %v is negative", c.MessageTTL)
	}
	return nil
}

// kinds fills in and checks the congestion controller and the socket type.
func (c *Config) kinds() error {
	if c.NewController != nil && c.Congestion != CongestionDefault {
		return fmt.Errorf("udt: Config.NewController and Config.Congestion %v are both set", c.Congestion)
	}
	switch c.Congestion {
	case CongestionDefault:
		if c.NewController == nil {
			c.Congestion = CongestionModel
		}
	case CongestionDAIMD, CongestionModel:
	default:
		return fmt.Errorf("udt: Config.Congestion %d is not a known controller", int(c.Congestion))
	}
	if c.Type != TypeStream && c.Type != TypeMessage {
		return fmt.Errorf("udt: Config.Type %d is neither TypeStream nor TypeMessage", int(c.Type))
	}
	return nil
}

// limits fills in and checks the listener's backlog and the socket's
// connection limit.
func (c *Config) limits() error {
	if c.Backlog == 0 {
		c.Backlog = DefaultBacklog
	}
	if c.Backlog < 0 || c.Backlog > maxBacklog {
		return fmt.Errorf("udt: Config.Backlog %d is outside 1…%d", c.Backlog, maxBacklog)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("udt: Config.MaxConns %d is negative", c.MaxConns)
	}
	return nil
}

// payloadSize is the data bytes one packet carries at the given MSS.
func payloadSize(mss int) int { return mss - 44 }

// Dialer dials UDT connections with a Config. The zero value is usable.
type Dialer struct {
	// Config holds the connection's options.
	Config Config
	// LocalAddr, if set, is the local UDP address to dial from. Dials from
	// the same local address share one UDP socket (and can share it with
	// a Listener on that address).
	LocalAddr *net.UDPAddr
}

// Dial connects to the UDT listener at address on the named network
// ("udp", "udp4" or "udp6").
func Dial(network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(context.Background(), network, address)
}

// DialContext is like Dial with a context that bounds the handshake.
func DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(ctx, network, address)
}

// Dial connects like the package-level Dial, with d's options.
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects like Dial; ctx cancels the handshake.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.DialUDT(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Listen announces a UDT listener on the local UDP address.
func Listen(network, address string) (net.Listener, error) {
	var lc ListenConfig
	l, err := lc.ListenUDT(context.Background(), network, address)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ListenConfig holds the options of a Listener. The zero value is usable.
type ListenConfig struct {
	// Config holds the options of the listener and the connections it accepts.
	Config Config
}

// Listen announces a listener like the package-level Listen.
func (lc *ListenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	l, err := lc.ListenUDT(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func resolveUDP(ctx context.Context, network, address string) (*net.UDPAddr, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, net.UnknownNetworkError(network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if host == "" {
		return net.ResolveUDPAddr(network, address)
	}
	var r net.Resolver
	addrs, err := r.LookupNetIP(ctx, ipNet(network), host)
	if err != nil {
		return nil, err
	}
	p, err := r.LookupPort(ctx, "udp", port)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		a = a.Unmap()
		if network == "udp4" && !a.Is4() || network == "udp6" && a.Is4() {
			continue
		}
		return &net.UDPAddr{IP: a.AsSlice(), Port: p, Zone: a.Zone()}, nil
	}
	return nil, &net.AddrError{Err: "no suitable address", Addr: host}
}

func ipNet(network string) string {
	switch network {
	case "udp4":
		return "ip4"
	case "udp6":
		return "ip6"
	}
	return "ip"
}
