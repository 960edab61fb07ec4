package udt

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// SocketMetrics are the figures of one UDP socket, as a whole: what its
// listener, its dials and all its connections did, and what it read and
// wrote. A socket is shared by everything bound to its local address (see
// Multiplexing in the package doc), so a listener's figures include the
// dials made from its port; a [Transport]'s are those of the caller's
// socket, from NewTransport on.
//
// Counters are cumulative since the socket was opened (a Transport's, since
// NewTransport) and never go down; the three gauges (Conns, SendQueueDepth,
// ReceiveHeld) are current values. What one connection discards
// (duplicates, control packets it cannot use) is in its [Conn.Stats].
type SocketMetrics struct {
	// Conns is a gauge: the connections on the socket counted against
	// Config.MaxConns, that is dials in progress, established
	// connections and accepted ones not yet taken by Accept, until the
	// application closes them.
	Conns int64
	// SendQueueDepth is a gauge: the connections with data packets due
	// in the socket's send queue, as the send worker counted them at its
	// last write or wait.
	SendQueueDepth int64
	// ReceiveHeld is a gauge: the bytes of received data the socket's
	// connections hold for their readers, counted against
	// Config.ReceiveMemory (each packet at its connection's full payload
	// size).
	ReceiveHeld int64

	// PacketsIn counts the UDP datagrams the socket read, of every kind
	// (UDT's, a Transport's other traffic, garbage); a run the kernel
	// coalesced (UDP GRO) counts as the datagrams it joined.
	PacketsIn uint64
	// BytesIn counts the bytes of the datagrams in PacketsIn: UDP
	// payloads, UDT headers included.
	BytesIn uint64
	// PacketsOut counts the UDP datagrams written to the socket: data,
	// control packets, handshakes, and a Transport's WriteTo; the ones
	// the kernel refused too (see SendErrors). A run sent with UDP GSO
	// counts as the datagrams it carries.
	PacketsOut uint64
	// BytesOut counts the bytes of the datagrams in PacketsOut.
	BytesOut uint64
	// SendErrors counts the writes the kernel refused (a full buffer, an
	// unreachable host): one a datagram, or a GSO run, whose packets are
	// lost (retransmission repairs data packets).
	SendErrors uint64
	// NonUDT counts the datagrams a Transport queued for
	// ReadNonUDTPacket (see [Transport]).
	NonUDT uint64

	// Inductions counts the first handshake requests (cookie requests)
	// the listener answered with a cookie.
	Inductions uint64
	// Accepted counts the connections the listener made: conclusions
	// whose cookie checked out, answered with a new connection.
	Accepted uint64
	// Dialed counts the connections established by Dial and
	// DialRendezvous (or a Transport's) from the socket.
	Dialed uint64
	// CookiesRejected counts the conclusions the listener dropped for a
	// bad or expired cookie: forged requests, or a client that waited
	// over two minutes between its two handshake requests.
	CookiesRejected uint64
	// Refused counts the conclusions the listener refused (the 1002
	// answer, which a dial sees as ErrConnRefused), by reason.
	Refused HandshakeRefusals
	// Dropped counts the datagrams the socket discarded, by reason.
	Dropped DatagramDrops
}

// HandshakeRefusals are the listener's refusals of connection requests
// (conclusions with a good cookie), by reason; see [SocketMetrics].
type HandshakeRefusals struct {
	BacklogFull uint64 // Config.Backlog connections were waiting for Accept
	MaxConns    uint64 // the socket carried Config.MaxConns connections
	Closing     uint64 // the listener was closing
	Version     uint64 // the client's UDT version is not 4
	SocketType  uint64 // stream against message (Config.Type)
}

// DatagramDrops are the datagrams a socket discarded, by reason; see
// [SocketMetrics].
type DatagramDrops struct {
	// Malformed: shorter than the UDT header, longer than the socket
	// reads (64 KiB), or a handshake to the listener that does not parse
	// or carries impossible fields (socket ID, MSS, window, ISN, request
	// type).
	Malformed uint64
	// Unroutable: naming no connection, dial or listener of the socket
	// (an unknown or closed socket ID, destination 0 with no listener or
	// rendezvous peer, anything but a handshake to destination 0), and
	// not taken by a Transport's ReadNonUDTPacket (handshakes never are).
	Unroutable uint64
	// Foreign: naming a connection, from another address than its
	// peer's (also in that connection's Stats).
	Foreign uint64
	// NonUDTQueueFull: a Transport's datagrams for ReadNonUDTPacket that
	// came while NonUDTQueue of them were waiting (also NonUDTDropped).
	NonUDTQueueFull uint64
	// ReceiveMemory: data packets refused because the socket's
	// connections held all of Config.ReceiveMemory (also in the
	// connection's Stats as PktRecvDropped); the sender resends them.
	ReceiveMemory uint64
}

// dropReason indexes socketCounters.dropped.
type dropReason int

const (
	dropMalformed dropReason = iota
	dropUnroutable
	dropForeign
	dropNonUDTFull
	dropReceiveMemory
	numDropReasons
)

// refusal is why the listener refused a conclusion; refusedNone admits it.
type refusal int

const (
	refusedNone refusal = iota
	refusedBacklog
	refusedMaxConns
	refusedClosing
	refusedVersion
	refusedSocketType
	numRefusals
)

// reason says why, for the log (see Listener.logRefused).
func (r refusal) reason(cfg *Config) string {
	switch r {
	case refusedBacklog:
		return "backlog full"
	case refusedMaxConns:
		return fmt.Sprintf("connection limit (MaxConns %d)", cfg.MaxConns)
	case refusedClosing:
		return "listener closing"
	}
	return ""
}

// socketCounters are a multiplexer's counters and gauges behind
// SocketMetrics; any goroutine. The receive worker adds what it read once
// per read batch, the send worker what it wrote once per write batch; the
// rest counts events off the data path (handshakes, drops, control
// packets written in one go). What the two workers count sits on cache
// lines of its own, so that neither invalidates the other's.
type socketCounters struct {
	_ cpu.CacheLinePad
	// Receive worker.
	pktsIn, bytesIn atomic.Uint64
	nonUDT          atomic.Uint64 // datagrams queued for ReadNonUDTPacket
	dropped         [numDropReasons]atomic.Uint64
	_               cpu.CacheLinePad
	// Send worker, and the control packets of the other goroutines.
	pktsOut, bytesOut, sendErrors atomic.Uint64
	sendDepth                     atomic.Int64
	// The send queue's data writes, and the packets they carried.
	batches, batched atomic.Uint64
	_                cpu.CacheLinePad
	// Handshakes.
	inductions, accepted, dialed, cookiesBad atomic.Uint64
	refused                                  [numRefusals]atomic.Uint64
}

// drop counts a datagram dropped for reason.
func (s *socketCounters) drop(reason dropReason) { s.dropped[reason].Add(1) }

// wrote counts n datagrams of size bytes in all written to the socket.
func (s *socketCounters) wrote(n, size int) {
	s.pktsOut.Add(uint64(n))
	s.bytesOut.Add(uint64(size))
}

// wroteBatch counts a write of the send queue's data batch of n packets
// (see sendWorker.waitUntil).
func (s *socketCounters) wroteBatch(n int) {
	s.batches.Add(1)
	s.batched.Add(uint64(n))
}

// rxCount is what one batch read brought: datagrams (a GRO run counted
// as the datagrams it joined), their bytes, and how many of them were
// truncated (larger than the buffer) and dropped.
type rxCount struct{ pkts, bytes, truncated uint64 }

// read counts a batch read; receive worker.
func (s *socketCounters) read(n rxCount) {
	s.pktsIn.Add(n.pkts)
	s.bytesIn.Add(n.bytes)
	if n.truncated > 0 {
		s.dropped[dropMalformed].Add(n.truncated)
	}
}

// metrics reads m's counters: a few dozen atomic loads, however many
// connections the socket carries.
func (m *multiplexer) metrics() SocketMetrics {
	s := &m.ctr
	return SocketMetrics{
		Conns:           m.open.Load(),
		SendQueueDepth:  s.sendDepth.Load(),
		ReceiveHeld:     m.rcvHeld.Load(),
		PacketsIn:       s.pktsIn.Load(),
		BytesIn:         s.bytesIn.Load(),
		PacketsOut:      s.pktsOut.Load(),
		BytesOut:        s.bytesOut.Load(),
		SendErrors:      s.sendErrors.Load(),
		NonUDT:          s.nonUDT.Load(),
		Inductions:      s.inductions.Load(),
		Accepted:        s.accepted.Load(),
		Dialed:          s.dialed.Load(),
		CookiesRejected: s.cookiesBad.Load(),
		Refused: HandshakeRefusals{
			BacklogFull: s.refused[refusedBacklog].Load(),
			MaxConns:    s.refused[refusedMaxConns].Load(),
			Closing:     s.refused[refusedClosing].Load(),
			Version:     s.refused[refusedVersion].Load(),
			SocketType:  s.refused[refusedSocketType].Load(),
		},
		Dropped: DatagramDrops{
			Malformed:       s.dropped[dropMalformed].Load(),
			Unroutable:      s.dropped[dropUnroutable].Load(),
			Foreign:         s.dropped[dropForeign].Load(),
			NonUDTQueueFull: s.dropped[dropNonUDTFull].Load(),
			ReceiveMemory:   s.dropped[dropReceiveMemory].Load(),
		},
	}
}

// Metrics returns the figures of the listener's UDP socket (see
// [SocketMetrics]). It reads counters kept as the socket works, and costs
// the same however many connections are open; it is safe for concurrent
// use, and after Close returns the socket's figures as they stand.
func (l *Listener) Metrics() SocketMetrics { return l.m.metrics() }

// Metrics returns the figures of the Transport's socket since
// NewTransport (see [SocketMetrics]), at a cost independent of the
// number of connections; it is safe for concurrent use, after Close too.
func (t *Transport) Metrics() SocketMetrics { return t.m.metrics() }

// SocketMetrics returns the figures of the UDP socket the connection
// lives on, shared with the other connections and the listener there (see
// [SocketMetrics]); its own are in Stats. It is safe for concurrent use.
func (c *Conn) SocketMetrics() SocketMetrics { return c.m.metrics() }
