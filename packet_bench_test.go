package udt

import (
	"testing"

	"github.com/udt-go/udt/internal/seq"
)

func BenchmarkParsePacket(b *testing.B) {
	p := packet{seq: 12345, pos: posSolo, msg: 7, ts: 99, dst: 42}
	wire := append(p.appendHeader(nil), make([]byte, 1456)...)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parsePacket(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendDataHeader(b *testing.B) {
	buf := make([]byte, 0, 64)
	p := packet{seq: 12345, pos: posSolo, msg: 7, ts: 99, dst: 42}
	b.ReportAllocs()
	for b.Loop() {
		p.seq = p.seq.Inc()
		buf = p.appendHeader(buf[:0])
	}
}

func BenchmarkHandshakeRoundTrip(b *testing.B) {
	h := handshake{version: 4, sockType: 1, isn: 1, mss: 1500, window: 8192, reqType: -1, socketID: 9}
	buf := make([]byte, 0, hsPacketLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendHandshakePacket(buf[:0], 5, &h)
		p, _ := parsePacket(buf)
		if _, err := parseHandshake(p.body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkACKRoundTrip(b *testing.B) {
	a := ackBody{ack: seq.Num(77), rtt: 100, rttVar: 50, avail: 8000, rate: 1000, bandwidth: 2000, words: 6}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendControl(buf[:0], ctrlACK, 3, 9, a.append(buf[headerSize:headerSize]))
		p, _ := parsePacket(buf)
		if _, err := parseACK(p.body); err != nil {
			b.Fatal(err)
		}
	}
}
