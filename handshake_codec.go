package udt

// Handshake body (control type 0), 48 bytes (docs/protocol.md §4):
//
//	+---------------------------------------------------------------+
//	|                 UDT version (4)                               |  0
//	|                 socket type (1 stream, 2 datagram)            |  4
//	|                 initial sequence number                       |  8
//	|                 MSS (bytes, IP+UDP headers included)          | 12
//	|                 flow window (packets)                         | 16
//	|                 request type (1, 0, −1, −2, 1002)             | 20
//	|                 socket ID of the sender                       | 24
//	|                 SYN cookie                                    | 28
//	|                 peer IP (16 bytes, each word byte-reversed)   | 32–47
//	+---------------------------------------------------------------+

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

const (
	hsBodySize  = 48
	hsPacketLen = headerSize + hsBodySize
	udtVersion  = 4

	sockStream = 1
	sockDgram  = 2

	reqRendezvous = 0
	reqInduction  = 1 // client's first request and the listener's cookie reply
	reqConclusion = -1
	reqAgreement  = -2
	reqRefused    = 1002
)

// handshake is the decoded body of a handshake packet. Integer fields keep
// their raw wire values so hostile values survive a round trip for checks.
type handshake struct {
	version  uint32
	sockType uint32
	isn      uint32
	mss      uint32
	window   uint32
	reqType  int32
	socketID uint32
	cookie   uint32
	peerIP   [16]byte // as on the wire
}

var errHandshakeLen = errors.New("udt: handshake body shorter than 48 bytes")

// parseHandshake decodes the first 48 bytes of a handshake body.
func parseHandshake(b []byte) (handshake, error) {
	var h handshake
	if len(b) < hsBodySize {
		return h, errHandshakeLen
	}
	be := binary.BigEndian
	h.version = be.Uint32(b[0:])
	h.sockType = be.Uint32(b[4:])
	h.isn = be.Uint32(b[8:])
	h.mss = be.Uint32(b[12:])
	h.window = be.Uint32(b[16:])
	h.reqType = int32(be.Uint32(b[20:]))
	h.socketID = be.Uint32(b[24:])
	h.cookie = be.Uint32(b[28:])
	copy(h.peerIP[:], b[32:48])
	return h, nil
}

// append appends the 48-byte body to b.
func (h *handshake) append(b []byte) []byte {
	be := binary.BigEndian
	b = be.AppendUint32(b, h.version)
	b = be.AppendUint32(b, h.sockType)
	b = be.AppendUint32(b, h.isn)
	b = be.AppendUint32(b, h.mss)
	b = be.AppendUint32(b, h.window)
	b = be.AppendUint32(b, uint32(h.reqType))
	b = be.AppendUint32(b, h.socketID)
	b = be.AppendUint32(b, h.cookie)
	return append(b, h.peerIP[:]...)
}

// appendHandshakePacket appends a whole handshake datagram addressed to dst.
func appendHandshakePacket(b []byte, dst uint32, h *handshake) []byte {
	p := packet{control: true, typ: ctrlHandshake, dst: dst}
	return h.append(p.appendHeader(b))
}

// putPeerIP stores ip in the wire layout of the C++ library on x86: each
// 4-byte group reversed, an IPv4 address in group 0 and the rest zero.
func putPeerIP(dst *[16]byte, ip netip.Addr) {
	*dst = [16]byte{}
	ip = ip.Unmap()
	var src []byte
	if ip.Is4() {
		a := ip.As4()
		src = a[:]
	} else if ip.Is6() {
		a := ip.As16()
		src = a[:]
	}
	for i := 0; i+4 <= len(src); i += 4 {
		dst[i], dst[i+1], dst[i+2], dst[i+3] = src[i+3], src[i+2], src[i+1], src[i]
	}
}

// peerIPAddr decodes the peer-IP field; an all-zero tail beyond the first
// word is taken as IPv4.
func peerIPAddr(f [16]byte) netip.Addr {
	var raw [16]byte
	for i := 0; i < 16; i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = f[i+3], f[i+2], f[i+1], f[i]
	}
	if [12]byte(raw[4:]) == [12]byte{} {
		return netip.AddrFrom4([4]byte(raw[:4]))
	}
	return netip.AddrFrom16(raw)
}
