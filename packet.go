package udt

// Wire codec of UDT4 packets: the 16-byte header shared by data and control
// packets, and the bodies of the control types other than the handshake
// (which lives in handshake.go). Every word is big-endian on the wire; data
// payload bytes are carried as they are. See docs/protocol.md §1-§3 and
// §7.
//
// Data packet (§2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-------------------------------------------------------------+
//	|0|                  sequence number (31)                       |
//	+-+-+-+---------------------------------------------------------+
//	|FF |O|              message number (29)                        |
//	+---+-+---------------------------------------------------------+
//	|                     timestamp (µs)                            |
//	+---------------------------------------------------------------+
//	|                destination socket ID                          |
//	+---------------------------------------------------------------+
//	|                 payload (up to MSS − 44 bytes)                |
//
// Control packet (§3):
//
//	+-+-----------------------------+-------------------------------+
//	|1|        type (15)            |      extended type (16)       |
//	+-+-----------------------------+-------------------------------+
//	|                      additional info                          |
//	+---------------------------------------------------------------+
//	|                 timestamp (0 from 4.11)                       |
//	+---------------------------------------------------------------+
//	|   destination socket ID (0 = connection request)              |
//	+---------------------------------------------------------------+
//	|   control information: 32-bit big-endian words                |

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/udt-go/udt/internal/seq"
)

const (
	headerSize   = 16
	udpIPv4Over  = 28 // IP + UDP header bytes the MSS includes (4.11 uses 28 for IPv6 too)
	dataOverhead = udpIPv4Over + headerSize
	controlBit   = 1 << 31
)

// ctrlType is a control packet type (15 bits).
type ctrlType uint16

const (
	ctrlHandshake  ctrlType = 0
	ctrlKeepAlive  ctrlType = 1
	ctrlACK        ctrlType = 2
	ctrlNAK        ctrlType = 3
	ctrlCongestion ctrlType = 4
	ctrlShutdown   ctrlType = 5
	ctrlACK2       ctrlType = 6
	ctrlDropReq    ctrlType = 7
	ctrlError      ctrlType = 8
	ctrlUser       ctrlType = 0x7FFF
)

func (t ctrlType) String() string {
	switch t {
	case ctrlHandshake:
		return "handshake"
	case ctrlKeepAlive:
		return "keep-alive"
	case ctrlACK:
		return "ACK"
	case ctrlNAK:
		return "NAK"
	case ctrlCongestion:
		return "congestion warning"
	case ctrlShutdown:
		return "shutdown"
	case ctrlACK2:
		return "ACK2"
	case ctrlDropReq:
		return "drop request"
	case ctrlError:
		return "error signal"
	case ctrlUser:
		return "user-defined"
	}
	return fmt.Sprintf("control type %#x", uint16(t))
}

// msgPos is the FF field of a data packet: where the packet sits in its message.
type msgPos uint8

const (
	posMiddle msgPos = 0 // 00
	posLast   msgPos = 1 // 01
	posFirst  msgPos = 2 // 10
	posSolo   msgPos = 3 // 11: the whole message in one packet
)

var (
	errShortPacket = errors.New("udt: datagram shorter than the 16-byte header")
	errShortBody   = errors.New("udt: control information too short for its type")
)

// packet is a decoded UDT datagram. body aliases the datagram it was parsed
// from: data payload for a data packet, control information otherwise.
type packet struct {
	control bool
	// data packets
	seq     seq.Num
	pos     msgPos
	inOrder bool
	msg     seq.Msg
	// control packets
	typ  ctrlType
	ext  uint16
	info uint32
	// both
	ts   uint32
	dst  uint32
	body []byte
	// arrival is when the datagram reached the host, if the socket
	// reports it; zero otherwise.
	arrival time.Time
	// blk is the receive worker's block that body is a slice of, if the
	// receive window may keep body as a view of it (see rxBlock).
	blk *rxBlock
}

// parsePacket decodes the header of b. It never reads past b and never
// allocates; body aliases b.
func parsePacket(b []byte) (packet, error) {
	var p packet
	if len(b) < headerSize {
		return p, errShortPacket
	}
	w0 := binary.BigEndian.Uint32(b[0:])
	w1 := binary.BigEndian.Uint32(b[4:])
	p.ts = binary.BigEndian.Uint32(b[8:])
	p.dst = binary.BigEndian.Uint32(b[12:])
	p.body = b[headerSize:]
	if w0&controlBit != 0 {
		p.control = true
		p.typ = ctrlType(w0 >> 16 & 0x7FFF)
		p.ext = uint16(w0)
		p.info = w1
		return p, nil
	}
	p.seq = seq.Num(w0)
	p.pos = msgPos(w1 >> 30)
	p.inOrder = w1&(1<<29) != 0
	p.msg = seq.Msg(w1 & uint32(seq.MsgMax))
	return p, nil
}

// appendHeader appends p's 16-byte header to b.
func (p *packet) appendHeader(b []byte) []byte {
	var w0, w1 uint32
	if p.control {
		w0 = controlBit | uint32(p.typ&0x7FFF)<<16 | uint32(p.ext)
		w1 = p.info
	} else {
		w0 = uint32(p.seq & seq.Max)
		w1 = uint32(p.pos)<<30 | uint32(p.msg&seq.MsgMax)
		if p.inOrder {
			w1 |= 1 << 29
		}
	}
	b = binary.BigEndian.AppendUint32(b, w0)
	b = binary.BigEndian.AppendUint32(b, w1)
	b = binary.BigEndian.AppendUint32(b, p.ts)
	return binary.BigEndian.AppendUint32(b, p.dst)
}

// append appends p's header and body to b.
func (p *packet) append(b []byte) []byte {
	return append(p.appendHeader(b), p.body...)
}

// zeroPad is the 4-byte body 4.11 sends with control types that carry none.
var zeroPad = []byte{0, 0, 0, 0}

// appendControl appends a control packet with the given body (or the 4-byte
// pad when body is empty) to b.
func appendControl(b []byte, typ ctrlType, info, dst uint32, body []byte) []byte {
	p := packet{control: true, typ: typ, info: info, dst: dst}
	b = p.appendHeader(b)
	if len(body) == 0 {
		body = zeroPad
	}
	return append(b, body...)
}

// ackBody is the control information of an ACK (§7.1). A light ACK has one
// word, a short ACK four, a full ACK six; words says which.
type ackBody struct {
	ack       seq.Num
	rtt       uint32 // µs
	rttVar    uint32 // µs
	avail     uint32 // packets
	rate      uint32 // packets/s
	bandwidth uint32 // packets/s
	words     int
}

// parseACK decodes an ACK body. It accepts any length of at least 4 bytes and
// uses the whole words present, up to six.
func parseACK(b []byte) (ackBody, error) {
	var a ackBody
	if len(b) < 4 {
		return a, errShortBody
	}
	n := min(len(b)/4, 6)
	var w [6]uint32
	for i := range n {
		w[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	if w[0]&controlBit != 0 {
		return a, errors.New("udt: ACK number has bit 31 set")
	}
	a.ack = seq.Num(w[0])
	a.rtt, a.rttVar, a.avail, a.rate, a.bandwidth = w[1], w[2], w[3], w[4], w[5]
	a.words = n
	return a, nil
}

// append appends the body's a.words words to b.
func (a *ackBody) append(b []byte) []byte {
	w := [6]uint32{uint32(a.ack), a.rtt, a.rttVar, a.avail, a.rate, a.bandwidth}
	for i := range min(max(a.words, 1), 6) {
		b = binary.BigEndian.AppendUint32(b, w[i])
	}
	return b
}

// dropBody is the control information of a message drop request (§7.3):
// the message number travels in the additional-info word.
type dropBody struct {
	first, last seq.Num
}

func parseDrop(b []byte) (dropBody, error) {
	if len(b) < 8 {
		return dropBody{}, errShortBody
	}
	f := binary.BigEndian.Uint32(b)
	l := binary.BigEndian.Uint32(b[4:])
	if f&controlBit != 0 || l&controlBit != 0 {
		return dropBody{}, errors.New("udt: drop request sequence number has bit 31 set")
	}
	return dropBody{seq.Num(f), seq.Num(l)}, nil
}

func (d *dropBody) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(d.first))
	return binary.BigEndian.AppendUint32(b, uint32(d.last))
}
